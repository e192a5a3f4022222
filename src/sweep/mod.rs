//! Hyper-parameter sweeps in the layout of the SENSE paper's Table 1: every row of a grid
//! trained once per loss column, each run scored by the silhouette of a 2-D embedding of its
//! hand-labelled latents. Runs are resumable: a finished run (its `summary.json`) is never
//! trained again, an interrupted one continues from its checkpoint. The local engine trains
//! the cells one after another; [`slurm`] submits them as a job array, one task per cell, each
//! running [`run_cell`] into the same directories.

pub mod grid;
pub mod slurm;
pub mod table;

pub use grid::{Axis, GridMode, PlannedRun, SweepPlan};
pub use table::{SweepCell, SweepTable};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::atomic_file::write_atomic;
use crate::data::Ensemble;
use crate::error::{DataError, DataResult};
use crate::task::TaskControl;
use crate::train::run_dir::{self, CHECKPOINT, DatasetRecord, STATE_FILE, SUMMARY};
use crate::train::{LabelSource, RunSummary, TrainEvent, Trainer};

/// Scores of one finished run, cached in its directory as `sweep_score.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunScore {
    /// Silhouette of the 2-D embedding of the hand-labelled latents (the paper's figure).
    pub silhouette: f64,
    /// Neighbourhood hit (k = 17) in the same embedding.
    pub neighbourhood_hit: Option<f64>,
}

pub const SCORE_FILE: &str = "sweep_score.json";

/// What the sweep reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepEvent {
    /// Run `index` of `total` starts (`resumed`: from its checkpoint).
    RunStarted {
        index: usize,
        total: usize,
        dir: PathBuf,
        resumed: bool,
    },
    /// An epoch of the current run finished.
    Epoch {
        index: usize,
        epoch: usize,
        epochs: usize,
    },
    /// Run `index` is done (trained now or before) and scored.
    RunDone {
        index: usize,
        score: RunScore,
        already_done: bool,
    },
}

/// Trains every planned run not yet finished in `out_dir` (each with `labels` at its own
/// pseudo-label threshold), scores each with `score` (which reads the run directory: latents,
/// ids), and returns the table. Stops between batches when
/// `control` is cancelled; what finished stays finished.
pub fn run_sweep(
    plan: &SweepPlan,
    data: &SweepData,
    out_dir: &Path,
    score: &dyn Fn(&Path) -> anyhow::Result<RunScore>,
    control: &TaskControl,
    on_event: &mut dyn FnMut(SweepEvent),
) -> anyhow::Result<SweepTable> {
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let mut cells = Vec::with_capacity(plan.runs.len());
    for index in 0..plan.runs.len() {
        control.check()?;
        cells.push(run_cell(
            plan, index, data, out_dir, score, control, on_event,
        )?);
    }
    Ok(SweepTable {
        rows: plan.rows.clone(),
        columns: plan.columns.clone(),
        cells,
    })
}

/// What every cell of a sweep trains on.
pub struct SweepData<'a> {
    pub ensemble: &'a Ensemble,
    pub labels: &'a LabelSource,
    /// Written into each run as `dataset.json` (so `sense report` and `sense open --follow`
    /// can reopen the data).
    pub record: &'a DatasetRecord,
}

