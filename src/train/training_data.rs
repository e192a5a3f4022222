//! Opening what a run trains on: the ensemble and the labels its auxiliary losses use — a
//! label store (manual and pseudo labels, read-only here) or a plain labels file / the labels
//! that come with the data.

use std::path::{Path, PathBuf};

use crate::data::{Ensemble, NanPolicy, OpenOptions};
use crate::error::{DataError, DataResult};
use crate::labels::{CSV_HEADER, LabelSnapshot, LabelStore};

/// Where a run's labels come from.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSource {
    /// A label store CSV.
    Store(PathBuf),
    /// The labels attached to the ensemble (a labels file, IDX labels, a sample's subset), or
    /// none.
    Attached,
}

/// Opens `data` with `labels`: a label store is recognised by its header and read separately;
/// any other labels file attaches to the ensemble.
pub fn open_training_data(
    data: &str,
    labels: Option<&Path>,
    nan_policy: NanPolicy,
) -> DataResult<(Ensemble, LabelSource)> {
    let store = match labels {
        Some(path) if is_label_store(path)? => Some(path.to_path_buf()),
        _ => None,
    };
    let options = OpenOptions {
        labels: labels.filter(|_| store.is_none()).map(Path::to_path_buf),
        nan_policy,
        ..OpenOptions::default()
    };
    let ensemble = crate::data::open(data, &options)?;
    let source = store.map_or(LabelSource::Attached, LabelSource::Store);
    Ok((ensemble, source))
}

impl LabelSource {
    /// The labels as training sees them: manual labels, and pseudo-labels whose confidence
    /// reaches `pseudo_threshold` (`f32::INFINITY`: hand labels only).
    pub fn snapshot(&self, ensemble: &Ensemble, pseudo_threshold: f32) -> DataResult<LabelSnapshot> {
        Ok(match self {
            Self::Store(path) => LabelStore::open_read_only(path)?.snapshot(pseudo_threshold),
            Self::Attached => match &ensemble.labels {
                Some(labels) => LabelSnapshot::from_class_labels(labels, |i| ensemble.member_id(i)),
                None => LabelSnapshot::empty(),
            },
        })
    }
}

/// Whether `path` is a label-store CSV (recognised by its header, columns in any order).
pub fn is_label_store(path: &Path) -> DataResult<bool> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut first = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut first)
        .map_err(|e| DataError::io(path, e))?;
    let columns: Vec<&str> = first
        .trim_end()
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    Ok(["id", "manual_label", "pseudo_label"]
        .iter()
        .all(|c| columns.contains(c) && CSV_HEADER.contains(c)))
}
