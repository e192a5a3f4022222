//! Numbers scientists judge an embedding by: embedding and image metrics, clustering,
//! anomaly ranking and the linear probe. Inputs are `ndarray` matrices with one row per member.

pub mod error;

pub use error::{AnalysisError, AnalysisResult};
