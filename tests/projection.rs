//! Projections: UMAP (cold, seeded, warm-started, cancelled, streamed), PCA, t-SNE, and the
//! N×D matrix files they read and write.

use std::sync::{Arc, Mutex};

use ndarray::{Array2, ArrayView2, Axis, array, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use sense::analysis::AnalysisError;
use sense::data::matrix::{read_matrix, read_npy_matrix, write_ids, write_npy_matrix};
use sense::projection::warm_start::Anchors;
use sense::projection::{
    Frames, Pca, PreviousLayout, ProjectionConfig, TsneConfig, UmapConfig, procrustes, project,
    project_with_frames,
};
use sense::task::TaskControl;

const BLOBS: usize = 4;
const PER_BLOB: usize = 150;
const DIM: usize = 20;

/// `BLOBS` unit Gaussians in `DIM`-D whose centres are 12 apart along distinct axes.
fn blobs(seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    let mut data = Array2::zeros((BLOBS * PER_BLOB, DIM));
    let mut labels = Vec::new();
    for (i, mut row) in data.rows_mut().into_iter().enumerate() {
        let blob = i / PER_BLOB;
        for v in row.iter_mut() {
            *v = noise.sample(&mut rng);
        }
        row[blob] += 12.0;
        labels.push(blob);
    }
    (data, labels)
}

/// Leave-one-out k-nearest-neighbour majority accuracy of a 2-D layout.
fn knn_accuracy(layout: ArrayView2<f32>, labels: &[usize], k: usize) -> f64 {
    let n = layout.nrows();
    let mut correct = 0;
    for i in 0..n {
        let mut d: Vec<(f32, usize)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let dx = layout[[i, 0]] - layout[[j, 0]];
                let dy = layout[[i, 1]] - layout[[j, 1]];
                (dx * dx + dy * dy, labels[j])
            })
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut votes = [0usize; BLOBS];
        for &(_, l) in &d[..k] {
            votes[l] += 1;
        }
        let best = (0..BLOBS).max_by_key(|&l| votes[l]).unwrap();
        correct += usize::from(best == labels[i]);
    }
    correct as f64 / n as f64
}

fn umap(epochs: usize) -> ProjectionConfig {
    ProjectionConfig::Umap(UmapConfig {
        epochs: Some(epochs),
        ..UmapConfig::default()
    })
}

fn centroid(layout: ArrayView2<f32>, rows: impl Iterator<Item = usize>) -> [f32; 2] {
    let (mut sum, mut n) = ([0.0f32; 2], 0);
    for r in rows {
        sum[0] += layout[[r, 0]];
        sum[1] += layout[[r, 1]];
        n += 1;
    }
    [sum[0] / n as f32, sum[1] / n as f32]
}

#[test]
fn umap_separates_gaussian_blobs() {
    let (data, labels) = blobs(1);
    let layout = project(data.view(), &umap(200), None, &TaskControl::new()).unwrap();
    assert_eq!(layout.coords.dim(), (BLOBS * PER_BLOB, 2));
    assert_eq!(layout.epochs, 200);
    let accuracy = knn_accuracy(layout.coords.view(), &labels, 5);
    assert!(accuracy > 0.98, "kNN accuracy {accuracy}");
}

#[test]
fn umap_is_deterministic_for_a_seed() {
    let (data, _) = blobs(2);
    let run = |seed| {
        let config = ProjectionConfig::Umap(UmapConfig {
            epochs: Some(100),
            seed,
            ..UmapConfig::default()
        });
        project(data.view(), &config, None, &TaskControl::new())
            .unwrap()
            .coords
    };
    let first = run(7);
    assert_eq!(first, run(7), "same seed, different layout");
    assert_ne!(first, run(8), "the seed has no effect");
}

#[test]
fn warm_start_keeps_the_layout_of_perturbed_data() {
    let (data, _) = blobs(3);
    let cold = project(data.view(), &umap(200), None, &TaskControl::new()).unwrap();

    // The latents of the next training epoch: every value moved a little.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let jitter = Normal::new(0.0f32, 0.05).unwrap();
    let perturbed = data.mapv(|v| v + jitter.sample(&mut rng));
    let anchors = Anchors::from_layout(cold.coords.view()).unwrap();
    let warm = project(
        perturbed.view(),
        &umap(200),
        Some(&anchors),
        &TaskControl::new(),
    )
    .unwrap();
    assert!(warm.warm_started);
    assert_eq!(warm.epochs, UmapConfig::default().warm_epochs);

    let drift = procrustes(cold.coords.view(), warm.coords.view(), true)
        .unwrap()
        .residual;
    assert!(drift <= 0.005, "Procrustes drift {drift}");
    // The same comparison against an unrelated cold run is not small: the measure can fail.
    let (other, _) = blobs(5);
    let unrelated = project(other.view(), &umap(200), None, &TaskControl::new()).unwrap();
    let baseline = procrustes(cold.coords.view(), unrelated.coords.view(), true)
        .unwrap()
        .residual;
    assert!(
        baseline > 10.0 * drift,
        "baseline {baseline}, drift {drift}"
    );
}