/// One cell of the sweep (`plan.runs[index]`): trained unless it finished before (then only
/// read), resumed from its checkpoint if it was interrupted, and scored once. What a Slurm
/// array task runs; the run directory's lock keeps two processes from training it at once.
pub fn run_cell(
    plan: &SweepPlan,
    index: usize,
    data: &SweepData,
    out_dir: &Path,
    score: &dyn Fn(&Path) -> anyhow::Result<RunScore>,
    control: &TaskControl,
    on_event: &mut dyn FnMut(SweepEvent),
) -> anyhow::Result<SweepCell> {
    let total = plan.runs.len();
    let planned = plan.runs.get(index).ok_or_else(|| {
        anyhow::anyhow!("cell {index} does not exist: the grid has {total} cells (0..{total})")
    })?;
    let dir = out_dir.join(&planned.dir_name);
    // Held until the cell is scored: a second process (a resubmitted task, a local sweep on
    // the same directory) fails here instead of training the cell too.
    let _lock = run_dir::RunLock::acquire(&dir)?;
    let already_done = dir.join(SUMMARY).is_file();
    let summary = match already_done {
        true => read_summary(&dir)?,
        false => {
            let resumed = check_existing_config(&dir, &planned.config)?;
            on_event(SweepEvent::RunStarted {
                index,
                total,
                dir: dir.clone(),
                resumed,
            });
            run_dir::write_json(&dir.join(run_dir::DATASET), data.record)?;
            train_run(data, planned, &dir, resumed, index, control, on_event)?
        }
    };
    let run_score = cached_score(&dir, score)?;
    on_event(SweepEvent::RunDone {
        index,
        score: run_score,
        already_done,
    });
    Ok(SweepCell {
        row: planned.row,
        column: planned.column.clone(),
        dir_name: planned.dir_name.clone(),
        score: run_score,
        val_mse: summary.val_mse,
        epochs: summary.epochs,
    })
}

/// The table of the cells that have finished and been scored (`summary.json` and
/// `sweep_score.json` in their run directories), whoever trained them; and the indices of the
/// cells that have not.
pub fn collect(plan: &SweepPlan, out_dir: &Path) -> DataResult<(SweepTable, Vec<usize>)> {
    let mut cells = Vec::new();
    let mut unfinished = Vec::new();
    for (index, planned) in plan.runs.iter().enumerate() {
        let dir = out_dir.join(&planned.dir_name);
        match finished_cell(planned, &dir)? {
            Some(cell) => cells.push(cell),
            None => unfinished.push(index),
        }
    }
    let table = SweepTable {
        rows: plan.rows.clone(),
        columns: plan.columns.clone(),
        cells,
    };
    Ok((table, unfinished))
}

/// The cell of a finished, scored run; `None` while either file is missing.
pub fn finished_cell(planned: &PlannedRun, dir: &Path) -> DataResult<Option<SweepCell>> {
    let score_path = dir.join(SCORE_FILE);
    if !dir.join(SUMMARY).is_file() || !score_path.is_file() {
        return Ok(None);
    }
    let summary = read_summary(dir)?;
    let score: RunScore = run_dir::read_json(&score_path)?;
    Ok(Some(SweepCell {
        row: planned.row,
        column: planned.column.clone(),
        dir_name: planned.dir_name.clone(),
        score,
        val_mse: summary.val_mse,
        epochs: summary.epochs,
    }))
}

/// Whether two grid texts plan the same cells (rows, columns and run configurations).
fn same_cells(a: &str, b: &str) -> bool {
    match (SweepPlan::parse(a), SweepPlan::parse(b)) {
        (Ok(a), Ok(b)) => a.rows == b.rows && a.columns == b.columns && a.runs == b.runs,
        _ => false,
    }
}

/// The grid a sweep directory was planned from: a copy kept in the directory, so `--status`,
/// `--collect` and every cluster task read the same cells whatever happens to the original.
pub const GRID_COPY: &str = "grid.toml";

/// Copies `grid` into `out_dir` (the first time), or checks that the copy there is the same
/// grid: a sweep directory holds one grid, and a changed grid needs a new directory.
pub fn keep_grid_copy(grid: &Path, out_dir: &Path) -> DataResult<PathBuf> {
    let copy = out_dir.join(GRID_COPY);
    let text = std::fs::read_to_string(grid).map_err(|e| DataError::io(grid, e))?;
    let same_file = std::fs::canonicalize(grid).ok() == std::fs::canonicalize(&copy).ok();
    if same_file {
        return Ok(copy);
    }
    match std::fs::read_to_string(&copy) {
        // The same cells (the [slurm] table may change between submissions).
        Ok(kept) if same_cells(&kept, &text) => {}
        Ok(_) => {
            return Err(DataError::new(
                &copy,
                format!(
                    "this sweep directory was planned from another grid than {}; use a new \
                     --out directory",
                    grid.display()
                ),
            ));
        }
        Err(_) => {
            std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
            write_atomic(&copy, text.as_bytes())?;
        }
    }
    Ok(copy)
}

