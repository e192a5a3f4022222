//! Pseudo-labelling: a class and a confidence for every member without a hand label, written
//! to the label store with the run as provenance. Two labellers compete
//! ([`choose_and_label`], chosen per run by stratified k-fold over the hand labels): label
//! spreading over a kNN graph of features ([`spread_labels`]; a run's latents,
//! [`PixelFeatures`] or [`SpectrumFeatures`]), which needs only a few dozen labels, and an
//! EfficientNetV2-style classifier trained from scratch, which needs thousands.
//!
//! ```no_run
//! use sense::classify::{ClassifierConfig, LabelledSet, train_and_predict, new_run_id};
//! use sense::task::TaskControl;
//! use sense::train::{BackendChoice, select_backend};
//!
//! let ensemble = sense::samples::open("channels")?;
//! let labelled = LabelledSet::from_class_labels(ensemble.labels.as_ref().unwrap(), &ensemble)?;
//! let backend = select_backend(BackendChoice::Cpu);
//! let outcome = train_and_predict(
//!     &ensemble, &labelled, &ClassifierConfig::default(), &backend, &new_run_id(),
//!     &TaskControl::new(), &mut |epoch| println!("{:.3}", epoch.heldout_accuracy),
//! )?;
//! println!("held-out accuracy {:.3}", outcome.classifier.report().accuracy);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The app uses [`Classifier::spawn`]: commands in, [`ClassifierEvent`]s out, cancellable.
//!
//! Only pseudo-labels with confidence ≥ the threshold (default 0.9) feed the auxiliary
//! losses: [`LabelStore::snapshot`](crate::labels::LabelStore::snapshot) and the trainer's
//! `labels.pseudo_threshold` apply the same `>=` test that [`PseudoLabelSummary`] counts.

mod blocks;
mod choice;
mod config;
mod error;
mod features;
mod input;
mod labelled;
mod metrics;
mod network;
mod pipeline;
mod predict;
mod pseudo;
mod spreading;
mod suggest;
mod train;
mod worker;

pub use choice::{
    CV_FOLDS, Choice, Estimate, Estimation, FeatureEstimate, FeatureSet, KFOLD_MAX_LABELS,
    Labeller, LabellerOptions, LabellerOutcome, LabellerStep, Refresh, SPREADING_NEIGHBOURS,
    SpreadingModel, choose_and_label,
};
pub use config::{ClassifierConfig, ClassifierConfigError, InputSize};
pub use error::{ClassifyError, ClassifyResult};
pub use features::{
    PIXEL_FEATURE_COMPONENTS, PIXEL_FEATURE_SIDE_PX, PixelFeatures, SpectrumFeatures,
};
pub use input::{CachedSource, working_source};
pub use labelled::LabelledSet;
pub use metrics::{ClassScore, ConfusionMatrix, HeldoutReport};
pub use network::{EfficientNet, reductions};
pub use pipeline::{PseudoLabelOutcome, train_and_predict};
pub use predict::{Prediction, TrainedClassifier};
pub use pseudo::{
    ClassPseudoCount, PseudoLabelProposal, PseudoLabelSummary, new_run_id, run_id_now, summarise,
    write_pseudo_labels,
};
pub use spreading::{
    CrossValidation, Spread, SpreadingConfig, cross_validate, spread_labels, stratified_folds,
};
pub use suggest::{SuggestConfig, SuggestInput, SuggestReason, Suggestion, suggest};
pub use train::{EpochProgress, MIN_LABELLED, refit_head, train};
pub use worker::{Classifier, ClassifierEvent, ClassifierHandle, HandLabels};