#[test]
fn warm_start_places_new_members_near_their_neighbours() {
    let (data, labels) = blobs(6);
    let ids: Vec<String> = (0..data.nrows()).map(|i| format!("m{i}")).collect();
    // The previous map knew every member except the last 20 of each blob.
    let known: Vec<usize> = (0..data.nrows())
        .filter(|i| i % PER_BLOB < PER_BLOB - 20)
        .collect();
    let old_data = data.select(Axis(0), &known);
    let old = project(old_data.view(), &umap(200), None, &TaskControl::new()).unwrap();
    let previous = PreviousLayout {
        ids: known.iter().map(|&i| ids[i].clone()).collect(),
        coords: old.coords.clone(),
        knn: None,
    };
    let anchors = previous.anchors(&ids).unwrap();
    assert_eq!(anchors.n_known(), known.len());

    let warm = project(data.view(), &umap(200), Some(&anchors), &TaskControl::new()).unwrap();
    assert_eq!(warm.placed_new, data.nrows() - known.len());
    let layout = warm.coords.view();
    let centres: Vec<[f32; 2]> = (0..BLOBS)
        .map(|b| centroid(layout, (0..data.nrows()).filter(|&i| labels[i] == b)))
        .collect();
    for i in (0..data.nrows()).filter(|i| !known.contains(i)) {
        let d = |c: [f32; 2]| (layout[[i, 0]] - c[0]).hypot(layout[[i, 1]] - c[1]);
        let own = d(centres[labels[i]]);
        for (b, &c) in centres.iter().enumerate() {
            if b != labels[i] {
                assert!(
                    own < d(c),
                    "new member {i} lies nearer blob {b} than its own"
                );
            }
        }
    }
    // Old members stayed where they were (up to a similarity transform).
    let known_now = warm.coords.select(Axis(0), &known);
    let drift = procrustes(old.coords.view(), known_now.view(), true)
        .unwrap()
        .residual;
    assert!(drift < 0.01, "old members drifted by {drift}");
}

#[test]
fn frames_stream_and_cancellation_is_prompt() {
    let (data, _) = blobs(7);
    let control = TaskControl::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, canceller) = (seen.clone(), control.clone());
    let mut sink = move |frame: sense::projection::LayoutFrame<'_>| {
        assert_eq!(frame.coords.dim(), (BLOBS * PER_BLOB, 2));
        log.lock().unwrap().push(frame.epoch);
        if frame.epoch == 20 {
            canceller.cancel();
        }
    };
    let frames = Frames {
        every_epochs: 10,
        sink: &mut sink,
    };
    let result = project_with_frames(data.view(), &umap(500), None, &control, Some(frames));
    assert!(
        matches!(result, Err(AnalysisError::Cancelled)),
        "{result:?}"
    );
    // Polled every epoch: nothing ran after the cancel.
    assert_eq!(*seen.lock().unwrap(), vec![10, 20]);

    let cancelled = TaskControl::new();
    cancelled.cancel();
    let started = std::time::Instant::now();
    let result = project(data.view(), &umap(500), None, &cancelled);
    assert!(matches!(result, Err(AnalysisError::Cancelled)));
    assert!(started.elapsed().as_secs_f64() < 0.5);
}

#[test]
fn progress_is_reported_per_stage() {
    let (data, _) = blobs(8);
    let stages = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let sink = stages.clone();
    let control = TaskControl::new().with_progress(move |p| {
        let mut s = sink.lock().unwrap();
        if s.last() != Some(&p.stage) {
            s.push(p.stage);
        }
    });
    project(data.view(), &umap(20), None, &control).unwrap();
    assert_eq!(
        *stages.lock().unwrap(),
        ["knn", "graph", "init", "optimise"]
    );
}

