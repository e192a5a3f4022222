//! `sense sweep --engine slurm` on a real one-node Slurm cluster: `.ci/run` starts one with
//! `tests/slurm/cluster.sh` (Debian's slurmctld, slurmd and munge) and runs this test with
//! `--ignored`. By hand:
//!
//! ```sh
//! eval "$(tests/slurm/cluster.sh start /tmp/sense-slurm)"
//! cargo test --release --test slurm_sweep -- --ignored
//! tests/slurm/cluster.sh stop /tmp/sense-slurm
//! ```

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A 2 × 2 grid whose cells take several seconds each on two cores (long enough to cancel
/// one while it trains). Each cell asks for the whole node, so the cells run one at a time.
const GRID: &str = r#"
[base]
epochs = 60
backend = "cpu"
seed = 7
[base.model]
latent_dim = 8
filters = 16
[base.optimizer]
batch_size = 32

[[axis]]
name = "latent size"
key = "model.latent_dim"
values = [4]

[columns]
baseline = { "loss.lambda_cluster" = 0.0, "loss.lambda_contrastive" = 0.0 }
clustering = { "loss.lambda_cluster" = 0.2, "loss.lambda_contrastive" = 0.0 }

[slurm]
cpus_per_task = 2
"#;

fn sense(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(args)
        .output()
        .unwrap()
}

fn succeed(args: &[&str]) -> String {
    let output = sense(args);
    assert!(
        output.status.success(),
        "sense {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `sense sweep --status` rows: (cell, state) pairs.
fn states(out: &str) -> Vec<(usize, String)> {
    let status = succeed(&["sweep", "--status", out]);
    status
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let cell = words.next()?.parse().ok()?;
            // Cell rows name a run directory (`row/column`); the summary line does not.
            words.next().filter(|run| run.contains('/'))?;
            Some((cell, words.next()?.to_string()))
        })
        .collect()
}

fn wait_until(what: &str, out: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}:\n{}",
            String::from_utf8_lossy(&sense(&["sweep", "--status", out]).stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metrics_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |m| m.lines().count())
}

#[test]
#[ignore = "needs a Slurm cluster: tests/slurm/cluster.sh (CI runs it)"]
fn a_grid_runs_as_a_slurm_job_array_survives_a_cancel_and_matches_the_local_sweep() {
    assert!(
        std::env::var_os("SLURM_CONF").is_some(),
        "export SLURM_CONF (tests/slurm/cluster.sh start prints it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (data, labels) = common::write_digits(dir.path(), 300);
    let grid = dir.path().join("grid.toml");
    std::fs::write(&grid, GRID).unwrap();
    let grid = grid.display().to_string();
    let out = dir.path().join("cluster");
    let out_arg = out.display().to_string();
    let submit = [
        "sweep", "--engine", "slurm", "--data", &data, "--labels", &labels, "--grid", &grid,
        "--out", &out_arg,
    ];

    let submitted = succeed(&submit);
    assert!(
        submitted.contains("submitted job") && submitted.contains("4 of 4 cells"),
        "{submitted}"
    );
    let script = std::fs::read_to_string(out.join("slurm/sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --cpus-per-task=2"), "{script}");

    let job = submitted
        .split_whitespace()
        .nth(2)
        .map(|id| id.trim_end_matches(':').to_string())
        .unwrap();

    // Cell 1 is killed with scancel while it trains (it has a checkpoint by then).
    let cell1 = out.join("r00-base/clustering");
    wait_until(
        "cell 1 to train",
        &out_arg,
        Duration::from_secs(300),
        || metrics_lines(&cell1) >= 1,
    );
    let cancelled = Command::new("scancel")
        .arg(format!("{job}_1"))
        .status()
        .unwrap();
    assert!(cancelled.success());

    // While cell 2 trains, a second process may not train it too (the run directory's lock).
    let cell2 = out.join("r01-latent_size=4/baseline");
    wait_until(
        "cell 2 to train",
        &out_arg,
        Duration::from_secs(300),
        || metrics_lines(&cell2) >= 1,
    );
    let intruder = sense(&[
        "sweep", "--cell", "2", "--data", &data, "--labels", &labels, "--grid", &grid, "--out",
        &out_arg, "--quiet",
    ]);
    let said = String::from_utf8_lossy(&intruder.stderr);
    assert!(!intruder.status.success(), "{said}");
    assert!(said.contains("another sense process"), "{said}");

    wait_until(
        "the other cells to finish",
        &out_arg,
        Duration::from_secs(300),
        || {
            let states = states(&out_arg);
            states.iter().all(|(_, s)| s == "done" || s == "failed")
        },
    );
    let states_now = states(&out_arg);
    assert_eq!(
        states_now
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>(),
        ["done", "failed", "done", "done"],
        "{}",
        succeed(&["sweep", "--status", &out_arg])
    );
    let status = succeed(&["sweep", "--status", &out_arg]);
    assert!(status.contains("CANCELLED"), "{status}");

    // What finished so far is a table already.
    let partial = succeed(&["sweep", "--collect", &out_arg]);
    assert!(
        partial.contains("3 of 4 cells finished (not yet: 1)"),
        "{partial}"
    );

    // Only the cancelled cell goes back; it resumes from its checkpoint and finishes.
    let summaries_written = || {
        [
            "r00-base/baseline",
            "r01-latent_size=4/baseline",
            "r01-latent_size=4/clustering",
        ]
        .map(|run| {
            std::fs::metadata(out.join(run).join("summary.json"))
                .unwrap()
                .modified()
                .unwrap()
        })
    };
    let finished_before = summaries_written();
    let resubmitted = succeed(&["sweep", "--resubmit-failed", &out_arg]);
    assert!(
        resubmitted.contains("1 of 4 cells (array tasks 1)"),
        "{resubmitted}"
    );
    wait_until(
        "the resubmitted cell",
        &out_arg,
        Duration::from_secs(300),
        || states(&out_arg).iter().all(|(_, s)| s == "done"),
    );
    let log = std::fs::read_to_string(out.join("slurm/logs/cell-1.out")).unwrap();
    assert!(
        log.contains("training r00-base/clustering (resumed)"),
        "{log}"
    );
    assert_eq!(metrics_lines(&cell1), 60, "an epoch trained twice");

    // Nothing trains twice: the finished cells were not touched, and submitting the sweep
    // again submits nothing.
    let finished_after = summaries_written();
    assert_eq!(finished_before, finished_after);
    for cell in [0, 2, 3] {
        let log = std::fs::read_to_string(out.join(format!("slurm/logs/cell-{cell}.out"))).unwrap();
        assert_eq!(log.matches("\ntraining ").count(), 1, "cell {cell}:\n{log}");
    }
    assert!(succeed(&submit).contains("nothing to submit"));
    assert!(succeed(&["sweep", "--resubmit-failed", &out_arg]).contains("nothing to submit"));

    // The cluster's table is the local sweep's table on the same grid.
    let collected = succeed(&["sweep", "--collect", &out_arg]);
    assert!(collected.contains("4 of 4 cells finished;"), "{collected}");
    let local = dir.path().join("local");
    succeed(&[
        "sweep",
        "--data",
        &data,
        "--labels",
        &labels,
        "--grid",
        &grid,
        "--out",
        &local.display().to_string(),
        "--quiet",
    ]);
    let cluster_table = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let local_table = std::fs::read_to_string(local.join("table.csv")).unwrap();
    assert_eq!(cluster_table, local_table);
}
