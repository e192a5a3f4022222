//! `sense embed`, `eval`, `cluster`, `report` and `sweep` end to end, through the binary.

mod common;

use npyz::WriterBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sense(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(args)
        .output()
        .expect("the sense binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = sense(args);
    assert!(
        out.status.success(),
        "sense {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_f32_npy(path: &Path, rows: usize, cols: usize, values: &[f32]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[rows as u64, cols as u64])
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    writer.extend(values.iter().copied()).unwrap();
    writer.finish().unwrap();
}

/// 4 well-separated Gaussian blobs of 150 points in 16-D, and `id,label` for every row.
fn write_blobs(dir: &Path) -> (PathBuf, PathBuf) {
    let (classes, per_class, dims) = (4, 150, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    let mut values = Vec::new();
    let mut csv = String::from("id,label\n");
    for class in 0..classes {
        for i in 0..per_class {
            for d in 0..dims {
                let centre = if d % classes == class { 12.0 } else { 0.0 };
                values.push(centre + noise.sample(&mut rng));
            }
            csv += &format!("{},blob{class}\n", class * per_class + i);
        }
    }
    let npy = dir.join("latents.npy");
    write_f32_npy(&npy, classes * per_class, dims, &values);
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    (npy, labels)
}

#[test]
fn embed_eval_and_cluster_separated_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let (latents, labels) = write_blobs(dir.path());
    let layout = dir.path().join("layout.npy");
    let s = |p: &Path| p.display().to_string();

    ok(&[
        "embed",
        "--latents",
        &s(&latents),
        "--out",
        &s(&layout),
        "--quiet",
    ]);
    assert!(dir.path().join("layout.ids.csv").is_file());

    let json = ok(&[
        "eval",
        "--embedding",
        &s(&layout),
        "--labels",
        &s(&labels),
        "--latents",
        &s(&latents),
        "--json",
    ]);
    let scores: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in [
        "silhouette",
        "separability",
        "neighbourhood_hit",
        "trustworthiness",
        "knn_accuracy",
    ] {
        assert!(scores[key].is_number(), "{key} missing in {json}");
    }
    assert!(scores["silhouette"].as_f64().unwrap() > 0.5, "{json}");
    assert!(
        scores["neighbourhood_hit"].as_f64().unwrap() > 0.98,
        "{json}"
    );
    assert!(scores["trustworthiness"].as_f64().unwrap() > 0.9, "{json}");
    assert!(
        scores["linear_probe_accuracy"].as_f64().unwrap() > 0.95,
        "{json}"
    );

    let clusters = dir.path().join("clusters.csv");
    let json = ok(&[
        "cluster",
        "--latents",
        &s(&latents),
        "--method",
        "kmeans",
        "--k-range",
        "2..6",
        "--labels",
        &s(&labels),
        "--out",
        &s(&clusters),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["k"], 4, "{json}");
    assert!(
        report["agreement"]["ari"].as_f64().unwrap() > 0.99,
        "{json}"
    );
    assert!(dir.path().join("clusters.k.png").is_file());
    let csv = std::fs::read_to_string(&clusters).unwrap();
    assert_eq!(csv.lines().next(), Some("id,cluster"));
    assert_eq!(csv.lines().count(), 601);

    let json = ok(&[
        "cluster",
        "--latents",
        &s(&latents),
        "--method",
        "ward",
        "--k",
        "4",
        "--labels",
        &s(&labels),
        "--out",
        &s(&clusters),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        report["agreement"]["accuracy"].as_f64().unwrap() > 0.99,
        "{json}"
    );
}

#[test]
fn analysis_commands_name_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let (latents, _) = write_blobs(dir.path());
    let bad_labels = dir.path().join("wrong.csv");
    std::fs::write(&bad_labels, "name,label\nx,1\n").unwrap();
    let out = sense(&[
        "eval",
        "--embedding",
        &latents.display().to_string(),
        "--labels",
        &bad_labels.display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrong.csv") && err.contains("no `id` column"),
        "{err}"
    );

    let truncated = dir.path().join("truncated.npy");
    let bytes = std::fs::read(&latents).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = sense(&[
        "embed",
        "--latents",
        &truncated.display().to_string(),
        "--out",
        &dir.path().join("y.npy").display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated.npy"), "{err}");
}

#[test]
fn embed_keeps_its_knn_graph_for_the_next_warm_start() {
    let dir = tempfile::tempdir().unwrap();
    let (latents, _) = write_blobs(dir.path());
    let s = |p: &Path| p.display().to_string();
    let layout = dir.path().join("layout.npy");
    ok(&[
        "embed",
        "--latents",
        &s(&latents),
        "--out",
        &s(&layout),
        "--quiet",
    ]);

    // N × (n_neighbors − 1) neighbours, each in the member's own blob of 150.
    let knn = dir.path().join("layout.knn.npy");
    let (rows, k, indices) = sense::data::matrix::read_npy_indices(&knn).unwrap();
    assert_eq!((rows, k), (600, 14));
    for (row, neighbours) in indices.chunks(k).enumerate() {
        assert!(
            neighbours
                .iter()
                .all(|&j| j as usize != row && j as usize / 150 == row / 150),
            "row {row}: {neighbours:?}"
        );
    }

    // A warm start reads it back (same rows, matched by the ids beside the layout).
    let warm = dir.path().join("warm.npy");
    let stderr = String::from_utf8_lossy(
        &sense(&[
            "embed",
            "--latents",
            &s(&latents),
            "--out",
            &s(&warm),
            "--init",
            &s(&layout),
        ])
        .stderr,
    )
    .into_owned();
    assert!(stderr.contains("warm start"), "{stderr}");
    assert!(dir.path().join("warm.knn.npy").is_file());

    // A graph that lists a member as its own neighbour is refused, naming the file.
    let mut bad = indices.clone();
    bad[0] = 0;
    sense::data::matrix::write_npy_indices(&knn, rows, k, &bad).unwrap();
    let out = sense(&[
        "embed",
        "--latents",
        &s(&latents),
        "--out",
        &s(&warm),
        "--init",
        &s(&layout),
        "--force",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("layout.knn.npy"), "{err}");
}

#[test]
fn report_of_a_training_run() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels) = common::write_digits(dir.path(), 300);
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    ok(&[
        "train",
        "--data",
        &data,
        "--labels",
        &labels,
        "--epochs",
        "3",
        "--latent-dim",
        "8",
        "--backend",
        "cpu",
        "--batch-size",
        "32",
        "--out",
        &run_s,
        "--layouts",
        "--quiet",
    ]);
    let layouts = sense::train::run_dir::read_epoch_layouts(&run).unwrap();
    assert_eq!(
        layouts.iter().map(|l| l.epoch).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let stdout = ok(&["report", &run_s, "--backend", "cpu", "--animation"]);
    assert!(stdout.contains("latent map: silhouette"), "{stdout}");
    assert!(stdout.contains("animation:"), "{stdout}");
    // An animated GIF: one held frame per epoch and the tweens between, looping.
    let gif = std::fs::File::open(run.join("report").join("map_animation.gif")).unwrap();
    let mut decoder = gif::DecodeOptions::new().read_info(gif).unwrap();
    assert_eq!(decoder.repeat(), gif::Repeat::Infinite);
    let mut frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 3 + 2 * 4);
    let report = run.join("report");
    for figure in ["umap", "curves", "reconstructions", "model_vs_pca"] {
        for ext in ["png", "svg"] {
            let path = report.join(format!("{figure}.{ext}"));
            assert!(path.is_file(), "{} missing", path.display());
        }
    }
    let markdown = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(markdown.contains("PCA (8 components)"), "{markdown}");
    assert!(markdown.contains("neighbourhood hit"), "{markdown}");
    assert!(markdown.contains("umap.png"), "{markdown}");
    assert!(markdown.contains("map_animation.gif"), "{markdown}");

    // Without per-epoch layouts the animation is a clear error that says how to get them.
    std::fs::remove_dir_all(run.join("layouts")).unwrap();
    let out = sense(&["report", &run_s, "--backend", "cpu", "--animation"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("layouts") && err.contains("sense train --layouts"),
        "{err}"
    );
}

#[test]
fn sweep_trains_each_cell_once_and_tabulates() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels) = common::write_digits(dir.path(), 300);
    let grid = dir.path().join("grid.toml");
    std::fs::write(
        &grid,
        r#"
[base]
epochs = 1
backend = "cpu"
[base.model]
latent_dim = 8
[base.optimizer]
batch_size = 32

[[axis]]
name = "latent size"
key = "model.latent_dim"
values = [4]

[columns]
baseline = { "loss.lambda_cluster" = 0.0, "loss.lambda_contrastive" = 0.0 }
clustering = { "loss.lambda_cluster" = 0.2, "loss.lambda_contrastive" = 0.0 }
"#,
    )
    .unwrap();
    let out = dir.path().join("sweep");
    let args = [
        "sweep",
        "--data",
        &data,
        "--labels",
        &labels,
        "--grid",
        &grid.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--quiet",
    ];
    // Slurm's flags without `--engine slurm` are a mistake: refused before anything trains.
    let mut slurm_flags_here = args.to_vec();
    slurm_flags_here.extend(["--partition", "gpu", "--time", "1:00:00"]);
    let refused = sense(&slurm_flags_here);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("--partition, --time only apply with --engine slurm"),
        "{err}"
    );
    assert!(!out.join("table.md").exists());
    let first = sense(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(
        table.contains("| setting | baseline | clustering |"),
        "{table}"
    );
    assert!(
        table.contains("| base |") && table.contains("| latent size = 4 |"),
        "{table}"
    );
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        out.join("r01-latent_size=4/clustering/summary.json")
            .is_file()
    );

    // The table can be collected again from the directory alone (grid.toml is kept there).
    let out_arg = out.display().to_string();
    std::fs::remove_file(out.join("table.csv")).unwrap();
    let collected = sense(&["sweep", "--collect", &out_arg]);
    assert!(collected.status.success());
    assert_eq!(std::fs::read_to_string(out.join("table.csv")).unwrap(), csv);
    // `--status` is for Slurm sweeps, and says so.
    let status = sense(&["sweep", "--status", &out_arg]);
    assert!(!status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("--engine slurm"),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    // A second invocation trains nothing: every run is already done.
    let second = sense(&args);
    assert!(second.status.success());
    let log = String::from_utf8_lossy(&second.stderr);
    assert_eq!(log.matches("(done before)").count(), 4, "{log}");
}