#[test]
fn umap_rejects_bad_input() {
    let (mut data, _) = blobs(9);
    let control = TaskControl::new();
    let too_many = ProjectionConfig::Umap(UmapConfig {
        n_neighbors: 10,
        ..UmapConfig::default()
    });
    let few = data.slice(s![..10, ..]);
    assert!(matches!(
        project(few, &too_many, None, &control),
        Err(AnalysisError::Invalid(_))
    ));
    assert!(matches!(
        project(data.slice(s![..2, ..]), &umap(10), None, &control),
        Err(AnalysisError::Invalid(_))
    ));
    let wrong_anchors = Anchors::from_layout(Array2::zeros((5, 2)).view()).unwrap();
    assert!(matches!(
        project(data.view(), &umap(10), Some(&wrong_anchors), &control),
        Err(AnalysisError::LengthMismatch { .. })
    ));
    data[[37, 3]] = f32::NAN;
    assert_eq!(
        project(data.view(), &umap(10), None, &control).unwrap_err(),
        AnalysisError::NonFinite {
            what: "data to embed",
            row: 37
        }
    );
    let duplicate = PreviousLayout {
        ids: vec!["a".into(), "a".into()],
        coords: Array2::zeros((2, 2)),
        knn: None,
    };
    assert!(duplicate.anchors(&["a".to_string()]).is_err());
}

#[test]
fn tsne_separates_gaussian_blobs() {
    let (data, labels) = blobs(10);
    let config = ProjectionConfig::Tsne(TsneConfig {
        epochs: 500,
        ..TsneConfig::default()
    });
    let layout = project(data.view(), &config, None, &TaskControl::new()).unwrap();
    let accuracy = knn_accuracy(layout.coords.view(), &labels, 5);
    assert!(accuracy > 0.98, "kNN accuracy {accuracy}");
    let tiny = data.slice(s![..50, ..]);
    assert!(project(tiny, &config, None, &TaskControl::new()).is_err());
}

#[test]
fn pca_matches_a_hand_computed_case() {
    // Centred already; covariance diag(8/3, 2/3): the axes, 80% and 20% of the variance.
    let data = array![[2.0f32, 0.0], [0.0, 1.0], [-2.0, 0.0], [0.0, -1.0]];
    let pca = Pca::fit(data.view(), 2, &TaskControl::new()).unwrap();
    let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
    assert!(close(pca.explained_variance[0], 8.0 / 3.0));
    assert!(close(pca.explained_variance[1], 2.0 / 3.0));
    assert!(close(pca.explained_variance_ratio[0], 0.8));
    assert!(close(pca.explained_variance_ratio[1], 0.2));
    for (got, want) in pca.components.iter().zip([1.0, 0.0, 0.0, 1.0]) {
        assert!(close(*got, want), "components {}", pca.components);
    }
    let scores = pca.transform(data.view()).unwrap();
    for (got, want) in scores.iter().zip(data.iter()) {
        assert!(close(*got, *want));
    }
    // As the 2-D projection.
    let layout = project(
        data.view(),
        &ProjectionConfig::Pca(Default::default()),
        None,
        &TaskControl::new(),
    )
    .unwrap();
    assert_eq!(layout.coords, scores);
}

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    // Uneven column scales so the spectrum is not flat.
    Array2::from_shape_fn((rows, cols), |(_, c)| {
        normal.sample(&mut rng) * (1.0 + c as f32) + 0.5 * c as f32
    })
}

fn assert_pca_round_trip(data: &Array2<f32>, k: usize) {
    let pca = Pca::fit(data.view(), k, &TaskControl::new()).unwrap();
    let total: f32 = pca.explained_variance_ratio.sum();
    assert!(total <= 1.0 + 1e-5 && total > 0.999, "ratio sum {total}");
    assert!(
        pca.explained_variance
            .windows(2)
            .into_iter()
            .all(|w| w[0] >= w[1])
    );
    let gram = pca.components.dot(&pca.components.t());
    for ((i, j), v) in gram.indexed_iter() {
        let want = if i == j { 1.0 } else { 0.0 };
        assert!(
            (v - want).abs() < 1e-4,
            "components not orthonormal: {gram}"
        );
    }
    let back = pca.reconstruct(data.view()).unwrap();
    let scale = data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = (&back - data).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        err < 1e-4 * scale,
        "reconstruction error {err} (scale {scale})"
    );
}

#[test]
fn pca_inverts_at_full_rank() {
    // More members than features (covariance path) and fewer (Gram path).
    assert_pca_round_trip(&random_matrix(200, 30, 11), 30);
    assert_pca_round_trip(&random_matrix(12, 40, 12), 11);
    // Truncated: the ratio sums to less than 1 and reconstruction loses something.
    let data = random_matrix(200, 30, 13);
    let pca = Pca::fit(data.view(), 5, &TaskControl::new()).unwrap();
    assert!(pca.explained_variance_ratio.sum() < 0.99);
    let err = (&pca.reconstruct(data.view()).unwrap() - &data)
        .mapv(|v| v * v)
        .sum();
    assert!(err > 1.0);
}

