//! `sense sweep --engine slurm`: the grid as one Slurm job array. Each array task trains and
//! scores one cell ([`super::run_cell`]) into the same run directories the local sweep uses,
//! so the "done before" rule, resumption from checkpoints and the run-directory lock hold on
//! the cluster too, and `--collect` reads the same files.
//!
//! ```text
//! OUT/grid.toml               the grid the cells were planned from (a copy)
//! OUT/slurm/sweep.sbatch      the job-array script (readable, resubmittable by hand)
//! OUT/slurm/sweep.json        every submission: job id and the cells it covered
//! OUT/slurm/logs/cell-N.out   each cell's log, appended to by every attempt
//! OUT/<row>/<column>/         the run directories
//! ```

pub mod scheduler;
pub mod script;

pub use script::{CellCommand, SlurmSettings};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{SweepPlan, finished_cell};
use crate::atomic_file::write_atomic;
use crate::error::{DataError, DataResult};
use crate::train::{heartbeat, run_dir};
use scheduler::TaskState;

pub const SLURM_DIR: &str = "slurm";
pub const RECORD_FILE: &str = "sweep.json";
pub const SCRIPT_FILE: &str = "sweep.sbatch";
pub const LOGS_DIR: &str = "logs";

/// `OUT/slurm/sweep.json`: what was submitted, so status and resubmission need only `OUT`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmRecord {
    /// Run directory of each cell, by array index.
    pub cells: Vec<String>,
    pub max_parallel: Option<usize>,
    /// `--epochs` given at submission (every cell trains this many).
    pub epochs_override: Option<usize>,
    pub submissions: Vec<Submission>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: String,
    pub cells: Vec<usize>,
    pub submitted_unix_secs: u64,
}

impl SlurmRecord {
    pub fn load(out_dir: &Path) -> DataResult<Self> {
        let path = record_path(out_dir);
        if !path.is_file() {
            return Err(DataError::new(
                &path,
                "not a Slurm sweep directory (no slurm/sweep.json): start one with \
                 `sense sweep --engine slurm`",
            ));
        }
        run_dir::read_json(&path)
    }

    fn save(&self, out_dir: &Path) -> DataResult<()> {
        let path = record_path(out_dir);
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| DataError::new(&path, e.to_string()))?;
        write_atomic(&path, &json)
    }

    /// The job id and array task that last ran (or will run) each cell.
    fn latest_jobs(&self) -> BTreeMap<usize, &str> {
        let mut latest = BTreeMap::new();
        for submission in &self.submissions {
            for &cell in &submission.cells {
                latest.insert(cell, submission.job_id.as_str());
            }
        }
        latest
    }
}

fn record_path(out_dir: &Path) -> PathBuf {
    out_dir.join(SLURM_DIR).join(RECORD_FILE)
}

pub fn script_path(out_dir: &Path) -> PathBuf {
    out_dir.join(SLURM_DIR).join(SCRIPT_FILE)
}

pub fn log_path(out_dir: &Path, cell: usize) -> PathBuf {
    out_dir
        .join(SLURM_DIR)
        .join(LOGS_DIR)
        .join(format!("cell-{cell}.out"))
}

/// Where one cell stands.
#[derive(Debug, Clone, PartialEq)]
pub enum CellState {
    /// Trained and scored: `summary.json` and `sweep_score.json` are in its run directory.
    Done {
        silhouette: f64,
    },
    Pending,
    Running,
    /// Not done and not in the queue; why, as far as the scheduler and the log tell.
    Failed(String),
    NotSubmitted,
}

