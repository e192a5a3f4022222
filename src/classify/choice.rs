//! Which pseudo-labeller a run trusts, chosen by evidence from the hand labels alone.
//!
//! Two labellers compete: label spreading over a kNN graph of the members' features (a
//! training run's latents, raw-pixel PCA or the binned power spectrum, whichever spreading
//! estimates best) and the EfficientNetV2-style classifier. Each one's accuracy is estimated
//! on hand labels it did not see — stratified k-fold while labels are few (a 20 % hold-out of
//! a few dozen labels is too small to choose with), the classifier's own 20 % hold-out beyond
//! [`KFOLD_MAX_LABELS`] (k trainings would cost more than they tell) — and so is the mean of
//! their class distributions. The best estimate wins (spreading on a tie: it is cheaper and
//! follows the map); the mean only when it beats the better one measurably (a one-sided
//! McNemar test at 95 %). When the winner does not beat the majority-class rate beyond chance
//! (a one-sided 95 % binomial margin), nothing is chosen and no pseudo-labels are written.
//! Confidences are calibrated on the same held-out answers (temperature scaling).

use ndarray::{Array2, ArrayView2};
use serde::Serialize;
use std::sync::Arc;

use super::config::ClassifierConfig;
use super::error::{ClassifyError, ClassifyResult};
use super::labelled::LabelledSet;
use super::predict::{Prediction, TrainedClassifier};
use super::pseudo::{new_run_id, run_id_now};
use super::spreading::{SpreadingConfig, cross_validate, spread_labels, stratified_folds};
use super::train::{EpochProgress, refit_head, train};
use crate::data::{Ensemble, Split, SplitFractions};
use crate::labels::Provenance;
use crate::projection::{Distance, KnnGraph, KnnSearch};
use crate::task::TaskControl;
use crate::train::SelectedBackend;

/// Up to this many hand labels, both labellers are estimated by stratified k-fold.
pub const KFOLD_MAX_LABELS: usize = 1000;
/// Folds of the k-fold estimate.
pub const CV_FOLDS: usize = 5;
/// Neighbours per member in the spreading graph (k = 6, 10 and 15 gave the same MNIST
/// accuracy within 0.003 at 100 labels: bench/README.md).
pub const SPREADING_NEIGHBOURS: usize = 10;

/// A pseudo-labeller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Labeller {
    Spreading,
    Classifier,
    /// The mean of the two class distributions.
    Combined,
}

impl Labeller {
    /// A run id and provenance for this labeller's proposals, made now: `effnetv2@…`,
    /// `<features>@…` (spreading over `features`, e.g. `latent` or `pixels`) or
    /// `effnetv2+<features>@…`.
    pub fn provenance(self, features: &str) -> (String, Provenance) {
        match self {
            Labeller::Classifier => {
                let run_id = new_run_id();
                (run_id.clone(), Provenance::classifier(run_id))
            }
            Labeller::Spreading => {
                let run_id = run_id_now(features);
                (run_id.clone(), Provenance::spreading(run_id))
            }
            Labeller::Combined => {
                let run_id = run_id_now(&format!("effnetv2+{features}"));
                (run_id.clone(), Provenance::combined(run_id))
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Labeller::Spreading => "spreading",
            Labeller::Classifier => "classifier",
            Labeller::Combined => "combined",
        }
    }
}

/// How the accuracies were estimated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Estimation {
    KFold {
        folds: usize,
    },
    /// The classifier's stratified held-out part, hidden from both.
    Holdout {
        fraction: f64,
    },
}

impl std::fmt::Display for Estimation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Estimation::KFold { folds } => write!(f, "stratified {folds}-fold"),
            Estimation::Holdout { fraction } => write!(f, "{:.0} % hold-out", fraction * 100.0),
        }
    }
}

/// One labeller's estimated accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub labeller: Labeller,
    pub accuracy: f64,
    /// Hand-labelled members it got right, of [`Choice::scored_members`].
    pub correct: usize,
    /// Its scores' calibration on the same held-out answers: confidences are
    /// `score^(1/T)`, renormalised (T > 1 softens overconfident scores).
    pub temperature: f64,
}

