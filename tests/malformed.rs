//! Every malformed fixture, opened through the public API as a user would (open, then read
//! every member), must fail with a message naming the file and the reason — never panic.

use sense::data::fit::FitMode;
use sense::data::{Ensemble, NanPolicy, OpenOptions, Shape, open};
use sense::error::{DataError, DataResult};
use std::path::{Path, PathBuf};

fn malformed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/malformed")
        .join(name)
}

fn tiny_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_folder")
}

/// Opens `spec` and decodes every member, as training would.
fn open_and_read_all(spec: &Path, options: &OpenOptions) -> DataResult<Ensemble> {
    let ensemble = open(spec.to_str().unwrap(), options)?;
    let mut out = vec![0.0; ensemble.shape().len()];
    for i in 0..ensemble.len() {
        ensemble.source.read_f32(i, &mut out)?;
    }
    Ok(ensemble)
}

/// The error must name `file` and give a reason containing `keyword` (case-insensitive).
fn assert_fails(spec: &Path, options: &OpenOptions, file: &str, keyword: &str) -> DataError {
    let err = match open_and_read_all(spec, options) {
        Ok(_) => panic!("{} should fail", spec.display()),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(
        message.contains(file),
        "message does not name {file}: {message}"
    );
    assert!(
        err.reason.to_lowercase().contains(&keyword.to_lowercase()),
        "reason lacks {keyword:?}: {message}"
    );
    err
}

fn plain() -> OpenOptions {
    OpenOptions::default()
}

#[test]
fn truncated_png_fails_on_read() {
    assert_fails(
        &malformed("truncated_png"),
        &plain(),
        "truncated.png",
        "cannot decode",
    );
}

#[test]
fn corrupt_png_fails_on_open() {
    assert_fails(
        &malformed("corrupt_png"),
        &plain(),
        "garbage.png",
        "cannot decode",
    );
}

#[test]
fn idx_header_claiming_a_billion_images() {
    assert_fails(
        &malformed("huge-count-images.idx3-ubyte"),
        &plain(),
        "huge-count-images.idx3-ubyte",
        "truncated",
    );
}

#[test]
fn idx_with_bad_magic() {
    assert_fails(
        &malformed("bad-magic-images.idx3-ubyte"),
        &plain(),
        "bad-magic-images.idx3-ubyte",
        "magic",
    );
}

#[test]
fn truncated_gzip_idx() {
    assert_fails(
        &malformed("truncated-images.idx3-ubyte.gz"),
        &plain(),
        "truncated-images.idx3-ubyte.gz",
        "truncated",
    );
}

#[test]
fn npy_shape_larger_than_the_data() {
    assert_fails(
        &malformed("shape_exceeds_data.npy"),
        &plain(),
        "shape_exceeds_data.npy",
        "truncated",
    );
}

#[test]
fn npy_unsupported_dtypes() {
    let err = assert_fails(
        &malformed("int64.npy"),
        &plain(),
        "int64.npy",
        "unsupported dtype",
    );
    assert!(err.reason.contains("<i8"), "{err}");
    assert_fails(
        &malformed("complex.npy"),
        &plain(),
        "complex.npy",
        "unsupported dtype",
    );
}

#[test]
fn npy_fortran_order() {
    assert_fails(
        &malformed("fortran.npy"),
        &plain(),
        "fortran.npy",
        "fortran order",
    );
}

#[test]
fn npy_garbage_header() {
    assert_fails(
        &malformed("garbage_header.npy"),
        &plain(),
        "garbage_header.npy",
        "not a valid npy header",
    );
}

#[test]
fn npz_without_a_suitable_array_lists_the_names() {
    let err = assert_fails(
        &malformed("no_images.npz"),
        &plain(),
        "no_images.npz",
        "no suitable array",
    );
    assert!(err.reason.contains("'bias', 'weights'"), "{err}");
}

#[test]
fn nan_and_inf_are_rejected_by_default_and_counted_on_report() {
    let path = malformed("nan_inf.npy");
    let err = assert_fails(&path, &plain(), "nan_inf.npy", "NaN/Inf");
    // Two NaN, one +Inf, one -Inf, in members 1 and 2.
    assert!(
        err.reason
            .starts_with("4 NaN/Inf values in 2 members (first: member 1)"),
        "{err}"
    );

    let report = OpenOptions {
        nan_policy: NanPolicy::Report,
        ..plain()
    };
    let ensemble = open_and_read_all(&path, &report).unwrap();
    assert_eq!(ensemble.nan_count, 4);
}

#[test]
fn folder_with_mismatched_sizes_names_the_file_and_both_shapes() {
    let err = assert_fails(
        &malformed("mismatched_sizes"),
        &plain(),
        "sub/b.png",
        "must match",
    );
    assert!(
        err.reason.contains("1×6×10") && err.reason.contains("1×8×8"),
        "{err}"
    );
}

#[test]
fn folder_with_mismatched_sizes_opens_when_fitted() {
    let folder = malformed("mismatched_sizes");
    let resize = OpenOptions {
        fit: Some(FitMode::Resize {
            height: 4,
            width: 5,
        }),
        ..plain()
    };
    let ensemble = open_and_read_all(&folder, &resize).unwrap();
    assert_eq!((ensemble.len(), ensemble.shape()), (2, Shape::new(1, 4, 5)));

    let crop = OpenOptions {
        fit: Some(FitMode::CenterCrop {
            height: 6,
            width: 6,
        }),
        ..plain()
    };
    let ensemble = open_and_read_all(&folder, &crop).unwrap();
    assert_eq!(ensemble.shape(), Shape::new(1, 6, 6));
    // a.png holds (7·k) mod 256 at k = 8·row + col; the crop starts at row 1, col 1.
    let mut out = vec![0.0; 36];
    ensemble.source.read_f32(0, &mut out).unwrap();
    assert_eq!(out[0], 63.0);
    assert_eq!(out[35], ((7 * (8 * 6 + 6)) % 256) as f32);
    // sub/b.png (6×10, values 4·k at k = 10·row + col) keeps columns 2..8.
    ensemble.source.read_f32(1, &mut out).unwrap();
    assert_eq!(&out[..6], &[8.0, 12.0, 16.0, 20.0, 24.0, 28.0]);

    // A crop taller than sub/b.png is refused, naming it.
    let too_big = OpenOptions {
        fit: Some(FitMode::CenterCrop {
            height: 7,
            width: 7,
        }),
        ..plain()
    };
    assert_fails(&folder, &too_big, "sub/b.png", "only 6×10");
}

#[test]
fn empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty_ensemble");
    std::fs::create_dir_all(empty.join("nested")).unwrap();
    std::fs::write(empty.join("notes.txt"), "no images here").unwrap();
    assert_fails(&empty, &plain(), "empty_ensemble", "no images");
}

