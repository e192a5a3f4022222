//! The job-array script: one array task per grid cell, each running `sense sweep --cell`
//! into the sweep directory, so everything a task needs is on the shared filesystem and
//! nothing on the desktop has to stay up.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the cluster is asked for, from the grid's `[slurm]` table and the command line
/// (which wins). Absent settings are the cluster's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmSettings {
    pub partition: Option<String>,
    /// Wall-clock limit per cell, in Slurm's format (`2:00:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// GPUs per cell.
    pub gpus: Option<u32>,
    pub cpus_per_task: Option<u32>,
    /// Memory per cell (`16G`).
    pub mem: Option<String>,
    pub account: Option<String>,
    /// At most this many cells run at once (`--array=…%N`).
    pub max_parallel: Option<usize>,
    /// Shell lines run before each cell, e.g. `module load cuda`.
    pub setup: Vec<String>,
    /// More `#SBATCH` options, e.g. `--qos=normal`.
    pub extra: Vec<String>,
}

impl SlurmSettings {
    /// `self` with every setting `over` has replaced (lists are appended).
    pub fn overridden_by(&self, over: &SlurmSettings) -> SlurmSettings {
        SlurmSettings {
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            gpus: over.gpus.or(self.gpus),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            account: over.account.clone().or_else(|| self.account.clone()),
            max_parallel: over.max_parallel.or(self.max_parallel),
            setup: [self.setup.clone(), over.setup.clone()].concat(),
            extra: [self.extra.clone(), over.extra.clone()].concat(),
        }
    }

    fn directives(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut option = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                lines.push(format!("--{name}={value}"));
            }
        };
        option("partition", self.partition.clone());
        option("time", self.time.clone());
        option("gpus", self.gpus.map(|n| n.to_string()));
        option("cpus-per-task", self.cpus_per_task.map(|n| n.to_string()));
        option("mem", self.mem.clone());
        option("account", self.account.clone());
        lines.extend(self.extra.iter().cloned());
        lines
    }
}

/// Everything one array task passes to `sense sweep --cell`.
#[derive(Debug, Clone, PartialEq)]
pub struct CellCommand<'a> {
    /// The `sense` binary the tasks run (an absolute path on the shared filesystem).
    pub sense: &'a Path,
    pub data: &'a str,
    pub labels: Option<&'a Path>,
    /// The sweep directory's copy of the grid.
    pub grid: &'a Path,
    pub out: &'a Path,
    /// `--backend` as its command-line word.
    pub backend: Option<&'a str>,
    pub epochs: Option<usize>,
}

/// The `sbatch` script. Paths are absolute; the array range is given at submission (so a
/// resubmission reuses the script for a few cells). Each task's log is
/// `OUT/slurm/logs/cell-<index>.out`, appended to by every attempt.
pub fn render(
    name: &str,
    cells: usize,
    settings: &SlurmSettings,
    command: &CellCommand,
    logs: &Path,
) -> String {
    let mut script = String::from("#!/bin/bash\n");
    script.push_str(&format!(
        "# A `sense sweep --engine slurm` job array: one task per grid cell (0..{}).\n\
         # Written by SENSE Explorer; resubmit a few cells with\n\
         #   sense sweep --resubmit-failed {}\n",
        cells.saturating_sub(1),
        quote(&command.out.display().to_string()),
    ));
    let mut directives = vec![
        format!("--job-name={name}"),
        format!("--output={}/cell-%a.out", logs.display()),
        "--open-mode=append".to_string(),
    ];
    directives.extend(settings.directives());
    for directive in directives {
        script.push_str(&format!("#SBATCH {directive}\n"));
    }
    script.push_str("set -euo pipefail\n");
    // Rayon (burn's CPU backend, UMAP) takes every core of the node unless told otherwise.
    script.push_str(
        "if [[ -n \"${SLURM_CPUS_PER_TASK:-}\" ]]; then export RAYON_NUM_THREADS=\"$SLURM_CPUS_PER_TASK\"; fi\n",
    );
    for line in &settings.setup {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(
        "echo \"== cell $SLURM_ARRAY_TASK_ID: job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname) at $(date -Is)\"\n",
    );
    let mut words = vec![
        quote(&command.sense.display().to_string()),
        "sweep".into(),
        "--cell".into(),
        "\"$SLURM_ARRAY_TASK_ID\"".into(),
        "--data".into(),
        quote(command.data),
    ];
    if let Some(labels) = command.labels {
        words.extend(["--labels".into(), quote(&labels.display().to_string())]);
    }
    words.extend([
        "--grid".into(),
        quote(&command.grid.display().to_string()),
        "--out".into(),
        quote(&command.out.display().to_string()),
    ]);
    if let Some(backend) = command.backend {
        words.extend(["--backend".into(), backend.to_string()]);
    }
    if let Some(epochs) = command.epochs {
        words.extend(["--epochs".into(), epochs.to_string()]);
    }
    words.push("--quiet".into());
    script.push_str(&format!("exec {}\n", words.join(" ")));
    script
}

/// A word the shell reads back as `text` exactly.
fn quote(text: &str) -> String {
    shlex::try_quote(text)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", text.replace('\'', "'\\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_asks_for_the_settings_and_runs_one_cell_per_task() {
        let grid_settings = SlurmSettings {
            partition: Some("gpu".into()),
            time: Some("4:00:00".into()),
            setup: vec!["module load cuda".into()],
            ..SlurmSettings::default()
        };
        let flags = SlurmSettings {
            time: Some("1:00:00".into()),
            gpus: Some(1),
            mem: Some("16G".into()),
            extra: vec!["--qos=short".into()],
            ..SlurmSettings::default()
        };
        let settings = grid_settings.overridden_by(&flags);
        let command = CellCommand {
            sense: Path::new("/home/me/bin/sense"),
            data: "/scratch/drops dir/frames.npy",
            labels: Some(Path::new("/home/me/labels.csv")),
            grid: Path::new("/scratch/sweep/grid.toml"),
            out: Path::new("/scratch/sweep"),
            backend: Some("gpu"),
            epochs: None,
        };
        let script = render(
            "sense-sweep",
            39,
            &settings,
            &command,
            Path::new("/scratch/sweep/slurm/logs"),
        );
        for line in [
            "#SBATCH --partition=gpu",
            "#SBATCH --time=1:00:00",
            "#SBATCH --gpus=1",
            "#SBATCH --mem=16G",
            "#SBATCH --qos=short",
            "#SBATCH --output=/scratch/sweep/slurm/logs/cell-%a.out",
            "module load cuda",
        ] {
            assert!(
                script.lines().any(|l| l == line),
                "{line} missing:\n{script}"
            );
        }
        assert!(!script.contains("--time=4:00:00"), "{script}");
        let exec = script.lines().last().unwrap();
        assert!(
            exec.starts_with("exec /home/me/bin/sense sweep --cell \"$SLURM_ARRAY_TASK_ID\""),
            "{exec}"
        );
        // The path with a space is one shell word.
        assert!(
            exec.contains("--data '/scratch/drops dir/frames.npy'"),
            "{exec}"
        );
        assert!(
            exec.contains("--backend gpu") && !exec.contains("--epochs"),
            "{exec}"
        );
    }
}
