//! SENSE Explorer: train autoencoders on scientific ensembles and explore the learned
//! latent space. See `ARCHITECTURE.md` for how the modules fit together.

pub mod allocator;
pub mod analysis;
pub mod app;
pub mod atomic_file;
pub mod classify;
pub mod cli;
pub mod data;
pub mod error;
pub mod labels;
pub mod nn;
pub mod projection;
pub mod report;
pub mod samples;
pub mod sweep;
pub mod task;
pub mod train;

pub use error::DataError;