fn with_labels(name: &str) -> OpenOptions {
    OpenOptions {
        labels: Some(malformed(name)),
        ..plain()
    }
}

#[test]
fn labels_with_unknown_id() {
    let err = assert_fails(
        &tiny_folder(),
        &with_labels("labels_unknown_id.csv"),
        "labels_unknown_id.csv",
        "unknown id",
    );
    assert!(
        err.reason.contains("line 3") && err.reason.contains("nope.png"),
        "{err}"
    );
}

#[test]
fn labels_with_duplicate_id() {
    let err = assert_fails(
        &tiny_folder(),
        &with_labels("labels_duplicate_id.csv"),
        "labels_duplicate_id.csv",
        "duplicate id",
    );
    assert!(
        err.reason.contains("line 4") && err.reason.contains("line 2"),
        "{err}"
    );
}

#[test]
fn labels_with_conflicting_labels() {
    let err = assert_fails(
        &tiny_folder(),
        &with_labels("labels_conflicting.csv"),
        "labels_conflicting.csv",
        "conflicting labels",
    );
    assert!(
        err.reason.contains("'dog'") && err.reason.contains("'cat'"),
        "{err}"
    );
}

#[test]
fn labels_without_label_column() {
    assert_fails(
        &tiny_folder(),
        &with_labels("labels_missing_column.csv"),
        "labels_missing_column.csv",
        "missing column `label`",
    );
}

#[test]
fn parameters_with_non_numeric_value() {
    let options = OpenOptions {
        parameters: Some(malformed("params_non_numeric.csv")),
        ..plain()
    };
    let err = assert_fails(
        &tiny_folder(),
        &options,
        "params_non_numeric.csv",
        "not a number",
    );
    assert!(
        err.reason.contains("line 3, column 'temperature'") && err.reason.contains("'hot'"),
        "{err}"
    );
}

#[test]
fn idx_labels_with_the_wrong_count() {
    // MNIST test labels (10,000) against a 3-member folder.
    let labels =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/mnist/t10k-labels.idx1-ubyte.gz");
    let options = OpenOptions {
        labels: Some(labels),
        ..plain()
    };
    assert_fails(
        &tiny_folder(),
        &options,
        "t10k-labels.idx1-ubyte.gz",
        "10000 labels but the ensemble has 3",
    );
}
