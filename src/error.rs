//! The one error type for bad input: every message names the file and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

/// Bad or unreadable input. `path` is the file (or dataset spec) at fault; `reason` says what is
/// wrong in words a scientist can act on.
#[derive(Debug, thiserror::Error)]
pub struct DataError {
    pub path: PathBuf,
    pub reason: String,
}

impl DataError {
    pub fn new(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// An I/O failure while reading or writing `path`.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        let reason = match err.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "file is truncated (ended before the data it declares)".to_string()
            }
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => err.to_string(),
        };
        Self::new(path, reason)
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

pub type DataResult<T> = Result<T, DataError>;