impl CellState {
    pub fn word(&self) -> &'static str {
        match self {
            Self::Done { .. } => "done",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Failed(_) => "failed",
            Self::NotSubmitted => "not submitted",
        }
    }

    /// Whether submitting the cell now could train it (it is neither finished nor queued).
    pub fn needs_submission(&self) -> bool {
        matches!(self, Self::Failed(_) | Self::NotSubmitted)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CellStatus {
    pub index: usize,
    pub dir_name: String,
    pub state: CellState,
    /// `JOB_TASK` of the last submission that covered the cell.
    pub job: Option<String>,
    /// Epochs in its `metrics.jsonl`, of the epochs planned.
    pub epochs_done: usize,
    pub epochs: usize,
    /// A running cell's trainer in a few words (its heartbeat): where it is, and whether it
    /// may be hung.
    pub trainer: Option<String>,
}

/// Every cell's state: its run directory first (a finished cell is done whatever the
/// scheduler says), then the scheduler's word on the last job that covered it.
pub fn cell_statuses(
    plan: &SweepPlan,
    out_dir: &Path,
    record: &SlurmRecord,
) -> DataResult<Vec<CellStatus>> {
    let latest = record.latest_jobs();
    let mut tasks: BTreeMap<&str, BTreeMap<usize, TaskState>> = BTreeMap::new();
    for job in latest.values() {
        tasks
            .entry(job)
            .or_insert_with(|| scheduler::task_states(job));
    }
    let mut statuses = Vec::with_capacity(plan.runs.len());
    for (index, planned) in plan.runs.iter().enumerate() {
        let dir = out_dir.join(&planned.dir_name);
        let job = latest.get(&index).copied();
        let state = match finished_cell(planned, &dir)? {
            Some(cell) => CellState::Done {
                silhouette: cell.score.silhouette,
            },
            None => match job {
                None => CellState::NotSubmitted,
                Some(job) => match tasks.get(job).and_then(|t| t.get(&index)) {
                    Some(TaskState::Pending) => CellState::Pending,
                    Some(TaskState::Running) => CellState::Running,
                    Some(TaskState::Completed) => CellState::Failed(failure(
                        "the task ended without a result",
                        out_dir,
                        index,
                    )),
                    Some(TaskState::Ended(state)) => {
                        CellState::Failed(failure(state, out_dir, index))
                    }
                    None => CellState::Failed(failure(
                        "not in the queue (the scheduler no longer knows the task)",
                        out_dir,
                        index,
                    )),
                },
            },
        };
        let epochs_done = run_dir::read_metrics(&dir).map_or(0, |m| m.len());
        statuses.push(CellStatus {
            index,
            dir_name: planned.dir_name.clone(),
            job: job.map(|job| format!("{job}_{index}")),
            trainer: match state {
                CellState::Running => heartbeat::read_with_age(&dir)
                    .ok()
                    .flatten()
                    .filter(|(beat, _)| beat.end.is_none())
                    .map(|(beat, age)| heartbeat::describe(&beat, age, epochs_done))
                    .filter(|words| !words.is_empty()),
                _ => None,
            },
            state,
            epochs_done,
            epochs: record.epochs_override.unwrap_or(planned.config.epochs),
        });
    }
    Ok(statuses)
}

/// `why`, and the last line the cell's log holds (where the error usually is).
fn failure(why: &str, out_dir: &Path, cell: usize) -> String {
    let last_line = std::fs::read_to_string(log_path(out_dir, cell))
        .ok()
        .and_then(|log| {
            log.lines()
                .rev()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .map(str::to_string)
        });
    match last_line {
        Some(line) => format!("{why}; log: {line}"),
        None => why.to_string(),
    }
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// `None`: every cell is done, queued or running, so nothing was submitted.
    pub job_id: Option<String>,
    pub cells: Vec<usize>,
}

/// Writes the job-array script and the record into `out_dir` and submits every cell that is
/// neither finished nor queued (all of them the first time). Submitting the same sweep again
/// submits nothing new while its cells are queued, running or done.
pub fn submit_sweep(
    plan: &SweepPlan,
    out_dir: &Path,
    settings: &SlurmSettings,
    command: &CellCommand,
) -> anyhow::Result<Submitted> {
    let logs = out_dir.join(SLURM_DIR).join(LOGS_DIR);
    std::fs::create_dir_all(&logs).map_err(|e| DataError::io(&logs, e))?;
    let name = format!(
        "sense-sweep-{}",
        out_dir
            .file_name()
            .map_or("grid".into(), |n| n.to_string_lossy())
    );
    let script = script::render(&name, plan.runs.len(), settings, command, &logs);
    write_atomic(&script_path(out_dir), script.as_bytes())?;
    let mut record = match record_path(out_dir).is_file() {
        true => SlurmRecord::load(out_dir)?,
        false => SlurmRecord::default(),
    };
    record.cells = plan.runs.iter().map(|r| r.dir_name.clone()).collect();
    record.max_parallel = settings.max_parallel;
    record.epochs_override = command.epochs;
    record.save(out_dir)?;
    submit_unfinished(plan, out_dir, record)
}

/// Submits again the cells that failed (or were never submitted), with the script the sweep
/// was written with.
pub fn resubmit_failed(plan: &SweepPlan, out_dir: &Path) -> anyhow::Result<Submitted> {
    let record = SlurmRecord::load(out_dir)?;
    submit_unfinished(plan, out_dir, record)
}

fn submit_unfinished(
    plan: &SweepPlan,
    out_dir: &Path,
    mut record: SlurmRecord,
) -> anyhow::Result<Submitted> {
    let cells: Vec<usize> = cell_statuses(plan, out_dir, &record)?
        .into_iter()
        .filter(|status| status.state.needs_submission())
        .map(|status| status.index)
        .collect();
    if cells.is_empty() {
        return Ok(Submitted {
            job_id: None,
            cells,
        });
    }
    let job_id = scheduler::submit(
        &script_path(out_dir),
        &scheduler::index_list(&cells),
        record.max_parallel,
    )?;
    record.submissions.push(Submission {
        job_id: job_id.clone(),
        cells: cells.clone(),
        submitted_unix_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    record.save(out_dir)?;
    Ok(Submitted {
        job_id: Some(job_id),
        cells,
    })
}