/// Whether `dir` holds a checkpoint of this very configuration (then the run resumes). A run
/// directory whose configuration differs from the grid's is an error, never overwritten.
fn check_existing_config(dir: &Path, planned: &crate::train::TrainConfig) -> DataResult<bool> {
    if !dir.join(run_dir::CONFIG).is_file() {
        return Ok(false);
    }
    let mut existing = Trainer::load_config(dir)?;
    // The backend may differ between invocations; everything else must match.
    existing.backend = planned.backend;
    if existing != *planned {
        return Err(DataError::new(
            dir.join(run_dir::CONFIG),
            "this run was started with a different configuration than the grid now gives; \
             use a new --out directory or remove this run",
        ));
    }
    Ok(dir.join(CHECKPOINT).join(STATE_FILE).is_file())
}

#[allow(clippy::too_many_arguments)]
fn train_run(
    data: &SweepData,
    planned: &PlannedRun,
    dir: &Path,
    resumed: bool,
    index: usize,
    control: &TaskControl,
    on_event: &mut dyn FnMut(SweepEvent),
) -> anyhow::Result<RunSummary> {
    let config = planned.config.clone();
    let labels = data
        .labels
        .snapshot(data.ensemble, config.labels.pseudo_threshold)?;
    let ensemble = data.ensemble.clone();
    let epochs = config.epochs;
    let handle = match resumed {
        true => Trainer::resume(ensemble, labels, config, dir)?,
        false => Trainer::spawn(ensemble, labels, config, dir)?,
    };
    let mut stop_sent = false;
    loop {
        if control.is_cancelled() && !stop_sent {
            handle.stop();
            stop_sent = true;
        }
        let event = match handle.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => event,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                anyhow::bail!(
                    "{}: the training thread ended without a report",
                    dir.display()
                )
            }
        };
        match event {
            TrainEvent::Epoch(summary) => on_event(SweepEvent::Epoch {
                index,
                epoch: summary.epoch,
                epochs,
            }),
            TrainEvent::Finished(summary) => {
                handle.join();
                return Ok(summary);
            }
            TrainEvent::Stopped { .. } => {
                handle.join();
                return Err(crate::task::Cancelled.into());
            }
            TrainEvent::Error(message) => {
                anyhow::bail!("{}: training failed: {message}", dir.display())
            }
            _ => {}
        }
    }
}

fn read_summary(dir: &Path) -> DataResult<RunSummary> {
    let path = dir.join(SUMMARY);
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::new(&path, e.to_string()))
}

/// The run's score from `sweep_score.json`, computed and written there the first time.
fn cached_score(
    dir: &Path,
    score: &dyn Fn(&Path) -> anyhow::Result<RunScore>,
) -> anyhow::Result<RunScore> {
    let path = dir.join(SCORE_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(cached) = serde_json::from_str::<RunScore>(&text)
    {
        return Ok(cached);
    }
    let fresh = score(dir)?;
    let json = serde_json::to_vec_pretty(&fresh)?;
    crate::atomic_file::write_atomic(&path, &json)?;
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: &str = r#"
[base]
epochs = 2
[[axis]]
name = "latent size"
key = "model.latent_dim"
values = [4]
[columns]
baseline = { "loss.lambda_cluster" = 0.0 }
"#;

    #[test]
    fn the_grid_copy_keeps_a_sweep_directory_to_one_set_of_cells() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sweep");
        let grid = dir.path().join("grid.toml");
        std::fs::write(&grid, GRID).unwrap();
        let copy = keep_grid_copy(&grid, &out).unwrap();
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), GRID);
        // The copy itself, and the grid with other Slurm settings, are the same cells.
        keep_grid_copy(&copy, &out).unwrap();
        std::fs::write(&grid, format!("{GRID}\n[slurm]\ntime = \"1:00:00\"\n")).unwrap();
        keep_grid_copy(&grid, &out).unwrap();
        // Other cells are refused, naming the copy.
        std::fs::write(&grid, GRID.replace("values = [4]", "values = [8]")).unwrap();
        let error = keep_grid_copy(&grid, &out).unwrap_err().to_string();
        assert!(
            error.contains("grid.toml") && error.contains("new --out"),
            "{error}"
        );
    }
}
