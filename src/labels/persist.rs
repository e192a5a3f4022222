//! Reading and atomically writing the two files of a label store.
//!
//! Each file is replaced atomically: written to a temporary file in the same folder, flushed
//! to disk (fsync), renamed over the old one, and the folder entry flushed too. Together with
//! the sidecar's fingerprints (see [`super::sidecar`]) a crash at any instant leaves files
//! that load as the last acknowledged state (or the one being written, if its CSV rename
//! happened).

use super::classes::ClassTable;
use super::csv_file::{self, Classes};
use super::members::Members;
use super::sidecar;
use crate::atomic_file::{folder_of, remove_orphan_temps, write_atomic};
use crate::error::{DataError, DataResult};
use std::fs::File;
use std::path::Path;

/// What the files on disk hold, as far as the next save needs to know.
#[derive(Clone, Debug)]
pub(crate) struct OnDisk {
    /// Fingerprint of the CSV on disk.
    pub csv_fingerprint: String,
    /// The sidecar on disk holds the classes in memory. When it does, a change that touches
    /// only members rewrites just the CSV (one fsync'd file instead of two).
    pub sidecar_current: bool,
    /// The `previous.csv_fingerprint` the sidecar on disk records.
    pub sidecar_previous: Option<String>,
}

/// What a store reads back from disk.
pub(crate) struct Loaded {
    pub classes: ClassTable,
    pub members: Members,
    pub disk: OnDisk,
}

/// Loads `csv_path` and its sidecar. Without a sidecar (a CSV made by hand or by pandas),
/// classes are created in first-seen order.
pub(crate) fn load(csv_path: &Path) -> DataResult<Loaded> {
    let bytes = std::fs::read(csv_path).map_err(|e| DataError::io(csv_path, e))?;
    let csv_fingerprint = csv_file::fingerprint(&bytes);
    let sidecar_path = sidecar::path_for(csv_path);
    let sidecar = match std::fs::read(&sidecar_path) {
        Ok(json) => Some(sidecar::decode(&sidecar_path, &json)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(DataError::io(&sidecar_path, e)),
    };
    let Some(sidecar) = sidecar else {
        let mut classes = ClassTable::default();
        let members = csv_file::decode(csv_path, &bytes, Classes::Infer(&mut classes))?;
        let disk = OnDisk {
            csv_fingerprint,
            sidecar_current: false,
            sidecar_previous: None,
        };
        return Ok(Loaded {
            classes,
            members,
            disk,
        });
    };
    let sidecar_current = sidecar.csv_fingerprint.as_deref() == Some(csv_fingerprint.as_str());
    let sidecar_previous = sidecar.previous.as_ref().map(|(_, fp)| fp.clone());
    let classes = sidecar.classes_for(&csv_fingerprint);
    let members = csv_file::decode(csv_path, &bytes, Classes::Known(&classes, &sidecar_path))?;
    let disk = OnDisk {
        csv_fingerprint,
        sidecar_current,
        sidecar_previous,
    };
    Ok(Loaded {
        classes,
        members,
        disk,
    })
}

/// Saves `classes` and `members`: the sidecar first when it must change, then the CSV.
/// `previous_classes` are the classes the CSV on disk was written with, when a change
/// altered them. Returns the new state of the files; on an error the sidecar may already
/// have been replaced, so the caller must treat it as not current.
pub(crate) fn save(
    csv_path: &Path,
    classes: &ClassTable,
    members: &Members,
    previous_classes: Option<&ClassTable>,
    disk: &OnDisk,
) -> DataResult<OnDisk> {
    let csv_bytes = csv_file::encode(members, classes);
    let csv_fingerprint = csv_file::fingerprint(&csv_bytes);
    // The sidecar must be rewritten if the classes changed, if it is stale, or if the new CSV
    // would look like the CSV its `previous` entry describes (an undo can recreate one).
    let write_sidecar = previous_classes.is_some()
        || !disk.sidecar_current
        || disk.sidecar_previous.as_deref() == Some(csv_fingerprint.as_str());
    let mut sidecar_previous = disk.sidecar_previous.clone();
    if write_sidecar {
        let previous = previous_classes.map(|c| (c, disk.csv_fingerprint.as_str()));
        let json = sidecar::encode(classes, &csv_fingerprint, previous);
        write_atomic(&sidecar::path_for(csv_path), &json)?;
        sidecar_previous = previous.map(|(_, fingerprint)| fingerprint.to_string());
    }
    write_atomic(csv_path, &csv_bytes)?;
    Ok(OnDisk {
        csv_fingerprint,
        sidecar_current: true,
        sidecar_previous,
    })
}

/// Holds an exclusive lock so two app windows cannot write the same store (the second would
/// silently overwrite the first's changes). The kernel releases it if the process dies.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub(crate) fn acquire(csv_path: &Path) -> DataResult<Self> {
        let name = csv_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock_path = folder_of(csv_path).join(format!(".{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                // Name the folder the user gave, not our hidden lock file inside it.
                let folder = folder_of(csv_path);
                match folder.is_dir() {
                    false => DataError::new(
                        csv_path,
                        format!("the folder {} does not exist", folder.display()),
                    ),
                    true => DataError::io(&lock_path, e),
                }
            })?;
        match file.try_lock() {
            Ok(()) => {
                // We are the only writer: temp files of a save killed midway are orphans.
                remove_orphan_temps(csv_path);
                remove_orphan_temps(&super::sidecar::path_for(csv_path));
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(DataError::new(
                csv_path,
                "the label store is open for writing elsewhere (another SENSE window?)",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(DataError::io(&lock_path, e)),
        }
    }
}
