//! `sense train` end to end on a small .npy ensemble: every documented file and key.

mod common;

use std::process::Command;

#[test]
fn sense_train_writes_the_whole_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels) = common::write_digits(dir.path(), 60);
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "epochs = 5\n[model]\nlatent_dim = 8\nfilters = 16\n\
         [optimizer]\nbatch_size = 32\nlearning_rate = 0.002\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(["train", "--data", &data, "--labels", &labels, "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .args([
            "--epochs",
            "2",
            "--backend",
            "cpu",
            "--export-latents",
            "all",
        ])
        .args(["--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("backend: CPU"), "{stderr}");

    // The flag overrides the file; the file overrides the defaults.
    let written = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let written: toml::Value = toml::from_str(&written).unwrap();
    assert_eq!(written["epochs"].as_integer(), Some(2));
    assert_eq!(written["model"]["latent_dim"].as_integer(), Some(8));

    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (epoch, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], epoch);
        for key in ["train", "val", "val_psnr_db", "val_ssim", "images_per_sec"] {
            assert!(!line[key].is_null(), "{key} missing in {line}");
        }
        // 60 labelled members: the label losses are on.
        assert!(line["train"]["cluster"].as_f64().is_some(), "{line}");
    }

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    for key in [
        "final_train_loss",
        "final_val_loss",
        "val_psnr",
        "val_ssim",
        "images_per_sec",
        "val_mse",
        "baseline_val_mse",
    ] {
        assert!(
            summary[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {summary}"
        );
    }
    assert_eq!(summary["epochs"], 2);
    assert!(summary["backend"].as_str().unwrap().contains("CPU"));

    let norm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("normalization.json")).unwrap())
            .unwrap();
    assert_eq!(norm["channels"].as_array().unwrap().len(), 1);

    // All 300 members' latents, rows matching latent_ids.csv.
    let bytes = std::fs::read(run.join("latents.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[300, 8]);
    let values: Vec<f32> = npy.into_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    let ids = std::fs::read_to_string(run.join("latent_ids.csv")).unwrap();
    let mut rows = ids.lines();
    assert_eq!(rows.next(), Some("index,id"));
    assert_eq!(rows.next(), Some("0,0"));
    assert_eq!(rows.count(), 299);

    for file in [
        "checkpoint/model.bpk",
        "checkpoint/optimizer.bpk",
        "checkpoint/state.json",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    assert!(run.join("best/model.bpk").is_file());
}

#[test]
fn bad_configuration_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[optimizer]\nlearning_rte = 0.1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(["train", "--data", "sample:mnist", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("learning_rte"), "{stderr}");
}

/// SIGTERM (what Slurm sends a job at its time limit) and Ctrl-C stop `sense train` cleanly:
/// it says how to resume, its heartbeat says "stopped", and `--resume` goes on from there.
#[test]
fn a_signal_stops_sense_train_cleanly_and_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels) = common::write_digits(dir.path(), 60);
    let run = dir.path().join("run");
    let train = |epochs: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sense"));
        command
            .args(["train", "--data", &data, "--labels", &labels, "--out"])
            .arg(&run)
            .args(["--epochs", epochs, "--backend", "cpu", "--quiet"]);
        command
    };
    let child = train("100000")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    // Under way: an epoch is in the metrics.
    while std::fs::read_to_string(run.join("metrics.jsonl")).map_or(true, |m| m.is_empty()) {
        assert!(start.elapsed().as_secs() < 120, "no epoch after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends SIGTERM to the child this test spawned.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "an error, not a kill: {stderr}"
    );
    assert!(
        stderr.contains("training stopped") && stderr.contains("--resume"),
        "{stderr}"
    );
    let beat = sense::train::heartbeat::read(&run)
        .unwrap()
        .expect("a heartbeat");
    let Some(sense::train::heartbeat::RunEnd::Stopped { epoch, .. }) = beat.end else {
        panic!("{beat:?}");
    };
    assert!(epoch >= 1, "{beat:?}");

    let resumed = train(&(epoch + 1).to_string())
        .arg("--resume")
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let metrics = sense::train::run_dir::read_metrics(&run).unwrap();
    assert_eq!(metrics.len(), epoch + 1);
}
