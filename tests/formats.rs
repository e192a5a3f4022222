//! Round trips through every dataset format and dtype: files written here are read back
//! through the public API and must give exactly the values written.

use sense::data::fit::FitMode;
use sense::data::{DType, Ensemble, OpenOptions, Shape, idx, npy, open};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

fn open_path(path: &Path) -> Ensemble {
    open(path.to_str().unwrap(), &OpenOptions::default())
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// All members, decoded to f32, in member order.
fn read_all(ensemble: &Ensemble) -> Vec<Vec<f32>> {
    (0..ensemble.len())
        .map(|i| {
            let mut out = vec![f32::NAN; ensemble.shape().len()];
            ensemble.source.read_f32(i, &mut out).unwrap();
            out
        })
        .collect()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

// ---- NPY / NPZ ----

/// An NPY v1 file with the given dtype descriptor, shape and raw data.
fn npy_bytes(descr: &str, shape: &[usize], fortran: bool, data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut text = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({},), }}",
        if fortran { "True" } else { "False" },
        dims.join(", ")
    );
    while (10 + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// Values 0.5, 1.5, … (or 0, 1, … for integers) with a few large ones to catch byte order.
fn test_values(count: usize, integer: bool) -> Vec<f64> {
    (0..count)
        .map(|i| {
            let base = if i % 5 == 4 {
                60_000.0 - i as f64
            } else {
                i as f64
            };
            if integer { base } else { base + 0.5 }
        })
        .collect()
}

fn encode(values: &[f64], dtype: DType, big_endian: bool) -> Vec<u8> {
    macro_rules! bytes {
        ($v:expr) => {
            if big_endian {
                $v.to_be_bytes().to_vec()
            } else {
                $v.to_le_bytes().to_vec()
            }
        };
    }
    values
        .iter()
        .flat_map(|&v| match dtype {
            DType::U8 => vec![(v as u32 % 256) as u8],
            DType::U16 => bytes!(v as u16),
            DType::F32 => bytes!(v as f32),
            DType::F64 => bytes!(v),
        })
        .collect()
}

fn expected_f32(values: &[f64], dtype: DType) -> Vec<f32> {
    values
        .iter()
        .map(|&v| match dtype {
            DType::U8 => (v as u32 % 256) as f32,
            DType::U16 => v as u16 as f32,
            DType::F32 | DType::F64 => v as f32,
        })
        .collect()
}

#[test]
fn npy_round_trips_every_dtype_shape_and_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (DType::U8, "|u1", false),
        (DType::U16, "<u2", false),
        (DType::U16, ">u2", true),
        (DType::F32, "<f4", false),
        (DType::F32, ">f4", true),
        (DType::F64, "<f8", false),
        (DType::F64, ">f8", true),
    ];
    for (dtype, descr, big_endian) in cases {
        for dims in [vec![3, 4, 5], vec![2, 3, 4, 5]] {
            let count: usize = dims.iter().product();
            let values = test_values(count, !dtype.is_float());
            let path = dir.path().join(format!(
                "{}-{}d.npy",
                descr.replace(['<', '>', '|'], "_"),
                dims.len()
            ));
            std::fs::write(
                &path,
                npy_bytes(descr, &dims, false, &encode(&values, dtype, big_endian)),
            )
            .unwrap();

            let ensemble = open_path(&path);
            let shape = match dims[..] {
                [_, h, w] => Shape::new(1, h, w),
                [_, c, h, w] => Shape::new(c, h, w),
                _ => unreachable!(),
            };
            assert_eq!(
                (ensemble.len(), ensemble.shape(), ensemble.dtype()),
                (dims[0], shape, dtype),
                "{descr}"
            );
            assert_eq!(ensemble.member_id(1), "1");
            assert_eq!(
                read_all(&ensemble).concat(),
                expected_f32(&values, dtype),
                "{descr} {dims:?}"
            );
        }
    }
}

fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)], method: zip::CompressionMethod) {
    let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
    let options = zip::write::FileOptions::default().compression_method(method);
    for (name, bytes) in arrays {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn npz_round_trips_stored_and_deflated_and_picks_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let values = test_values(2 * 3 * 4 * 4, false);
    let images = npy_bytes(
        "<f4",
        &[2, 3, 4, 4],
        false,
        &encode(&values, DType::F32, false),
    );
    let labels = npy_bytes("|u1", &[2], false, &[1, 0]);
    let other = npy_bytes(
        "<u2",
        &[5, 2, 2],
        false,
        &encode(&test_values(20, true), DType::U16, false),
    );
    for method in [
        zip::CompressionMethod::Stored,
        zip::CompressionMethod::Deflated,
    ] {
        let path = dir.path().join(format!("{method:?}.npz"));
        write_npz(
            &path,
            &[
                ("labels", labels.clone()),
                ("images", images.clone()),
                ("other", other.clone()),
            ],
            method,
        );

        // Several arrays: `images` is chosen by name.
        let ensemble = open_path(&path);
        assert_eq!(
            (ensemble.len(), ensemble.shape(), ensemble.dtype()),
            (2, Shape::new(3, 4, 4), DType::F32)
        );
        assert_eq!(
            read_all(&ensemble).concat(),
            expected_f32(&values, DType::F32),
            "{method:?}"
        );

        let named = npy::open_npz(&path, Some("other")).unwrap();
        use sense::data::MemberSource;
        assert_eq!(
            (named.len(), named.shape(), named.dtype()),
            (5, Shape::new(1, 2, 2), DType::U16)
        );
        let mut out = vec![0.0; 4];
        named.read_f32(4, &mut out).unwrap();
        assert_eq!(out, expected_f32(&test_values(20, true)[16..], DType::U16));

        let err = npy::open_npz(&path, Some("missing")).err().unwrap();
        assert!(err.reason.contains("'images', 'labels', 'other'"), "{err}");
    }

    // A single array is taken whatever its name.
    let single = dir.path().join("single.npz");
    write_npz(
        &single,
        &[("frames", images.clone())],
        zip::CompressionMethod::Deflated,
    );
    assert_eq!(
        read_all(&open_path(&single)).concat(),
        expected_f32(&values, DType::F32)
    );
}

// ---- IDX ----

fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn idx_round_trips_plain_and_gzip_with_sibling_labels() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..5 * 3 * 2).map(|v| (v * 7 % 256) as u8).collect();
    let images = idx_bytes(0x08, &[5, 3, 2], &pixels);
    let labels = idx_bytes(0x08, &[5], &[3, 1, 3, 0, 1]);
    std::fs::write(dir.path().join("x-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(dir.path().join("x-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(dir.path().join("y-images.idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(dir.path().join("y-labels.idx1-ubyte.gz"), gzip(&labels)).unwrap();

    for name in ["x-images-idx3-ubyte", "y-images.idx3-ubyte.gz"] {
        let ensemble = open_path(&dir.path().join(name));
        assert_eq!(
            (ensemble.len(), ensemble.shape(), ensemble.dtype()),
            (5, Shape::new(1, 3, 2), DType::U8)
        );
        let expected: Vec<f32> = pixels.iter().map(|&v| v as f32).collect();
        assert_eq!(read_all(&ensemble).concat(), expected, "{name}");
        let labels = ensemble
            .labels
            .as_ref()
            .expect("sibling labels are attached");
        assert_eq!(labels.classes, ["0", "1", "3"]);
        assert_eq!(
            labels.per_member,
            [Some(2), Some(1), Some(2), Some(0), Some(1)]
        );
        assert_eq!(labels.class_counts(), [1, 2, 2]);
    }
}

#[test]
fn idx_f32_four_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..2 * 2 * 3 * 3).map(|v| v as f32 * -1.25).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let path = dir.path().join("f.idx");
    std::fs::write(&path, idx_bytes(0x0D, &[2, 2, 3, 3], &data)).unwrap();
    let ensemble = open_path(&path);
    assert_eq!(
        (ensemble.shape(), ensemble.dtype()),
        (Shape::new(2, 3, 3), DType::F32)
    );
    assert_eq!(read_all(&ensemble).concat(), values);
}

const MNIST_TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

#[test]
fn real_mnist_test_set_with_its_labels() {
    let images =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/mnist/t10k-images.idx3-ubyte.gz");
    let ensemble = open_path(&images);
    assert_eq!(
        (ensemble.len(), ensemble.shape(), ensemble.dtype()),
        (10_000, Shape::new(1, 28, 28), DType::U8)
    );
    let labels = ensemble
        .labels
        .as_ref()
        .expect("t10k-labels beside the images");
    assert_eq!(
        labels.classes,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    );
    assert_eq!(labels.class_counts(), MNIST_TEST_COUNTS);

    // The in-memory readers used for the embedded sample agree with the file readers.
    let from_bytes =
        idx::images_from_bytes(Path::new("mem"), &std::fs::read(&images).unwrap()).unwrap();
    let labels_path = idx::sibling_labels_file(&images).unwrap();
    let label_values =
        idx::labels_from_bytes(Path::new("mem"), &std::fs::read(&labels_path).unwrap()).unwrap();
    assert_eq!(
        label_values,
        idx::read_labels(&labels_path, label_values.len()).unwrap()
    );
    use sense::data::MemberSource;
    let (mut a, mut b) = (vec![0.0; 784], vec![0.0; 784]);
    for i in [0, 4321, 9999] {
        ensemble.source.read_f32(i, &mut a).unwrap();
        from_bytes.read_f32(i, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().any(|&v| v > 200.0) && a.iter().all(|&v| v <= 255.0));
    }
}

#[test]
fn real_mnist_training_set_if_present() {
    let images = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/mnist/train-images.idx3-ubyte.gz");
    if !images.exists() {
        eprintln!("skipped: {} not found", images.display());
        return;
    }
    let ensemble = open_path(&images);
    assert_eq!(
        (ensemble.len(), ensemble.shape()),
        (60_000, Shape::new(1, 28, 28))
    );
    let labels = ensemble
        .labels
        .as_ref()
        .expect("train-labels beside the images");
    assert_eq!(
        labels.class_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
}

// ---- Image folders ----

#[test]
fn png_16_bit_and_rgb_and_bmp_round_trip() {
    let dir = tempfile::tempdir().unwrap();

    let gray16: Vec<u16> = (0..12).map(|v| v * 5000 + 7).collect();
    let folder = dir.path().join("gray16");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..2u16 {
        let data: Vec<u16> = gray16.iter().map(|v| v + i).collect();
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(4, 3, data)
            .unwrap()
            .save(folder.join(format!("{i}.png")))
            .unwrap();
    }
    let ensemble = open_path(&folder);
    assert_eq!(
        (ensemble.shape(), ensemble.dtype()),
        (Shape::new(1, 3, 4), DType::U16)
    );
    let members = read_all(&ensemble);
    assert_eq!(
        members[1],
        gray16.iter().map(|&v| (v + 1) as f32).collect::<Vec<_>>()
    );

    // RGB: stored interleaved, read back channel-major.
    let rgb: Vec<u8> = (0..2 * 3 * 3).map(|v| v * 10).collect();
    let chw: Vec<f32> = (0..3)
        .flat_map(|c| (0..6).map(move |p| (p * 3 + c) as f32 * 10.0))
        .collect();
    for extension in ["png", "bmp"] {
        let folder = dir.path().join(extension);
        std::fs::create_dir(&folder).unwrap();
        image::RgbImage::from_raw(3, 2, rgb.clone())
            .unwrap()
            .save(folder.join(format!("only.{extension}")))
            .unwrap();
        let ensemble = open_path(&folder);
        assert_eq!(
            (ensemble.shape(), ensemble.dtype()),
            (Shape::new(3, 2, 3), DType::U8),
            "{extension}"
        );
        assert_eq!(read_all(&ensemble)[0], chw, "{extension}");
    }
}

fn write_tiff<C: tiff::encoder::colortype::ColorType>(
    path: &Path,
    width: u32,
    height: u32,
    data: &[C::Inner],
) where
    [C::Inner]: tiff::encoder::TiffValue,
{
    let mut encoder = tiff::encoder::TiffEncoder::new(File::create(path).unwrap()).unwrap();
    encoder.write_image::<C>(width, height, data).unwrap();
}

#[test]
fn tiff_16_bit_float_and_rgb_round_trip() {
    use tiff::encoder::colortype::{Gray16, Gray32Float, RGB8};
    let dir = tempfile::tempdir().unwrap();

    let folder = dir.path().join("u16");
    std::fs::create_dir(&folder).unwrap();
    let gray16: Vec<u16> = (0..6).map(|v| 65_535 - v * 1000).collect();
    write_tiff::<Gray16>(&folder.join("a.tif"), 3, 2, &gray16);
    let ensemble = open_path(&folder);
    assert_eq!(
        (ensemble.shape(), ensemble.dtype()),
        (Shape::new(1, 2, 3), DType::U16)
    );
    assert_eq!(
        read_all(&ensemble)[0],
        gray16.iter().map(|&v| v as f32).collect::<Vec<_>>()
    );

    let folder = dir.path().join("f32");
    std::fs::create_dir_all(folder.join("run2")).unwrap();
    let floats: Vec<f32> = vec![-1.5e-3, 0.0, 3.25, 1.0e6, -42.0, 7.125];
    write_tiff::<Gray32Float>(&folder.join("run1.tiff"), 2, 3, &floats);
    write_tiff::<Gray32Float>(
        &folder.join("run2/x.TIF"),
        2,
        3,
        &floats.iter().map(|v| v * 2.0).collect::<Vec<_>>(),
    );
    let ensemble = open_path(&folder);
    assert_eq!(
        (ensemble.shape(), ensemble.dtype()),
        (Shape::new(1, 3, 2), DType::F32)
    );
    assert_eq!(
        (ensemble.member_id(0), ensemble.member_id(1)),
        ("run1.tiff".into(), "run2/x.TIF".into())
    );
    let members = read_all(&ensemble);
    assert_eq!(members[0], floats);
    assert_eq!(
        members[1],
        floats.iter().map(|v| v * 2.0).collect::<Vec<_>>()
    );

    let folder = dir.path().join("rgb");
    std::fs::create_dir(&folder).unwrap();
    let rgb: Vec<u8> = (0..2 * 2 * 3).map(|v| v * 20).collect();
    write_tiff::<RGB8>(&folder.join("c.tif"), 2, 2, &rgb);
    let ensemble = open_path(&folder);
    assert_eq!(ensemble.shape(), Shape::new(3, 2, 2));
    let chw: Vec<f32> = (0..3)
        .flat_map(|c| (0..4).map(move |p| ((p * 3 + c) * 20) as f32))
        .collect();
    assert_eq!(read_all(&ensemble)[0], chw);
}

#[test]
fn folder_ids_are_sorted_relative_paths_and_other_files_are_skipped() {
    let ensemble = open_path(&fixture("tiny_folder"));
    let ids: Vec<String> = (0..ensemble.len()).map(|i| ensemble.member_id(i)).collect();
    assert_eq!(ids, ["a.png", "b.png", "sub/c.png"]);
    assert_eq!(ensemble.index_of("sub/c.png"), Some(2));
    let members = read_all(&ensemble);
    for (i, member) in members.iter().enumerate() {
        let expected: Vec<f32> = (0..16).map(|k| (i * 16 + k) as f32).collect();
        assert_eq!(member, &expected, "{}", ids[i]);
    }
}

// ---- Labels and parameters ----

#[test]
fn labels_csv_in_any_column_order_with_blank_labels() {
    let options = OpenOptions {
        labels: Some(fixture("tiny_folder/labels.csv")),
        ..Default::default()
    };
    let ensemble = open(fixture("tiny_folder").to_str().unwrap(), &options).unwrap();
    let labels = ensemble.labels.unwrap();
    assert_eq!(labels.classes, ["cat", "dog"]);
    assert_eq!(labels.per_member, [Some(1), Some(0), None]);
    assert_eq!(labels.labelled_count(), 2);
}

#[test]
fn numeric_csv_labels_sort_numerically() {
    let dir = tempfile::tempdir().unwrap();
    let array = dir.path().join("a.npy");
    std::fs::write(&array, npy_bytes("|u1", &[4, 1, 1], false, &[0; 4])).unwrap();
    let labels = dir.path().join("labels.csv");
    // With the byte-order mark spreadsheet programs write.
    std::fs::write(&labels, "\u{feff}id,label\n0,10\n1,2\n2,1\n3,2\n").unwrap();
    let options = OpenOptions {
        labels: Some(labels),
        ..Default::default()
    };
    let loaded = open(array.to_str().unwrap(), &options)
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(loaded.classes, ["1", "2", "10"]);
    assert_eq!(loaded.per_member, [Some(2), Some(1), Some(0), Some(1)]);
}

#[test]
fn parameters_csv_with_blanks_and_missing_members() {
    let options = OpenOptions {
        parameters: Some(fixture("tiny_folder_params.csv")),
        ..Default::default()
    };
    let ensemble = open(fixture("tiny_folder").to_str().unwrap(), &options).unwrap();
    let table = ensemble.parameters.unwrap();
    assert_eq!(table.names, ["temperature", "pressure"]);
    assert_eq!((table.value(0, 0), table.value(0, 1)), (300.0, 1.5));
    assert!(
        table.value(1, 0).is_nan() && table.value(1, 1).is_nan(),
        "b.png is not in the file"
    );
    assert_eq!(table.value(2, 0), 310.5);
    assert!(table.value(2, 1).is_nan(), "blank cell");
}

#[test]
fn arrays_are_fitted_on_read_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let values: Vec<f64> = (0..16).map(f64::from).collect();
    std::fs::write(
        &path,
        npy_bytes(
            "<f8",
            &[1, 4, 4],
            false,
            &encode(&values, DType::F64, false),
        ),
    )
    .unwrap();
    let options = OpenOptions {
        fit: Some(FitMode::CenterCrop {
            height: 2,
            width: 2,
        }),
        ..Default::default()
    };
    let ensemble = open(path.to_str().unwrap(), &options).unwrap();
    assert_eq!(ensemble.shape(), Shape::new(1, 2, 2));
    assert_eq!(read_all(&ensemble)[0], [5.0, 6.0, 9.0, 10.0]);
}
