//! Hyper-parameter sweeps in the layout of the SENSE paper's Table 1: every row of a grid
//! trained once per loss column, each run scored by the silhouette of a 2-D embedding of its
//! hand-labelled latents. Runs are sequential and resumable: a finished run (its
//! `summary.json`) is never trained again, an interrupted one continues from its checkpoint.

pub mod grid;
pub mod table;

pub use grid::{Axis, GridMode, PlannedRun, SweepPlan};
pub use table::{SweepCell, SweepTable};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::data::Ensemble;
use crate::error::{DataError, DataResult};
use crate::task::TaskControl;
use crate::train::run_dir::{self, CHECKPOINT, STATE_FILE, SUMMARY};
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
    ensemble: &Ensemble,
    labels: &LabelSource,
    out_dir: &Path,
    score: &dyn Fn(&Path) -> anyhow::Result<RunScore>,
    control: &TaskControl,
    on_event: &mut dyn FnMut(SweepEvent),
) -> anyhow::Result<SweepTable> {
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let total = plan.runs.len();
    let mut cells = Vec::with_capacity(total);
    for (index, planned) in plan.runs.iter().enumerate() {
        control.check()?;
        let dir = out_dir.join(&planned.dir_name);
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
                train_run(
                    ensemble, labels, planned, &dir, resumed, index, control, on_event,
                )?
            }
        };
        let run_score = cached_score(&dir, score)?;
        on_event(SweepEvent::RunDone {
            index,
            score: run_score,
            already_done,
        });
        cells.push(SweepCell {
            row: planned.row,
            column: planned.column.clone(),
            dir_name: planned.dir_name.clone(),
            score: run_score,
            val_mse: summary.val_mse,
            epochs: summary.epochs,
        });
    }
    Ok(SweepTable {
        rows: plan.rows.clone(),
        columns: plan.columns.clone(),
        cells,
    })
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
    ensemble: &Ensemble,
    labels: &LabelSource,
    planned: &PlannedRun,
    dir: &Path,
    resumed: bool,
    index: usize,
    control: &TaskControl,
    on_event: &mut dyn FnMut(SweepEvent),
) -> anyhow::Result<RunSummary> {
    let config = planned.config.clone();
    let labels = labels.snapshot(ensemble, config.labels.pseudo_threshold)?;
    let ensemble = ensemble.clone();
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
