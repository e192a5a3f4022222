//! NPY and NPZ arrays. STUB: to be implemented.

use super::RawArray;
use crate::error::{DataError, DataResult};
use std::path::Path;

pub fn open_npy(path: &Path) -> DataResult<RawArray> {
    Err(DataError::new(path, "NPY not implemented yet"))
}

pub fn open_npz(path: &Path, _array: Option<&str>) -> DataResult<RawArray> {
    Err(DataError::new(path, "NPZ not implemented yet"))
}
