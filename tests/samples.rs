//! Built-in sample ensembles: determinism, balance, labelled subsets, separability, writer.

use sense::data::Ensemble;
use sense::samples::{self, writer};
use std::path::Path;
use std::time::Instant;

const PROCEDURAL: [&str; 2] = ["channels", "droplets"];

fn member(ensemble: &Ensemble, index: usize) -> Vec<f32> {
    let mut values = vec![0.0; ensemble.shape().len()];
    ensemble.source.read_f32(index, &mut values).unwrap();
    values
}

fn truth(ensemble: &Ensemble) -> Vec<u32> {
    let truth = ensemble
        .ground_truth
        .as_ref()
        .expect("samples carry ground truth");
    truth
        .per_member
        .iter()
        .map(|c| c.expect("ground truth is complete"))
        .collect()
}

#[test]
fn same_seed_gives_identical_members_and_other_seeds_differ() {
    for name in PROCEDURAL {
        let a = samples::open_with(name, Some(40), 7).unwrap();
        let b = samples::open_with(name, Some(40), 7).unwrap();
        let c = samples::open_with(name, Some(40), 8).unwrap();
        assert_eq!(truth(&a), truth(&b), "{name}");
        assert_ne!(
            truth(&a),
            truth(&c),
            "{name}: classes should depend on the seed"
        );
        for i in [0, 13, 39] {
            assert_eq!(member(&a, i), member(&b, i), "{name} member {i}");
            assert_ne!(member(&a, i), member(&c, i), "{name} member {i}");
        }
        assert_ne!(member(&a, 0), member(&a, 1), "{name}: members must differ");
    }
}

#[test]
fn random_access_from_threads_equals_sequential_reads() {
    for name in PROCEDURAL {
        let ensemble = samples::open_with(name, Some(24), 3).unwrap();
        let sequential: Vec<Vec<f32>> = (0..24).map(|i| member(&ensemble, i)).collect();
        std::thread::scope(|scope| {
            for t in 0..2 {
                let (ensemble, sequential) = (&ensemble, &sequential);
                scope.spawn(move || {
                    for i in (0..24).rev().filter(|i| i % 2 == t) {
                        assert_eq!(member(ensemble, i), sequential[i], "{name} member {i}");
                    }
                });
            }
        });
        assert!(
            ensemble
                .source
                .read_f32(24, &mut vec![0.0; ensemble.shape().len()])
                .is_err()
        );
    }
}

#[test]
fn members_are_u8_images_of_the_documented_shape() {
    for (name, height, width) in [("channels", 50, 50), ("droplets", 160, 224)] {
        let ensemble = samples::open_with(name, Some(21), 1).unwrap();
        assert_eq!(ensemble.shape(), sense::data::Shape::new(1, height, width));
        assert_eq!(ensemble.dtype(), sense::data::DType::U8);
        assert_eq!(ensemble.origin(), format!("sample:{name}"));
        for i in 0..21 {
            let values = member(&ensemble, i);
            assert!(
                values
                    .iter()
                    .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0)
            );
            let (min, max) = values
                .iter()
                .fold((255f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!(
                max - min > 80.0,
                "{name} member {i} has too little contrast: {min}..{max}"
            );
        }
        assert_eq!(ensemble.member_id(7), "000007");
        assert_eq!(ensemble.index_of("000020"), Some(20));
    }
}

#[test]
fn classes_are_balanced() {
    for (name, n_classes) in [("channels", 5), ("droplets", 7)] {
        for count in [1000, 1003] {
            let ensemble = samples::open_with(name, Some(count), 11).unwrap();
            let counts = ensemble.ground_truth.as_ref().unwrap().class_counts();
            assert_eq!(counts.len(), n_classes);
            assert_eq!(counts.iter().sum::<usize>(), count);
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "{name} {count}: {counts:?}");
        }
    }
}