/// The estimates and what they decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub estimation: Estimation,
    /// Hand-labelled members the estimates are scored on.
    pub scored_members: usize,
    /// Accuracy of always answering the commonest class, on the same members.
    pub majority_rate: f64,
    pub estimates: Vec<Estimate>,
    /// `None`: no labeller beat the majority rate, so no pseudo-labels.
    pub chosen: Option<Labeller>,
    /// The features spreading used (the best by its own k-fold estimate when several
    /// were given).
    pub features: Option<String>,
    /// Spreading's k-fold estimate over each feature set, when there were several.
    pub feature_estimates: Vec<FeatureEstimate>,
    /// Why, in a sentence for the user.
    pub reason: String,
}

impl Choice {
    pub fn accuracy_of(&self, labeller: Labeller) -> Option<f64> {
        self.estimates
            .iter()
            .find(|e| e.labeller == labeller)
            .map(|e| e.accuracy)
    }
}

/// Which labellers compete, and how.
#[derive(Clone, Copy)]
pub struct LabellerOptions<'a> {
    /// `None`: spreading does not compete.
    pub spreading: Option<SpreadingConfig>,
    /// `None`: the classifier does not compete.
    pub classifier: Option<(&'a ClassifierConfig, &'a SelectedBackend)>,
    /// Keep the losing labeller's final model too (to compare both on other data).
    pub keep_both: bool,
    /// Skip the estimates and keep an earlier run's choice (after a few hand-label edits).
    pub refresh: Option<Refresh<'a>>,
    pub seed: u64,
}

/// An earlier run to refresh instead of choosing again: its choice stands, spreading runs
/// over the new labels, and its classifier (if chosen) gets its linear head refitted from its
/// weights on its cached features.
#[derive(Clone, Copy)]
pub struct Refresh<'a> {
    pub choice: &'a Choice,
    /// Trained on the earlier hand labels, with the same classes; `None`: train anew.
    pub classifier: Option<&'a TrainedClassifier>,
    /// Its [`TrainedClassifier::features`] of every member: its head is refitted on them.
    pub features: Option<&'a Arc<Array2<f32>>>,
}

/// Features of every member that spreading may use, one row per member.
#[derive(Clone)]
pub struct FeatureSet {
    /// `latent`, `pixels`, `spectrum`: names the features in the provenance.
    pub name: &'static str,
    pub rows: Arc<Array2<f32>>,
    /// A kNN graph of these or earlier rows (e.g. the previous epoch's latents) to start
    /// NN-descent from.
    pub start: Option<Arc<KnnGraph>>,
    /// `start` was built on exactly these rows: use it as it is, without a search.
    pub start_is_current: bool,
}

/// Spreading's estimated accuracy over one feature set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureEstimate {
    pub features: String,
    pub accuracy: f64,
}

