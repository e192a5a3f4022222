//! The training engine: trains an [`Autoencoder`](crate::nn::Autoencoder) on an ensemble on
//! its own thread, steered by [`Command`]s and reporting [`TrainEvent`]s.
//!
//! ```no_run
//! use sense::labels::LabelSnapshot;
//! use sense::train::{TrainConfig, TrainEvent, Trainer};
//!
//! let ensemble = sense::samples::open("mnist")?;
//! let labels = LabelSnapshot::from_class_labels(ensemble.labels.as_ref().unwrap(), |i| {
//!     ensemble.member_id(i)
//! });
//! let handle = Trainer::spawn(ensemble, labels, TrainConfig::default(), "runs/mnist")?;
//! while let Some(event) = handle.recv() {
//!     if let TrainEvent::Epoch(e) = &event {
//!         println!("epoch {}: train {:.4}", e.epoch, e.train.total);
//!     }
//!     if event.is_final() {
//!         break;
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The backend ([`BackendChoice`]) is chosen once at start-up; the loop itself only sees a
//! burn `Device`. A run directory holds everything needed to continue it
//! ([`Trainer::resume`]); see [`run_dir`] for its files.

pub mod backend;
pub mod config;
mod engine;
pub mod events;
pub mod follow;
pub mod heartbeat;
pub mod inference;
pub mod live;
pub mod metrics;
mod objective;
pub mod run_dir;
pub mod schedule;
pub mod supervision;
pub mod training_data;
mod worker;

pub use backend::{AdapterSummary, BackendChoice, BackendKind, SelectedBackend, select_backend};
pub use config::{
    DataConfig, EarlyStopping, EvalSubset, EvaluationConfig, LabelConfig, LossWeights, LrScheduler,
    Monitor, OptimizerConfig, OptimizerKind, ScheduleConfig, TrainConfig, VariantConfig,
};
pub use events::{
    EpochSummary, EventReceiver, Latents, Losses, Reconstruction, RunSummary, StepProgress,
    TermWeights, TrainEvent,
};
pub use inference::{CheckpointChoice, TrainedModel};
pub use training_data::{LabelSource, open_training_data};
pub use worker::{Command, Trainer, TrainerHandle};