#[test]
fn default_ensembles_have_their_documented_size_and_labelled_subset() {
    for (name, count, labelled, classes) in [
        (
            "channels",
            30_000,
            2_500,
            vec!["east-west", "diagonal", "meandering", "braided", "lobes"],
        ),
        (
            "droplets",
            26_000,
            7_200,
            vec![
                "bubble",
                "bubble-splash",
                "column",
                "crown",
                "crown-splash",
                "splash",
                "drop",
            ],
        ),
    ] {
        let ensemble = samples::open(name).unwrap();
        assert_eq!(ensemble.len(), count);
        let labels = ensemble.labels.as_ref().unwrap();
        let truth = ensemble.ground_truth.as_ref().unwrap();
        assert_eq!(labels.classes, classes);
        assert_eq!(truth.classes, classes);
        assert_eq!(labels.labelled_count(), labelled, "{name}");
        // Stratified: each class gets its proportional share of the labels (±1 for rounding).
        let truth_counts = truth.class_counts();
        for (c, &n) in labels.class_counts().iter().enumerate() {
            let share = labelled as f64 * truth_counts[c] as f64 / count as f64;
            assert!(
                (n as f64 - share).abs() < 1.0,
                "{name} class {c}: {n} vs {share}"
            );
        }
        // Hand labels are the truth where given.
        for (l, t) in labels.per_member.iter().zip(&truth.per_member) {
            assert!(l.is_none() || l == t);
        }
    }
    let small = samples::open_with("channels", Some(300), 5).unwrap();
    assert_eq!(small.labels.as_ref().unwrap().labelled_count(), 25);
}

#[test]
fn hand_labelled_subset_is_deterministic_stratified_and_seeded() {
    let classes: Vec<u32> = (0..10_000u32).map(|i| (i * 7919) % 10).collect();
    let a = samples::hand_labelled_subset(&classes, 10, 2_500, 1);
    assert_eq!(a, samples::hand_labelled_subset(&classes, 10, 2_500, 1));
    assert_ne!(a, samples::hand_labelled_subset(&classes, 10, 2_500, 2));
    assert_eq!(a.iter().filter(|&&x| x).count(), 2_500);
    for c in 0..10 {
        let n = (0..classes.len())
            .filter(|&i| a[i] && classes[i] == c)
            .count();
        assert_eq!(n, 250, "class {c}");
    }
}

#[test]
fn unknown_or_empty_samples_are_refused_with_the_valid_names() {
    let err = samples::open("lava")
        .err()
        .expect("unknown sample must fail");
    let message = err.to_string();
    for name in samples::NAMES {
        assert!(message.contains(name), "{message}");
    }
    assert!(samples::open_with("channels", Some(0), 1).is_err());
}

/// Nearest class centroid on standardised features; returns held-out accuracy.
fn nearest_centroid_accuracy(
    features: &[Vec<f32>],
    classes: &[u32],
    n_classes: usize,
    train: usize,
) -> f32 {
    let dims = features[0].len();
    let (mean, sd): (Vec<f32>, Vec<f32>) = (0..dims)
        .map(|d| {
            let column: Vec<f32> = features[..train].iter().map(|f| f[d]).collect();
            let mean = column.iter().sum::<f32>() / train as f32;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / train as f32;
            (mean, var.sqrt().max(1e-6))
        })
        .unzip();
    let standard =
        |f: &Vec<f32>| -> Vec<f32> { (0..dims).map(|d| (f[d] - mean[d]) / sd[d]).collect() };
    let mut centroids = vec![vec![0.0f32; dims]; n_classes];
    let mut counts = vec![0usize; n_classes];
    for (f, &c) in features[..train].iter().zip(classes) {
        for (acc, v) in centroids[c as usize].iter_mut().zip(standard(f)) {
            *acc += v;
        }
        counts[c as usize] += 1;
    }
    for (centroid, &n) in centroids.iter_mut().zip(&counts) {
        centroid.iter_mut().for_each(|v| *v /= n.max(1) as f32);
    }
    let test = &features[train..];
    let correct = test
        .iter()
        .zip(&classes[train..])
        .filter(|&(f, &c)| {
            let f = standard(f);
            let dist = |centroid: &Vec<f32>| -> f32 {
                centroid.iter().zip(&f).map(|(a, b)| (a - b).powi(2)).sum()
            };
            let best =
                (0..n_classes).min_by(|&a, &b| dist(&centroids[a]).total_cmp(&dist(&centroids[b])));
            best == Some(c as usize)
        })
        .count();
    correct as f32 / test.len() as f32
}

