//! The files of a run directory.
//!
//! ```text
//! RUN_DIR/config.toml          the TrainConfig
//! RUN_DIR/dataset.json         the data and labels it was trained on (as given to `sense train`)
//! RUN_DIR/normalization.json   fitted statistics (what every later use must apply)
//! RUN_DIR/split.json           train/val member indices
//! RUN_DIR/metrics.jsonl        one EpochSummary per line
//! RUN_DIR/summary.json         RunSummary at the end
//! RUN_DIR/latents.npy          f32 N×D latents, rows as in latent_ids.csv (index,id)
//! RUN_DIR/checkpoint/          last epoch: model.bpk, optimizer.bpk, state.json
//! RUN_DIR/best/                best validation epoch: model.bpk, state.json
//! RUN_DIR/layouts/             the map of each epoch: epoch-0001.npy (f32 N×2) + .ids.csv
//! ```
//!
//! A checkpoint directory is written beside the old one and swapped in by renames, so a crash
//! leaves either the old or the new checkpoint, never half of one.

use npyz::WriterBuilder;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::events::{EpochSummary, RunSummary};
use super::schedule::ScheduleState;
use crate::atomic_file::write_atomic;
use crate::error::{DataError, DataResult};

pub const CONFIG: &str = "config.toml";
pub const DATASET: &str = "dataset.json";
pub const NORMALIZATION: &str = "normalization.json";
pub const SPLIT: &str = "split.json";
pub const METRICS: &str = "metrics.jsonl";
pub const SUMMARY: &str = "summary.json";
pub const LATENTS: &str = "latents.npy";
pub const LATENT_IDS: &str = "latent_ids.csv";
pub const CHECKPOINT: &str = "checkpoint";
pub const BEST: &str = "best";
pub const MODEL_FILE: &str = "model.bpk";
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
pub const STATE_FILE: &str = "state.json";
pub const LAYOUTS: &str = "layouts";

/// Where a run stands after a completed epoch (what `--resume` continues from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epochs completed.
    pub epochs_done: usize,
    pub global_step: u64,
    pub schedule: ScheduleState,
    /// Non-finite-loss recoveries so far.
    pub recoveries: u32,
    pub train_secs: f64,
    pub last_epoch: Option<EpochSummary>,
}

/// What a run was trained on, so later commands (`sense report`) can reopen it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// The dataset spec: a path or `sample:NAME`.
    pub data: String,
    /// The labels file or label store given with `--labels`, if any.
    pub labels: Option<PathBuf>,
}

impl DatasetRecord {
    /// The record of `data` and `labels` with absolute paths, so it holds from any working
    /// directory (a cluster node, the desktop following the run).
    pub fn new(data: &str, labels: Option<&Path>) -> Self {
        let absolute =
            |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let data = match data.starts_with("sample:") {
            true => data.to_string(),
            false => absolute(Path::new(data)).display().to_string(),
        };
        Self {
            data,
            labels: labels.map(absolute),
        }
    }
}

/// Held by the process writing a run directory (`flock` on `.lock`, which records its pid).
pub const LOCK: &str = ".lock";

/// Exclusive use of a run directory for as long as it lives. The kernel releases the `flock`
/// when the process dies, so a killed run never leaves the directory locked.
#[derive(Debug)]
pub struct RunLock {
    _file: fs::File,
}

