//! Numbers scientists judge an embedding by: embedding and image metrics, clustering,
//! anomaly ranking and the linear probe. Inputs are `ndarray` matrices with one row per member.

pub mod anomaly;
pub mod clustering;
pub mod embedding_metrics;
pub mod error;
pub mod image_metrics;
pub mod linear_probe;
pub mod partition_metrics;

pub use error::{AnalysisError, AnalysisResult};
