//! Talking to Slurm through its command-line tools (`sbatch`, `squeue`, `sacct`): what every
//! cluster has, whatever its version or plugins. The parsers are separate from the calls so
//! they are tested on the tools' real output formats.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Where one array task of a job stands, as the scheduler says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Running,
    /// Ended with exit code 0.
    Completed,
    /// Ended any other way: `FAILED`, `CANCELLED`, `TIMEOUT`, `OUT_OF_MEMORY`, `NODE_FAIL`…
    Ended(String),
}

impl TaskState {
    /// From a state word of `squeue -o %T` or `sacct -o State` (`CANCELLED by 0` included).
    pub fn parse(word: &str) -> Self {
        let state = word
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match state {
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD"
            | "SUSPENDED" | "STOPPED" | "RESIZING" => Self::Pending,
            "RUNNING" | "CONFIGURING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT" => Self::Running,
            "COMPLETED" => Self::Completed,
            other => Self::Ended(other.to_string()),
        }
    }
}

/// The job id `sbatch --parsable` printed (`1234`, or `1234;cluster` on a federation).
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// The array tasks of `job` in lines of `JOBID|STATE`, as `squeue -r -o '%i|%T'` and
/// `sacct -X -P -o JobID,State` print them: `12_3|RUNNING`, a pending range `12_[4-7,9]|PENDING`
/// (sacct), or `12_[4-7%2]`. Lines of other jobs, steps (`12_3.batch`) and noise are skipped.
pub fn parse_task_states(job: &str, text: &str) -> BTreeMap<usize, TaskState> {
    let mut states = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.trim().split('|');
        let (Some(id), Some(state)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(tasks) = id.strip_prefix(job).and_then(|rest| rest.strip_prefix('_')) else {
            continue;
        };
        if tasks.contains('.') {
            continue;
        }
        let state = TaskState::parse(state);
        for task in expand_tasks(tasks) {
            states.insert(task, state.clone());
        }
    }
    states
}

/// `3` → [3]; `[4-7,9%2]` → [4, 5, 6, 7, 9].
fn expand_tasks(tasks: &str) -> Vec<usize> {
    let inner = tasks.trim_start_matches('[').trim_end_matches(']');
    let inner = inner.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for part in inner.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    // A range is at most the array's size (Slurm caps it at MaxArraySize).
                    out.extend(a..=b.min(a + 1_000_000));
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out
}

/// The states of `job`'s array tasks: `sacct` for the history (where accounting is on), then
/// `squeue` for what the controller holds now, which wins. A task neither knows is absent.
pub fn task_states(job: &str) -> BTreeMap<usize, TaskState> {
    let mut states = BTreeMap::new();
    if let Ok(text) = run_tool("sacct", &["-n", "-X", "-P", "-j", job, "-o", "JobID,State"]) {
        states.extend(parse_task_states(job, &text));
    }
    // `-t all` keeps tasks that ended within the controller's MinJobAge.
    if let Ok(text) = run_tool(
        "squeue",
        &["-h", "-r", "-t", "all", "-j", job, "-o", "%i|%T"],
    ) {
        states.extend(parse_task_states(job, &text));
    }
    states
}

/// Submits `script` for the array tasks in `tasks` (a Slurm index list, e.g. `0-38` or
/// `2,5`; `max_parallel` adds `%N`) and returns the job id.
pub fn submit(script: &Path, tasks: &str, max_parallel: Option<usize>) -> anyhow::Result<String> {
    let array = match max_parallel {
        Some(n) => format!("--array={tasks}%{n}"),
        None => format!("--array={tasks}"),
    };
    let script_arg = script.display().to_string();
    let stdout = run_tool("sbatch", &["--parsable", &array, &script_arg])?;
    parse_job_id(&stdout).ok_or_else(|| {
        anyhow::anyhow!(
            "sbatch printed no job id for {}: {stdout:?}",
            script.display()
        )
    })
}

/// A Slurm index list for `cells`, with runs collapsed: [0,1,2,5] → `0-2,5`.
pub fn index_list(cells: &[usize]) -> String {
    let mut sorted = cells.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(match sorted[i] == start {
            true => start.to_string(),
            false => format!("{start}-{}", sorted[i]),
        });
        i += 1;
    }
    parts.join(",")
}

/// Runs a Slurm tool and returns its stdout; a missing tool or a failure is an error that
/// quotes what the tool said.
fn run_tool(tool: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(tool).args(args).output().map_err(|e| {
        anyhow::anyhow!("`{tool}` could not be run ({e}); is this a Slurm login node?")
    })?;
    if !output.status.success() {
        anyhow::bail!(
            "`{tool} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_and_sacct_lines_become_task_states() {
        // squeue -h -r -t all -o '%i|%T'
        let squeue = "17_0|COMPLETED\n17_1|RUNNING\n17_2|PENDING\n170_1|RUNNING\n";
        let states = parse_task_states("17", squeue);
        assert_eq!(states.len(), 3, "{states:?}");
        assert_eq!(states[&0], TaskState::Completed);
        assert_eq!(states[&1], TaskState::Running);
        assert_eq!(states[&2], TaskState::Pending);

        // sacct -n -X -P -o JobID,State: a cancelled task and a pending range.
        let sacct =
            "21_0|COMPLETED\n21_1|CANCELLED by 0\n21_[2-4,7%2]|PENDING\n21_0.batch|COMPLETED\n";
        let states = parse_task_states("21", sacct);
        assert_eq!(states[&1], TaskState::Ended("CANCELLED".into()));
        assert_eq!(
            states.keys().copied().collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 7]
        );
        assert_eq!(states[&7], TaskState::Pending);
        assert_eq!(
            TaskState::parse("TIMEOUT"),
            TaskState::Ended("TIMEOUT".into())
        );
        assert_eq!(TaskState::parse("COMPLETING"), TaskState::Running);
    }

    #[test]
    fn job_ids_and_index_lists() {
        assert_eq!(parse_job_id("1234\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("99;cluster-a\n").as_deref(), Some("99"));
        assert_eq!(
            parse_job_id("sbatch: error: Batch job submission failed"),
            None
        );
        assert_eq!(index_list(&[5, 0, 1, 2, 9, 10]), "0-2,5,9-10");
        assert_eq!(index_list(&[3]), "3");
    }
}
