//! A trained classifier and what it says about members: class and softmax confidence,
//! batched, with members decoded in parallel ahead of the network.

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::Array2;
use std::sync::Arc;

use super::config::ClassifierConfig;
use super::error::{ClassifyError, ClassifyResult};
use super::input::working_source;
use super::metrics::{ConfusionMatrix, HeldoutReport};
use super::network::EfficientNet;
use super::train::arg_max;
use crate::data::{BatchLoader, Ensemble, Normalization, Shape};
use crate::error::DataError;
use crate::task::TaskControl;

/// The classifier's answer for one member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub member: usize,
    /// Index into [`TrainedClassifier::classes`].
    pub class: u32,
    /// Softmax probability of `class`, in (0, 1].
    pub confidence: f32,
}

/// Best held-out weights plus everything needed to apply them to new members.
#[derive(Debug)]
pub struct TrainedClassifier {
    model: EfficientNet,
    device: Device,
    classes: Vec<String>,
    normalization: Arc<Normalization>,
    working_shape: Shape,
    member_shape: Shape,
    config: ClassifierConfig,
    report: HeldoutReport,
}

impl TrainedClassifier {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        model: EfficientNet,
        device: Device,
        classes: Vec<String>,
        normalization: Normalization,
        working_shape: Shape,
        member_shape: Shape,
        config: ClassifierConfig,
        report: HeldoutReport,
    ) -> Self {
        Self {
            model,
            device,
            classes,
            normalization: Arc::new(normalization),
            working_shape,
            member_shape,
            config,
            report,
        }
    }

    /// Class names, in output order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn report(&self) -> &HeldoutReport {
        &self.report
    }

    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// The network, for a fine-tuning run to start from.
    pub(super) fn model(&self) -> &EfficientNet {
        &self.model
    }

    /// The input normalisation fitted when it was first trained.
    pub(super) fn normalization(&self) -> Arc<Normalization> {
        self.normalization.clone()
    }

    /// The size the network sees.
    pub fn working_shape(&self) -> Shape {
        self.working_shape
    }

    /// Predictions for `members` of `ensemble` (members of the shape trained on), in order.
    pub fn predict(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Vec<Prediction>> {
        let probabilities = self.probabilities(ensemble, members, control)?;
        Ok(members
            .iter()
            .zip(probabilities.rows())
            .map(|(&member, row)| {
                let (class, confidence) = arg_max(row.as_slice().unwrap_or(&[]));
                Prediction {
                    member,
                    class: class as u32,
                    confidence,
                }
            })
            .collect())
    }

    /// Softmax class probabilities of `members` (rows in their order, columns as
    /// [`Self::classes`]); an error names a member the network gave no finite answer for.
    pub fn probabilities(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f32>> {
        if ensemble.shape() != self.member_shape {
            return Err(DataError::new(
                ensemble.origin(),
                format!(
                    "members are {}, but the classifier was trained on {}",
                    ensemble.shape(),
                    self.member_shape
                ),
            )
            .into());
        }
        let source = working_source(ensemble.source.clone(), self.config.input_size);
        let loader = BatchLoader::builder(source, members.to_vec(), self.config.predict_batch_size)
            .normalize(self.normalization.clone())
            .prefetch(2)
            .start()?;
        let k = self.classes.len();
        let mut out = Array2::<f32>::zeros((members.len(), k));
        let mut done = 0;
        for batch in loader {
            control.check()?;
            let batch = batch?;
            let x = Tensor::<4>::from_data(TensorData::new(batch.data, batch.shape), &self.device);
            let probs = softmax(self.model.forward(x), 1)
                .try_into_vec_as::<f32>()
                .map_err(|e| ClassifyError::Failed(format!("cannot read predictions: {e:?}")))?;
            // The loader streams members in the order given.
            for (row, &member) in probs.chunks_exact(k).zip(&batch.members) {
                let (_, confidence) = arg_max(row);
                if !(confidence > 0.0 && confidence <= 1.0) || row.iter().any(|p| !p.is_finite()) {
                    return Err(ClassifyError::Failed(format!(
                        "member {}: the network gave no finite class probability",
                        ensemble.member_id(member)
                    )));
                }
                out.row_mut(done).assign(&ndarray::ArrayView1::from(row));
                done += 1;
            }
            control.report("predict", done, members.len());
        }
        Ok(out)
    }

    /// Confusion against the known classes `truth` (indices into [`Self::classes`]) of
    /// `members` of `ensemble`.
    pub fn score(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        truth: &[u32],
        control: &TaskControl,
    ) -> ClassifyResult<ConfusionMatrix> {
        let predictions = self.predict(ensemble, members, control)?;
        let mut confusion = ConfusionMatrix::new(self.classes.clone());
        for (p, &t) in predictions.iter().zip(truth) {
            confusion.add(t, p.class);
        }
        Ok(confusion)
    }
}
