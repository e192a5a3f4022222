//! A trained classifier and what it says about members: class and softmax confidence,
//! batched, with members decoded in parallel ahead of the network.

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{Array1, Array2, ArrayView2};
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
    /// The network's linear head, copied to the host once.
    head: (Array2<f32>, Array1<f32>),
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
            head: model.head_weights(),
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
        let features = self.features(ensemble, members, control)?;
        self.probabilities_from_features(features.view(), &|row| ensemble.member_id(members[row]))
    }

    /// The pooled features the linear head classifies, of `members` (rows in their order).
    /// With [`Self::probabilities_from_features`] they answer for the same members without
    /// another pass through the network (a refreshed head reuses them).
    pub fn features(
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
        let width = self.head.0.nrows();
        let mut out = Array2::<f32>::zeros((members.len(), width));
        let mut done = 0;
        for batch in loader {
            control.check()?;
            let batch = batch?;
            let x = Tensor::<4>::from_data(TensorData::new(batch.data, batch.shape), &self.device);
            let features = self
                .model
                .features(x)
                .try_into_vec_as::<f32>()
                .map_err(|e| ClassifyError::Failed(format!("cannot read features: {e:?}")))?;
            // The loader streams members in the order given.
            for row in features.chunks_exact(width) {
                out.row_mut(done).assign(&ndarray::ArrayView1::from(row));
                done += 1;
            }
            control.report("predict", done, members.len());
        }
        Ok(out)
    }

    /// Softmax class probabilities from [`Self::features`] rows, on the host; `id_of(row)`
    /// names a row whose answer is not finite.
    pub fn probabilities_from_features(
        &self,
        features: ArrayView2<f32>,
        id_of: &dyn Fn(usize) -> String,
    ) -> ClassifyResult<Array2<f32>> {
        let (weight, bias) = &self.head;
        let mut logits = features.dot(weight);
        logits += bias;
        for (row, mut scores) in logits.rows_mut().into_iter().enumerate() {
            let top = scores.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            scores.mapv_inplace(|v| (v - top).exp());
            let total = scores.sum();
            scores /= total;
            if !(total.is_finite() && total > 0.0) || scores.iter().any(|p| !p.is_finite()) {
                return Err(ClassifyError::Failed(format!(
                    "member {}: the network gave no finite class probability",
                    id_of(row)
                )));
            }
        }
        Ok(logits)
    }

    /// The same network with a new linear head (`weight`: features × classes).
    pub(super) fn with_head(&self, weight: Array2<f32>, bias: Array1<f32>) -> Self {
        Self {
            model: self
                .model
                .clone()
                .with_head_weights(&weight, &bias, &self.device),
            device: self.device.clone(),
            classes: self.classes.clone(),
            normalization: self.normalization.clone(),
            working_shape: self.working_shape,
            member_shape: self.member_shape,
            config: self.config.clone(),
            report: self.report.clone(),
            head: (weight, bias),
        }
    }

    /// The linear head on the host: weight (features × classes) and bias.
    pub(super) fn head(&self) -> (&Array2<f32>, &Array1<f32>) {
        (&self.head.0, &self.head.1)
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
