//! The real MNIST test set, embedded in the binary. STUB: implemented after the IDX reader.

use crate::data::Ensemble;
use crate::error::{DataError, DataResult};

/// Opens the first `count` (default all 10,000) MNIST test images with `seed` choosing the
/// hand-labelled subset.
pub fn open(_count: Option<usize>, _seed: u64) -> DataResult<Ensemble> {
    Err(DataError::new("sample:mnist", "not implemented yet"))
}
