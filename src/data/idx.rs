//! IDX files (MNIST's format), plain or gzip-compressed. STUB: to be implemented.

use super::RawArray;
use crate::error::{DataError, DataResult};
use std::path::{Path, PathBuf};

/// True for file names that are IDX by convention (`*-ubyte`, `*.idx`, optionally `.gz`).
pub fn looks_like_idx(lowercase_name: &str) -> bool {
    let name = lowercase_name.strip_suffix(".gz").unwrap_or(lowercase_name);
    name.ends_with("-ubyte") || name.ends_with(".idx")
}

/// For `…-images….idx3-ubyte[.gz]`, the `…-labels….idx1-ubyte[.gz]` beside it, if it exists.
pub fn sibling_labels_file(_images: &Path) -> Option<PathBuf> {
    None
}

pub fn open_images(path: &Path) -> DataResult<RawArray> {
    Err(DataError::new(path, "IDX not implemented yet"))
}

pub fn read_labels(path: &Path) -> DataResult<Vec<u8>> {
    Err(DataError::new(path, "IDX not implemented yet"))
}
