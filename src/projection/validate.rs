//! Input checks shared by the projections.

use ndarray::ArrayView2;

use crate::analysis::{AnalysisError, AnalysisResult};

/// At least `min_rows` rows, at least one column, every value finite.
pub(crate) fn check_matrix(
    data: ArrayView2<f32>,
    what: &'static str,
    min_rows: usize,
) -> AnalysisResult<()> {
    if data.nrows() < min_rows {
        return Err(AnalysisError::Invalid(format!(
            "{what} has {} rows; at least {min_rows} are needed",
            data.nrows()
        )));
    }
    if data.ncols() == 0 {
        return Err(AnalysisError::Invalid(format!("{what} has no columns")));
    }
    check_finite(data, what)
}

/// Every value finite; else the first offending row.
pub(crate) fn check_finite(data: ArrayView2<f32>, what: &'static str) -> AnalysisResult<()> {
    match data
        .rows()
        .into_iter()
        .position(|row| row.iter().any(|v| !v.is_finite()))
    {
        Some(row) => Err(AnalysisError::NonFinite { what, row }),
        None => Ok(()),
    }
}
