//! The one way files are replaced: written to a hidden temporary file in the same folder
//! (`.NAME.<random>.tmp`), flushed to disk, renamed over the target and the folder entry
//! flushed too, so a crash at any instant leaves either the old or the new content. The label
//! store, run directories, layouts, reports and sessions all write through it.

use crate::error::{DataError, DataResult};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically. An existing file keeps its permissions; a new one
/// gets the usual 0666 minus umask (not tempfile's private 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> DataResult<()> {
    replace(path, bytes, Durability::Flushed)
}

/// [`write_atomic`] without the flushes: a reader still never sees a partial file, but a crash
/// may leave the old content. For a file rewritten every few seconds whose loss costs nothing
/// (the trainer's heartbeat), where each flush would be a round trip to an NFS server.
pub fn replace_unflushed(path: &Path, bytes: &[u8]) -> DataResult<()> {
    replace(path, bytes, Durability::Unflushed)
}

#[derive(PartialEq)]
enum Durability {
    Flushed,
    Unflushed,
}

fn replace(path: &Path, bytes: &[u8], durability: Durability) -> DataResult<()> {
    let io = |e| DataError::io(path, e);
    let dir = folder_of(path);
    let mut builder = tempfile::Builder::new();
    let prefix = temp_prefix(path);
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    let permissions = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.permissions())
            .unwrap_or_else(|_| std::fs::Permissions::from_mode(0o666))
    };
    #[cfg(unix)]
    builder.permissions(permissions);
    let mut tmp = builder.tempfile_in(&dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    if durability == Durability::Unflushed {
        return tmp.persist(path).map(drop).map_err(|e| io(e.error));
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    sync_folder(&dir).map_err(|e| DataError::io(&dir, e))
}

/// Deletes the temporary files [`write_atomic`] leaves beside `path` when killed before its
/// rename. Only safe while no other writer of `path` runs (e.g. under the store's lock);
/// failures are harmless.
pub fn remove_orphan_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The folder `path` lives in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename in `dir` durable.
pub fn sync_folder(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir; // Windows cannot open folders as files; NTFS journals the rename.
    Ok(())
}

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.csv");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["table.csv"]);
        // An orphan of a killed writer is swept; other files stay.
        std::fs::write(dir.path().join(".table.csv.abc123.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("other.tmp"), b"keep").unwrap();
        remove_orphan_temps(&path);
        assert!(!dir.path().join(".table.csv.abc123.tmp").exists());
        assert!(dir.path().join("other.tmp").exists());
        // A missing folder is an error naming the file.
        let err = write_atomic(&dir.path().join("no/such/x.csv"), b"x").unwrap_err();
        assert!(err.to_string().contains("x.csv"), "{err}");
    }

    #[test]
    fn an_unflushed_replacement_replaces_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.json");
        replace_unflushed(&path, b"1").unwrap();
        replace_unflushed(&path, b"22").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"22");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = replace_unflushed(&dir.path().join("no/x.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
