//! One pseudo-labelling run: train on the hand-labelled members, then predict every other
//! member. The caller writes the result to its label store (it owns the store's lock).

use super::config::ClassifierConfig;
use super::error::ClassifyResult;
use super::labelled::LabelledSet;
use super::predict::{Prediction, TrainedClassifier};
use super::pseudo::{PseudoLabelSummary, summarise};
use super::train::{EpochProgress, train};
use crate::data::Ensemble;
use crate::task::TaskControl;
use crate::train::SelectedBackend;

pub struct PseudoLabelOutcome {
    pub classifier: TrainedClassifier,
    /// One per member without a hand label, in member order.
    pub predictions: Vec<Prediction>,
    pub summary: PseudoLabelSummary,
}

/// Trains on `labelled` and predicts every member of `ensemble` outside it.
pub fn train_and_predict(
    ensemble: &Ensemble,
    labelled: &LabelledSet,
    config: &ClassifierConfig,
    backend: &SelectedBackend,
    run_id: &str,
    control: &TaskControl,
    on_epoch: &mut dyn FnMut(&EpochProgress),
) -> ClassifyResult<PseudoLabelOutcome> {
    let classifier = train(ensemble, labelled, config, backend, control, on_epoch)?;
    let mut hand_labelled = vec![false; ensemble.len()];
    for &member in &labelled.members {
        hand_labelled[member] = true;
    }
    let unlabelled: Vec<usize> = (0..ensemble.len()).filter(|&m| !hand_labelled[m]).collect();
    let predictions = classifier.predict(ensemble, &unlabelled, control)?;
    let summary = summarise(
        run_id,
        classifier.classes(),
        &predictions,
        config.confidence_threshold,
    );
    Ok(PseudoLabelOutcome {
        classifier,
        predictions,
        summary,
    })
}