#[test]
fn pca_rejects_bad_input() {
    let data = random_matrix(20, 5, 14);
    let control = TaskControl::new();
    assert!(Pca::fit(data.view(), 6, &control).is_err());
    assert!(Pca::fit(data.view(), 0, &control).is_err());
    assert!(Pca::fit(data.slice(s![..1, ..]), 1, &control).is_err());
    let pca = Pca::fit(data.view(), 3, &control).unwrap();
    assert!(pca.transform(random_matrix(3, 4, 1).view()).is_err());
    assert!(
        pca.inverse_transform(random_matrix(3, 4, 1).view())
            .is_err()
    );
    let mut bad = data.clone();
    bad[[4, 2]] = f32::INFINITY;
    assert!(matches!(
        Pca::fit(bad.view(), 2, &control),
        Err(AnalysisError::NonFinite { row: 4, .. })
    ));
}

#[test]
fn projection_config_is_serde() {
    let config: ProjectionConfig = serde_json::from_str(r#"{"method": "umap"}"#).unwrap();
    assert_eq!(config, ProjectionConfig::Umap(UmapConfig::default()));
    let config: ProjectionConfig =
        serde_json::from_str(r#"{"method": "umap", "n_neighbors": 30, "metric": "cosine"}"#)
            .unwrap();
    let ProjectionConfig::Umap(umap) = &config else {
        panic!("not umap: {config:?}")
    };
    assert_eq!((umap.n_neighbors, umap.min_dist), (30, 0.1));
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<ProjectionConfig>(&text).unwrap(),
        config
    );
    assert!(serde_json::from_str::<ProjectionConfig>(r#"{"method": "isomap"}"#).is_err());
}

#[test]
fn matrices_round_trip_and_run_dirs_carry_ids() {
    let dir = tempfile::tempdir().unwrap();
    let values = random_matrix(7, 3, 15);
    let path = dir.path().join("x.npy");
    write_npy_matrix(&path, values.view()).unwrap();
    assert_eq!(read_npy_matrix(&path).unwrap(), values);
    // A transposed view is written in logical order.
    write_npy_matrix(&path, values.t()).unwrap();
    assert_eq!(read_npy_matrix(&path).unwrap(), values.t());
    let bare = read_matrix(&path).unwrap();
    assert_eq!(bare.ids, ["0", "1", "2"]);

    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    write_npy_matrix(&run.join("latents.npy"), values.view()).unwrap();
    let ids: Vec<String> = (0..7).map(|i| format!("sim_{i:03}")).collect();
    write_ids(&run.join("latent_ids.csv"), &ids).unwrap();
    let latents = read_matrix(&run).unwrap();
    assert_eq!(latents.values, values);
    assert_eq!(latents.ids, ids);

    write_ids(&run.join("latent_ids.csv"), &ids[..6]).unwrap();
    let err = read_matrix(&run).unwrap_err();
    assert!(err.path.ends_with("latent_ids.csv"), "{err}");
    let mut twice = ids.clone();
    twice[6] = twice[0].clone();
    write_ids(&run.join("latent_ids.csv"), &twice).unwrap();
    assert!(read_matrix(&run).unwrap_err().reason.contains("twice"));
}

/// An NPY file with a hand-written header, as numpy writes it (version 1.0).
fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

#[test]
fn float64_and_big_endian_files_read_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.npy");
    let values = [1.5f64, -2.0, 3.25, 1e-3];
    let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, npy_bytes("<f8", "(2, 2)", &le)).unwrap();
    assert_eq!(
        read_npy_matrix(&path).unwrap(),
        array![[1.5f32, -2.0], [3.25, 1e-3]]
    );
    let be: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(&path, npy_bytes(">f4", "(1, 2)", &be)).unwrap();
    assert_eq!(read_npy_matrix(&path).unwrap(), array![[1.0f32, 2.0]]);
}

#[test]
fn bad_matrix_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npy");
    let four_floats: Vec<u8> = [1.0f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not an npy file at all".to_vec(), "not a valid"),
        // A header that claims far more than the file holds must not allocate it.
        (
            npy_bytes("<f4", "(10000000000000, 10000000)", &four_floats),
            "impossibly large",
        ),
        (npy_bytes("<f4", "(100000, 100000)", &four_floats), "needs"),
        (npy_bytes("<f4", "(2, 3)", &four_floats), "needs"),
        (npy_bytes("<f4", "(2, 2, 1)", &four_floats), "2-D"),
        (npy_bytes("<i4", "(2, 2)", &four_floats), "dtype"),
        (npy_bytes("<f4", "(0, 2)", &[]), "empty"),
    ];
    for (bytes, reason) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let err = read_npy_matrix(&path).unwrap_err();
        assert_eq!(err.path, path);
        assert!(err.reason.contains(reason), "{reason}: {err}");
    }
    let missing = dir.path().join("missing.npy");
    assert_eq!(read_npy_matrix(&missing).unwrap_err().path, missing);
}