impl RunLock {
    /// Creates `run_dir` if needed and locks it, or says which process holds it.
    pub fn acquire(run_dir: &Path) -> DataResult<Self> {
        use std::os::fd::AsRawFd;
        fs::create_dir_all(run_dir).map_err(|e| DataError::io(run_dir, e))?;
        let path = run_dir.join(LOCK);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| DataError::io(run_dir, e))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            return Err(DataError::new(
                run_dir,
                format!("another sense process{holder} is writing this run directory"),
            ));
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| DataError::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// Files a finished or interrupted run leaves behind; training anew over them mixes two runs.
const RUN_FILES: [&str; 9] = [
    CONFIG,
    DATASET,
    NORMALIZATION,
    SPLIT,
    METRICS,
    SUMMARY,
    LATENTS,
    LATENT_IDS,
    STATE_FILE,
];
const RUN_DIRS: [&str; 3] = [CHECKPOINT, BEST, LAYOUTS];

/// True when `run_dir` already holds (part of) a run.
pub fn holds_run(run_dir: &Path) -> bool {
    RUN_FILES
        .iter()
        .chain(&RUN_DIRS)
        .any(|name| run_dir.join(name).exists())
}

/// Removes a previous run's files and checkpoints (for `--force`), nothing else.
pub fn remove_run(run_dir: &Path) -> DataResult<()> {
    for name in RUN_FILES {
        let path = run_dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(DataError::io(&path, e));
            }
            _ => {}
        }
    }
    for name in RUN_DIRS {
        for dir in [
            name.to_string(),
            format!("{name}.tmp"),
            format!("{name}.old"),
        ] {
            let path = run_dir.join(dir);
            if path.exists() {
                fs::remove_dir_all(&path).map_err(|e| DataError::io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// The one rule for outputs: an existing file is replaced only with `--force`.
pub fn refuse_overwrite(path: &Path, force: bool) -> DataResult<()> {
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(DataError::new(
            path,
            "already exists; pass --force to replace it",
        ));
    }
    Ok(())
}

pub fn write_json(path: &Path, value: &impl Serialize) -> DataResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| DataError::new(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, text.as_bytes())
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> DataResult<T> {
    let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::new(path, format!("invalid JSON: {e}")))
}

pub fn append_metrics(run_dir: &Path, epoch: &EpochSummary) -> DataResult<()> {
    let path = run_dir.join(METRICS);
    let line = serde_json::to_string(epoch)
        .map_err(|e| DataError::new(&path, format!("cannot serialise: {e}")))?;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| DataError::io(&path, e))?;
    writeln!(file, "{line}").map_err(|e| DataError::io(&path, e))
}

/// Every epoch recorded in the run's `metrics.jsonl`, in order (none without the file).
pub fn read_metrics(run_dir: &Path) -> DataResult<Vec<EpochSummary>> {
    let path = run_dir.join(METRICS);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DataError::io(&path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                DataError::new(&path, format!("line {} is not an epoch record: {e}", i + 1))
            })
        })
        .collect()
}

/// Keeps only the first `epochs` lines of `metrics.jsonl` (a resume repeats later epochs).
pub fn truncate_metrics(run_dir: &Path, epochs: usize) -> DataResult<()> {
    let path = run_dir.join(METRICS);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .take(epochs)
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomic(&path, kept.as_bytes())
}

pub fn write_summary(run_dir: &Path, summary: &RunSummary) -> DataResult<()> {
    write_json(&run_dir.join(SUMMARY), summary)
}

/// A fresh, empty directory `name.tmp` in `run_dir` to write a checkpoint into.
pub fn staging_dir(run_dir: &Path, name: &str) -> DataResult<PathBuf> {
    let staging = run_dir.join(format!("{name}.tmp"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    }
    fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    Ok(staging)
}

/// Replaces `run_dir/name` by the staged directory.
pub fn commit_dir(run_dir: &Path, name: &str, staging: &Path) -> DataResult<PathBuf> {
    let target = run_dir.join(name);
    let old = run_dir.join(format!("{name}.old"));
    let swap = || -> std::io::Result<()> {
        if old.exists() {
            fs::remove_dir_all(&old)?;
        }
        if target.exists() {
            fs::rename(&target, &old)?;
        }
        fs::rename(staging, &target)?;
        if old.exists() {
            fs::remove_dir_all(&old)?;
        }
        Ok(())
    };
    swap().map_err(|e| DataError::io(&target, e))?;
    Ok(target)
}

/// The map of one epoch's latents: which members, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLayout {
    /// Zero-based, as in `metrics.jsonl`.
    pub epoch: usize,
    pub ids: Vec<String>,
    pub coords: Vec<[f32; 2]>,
}

fn epoch_layout_path(run_dir: &Path, epoch: usize) -> PathBuf {
    run_dir
        .join(LAYOUTS)
        .join(format!("epoch-{:04}.npy", epoch + 1))
}

/// Writes the 2-D map of epoch `epoch` into `RUN_DIR/layouts` (replacing an earlier one of
/// the same epoch, e.g. after a resume).
pub fn write_epoch_layout(run_dir: &Path, layout: &EpochLayout) -> DataResult<()> {
    let dir = run_dir.join(LAYOUTS);
    fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let values =
        ndarray::Array2::from_shape_fn((layout.coords.len(), 2), |(i, j)| layout.coords[i][j]);
    crate::data::matrix::write_matrix_with_ids(
        &epoch_layout_path(run_dir, layout.epoch),
        values.view(),
        &layout.ids,
    )
}

