//! Built-in sample ensembles. STUB: to be implemented.

use crate::data::Ensemble;
use crate::error::{DataError, DataResult};

pub fn open(name: &str) -> DataResult<Ensemble> {
    Err(DataError::new(
        format!("sample:{name}"),
        "samples not implemented yet",
    ))
}
