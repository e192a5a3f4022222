//! The `sense` binary end to end: what a scientist types, what they read back.

use std::path::Path;
use std::process::{Command, Output};

fn sense(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("sense binary runs")
}

fn stdout_json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "sense failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

#[test]
fn info_json_on_real_mnist_test_set_finds_sibling_labels() {
    let report = stdout_json(&sense(&[
        "info",
        "sample_data/mnist/t10k-images.idx3-ubyte.gz",
        "--json",
    ]));
    assert_eq!(report["count"], 10_000);
    assert_eq!(report["channels"], 1);
    assert_eq!(report["height"], 28);
    assert_eq!(report["width"], 28);
    assert_eq!(report["dtype"], "u8");
    assert_eq!(report["min"], 0.0);
    assert_eq!(report["max"], 255.0);
    assert_eq!(report["nan_count"], 0);
    assert_eq!(report["labelled"], 10_000);
    let expected = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    for (digit, count) in expected.iter().enumerate() {
        assert_eq!(
            report["classes"][digit.to_string()],
            *count,
            "digit {digit}"
        );
    }
}

#[test]
fn info_json_on_the_60k_training_set() {
    let images = "../shared/datasets/mnist/train-images.idx3-ubyte.gz";
    if !Path::new(env!("CARGO_MANIFEST_DIR")).join(images).exists() {
        eprintln!("skipped: {images} is not present on this machine");
        return;
    }
    let report = stdout_json(&sense(&["info", images, "--json"]));
    assert_eq!(report["count"], 60_000);
    assert_eq!(report["classes"]["1"], 6742);
    assert_eq!(report["classes"]["5"], 5421);
}

#[test]
fn info_reports_nan_count_only_when_asked_to_load_anyway() {
    let fixture = "tests/fixtures/malformed/nan_inf.npy";
    let rejected = sense(&["info", fixture]);
    assert!(!rejected.status.success());
    let message = String::from_utf8_lossy(&rejected.stderr);
    assert!(
        message.contains("nan_inf.npy") && message.contains("NaN"),
        "{message}"
    );

    let report = stdout_json(&sense(&["info", fixture, "--nan", "report", "--json"]));
    assert!(report["nan_count"].as_u64().unwrap() > 0);
}

#[test]
fn info_of_a_sample_counts_its_hand_labelled_subset() {
    let report = stdout_json(&sense(&["info", "sample:mnist", "--json"]));
    assert_eq!(report["count"], 10_000);
    assert_eq!(report["labelled"], 2_500);
}

#[test]
fn labels_import_then_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("labels.csv");
    let store = store.to_str().unwrap();
    let output = sense(&["labels", store, "--import", "sample:mnist"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8_lossy(&output.stdout);
    let total = table
        .lines()
        .find(|l| l.starts_with("total"))
        .expect("a total row");
    assert!(total.split_whitespace().any(|w| w == "2500"), "{table}");
    assert!(table.contains("10 classes"), "{table}");
}

#[test]
fn unknown_dataset_format_is_a_clear_error() {
    let output = sense(&["info", "Cargo.toml"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("Cargo.toml") && message.contains("unknown dataset format"),
        "{message}"
    );
}

/// Each subcommand's help lists its own options only: the app's `--session` and
/// `--renderer` belong to `sense` itself and `sense open`.
#[test]
fn every_subcommand_help_shows_only_its_own_options() {
    let help = |args: &[&str]| {
        let output = sense(args);
        assert!(output.status.success(), "{args:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let top = help(&["--help"]);
    for app_option in ["--session", "--renderer"] {
        assert!(top.contains(app_option), "{top}");
        assert!(help(&["open", "--help"]).contains(app_option));
    }
    let subcommands = [
        ("info", "--json"),
        ("sample", "--out"),
        ("labels", "--import"),
        ("pseudo-label", "--labels"),
        ("suggest", "--count"),
        ("train", "--data"),
        ("embed", "--method"),
        ("eval", "--labels"),
        ("cluster", "--method"),
        ("report", "--out"),
        ("sweep", "--grid"),
    ];
    for (subcommand, own) in subcommands {
        let text = help(&[subcommand, "--help"]);
        assert!(
            text.contains(own),
            "sense {subcommand} --help lacks {own}:\n{text}"
        );
        for app_option in ["--session", "--renderer", "quit-after-first-map"] {
            assert!(
                !text.contains(app_option),
                "sense {subcommand} --help lists the app's {app_option}:\n{text}"
            );
        }
    }
    // Given to a subcommand, an app option is an error that names it.
    let misplaced = sense(&["train", "--session", "/tmp/x", "--data", "sample:mnist"]);
    assert!(!misplaced.status.success());
    assert!(String::from_utf8_lossy(&misplaced.stderr).contains("--session"));
}