/// Removes the layouts of epochs from `epochs` on (a fresh run: 0; a resume: those it
/// trains again), as [`truncate_metrics`] does for the metrics.
pub fn truncate_epoch_layouts(run_dir: &Path, epochs: usize) -> DataResult<()> {
    for (epoch, npy) in epoch_layout_files(run_dir)? {
        if epoch >= epochs {
            for path in [crate::data::matrix::ids_path(&npy), npy] {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(DataError::io(&path, e));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// The `epoch-NNNN.npy` files in `RUN_DIR/layouts`, as (zero-based epoch, path), by epoch.
fn epoch_layout_files(run_dir: &Path) -> DataResult<Vec<(usize, PathBuf)>> {
    let dir = run_dir.join(LAYOUTS);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DataError::io(&dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("epoch-")?.strip_suffix(".npy"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0);
        if let Some(number) = number {
            files.push((number - 1, path));
        }
    }
    files.sort();
    Ok(files)
}

/// Every epoch's map in `RUN_DIR/layouts`, by epoch (none without the folder). A file that
/// cannot be read is an error naming it.
pub fn read_epoch_layouts(run_dir: &Path) -> DataResult<Vec<EpochLayout>> {
    let mut layouts = Vec::new();
    for (epoch, path) in epoch_layout_files(run_dir)? {
        let matrix = crate::data::matrix::read_matrix_with_ids(&path)?;
        if matrix.values.ncols() != 2 {
            return Err(DataError::new(
                &path,
                format!("a layout has 2 columns, this has {}", matrix.values.ncols()),
            ));
        }
        layouts.push(EpochLayout {
            epoch,
            coords: matrix
                .values
                .rows()
                .into_iter()
                .map(|r| [r[0], r[1]])
                .collect(),
            ids: matrix.ids,
        });
    }
    Ok(layouts)
}

/// Writes `latents.npy` (f32, `rows × dim`) and `latent_ids.csv` (`index,id` per row).
pub fn write_latents(
    run_dir: &Path,
    members: &[usize],
    ids: &[String],
    dim: usize,
    values: &[f32],
) -> DataResult<()> {
    let npy_path = run_dir.join(LATENTS);
    let mut bytes = Vec::with_capacity(values.len() * 4 + 128);
    {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[members.len() as u64, dim as u64])
            .writer(&mut bytes)
            .begin_nd()
            .map_err(|e| DataError::io(&npy_path, e))?;
        writer
            .extend(values.iter().copied())
            .map_err(|e| DataError::io(&npy_path, e))?;
        writer.finish().map_err(|e| DataError::io(&npy_path, e))?;
    }
    write_atomic(&npy_path, &bytes)?;

    let ids_path = run_dir.join(LATENT_IDS);
    let mut csv = csv::Writer::from_writer(Vec::new());
    let rows = || -> Result<Vec<u8>, csv::Error> {
        csv.write_record(["index", "id"])?;
        for (member, id) in members.iter().zip(ids) {
            csv.write_record([member.to_string().as_str(), id.as_str()])?;
        }
        csv.into_inner()
            .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
    };
    let bytes = rows().map_err(|e| DataError::new(&ids_path, e.to_string()))?;
    write_atomic(&ids_path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(epoch: usize, members: usize) -> EpochLayout {
        EpochLayout {
            epoch,
            ids: (0..members).map(|i| format!("m{i}")).collect(),
            coords: (0..members).map(|i| [i as f32, epoch as f32]).collect(),
        }
    }

    #[test]
    fn epoch_layouts_round_trip_in_epoch_order_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_epoch_layouts(dir.path()).unwrap().is_empty());
        for epoch in [10, 0, 2] {
            write_epoch_layout(dir.path(), &layout(epoch, 5)).unwrap();
        }
        // A stray file is not a layout.
        fs::write(dir.path().join(LAYOUTS).join("notes.txt"), "x").unwrap();
        let read = read_epoch_layouts(dir.path()).unwrap();
        assert_eq!(read.iter().map(|l| l.epoch).collect::<Vec<_>>(), [0, 2, 10]);
        assert_eq!(read[1], layout(2, 5));
        // A resume after 3 epochs forgets the layouts it will train again.
        truncate_epoch_layouts(dir.path(), 3).unwrap();
        let kept = read_epoch_layouts(dir.path()).unwrap();
        assert_eq!(kept.iter().map(|l| l.epoch).collect::<Vec<_>>(), [0, 2]);
        assert!(holds_run(dir.path()));
        remove_run(dir.path()).unwrap();
        assert!(!dir.path().join(LAYOUTS).exists());
    }

    #[test]
    fn a_broken_layout_is_an_error_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        write_epoch_layout(dir.path(), &layout(0, 4)).unwrap();
        let npy = epoch_layout_path(dir.path(), 0);
        fs::write(&npy, b"not a numpy file").unwrap();
        let error = read_epoch_layouts(dir.path()).unwrap_err().to_string();
        assert!(error.contains("epoch-0001.npy"), "{error}");
    }
}
