//! Why something the app started did not produce its result. Library errors keep their
//! types (a [`DataError`] names the file); the app adds only what is its own.

use crate::analysis::AnalysisError;
use crate::classify::ClassifyError;
use crate::error::DataError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// The user (or a newer request) cancelled the work.
    #[error("cancelled")]
    Cancelled,
    /// A bug: the worker's code panicked. The app goes on; the message says where.
    #[error("internal error: {0}")]
    Panicked(String),
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::task::Cancelled> for AppError {
    fn from(_: crate::task::Cancelled) -> Self {
        Self::Cancelled
    }
}

pub type AppResult<T> = Result<T, AppError>;
