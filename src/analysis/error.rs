//! Errors of the projection and analysis computations (bad shapes, non-finite values,
//! impossible parameters). File errors stay `DataError`s, which name the file.

use crate::task::Cancelled;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// Two inputs that must describe the same members have different lengths.
    #[error("{what}: {got} rows where {expected} were expected")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// NaN or ±Inf in an input, with the first offending row.
    #[error("{what} has a non-finite value in row {row}")]
    NonFinite { what: &'static str, row: usize },
    /// Too few members, classes or clusters for the computation, or a bad parameter.
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<Cancelled> for AnalysisError {
    fn from(_: Cancelled) -> Self {
        Self::Cancelled
    }
}

pub type AnalysisResult<T> = Result<T, AnalysisError>;
