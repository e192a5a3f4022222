//! Proposals into the label store: one pseudo-label per member without a manual label, with
//! the classifier run as provenance. The store writes them atomically and replaces the
//! previous run's pseudo-labels in the same change.

use serde::{Deserialize, Serialize};

use super::predict::Prediction;
use crate::data::Ensemble;
use crate::error::DataResult;
use crate::labels::{LabelStore, Provenance};

/// A name for a classifier run, for provenance: `effnetv2@<UTC time>`.
pub fn new_run_id() -> String {
    run_id_now("effnetv2")
}

/// `<what>@<UTC time>`: a pseudo-labelling run's name for provenance, e.g. `latent@…` for
/// spreading over latents.
pub fn run_id_now(what: &str) -> String {
    format!(
        "{what}@{}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    )
}

/// Pseudo-labels of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassPseudoCount {
    pub class: String,
    pub pseudo_labelled: usize,
    /// Of those, with confidence ≥ the threshold (the ones the auxiliary losses use).
    pub above_threshold: usize,
}

/// What one run wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PseudoLabelSummary {
    pub run_id: String,
    pub pseudo_labelled: usize,
    pub above_threshold: usize,
    pub threshold: f32,
    pub per_class: Vec<ClassPseudoCount>,
}

/// Counts per class; "above" uses `>=`, exactly as
/// [`LabelStore::snapshot`](crate::labels::LabelStore::snapshot) admits pseudo-labels.
pub fn summarise(
    run_id: &str,
    classes: &[String],
    predictions: &[Prediction],
    threshold: f32,
) -> PseudoLabelSummary {
    let mut per_class: Vec<ClassPseudoCount> = classes
        .iter()
        .map(|class| ClassPseudoCount {
            class: class.clone(),
            pseudo_labelled: 0,
            above_threshold: 0,
        })
        .collect();
    for p in predictions {
        if let Some(count) = per_class.get_mut(p.class as usize) {
            count.pseudo_labelled += 1;
            count.above_threshold += usize::from(p.confidence >= threshold);
        }
    }
    PseudoLabelSummary {
        run_id: run_id.to_string(),
        pseudo_labelled: predictions.len(),
        above_threshold: per_class.iter().map(|c| c.above_threshold).sum(),
        threshold,
        per_class,
    }
}

/// One labeller run's pseudo-labels, not yet in any store: whoever owns the store (the
/// app's label keeper, the CLI) writes them, as one undoable change.
#[derive(Debug, Clone, PartialEq)]
pub struct PseudoLabelProposal {
    /// Class names the predictions index (store classes when the run started).
    pub classes: Vec<String>,
    pub predictions: Vec<Prediction>,
    pub provenance: Provenance,
}

impl PseudoLabelProposal {
    /// Replaces the store's pseudo-labels by these; `id_of` names a member (`None`: the
    /// member is gone and its proposal is skipped).
    pub fn write_to<'a>(
        &'a self,
        store: &mut LabelStore,
        id_of: impl Fn(usize) -> Option<&'a str>,
    ) -> DataResult<()> {
        let entries = self.predictions.iter().filter_map(|p| {
            let class = self.classes.get(p.class as usize)?;
            Some((id_of(p.member)?, class.as_str(), p.confidence))
        });
        store.set_pseudo(entries, self.provenance.clone())?;
        Ok(())
    }
}

/// Replaces the store's pseudo-labels by `predictions` (class indices into `classes`, which
/// must be store classes), all with `provenance` (e.g. `classifier:<run_id>`). Empty
/// `predictions` clear them: a run that trusts no labeller leaves no stale proposals.
pub fn write_pseudo_labels(
    store: &mut LabelStore,
    ensemble: &Ensemble,
    classes: &[String],
    predictions: &[Prediction],
    provenance: Provenance,
) -> DataResult<()> {
    let entries = predictions.iter().filter_map(|p| {
        let class = classes.get(p.class as usize)?;
        Some((ensemble.member_id(p.member), class.as_str(), p.confidence))
    });
    store.set_pseudo(entries, provenance)?;
    Ok(())
}