/// Channel features: sand fraction, sand/shale transitions along x and y, and the gradient
/// structure tensor (orientation).
fn channel_features(values: &[f32]) -> Vec<f32> {
    const N: usize = 50;
    let sand = |x: usize, y: usize| values[y * N + x] > 120.0;
    let sand_fraction = values.iter().filter(|&&v| v > 120.0).count() as f32 / (N * N) as f32;
    let (mut across_x, mut across_y) = (0.0, 0.0);
    let (mut jxx, mut jyy, mut jxy) = (0.0f32, 0.0f32, 0.0f32);
    for y in 1..N {
        for x in 1..N {
            across_x += (sand(x, y) != sand(x - 1, y)) as u32 as f32;
            across_y += (sand(x, y) != sand(x, y - 1)) as u32 as f32;
            let gx = values[y * N + x] - values[y * N + x - 1];
            let gy = values[y * N + x] - values[(y - 1) * N + x];
            jxx += gx * gx;
            jyy += gy * gy;
            jxy += gx * gy;
        }
    }
    let energy = (jxx + jyy).max(1.0);
    vec![
        sand_fraction,
        across_x / 100.0,
        across_y / 100.0,
        jxx / energy,
        jxy.abs() / energy,
    ]
}

/// Droplet features, independent of where the impact is across the image: per 8-row band
/// above the film, the share of dark pixels and the number of dark runs per row.
fn droplet_features(values: &[f32]) -> Vec<f32> {
    const W: usize = 224;
    const BAND: usize = 8;
    const BANDS: usize = 12;
    let dark = |x: usize, y: usize| values[y * W + x] < 110.0;
    let row_dark_share = |y: usize| (0..W).filter(|&x| dark(x, y)).count() as f32 / W as f32;
    // The film is the topmost row from which everything below is mostly dark.
    let mut surface = 159;
    while surface > 0 && row_dark_share(surface - 1) > 0.8 {
        surface -= 1;
    }
    let mut features = vec![0.0f32; 2 * BANDS];
    for band in 0..BANDS {
        let (top, bottom) = (
            surface.saturating_sub((band + 1) * BAND),
            surface.saturating_sub(band * BAND),
        );
        for y in top..bottom {
            features[band] += row_dark_share(y);
            features[BANDS + band] +=
                (1..W).filter(|&x| dark(x, y) && !dark(x - 1, y)).count() as f32;
        }
    }
    features
}

#[test]
fn classes_are_separable_by_simple_features() {
    for (name, n_classes, featurise, min_accuracy) in [
        (
            "channels",
            5,
            channel_features as fn(&[f32]) -> Vec<f32>,
            0.6,
        ),
        (
            "droplets",
            7,
            droplet_features as fn(&[f32]) -> Vec<f32>,
            0.55,
        ),
    ] {
        let ensemble = samples::open_with(name, Some(350), 42).unwrap();
        let features: Vec<Vec<f32>> = (0..350).map(|i| featurise(&member(&ensemble, i))).collect();
        let accuracy = nearest_centroid_accuracy(&features, &truth(&ensemble), n_classes, 250);
        eprintln!(
            "{name}: nearest-centroid accuracy {accuracy:.2} (chance {:.2})",
            1.0 / n_classes as f32
        );
        assert!(
            accuracy >= min_accuracy,
            "{name}: accuracy {accuracy} below {min_accuracy}"
        );
    }
}

fn read_csv(path: &Path) -> Vec<(String, String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    assert_eq!(reader.headers().unwrap(), vec!["id", "label"]);
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string())
        })
        .collect()
}