/// What a step of [`choose_and_label`] is doing, for progress displays.
pub enum LabellerStep<'a> {
    Stage(&'a str),
    Epoch(&'a EpochProgress),
}

/// Label spreading's result over every member, with what it needs to score new members.
pub struct SpreadingModel {
    pub graph: Arc<KnnGraph>,
    /// Per member, normalised class scores (rows of members no label reached are 0).
    pub distributions: Array2<f64>,
    features: Arc<Array2<f32>>,
}

impl SpreadingModel {
    /// Class scores of new members from their features (as scikit-learn's
    /// `LabelSpreading.predict_proba`: the mean of their k nearest members' scores).
    pub fn distributions_of(
        &self,
        features: ArrayView2<f32>,
        control: &TaskControl,
    ) -> ClassifyResult<Array2<f64>> {
        let queries = features.as_standard_layout();
        let k = self.graph.k();
        let neighbours = search(&self.features, k)?
            .query(queries.as_slice().unwrap_or(&[]), &|| {
                control.is_cancelled()
            })?;
        let mut out = Array2::<f64>::zeros((features.nrows(), self.distributions.ncols()));
        for (mut row, near) in out.rows_mut().into_iter().zip(neighbours.chunks_exact(k)) {
            for &j in near {
                row += &self.distributions.row(j as usize);
            }
            let sum = row.sum();
            if sum > 0.0 {
                row /= sum;
            }
        }
        Ok(out)
    }
}

/// The estimates, the choice, and the chosen labeller's pseudo-labels.
pub struct LabellerOutcome {
    pub choice: Choice,
    /// Class names; predictions index into them.
    pub classes: Vec<String>,
    /// The chosen labeller's answer for every member without a hand label (those no
    /// label reached are left out); empty when nothing was chosen.
    pub predictions: Vec<Prediction>,
    /// Trained on every hand label, when the classifier was chosen, combined or kept.
    pub classifier: Option<TrainedClassifier>,
    /// Its [`TrainedClassifier::features`] of every member, when it labelled them (a refresh
    /// refits its head on them).
    pub classifier_features: Option<Arc<Array2<f32>>>,
    pub spreading: Option<SpreadingModel>,
    /// The kNN graph built for each feature set, to warm-start the next run.
    pub graphs: Vec<(&'static str, Arc<KnnGraph>)>,
}

/// Estimates the competing labellers on `labelled`, chooses, and labels every other member
/// of `ensemble` with the choice. Spreading runs over the best of `features` by its own
/// stratified k-fold estimate (the first on a tie).
pub fn choose_and_label(
    ensemble: &Ensemble,
    labelled: &LabelledSet,
    features: &[FeatureSet],
    options: &LabellerOptions<'_>,
    control: &TaskControl,
    observe: &mut dyn FnMut(LabellerStep<'_>),
) -> ClassifyResult<LabellerOutcome> {
    let n = ensemble.len();
    let n_classes = labelled.classes.len();
    let mut labels: Vec<Option<usize>> = vec![None; n];
    for (&member, &class) in labelled.members.iter().zip(&labelled.targets) {
        labels[member] = Some(class as usize);
    }
    let mut graphs = Vec::new();
    let mut feature_estimates = Vec::new();
    let spreading = match options.spreading {
        Some(_) if features.is_empty() => {
            return Err(ClassifyError::Invalid(
                "label spreading needs features of the members".into(),
            ));
        }
        Some(config) => {
            // A refresh keeps the features the earlier run chose (when still offered): no
            // estimate over the others, no graph of them.
            let kept = options
                .refresh
                .and_then(|r| r.choice.features.as_deref())
                .and_then(|name| features.iter().position(|f| f.name == name));
            let candidates: Vec<usize> = match kept {
                Some(index) => vec![index],
                None => (0..features.len()).collect(),
            };
            let mut best: Option<(f64, usize)> = None;
            let mut chosen_graph = None;
            for &index in &candidates {
                let set = &features[index];
                if set.rows.nrows() != n || n <= SPREADING_NEIGHBOURS {
                    return Err(ClassifyError::Invalid(format!(
                        "{}: {} rows of {} features for {n} members (spreading needs one per \
                         member and more than {SPREADING_NEIGHBOURS} members)",
                        ensemble.origin(),
                        set.rows.nrows(),
                        set.name
                    )));
                }
                observe(LabellerStep::Stage(&format!(
                    "kNN graph of the {} features",
                    set.name
                )));
                let graph = match (&set.start, set.start_is_current) {
                    (Some(graph), true) => graph.clone(),
                    (start, _) => Arc::new(search(&set.rows, SPREADING_NEIGHBOURS)?.auto(
                        start.as_deref(),
                        &|| control.is_cancelled(),
                        &|done, total| control.report("kNN graph", done, total),
                    )?),
                };
                graphs.push((set.name, graph.clone()));
                if chosen_graph.is_none() {
                    chosen_graph = Some(graph.clone());
                }
                if candidates.len() > 1 {
                    let estimate = cross_validate(
                        &graph,
                        &labels,
                        n_classes,
                        &config,
                        CV_FOLDS,
                        options.seed,
                        control,
                    )?;
                    feature_estimates.push(FeatureEstimate {
                        features: set.name.to_string(),
                        accuracy: estimate.accuracy,
                    });
                    if best.is_none_or(|(accuracy, _)| estimate.accuracy > accuracy) {
                        best = Some((estimate.accuracy, index));
                        chosen_graph = Some(graph.clone());
                    }
                }
            }
            let chosen = best.map_or(candidates[0], |(_, index)| index);
            let graph = chosen_graph.ok_or_else(|| {
                ClassifyError::Invalid("label spreading needs features of the members".into())
            })?;
            Some((config, graph, features[chosen].clone()))
        }
        None => None,
    };
    let classifier = options.classifier;
    let (mut choice, mut final_classifier) = match options.refresh {
        Some(refresh) => {
            let mut kept = refresh.choice.clone();
            kept.reason = match kept.chosen {
                Some(labeller) => format!(
                    "refreshed after hand-label edits: {} kept from the last full run",
                    labeller.name()
                ),
                None => "refreshed after hand-label edits: nothing was trusted".into(),
            };
            (kept, None)
        }
        None => estimate_and_choose(
            ensemble,
            labelled,
            &labels,
            spreading.as_ref(),
            options,
            control,
            observe,
        )?,
    };
    choice.features = spreading.as_ref().map(|(_, _, set)| set.name.to_string());
    if let Some(features) = &choice.features {
        let listed: Vec<String> = feature_estimates
            .iter()
            .map(|e| format!("{} {:.3}", e.features, e.accuracy))
            .collect();
        choice
            .reason
            .push_str(&format!("; spreading over the {features} features"));
        if !listed.is_empty() {
            choice.reason.push_str(&format!(" ({})", listed.join(", ")));
        }
    }
    choice.feature_estimates = feature_estimates;

    let wants = |l: Labeller| {
        choice.chosen == Some(l) || choice.chosen == Some(Labeller::Combined) || options.keep_both
    };
    let spreading_model = match &spreading {
        Some((config, graph, set)) if wants(Labeller::Spreading) => {
            observe(LabellerStep::Stage("spreading"));
            let spread = spread_labels(graph, &labels, n_classes, config, control)?;
            Some(SpreadingModel {
                graph: graph.clone(),
                distributions: spread.distributions,
                features: set.rows.clone(),
            })
        }
        _ => None,
    };
    let classifier_ready = choice.accuracy_of(Labeller::Classifier).is_some();
    let mut classifier_features: Option<Arc<Array2<f32>>> = None;
    if final_classifier.is_none()
        && classifier_ready
        && let Some((config, backend)) = classifier.filter(|_| wants(Labeller::Classifier))
    {
        let previous = options
            .refresh
            .and_then(|r| Some((r.classifier?, r.features?)));
        final_classifier = Some(match previous {
            Some((previous, features)) => {
                observe(LabellerStep::Stage("refitting the classifier's head"));
                classifier_features = Some(features.clone());
                refit_head(labelled, previous, features.view(), control)?
            }
            None => {
                observe(LabellerStep::Stage("classifier on every hand label"));
                let mut on_epoch = |e: &EpochProgress| observe(LabellerStep::Epoch(e));
                train(ensemble, labelled, config, backend, control, &mut on_epoch)?
            }
        });
    }
    let unlabelled: Vec<usize> = (0..n).filter(|&m| labels[m].is_none()).collect();
    let predictions = match choice.chosen {
        None => Vec::new(),
        Some(chosen) => {
            observe(LabellerStep::Stage("pseudo-labels"));
            let spread = spreading_model.as_ref().map(|s| &s.distributions);
            let temperature = choice
                .estimates
                .iter()
                .find(|e| e.labeller == chosen)
                .map_or(1.0, |e| e.temperature);
            let probabilities = match (&final_classifier, chosen) {
                (Some(c), Labeller::Classifier | Labeller::Combined) => {
                    // Every member's features once: the unlabelled members' answers now,
                    // and what the next refresh refits the head on.
                    let features = match &classifier_features {
                        Some(features) => features.clone(),
                        None => {
                            let all: Vec<usize> = (0..n).collect();
                            Arc::new(c.features(ensemble, &all, control)?)
                        }
                    };
                    let rows = features.select(ndarray::Axis(0), &unlabelled);
                    classifier_features = Some(features);
                    Some(c.probabilities_from_features(rows.view(), &|row| {
                        ensemble.member_id(unlabelled[row])
                    })?)
                }
                _ => None,
            };
            let spread_rows = |row: usize| {
                spread.map(|d| d.row(unlabelled[row]).iter().map(|&v| v as f32).collect())
            };
            let mut predictions = Vec::with_capacity(unlabelled.len());
            for (row, &member) in unlabelled.iter().enumerate() {
                let from_spreading: Option<Vec<f32>> = spread_rows(row);
                let from_classifier = probabilities.as_ref().map(|p| p.row(row).to_vec());
                let scores = match chosen {
                    Labeller::Spreading => from_spreading,
                    Labeller::Classifier => from_classifier,
                    Labeller::Combined => mean(from_spreading, from_classifier),
                };
                let calibrated = scores.map(|s| calibrate(&s, temperature));
                if let Some((class, confidence)) = calibrated.as_deref().and_then(best) {
                    predictions.push(Prediction {
                        member,
                        class: class as u32,
                        confidence,
                    });
                }
            }
            predictions
        }
    };
    if choice.chosen.is_some() && predictions.is_empty() {
        choice.reason.push_str("; no unlabelled member was reached");
    }
    Ok(LabellerOutcome {
        choice,
        classes: labelled.classes.clone(),
        predictions,
        classifier: final_classifier,
        classifier_features,
        spreading: spreading_model,
        graphs,
    })
}

/// Spreading over the chosen features.
type SpreadingPlan = (SpreadingConfig, Arc<KnnGraph>, FeatureSet);

/// Estimates each competing labeller on hand labels it did not see and chooses; returns the
/// choice and, when the estimate trained one on every hand label, the classifier.
fn estimate_and_choose(
    ensemble: &Ensemble,
    labelled: &LabelledSet,
    labels: &[Option<usize>],
    spreading: Option<&SpreadingPlan>,
    options: &LabellerOptions<'_>,
    control: &TaskControl,
    observe: &mut dyn FnMut(LabellerStep<'_>),
) -> ClassifyResult<(Choice, Option<TrainedClassifier>)> {
    let classifier = options.classifier;
    let holdout = classifier.filter(|_| labelled.len() > KFOLD_MAX_LABELS);

    let mut scores = Scores::new(labelled, spreading.is_some(), classifier.is_some());
    let mut classifier_note = None;
    let mut final_classifier = None;
    let estimation = match holdout {
        Some((config, backend)) => {
            let fraction = config.heldout_fraction;
            let split = Split::new(
                labelled.len(),
                SplitFractions {
                    val: fraction,
                    test: 0.0,
                },
                Some(&labelled.targets),
                config.seed,
            )
            .map_err(|e| ClassifyError::Invalid(format!("{}: {e}", ensemble.origin())))?;
            let heldout: Vec<usize> = split.val.clone();
            if let Some((config, graph, _)) = spreading {
                observe(LabellerStep::Stage("spreading, hold-out"));
                scores.spread(graph, labels, &heldout, config, control)?;
            }
            observe(LabellerStep::Stage("classifier"));
            // Trained on all labels, it holds out exactly `split.val` itself.
            let trained = train(ensemble, labelled, config, backend, control, &mut |e| {
                observe(LabellerStep::Epoch(e))
            })?;
            scores.classify(&trained, ensemble, &heldout, control)?;
            final_classifier = Some(trained);
            Estimation::Holdout { fraction }
        }
        None => {
            let folds = CV_FOLDS.clamp(2, labelled.len().max(2));
            let fold_of = stratified_folds(labels, folds, options.seed);
            for fold in 0..folds {
                let heldout: Vec<usize> = (0..labelled.len())
                    .filter(|&i| fold_of[labelled.members[i]] == Some(fold))
                    .collect();
                if let Some((config, graph, _)) = spreading {
                    observe(LabellerStep::Stage(&format!(
                        "spreading, fold {}",
                        fold + 1
                    )));
                    scores.spread(graph, labels, &heldout, config, control)?;
                }
                if let (Some((config, backend)), None) = (classifier, &classifier_note) {
                    observe(LabellerStep::Stage(&format!(
                        "classifier, fold {} of {folds}",
                        fold + 1
                    )));
                    let trained = train_without(
                        ensemble,
                        labelled,
                        &heldout,
                        (config, backend),
                        control,
                        &mut |e| observe(LabellerStep::Epoch(e)),
                    );
                    match trained {
                        Ok(trained) => scores.classify(&trained, ensemble, &heldout, control)?,
                        Err(ClassifyError::Invalid(why)) => {
                            scores.drop_classifier();
                            classifier_note = Some(why);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Estimation::KFold { folds }
        }
    };
    let choice = scores.choose(estimation, classifier_note.as_deref());
    Ok((choice, final_classifier))
}

fn search(features: &Array2<f32>, k: usize) -> ClassifyResult<KnnSearch<'_>> {
    let data = features
        .as_slice()
        .ok_or_else(|| ClassifyError::Failed("features are not row-major".into()))?;
    if data.iter().any(|v| !v.is_finite()) {
        return Err(ClassifyError::Invalid(
            "the features have NaN or infinite values".into(),
        ));
    }
    Ok(KnnSearch {
        data,
        n_rows: features.nrows(),
        dim: features.ncols(),
        k: k.min(features.nrows().saturating_sub(1)).max(1),
        distance: Distance::Euclidean,
        seed: 0,
    })
}

/// A classifier trained on `labelled` without its members at positions `heldout`.
fn train_without(
    ensemble: &Ensemble,
    labelled: &LabelledSet,
    heldout: &[usize],
    (config, backend): (&ClassifierConfig, &SelectedBackend),
    control: &TaskControl,
    on_epoch: &mut dyn FnMut(&EpochProgress),
) -> ClassifyResult<TrainedClassifier> {
    let mut keep = vec![true; labelled.len()];
    for &i in heldout {
        keep[i] = false;
    }
    // The same class list, so that output indices stay the fold-independent ones.
    let subset = LabelledSet {
        classes: labelled.classes.clone(),
        members: (0..labelled.len())
            .filter(|&i| keep[i])
            .map(|i| labelled.members[i])
            .collect(),
        targets: (0..labelled.len())
            .filter(|&i| keep[i])
            .map(|i| labelled.targets[i])
            .collect(),
    };
    train(ensemble, &subset, config, backend, control, on_epoch)
}

/// The best class and its score, unless every score is 0 (nothing reached the member).
fn best(scores: &[f32]) -> Option<(usize, f32)> {
    let (class, &score) = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))?;
    (score > 0.0).then_some((class, score))
}

/// z of a one-sided 95 % test: how far above the majority rate an estimate must be, and how
/// much better the mean of the two labellers must do than the better one alone.
const MAJORITY_MARGIN_Z: f64 = 1.645;

/// Whether A beats B beyond chance (one-sided McNemar, 95 %) from the members only A gets
/// right and those only B gets right.
fn measurably_better(only_a: usize, only_b: usize) -> bool {
    let discordant = (only_a + only_b).max(1) as f64;
    (only_a as f64 - only_b as f64) / discordant.sqrt() > MAJORITY_MARGIN_Z
}

/// Added to every score before calibrating: a held-out member whose true class got no score
/// at all must not make the fit's likelihood zero.
const CALIBRATION_FLOOR: f64 = 1e-3;

/// The temperature that makes `answers` (class scores, true class) most likely under
/// [`calibrate`]: golden-section search of log T in [ln 0.1, ln 50] (temperature scaling,
/// Guo et al. 2017; for softmax outputs it is exactly logits / T). 1 without answers.
fn fit_temperature(answers: &[(Vec<f32>, u32)]) -> f64 {
    if answers.is_empty() {
        return 1.0;
    }
    let nll = |log_t: f64| -> f64 {
        let inverse = (-log_t).exp();
        answers
            .iter()
            .map(|(scores, truth)| {
                let powered = scores
                    .iter()
                    .map(|&p| (f64::from(p) + CALIBRATION_FLOOR).powf(inverse));
                let total: f64 = powered.clone().sum();
                let own = powered.clone().nth(*truth as usize).unwrap_or(0.0);
                -(own / total).ln()
            })
            .sum()
    };
    let (mut lo, mut hi) = (0.1f64.ln(), 50f64.ln());
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (a, b) = (hi - golden * (hi - lo), lo + golden * (hi - lo));
        if nll(a) <= nll(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// `scores` (+ the floor) to the power 1/T, renormalised; all-zero scores (nothing reached
/// the member) stay zero.
fn calibrate(scores: &[f32], temperature: f64) -> Vec<f32> {
    if !scores.iter().any(|&p| p > 0.0) {
        return scores.to_vec();
    }
    let powered: Vec<f64> = scores
        .iter()
        .map(|&p| (f64::from(p) + CALIBRATION_FLOOR).powf(1.0 / temperature))
        .collect();
    let total: f64 = powered.iter().sum();
    powered.iter().map(|&p| (p / total) as f32).collect()
}

/// The mean of two distributions; one alone where spreading did not reach the member.
fn mean(spreading: Option<Vec<f32>>, classifier: Option<Vec<f32>>) -> Option<Vec<f32>> {
    match (spreading, classifier) {
        (Some(s), Some(c)) if s.iter().sum::<f32>() > 0.0 => {
            Some(s.iter().zip(&c).map(|(a, b)| 0.5 * (a + b)).collect())
        }
        (_, Some(c)) => Some(c),
        (s, None) => s,
    }
}

/// Held-out predictions of each labeller, per scored hand label.
struct Scores<'a> {
    labelled: &'a LabelledSet,
    /// Per position in `labelled`: class scores from spreading / the classifier, once its
    /// fold has been scored.
    spreading: Option<Vec<Option<Vec<f32>>>>,
    classifier: Option<Vec<Option<Vec<f32>>>>,
}

impl<'a> Scores<'a> {
    fn new(labelled: &'a LabelledSet, spreading: bool, classifier: bool) -> Self {
        let slots = || vec![None; labelled.len()];
        Self {
            labelled,
            spreading: spreading.then(slots),
            classifier: classifier.then(slots),
        }
    }

    /// Spreads every label but those at positions `heldout` and scores those.
    fn spread(
        &mut self,
        graph: &KnnGraph,
        labels: &[Option<usize>],
        heldout: &[usize],
        config: &SpreadingConfig,
        control: &TaskControl,
    ) -> ClassifyResult<()> {
        let mut visible = labels.to_vec();
        for &i in heldout {
            visible[self.labelled.members[i]] = None;
        }
        let spread = spread_labels(
            graph,
            &visible,
            self.labelled.classes.len(),
            config,
            control,
        )?;
        if let Some(slots) = self.spreading.as_mut() {
            for &i in heldout {
                let row = spread.distributions.row(self.labelled.members[i]);
                slots[i] = Some(row.iter().map(|&v| v as f32).collect());
            }
        }
        Ok(())
    }

    fn classify(
        &mut self,
        trained: &TrainedClassifier,
        ensemble: &Ensemble,
        heldout: &[usize],
        control: &TaskControl,
    ) -> ClassifyResult<()> {
        let members: Vec<usize> = heldout.iter().map(|&i| self.labelled.members[i]).collect();
        let probabilities = trained.probabilities(ensemble, &members, control)?;
        if let Some(slots) = self.classifier.as_mut() {
            for (&i, row) in heldout.iter().zip(probabilities.rows()) {
                slots[i] = Some(row.to_vec());
            }
        }
        Ok(())
    }

    fn drop_classifier(&mut self) {
        self.classifier = None;
    }

    fn choose(&self, estimation: Estimation, classifier_note: Option<&str>) -> Choice {
        // Scored: every position some labeller has an answer slot for.
        let scored: Vec<usize> = (0..self.labelled.len())
            .filter(|&i| {
                [&self.spreading, &self.classifier]
                    .iter()
                    .any(|s| s.as_ref().is_some_and(|s| s[i].is_some()))
            })
            .collect();
        let mut counts = vec![0usize; self.labelled.classes.len()];
        for &i in &scored {
            counts[self.labelled.targets[i] as usize] += 1;
        }
        let total = scored.len().max(1) as f64;
        let majority_rate = counts.iter().copied().max().unwrap_or(0) as f64 / total;
        let assess = |answer: &dyn Fn(usize) -> Option<Vec<f32>>| {
            let answers: Vec<(Vec<f32>, u32)> = scored
                .iter()
                .filter_map(|&i| answer(i).map(|a| (a, self.labelled.targets[i])))
                .collect();
            let correct = answers
                .iter()
                .filter(|(a, t)| best(a).map(|b| b.0 as u32) == Some(*t))
                .count();
            (correct, fit_temperature(&answers))
        };
        let spreading = |i: usize| self.spreading.as_ref().and_then(|s| s[i].clone());
        let classifier = |i: usize| self.classifier.as_ref().and_then(|s| s[i].clone());
        let mut estimates = Vec::new();
        let mut push = |labeller, (correct, temperature): (usize, f64)| {
            estimates.push(Estimate {
                labeller,
                accuracy: correct as f64 / total,
                correct,
                temperature,
            })
        };
        if self.spreading.is_some() {
            push(Labeller::Spreading, assess(&spreading));
        }
        if self.classifier.is_some() {
            push(Labeller::Classifier, assess(&classifier));
        }
        if self.spreading.is_some() && self.classifier.is_some() {
            push(
                Labeller::Combined,
                assess(&|i| mean(spreading(i), classifier(i))),
            );
        }
        let best_single = estimates
            .iter()
            .filter(|e| e.labeller != Labeller::Combined)
            // On a tie, spreading: it is cheaper and follows the map.
            .max_by_key(|e| (e.correct, e.labeller == Labeller::Spreading))
            .copied();
        let combined = estimates
            .iter()
            .find(|e| e.labeller == Labeller::Combined)
            .copied();
        // The mean must win measurably, not by a member or two: a one-sided McNemar test on
        // the members only one of the two gets right.
        let right = |labeller: Labeller, i: usize| {
            let answer = match labeller {
                Labeller::Spreading => spreading(i),
                Labeller::Classifier => classifier(i),
                Labeller::Combined => mean(spreading(i), classifier(i)),
            };
            answer.as_deref().and_then(best).map(|b| b.0 as u32) == Some(self.labelled.targets[i])
        };
        let winner = match (best_single, combined) {
            (Some(single), Some(both)) => {
                let (mut only_both, mut only_single) = (0usize, 0usize);
                for &i in &scored {
                    match (right(both.labeller, i), right(single.labeller, i)) {
                        (true, false) => only_both += 1,
                        (false, true) => only_single += 1,
                        _ => {}
                    }
                }
                Some(match measurably_better(only_both, only_single) {
                    true => both,
                    false => single,
                })
            }
            (single, _) => single,
        };
        // Beating the majority rate by chance is easy with a few dozen labels: the winner
        // must beat it by more than a one-sided 95 % binomial margin.
        let required = majority_rate
            + MAJORITY_MARGIN_Z * (majority_rate * (1.0 - majority_rate) / total).sqrt();
        let describe = |e: &Estimate| format!("{} {:.3}", e.labeller.name(), e.accuracy);
        let listed: Vec<String> = estimates.iter().map(describe).collect();
        let mut reason = match winner {
            Some(w) if w.accuracy > required => format!(
                "{} estimated best by {estimation} over {} hand labels ({}; majority class {:.3})",
                w.labeller.name(),
                scored.len(),
                listed.join(", "),
                majority_rate
            ),
            Some(_) => format!(
                "no pseudo-labels: no labeller beats always answering the commonest class \
                 ({majority_rate:.3}) beyond chance (needs > {required:.3}) by {estimation} over \
                 {} hand labels ({})",
                scored.len(),
                listed.join(", ")
            ),
            None => "no pseudo-labels: no labeller could run".to_string(),
        };
        if let Some(note) = classifier_note {
            reason.push_str(&format!("; classifier left out: {note}"));
        }
        Choice {
            estimation,
            scored_members: scored.len(),
            majority_rate,
            chosen: winner.filter(|w| w.accuracy > required).map(|w| w.labeller),
            estimates,
            reason,
            features: None,
            feature_estimates: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_must_win_by_more_than_a_member_or_two() {
        assert!(!measurably_better(1, 0));
        assert!(!measurably_better(2, 0));
        assert!(measurably_better(3, 0));
        assert!(measurably_better(6, 1));
        assert!(!measurably_better(10, 4));
        assert!(measurably_better(12, 3));
        assert!(!measurably_better(0, 0));
    }

    #[test]
    fn temperature_softens_overconfident_scores_to_their_accuracy() {
        // Always 0.99 sure, right 6 times in 10: calibrated confidence ≈ 0.6.
        let answers: Vec<(Vec<f32>, u32)> = (0..100)
            .map(|i| (vec![0.99, 0.01], u32::from(i % 10 >= 6)))
            .collect();
        let temperature = fit_temperature(&answers);
        assert!(temperature > 1.0, "{temperature}");
        let calibrated = calibrate(&[0.99, 0.01], temperature);
        assert!((calibrated[0] - 0.6).abs() < 0.02, "{calibrated:?}");
        // Calibration never changes the answer, and all-zero scores stay unanswered.
        assert_eq!(best(&calibrate(&[0.2, 0.7, 0.1], 3.0)).unwrap().0, 1);
        assert_eq!(calibrate(&[0.0, 0.0], 2.0), vec![0.0, 0.0]);
        // Honest scores keep a temperature near 1.
        let honest: Vec<(Vec<f32>, u32)> = (0..100)
            .map(|i| (vec![0.8, 0.2], u32::from(i % 5 == 4)))
            .collect();
        assert!((fit_temperature(&honest) - 1.0).abs() < 0.05);
    }
}
