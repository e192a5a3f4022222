//! Why classifier training or prediction ended without a result.

use crate::error::DataError;

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// Bad or unreadable input, naming the file.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A configuration or labelling that cannot train a classifier.
    #[error("{0}")]
    Invalid(String),
    /// Training went wrong numerically or on the device.
    #[error("classifier training failed: {0}")]
    Failed(String),
    /// Stopped on request.
    #[error("cancelled")]
    Cancelled,
}

impl From<crate::task::Cancelled> for ClassifyError {
    fn from(_: crate::task::Cancelled) -> Self {
        ClassifyError::Cancelled
    }
}

pub type ClassifyResult<T> = Result<T, ClassifyError>;
