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
    pub fn snapshot(
        &self,
        ensemble: &Ensemble,
        pseudo_threshold: f32,
    ) -> DataResult<LabelSnapshot> {
        Ok(match self {
            Self::Store(path) => {
                let snapshot = LabelStore::open_read_only(path)?.snapshot(pseudo_threshold);
                check_store_matches(&snapshot, ensemble, path)?;
                snapshot
            }
            Self::Attached => match &ensemble.labels {
                Some(labels) => LabelSnapshot::from_class_labels(labels, |i| ensemble.member_id(i)),
                None => LabelSnapshot::empty(),
            },
        })
    }
}

/// A manual label on an id that is not a member means the store belongs to another dataset
/// (training would silently use none of its labels), as the pseudo-labeller also says.
fn check_store_matches(
    snapshot: &LabelSnapshot,
    ensemble: &Ensemble,
    store_path: &Path,
) -> DataResult<()> {
    match snapshot
        .iter()
        .find(|(id, label)| label.manual && ensemble.index_of(id).is_none())
    {
        Some((id, _)) => Err(DataError::new(
            store_path,
            format!(
                "labels member '{id}', which {} does not have: the label store belongs to \
                 another dataset",
                ensemble.origin()
            ),
        )),
        None => Ok(()),
    }
}

/// Whether `path` is a label-store CSV (recognised by its header, columns in any order). A
/// file whose first line is not text (an IDX labels file, gzipped or not) is not a store.
pub fn is_label_store(path: &Path) -> DataResult<bool> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut first = Vec::new();
    std::io::BufReader::new(file)
        .take(64 * 1024)
        .read_until(b'\n', &mut first)
        .map_err(|e| DataError::io(path, e))?;
    let Ok(first) = std::str::from_utf8(&first) else {
        return Ok(false);
    };
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

#[cfg(test)]
mod tests {
    use super::is_label_store;

    #[test]
    fn only_a_store_header_is_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let store = write("s.csv", b"id,manual_label,pseudo_label,pseudo_confidence\n");
        let plain = write("l.csv", b"id,label\n1,a\n");
        // gzip magic and binary bytes, as a gzipped IDX labels file starts.
        let binary = write(
            "l.idx1-ubyte.gz",
            &[0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x0a],
        );
        assert!(is_label_store(&store).unwrap());
        assert!(!is_label_store(&plain).unwrap());
        assert!(!is_label_store(&binary).unwrap());
        assert!(is_label_store(&dir.path().join("missing.csv")).is_err());
    }
}