#[test]
fn writer_writes_pngs_labels_and_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let ensemble = samples::open_with("channels", Some(30), 9).unwrap();
    let written =
        writer::write_ensemble(&ensemble, dir.path(), &indicatif::ProgressBar::hidden()).unwrap();
    let labels = ensemble.labels.as_ref().unwrap();
    assert_eq!(written.members, 30);
    assert_eq!(written.labelled, labels.labelled_count());
    assert!(written.labelled >= 5);

    let images = std::fs::read_dir(dir.path().join("images"))
        .unwrap()
        .count();
    assert_eq!(images, 30);
    let png = image::open(dir.path().join("images/000017.png"))
        .unwrap()
        .into_luma8();
    assert_eq!(png.dimensions(), (50, 50));
    let expected: Vec<u8> = member(&ensemble, 17).iter().map(|&v| v as u8).collect();
    assert_eq!(png.into_raw(), expected);

    let label_rows = read_csv(&dir.path().join("labels.csv"));
    let truth_rows = read_csv(&dir.path().join("ground_truth.csv"));
    assert_eq!(label_rows.len(), 30);
    assert_eq!(truth_rows.len(), 30);
    for (i, ((id, label), (truth_id, truth_label))) in
        label_rows.iter().zip(&truth_rows).enumerate()
    {
        assert_eq!(id, &format!("images/{i:06}.png"));
        assert_eq!(truth_id, id);
        assert_eq!(label.as_str(), labels.class_name(i).unwrap_or(""));
        assert_eq!(
            Some(truth_label.as_str()),
            ensemble.ground_truth.as_ref().unwrap().class_name(i)
        );
    }
    assert_eq!(
        label_rows.iter().filter(|(_, l)| !l.is_empty()).count(),
        written.labelled
    );
}

#[test]
fn sense_sample_command_writes_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("drops");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_sense"))
        .args([
            "sample", "droplets", "--count", "14", "--seed", "4", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let ensemble = samples::open_with("droplets", Some(14), 4).unwrap();
    let png = image::open(out.join("images/000013.png"))
        .unwrap()
        .into_luma8();
    assert_eq!(png.dimensions(), (224, 160));
    let expected: Vec<u8> = member(&ensemble, 13).iter().map(|&v| v as u8).collect();
    assert_eq!(png.into_raw(), expected);
    let truth_rows = read_csv(&out.join("ground_truth.csv"));
    assert_eq!(truth_rows.len(), 14);
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(["sample", "lava", "--out"])
        .arg(dir.path().join("lava"))
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("channels, droplets, mnist"));
}

#[test]
fn montage_has_one_row_per_class() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.png");
    let ensemble = samples::open_with("channels", Some(40), 2).unwrap();
    writer::write_class_montage(&ensemble, 3, 2, &path).unwrap();
    let montage = image::open(&path).unwrap().into_luma8();
    assert_eq!(montage.dimensions(), (4 + 3 * 104, 4 + 5 * 104));
}

/// Regenerates the class montages in `assets/` (run after changing a generator):
/// `cargo test --release --test samples -- --ignored write_class_montages`
#[test]
#[ignore]
fn write_class_montages() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for (name, scale) in [("channels", 2), ("droplets", 1)] {
        let ensemble = samples::open_with(name, Some(200), samples::DEFAULT_SEED).unwrap();
        let path = assets.join(format!("{name}_classes.png"));
        writer::write_class_montage(&ensemble, 4, scale, &path).unwrap();
    }
}

/// Single-core rendering cost per member, overall and per class
/// (`cargo test --release --test samples -- --ignored --nocapture render_cost`).
#[test]
#[ignore]
fn render_cost() {
    for name in PROCEDURAL {
        let ensemble = samples::open_with(name, Some(2_000), 1).unwrap();
        let classes = truth(&ensemble);
        let names = &ensemble.ground_truth.as_ref().unwrap().classes;
        let mut per_class_secs = vec![0.0; names.len()];
        let mut values = vec![0.0; ensemble.shape().len()];
        for (i, &class) in classes.iter().enumerate() {
            let start = Instant::now();
            ensemble.source.read_f32(i, &mut values).unwrap();
            per_class_secs[class as usize] += start.elapsed().as_secs_f64();
        }
        let total: f64 = per_class_secs.iter().sum();
        eprintln!(
            "{name}: {:.3} ms per member",
            total * 1e3 / classes.len() as f64
        );
        let counts = ensemble.ground_truth.as_ref().unwrap().class_counts();
        for ((class, secs), n) in names.iter().zip(&per_class_secs).zip(counts) {
            eprintln!("  {class}: {:.3} ms", secs * 1e3 / n as f64);
        }
    }
}
