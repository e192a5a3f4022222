//! Clustering, anomaly ranking and the linear probe against scikit-learn / scipy / numpy
//! reference values in tests/fixtures/analysis/clustering.json (regenerate with
//! generate_clustering.py beside it).

use std::collections::HashMap;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use sense::analysis::AnalysisError;
use sense::analysis::anomaly::{percentile, rank_anomalies, reconstruction_errors, roc_auc};
use sense::analysis::clustering::{
    ClusterMethod, ClusterOptions, GmmOptions, Linkage, agglomerative, cluster, sweep_k,
};
use sense::analysis::linear_probe::{ProbeOptions, ProbeSplit, linear_probe, stratified_split};
use sense::task::TaskControl;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/analysis/clustering.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture clustering.json");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn matrix(v: &Value) -> Array2<f32> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    let (n, d) = (rows.len(), rows[0].len());
    Array2::from_shape_vec(
        (n, d),
        rows.into_iter().flatten().map(|x| x as f32).collect(),
    )
    .unwrap()
}

/// Equal partitions up to relabelling: the label maps both ways are functions.
fn same_partition(a: &[usize], b: &[usize]) -> bool {
    let (mut ab, mut ba) = (HashMap::new(), HashMap::new());
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| *ab.entry(x).or_insert(y) == y && *ba.entry(y).or_insert(x) == x)
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

fn blobs() -> (Array2<f32>, Vec<usize>, Value) {
    let f = fixture();
    let blobs = f["blobs"].clone();
    (matrix(&blobs["points"]), usizes(&blobs["labels"]), blobs)
}

#[test]
fn same_partition_detects_differences() {
    assert!(same_partition(&[0, 0, 1, 2], &[5, 5, 3, 1]));
    assert!(!same_partition(&[0, 0, 1, 2], &[5, 5, 3, 3]));
    assert!(!same_partition(&[0, 1, 1, 2], &[5, 5, 3, 1]));
}

#[test]
fn kmeans_recovers_blobs_with_sklearns_inertia() {
    let (points, truth, blobs) = blobs();
    let options = ClusterOptions::default();
    let result = cluster(
        points.view(),
        ClusterMethod::Kmeans,
        4,
        &options,
        &TaskControl::new(),
    )
    .unwrap();
    assert!(same_partition(&result.assignments, &truth));
    let sklearn = blobs["kmeans_inertia"].as_f64().unwrap();
    assert!(
        relative(result.inertia, sklearn) < 1e-4,
        "{} vs sklearn {sklearn}",
        result.inertia
    );

    let again = cluster(
        points.view(),
        ClusterMethod::Kmeans,
        4,
        &options,
        &TaskControl::new(),
    )
    .unwrap();
    assert_eq!(again, result, "same seed, same clustering");
}

#[test]
fn elbow_and_silhouette_pick_the_true_k() {
    let (points, truth, _) = blobs();
    let sweep = sweep_k(
        points.view(),
        ClusterMethod::Kmeans,
        2..=8,
        &ClusterOptions::default(),
        &TaskControl::new(),
    )
    .unwrap();
    assert_eq!(
        sweep.scores.iter().map(|s| s.k).collect::<Vec<_>>(),
        (2..=8).collect::<Vec<_>>()
    );
    assert!(
        sweep
            .scores
            .windows(2)
            .all(|w| w[1].inertia <= w[0].inertia),
        "inertia falls with K"
    );
    assert_eq!(sweep.elbow_k, Some(4));
    assert_eq!(sweep.silhouette_k, Some(4));
    assert_eq!(sweep.chosen_k, 4);
    assert_eq!(sweep.silhouette_sample_size, points.nrows());
    assert!(same_partition(&sweep.chosen.assignments, &truth));
}

/// BIC tolerance: 1e-6 relative. Both sides run EM to tol 1e-8 (max 1000 iterations) from
/// different k-means initialisations, so they stop at the same optimum up to that tolerance.
#[test]
fn gmm_bic_is_minimal_at_the_true_k_and_matches_sklearn() {
    let (points, truth, blobs) = blobs();
    let options = ClusterOptions {
        gmm: GmmOptions {
            n_restarts: 3,
            tolerance: 1e-8,
            max_iterations: 1000,
            ..GmmOptions::default()
        },
        ..ClusterOptions::default()
    };
    let sweep = sweep_k(
        points.view(),
        ClusterMethod::Gmm,
        1..=6,
        &options,
        &TaskControl::new(),
    )
    .unwrap();
    assert_eq!(sweep.bic_k, Some(4));
    assert_eq!(sweep.chosen_k, 4);
    assert!(same_partition(&sweep.chosen.assignments, &truth));
    for reference in blobs["gmm_bic"].as_array().unwrap() {
        let k = reference["k"].as_u64().unwrap() as usize;
        let sklearn = reference["bic"].as_f64().unwrap();
        let ours = sweep.scores.iter().find(|s| s.k == k).unwrap().bic.unwrap();
        // Wrong-K mixtures have several local optima; compare where the optimum is unique.
        if k == 1 || k == 4 {
            assert!(
                relative(ours, sklearn) < 1e-6,
                "K={k}: BIC {ours} vs sklearn {sklearn}"
            );
        }
    }
}

#[test]
fn agglomerative_matches_scipy_and_sklearn() {
    let f = fixture();
    let aggl = &f["agglomerative"];
    let points = matrix(&aggl["points"]);
    let n = points.nrows();
    for (name, method, linkage) in [
        ("ward", ClusterMethod::Ward, Linkage::Ward),
        ("complete", ClusterMethod::Complete, Linkage::Complete),
        ("average", ClusterMethod::Average, Linkage::Average),
        ("single", ClusterMethod::Single, Linkage::Single),
    ] {
        let reference = &aggl["linkages"][name];
        let tree =
            agglomerative(points.mapv(f64::from).view(), linkage, &TaskControl::new()).unwrap();
        let scipy: Vec<Vec<f64>> = reference["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(f64s)
            .collect();
        assert_eq!(tree.merges.len(), n - 1);
        for (ours, z) in tree.merges.iter().zip(&scipy) {
            assert_eq!(
                (ours.a, ours.b, ours.size),
                (z[0] as usize, z[1] as usize, z[3] as usize),
                "{name}"
            );
            assert!(
                (ours.distance - z[2]).abs() < 1e-6,
                "{name}: {} vs scipy {}",
                ours.distance,
                z[2]
            );
        }
        for k in usizes(&aggl["cuts"]) {
            let sklearn = usizes(&reference["sklearn_labels"][k.to_string()]);
            let result = cluster(
                points.view(),
                method,
                k,
                &ClusterOptions::default(),
                &TaskControl::new(),
            )
            .unwrap();
            assert!(
                same_partition(&result.assignments, &sklearn),
                "{name} cut at {k}"
            );
            assert_eq!(result.dendrogram.as_ref().unwrap().merges, tree.merges);
        }
    }
}

#[test]
fn roc_auc_matches_sklearn_with_ties() {
    for case in fixture()["roc_auc"].as_array().unwrap() {
        let scores = f64s(&case["scores"]);
        let labels: Vec<bool> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect();
        let expected = case["auc"].as_f64().unwrap();
        let auc = roc_auc(&scores, &labels).unwrap();
        assert!(
            (auc - expected).abs() < 1e-12,
            "{auc} vs sklearn {expected}"
        );
    }
}

#[test]
fn percentile_matches_numpy() {
    for case in fixture()["percentile"].as_array().unwrap() {
        let values = f64s(&case["values"]);
        for (q, expected) in f64s(&case["q"]).into_iter().zip(f64s(&case["expected"])) {
            let ours = percentile(&values, q).unwrap();
            assert!(
                (ours - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                "q={q}: {ours} vs {expected}"
            );
        }
    }
}

#[test]
fn anomalies_rank_largest_errors_first_and_flag_above_the_threshold() {
    let training: Vec<f64> = (0..=100).map(f64::from).collect(); // 99th percentile = 99
    let errors = [5.0, 150.0, 99.0, 99.5, 150.0];
    let labels = [false, true, false, true, true];
    let ranking = rank_anomalies(&errors, &training, 99.0, Some(&labels)).unwrap();
    assert_eq!(ranking.threshold, 99.0);
    assert_eq!(
        ranking.ranking,
        vec![1, 4, 3, 2, 0],
        "ties keep input order"
    );
    assert_eq!(ranking.flagged, vec![false, true, false, true, true]);
    assert_eq!(ranking.n_flagged, 3);
    assert_eq!(ranking.roc_auc, Some(1.0));

    let errors = reconstruction_errors(
        ndarray::array![[0.0f32, 0.0], [1.0, 1.0]].view(),
        ndarray::array![[0.0f32, 2.0], [1.0, 1.0]].view(),
    )
    .unwrap();
    assert_eq!(errors, vec![2.0, 0.0]);
}

#[test]
fn linear_probe_separates_blobs_and_is_at_chance_on_random_labels() {
    let (points, truth, _) = blobs();
    let probe = linear_probe(
        points.view(),
        &truth,
        &ProbeSplit::default(),
        &ProbeOptions::default(),
        &TaskControl::new(),
    )
    .unwrap();
    assert_eq!(probe.n_train + probe.n_test, points.nrows());
    assert_eq!(probe.n_test, 100, "a quarter of each class of 100");
    assert_eq!(probe.n_classes, 4);
    assert!(
        probe.test_accuracy >= 0.99 && probe.train_accuracy >= 0.99,
        "{probe:?}"
    );

    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let noise = Array2::from_shape_fn((2000, 8), |_| rng.random::<f32>());
    let labels: Vec<usize> = (0..2000).map(|_| rng.random_range(0..4)).collect();
    let probe = linear_probe(
        noise.view(),
        &labels,
        &ProbeSplit::default(),
        &ProbeOptions::default(),
        &TaskControl::new(),
    )
    .unwrap();
    // 500 held out: the standard deviation of a chance accuracy is ≈ 0.02.
    assert!((probe.test_accuracy - 0.25).abs() < 0.08, "{probe:?}");

    let (train, test) = stratified_split(&labels, 0.25, 3).unwrap();
    let explicit = ProbeSplit::Explicit { train, test };
    assert!(
        linear_probe(
            noise.view(),
            &labels,
            &explicit,
            &ProbeOptions::default(),
            &TaskControl::new()
        )
        .is_ok()
    );
}

#[test]
fn bad_input_gives_the_right_error() {
    let (points, truth, _) = blobs();
    let options = ClusterOptions::default();
    let control = TaskControl::new();
    for method in [
        ClusterMethod::Kmeans,
        ClusterMethod::Gmm,
        ClusterMethod::Ward,
    ] {
        for k in [0, points.nrows() + 1] {
            assert!(matches!(
                cluster(points.view(), method, k, &options, &control),
                Err(AnalysisError::Invalid(_))
            ));
        }
    }
    let mut with_nan = points.clone();
    with_nan[[17, 2]] = f32::NAN;
    assert_eq!(
        cluster(
            with_nan.view(),
            ClusterMethod::Kmeans,
            4,
            &options,
            &control
        ),
        Err(AnalysisError::NonFinite {
            what: "points",
            row: 17
        })
    );
    assert!(matches!(
        sweep_k(
            points.view(),
            ClusterMethod::Kmeans,
            2..=1000,
            &options,
            &control
        ),
        Err(AnalysisError::Invalid(_))
    ));

    assert!(matches!(
        linear_probe(
            points.view(),
            &truth[1..],
            &ProbeSplit::default(),
            &ProbeOptions::default(),
            &control
        ),
        Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: 400,
            got: 399
        })
    ));
    assert!(matches!(
        roc_auc(&[1.0, 2.0], &[true]),
        Err(AnalysisError::LengthMismatch { .. })
    ));
    assert!(matches!(
        roc_auc(&[1.0, 2.0], &[true, true]),
        Err(AnalysisError::Invalid(_))
    ));
    assert!(matches!(
        percentile(&[1.0, f64::NAN], 50.0),
        Err(AnalysisError::NonFinite { row: 1, .. })
    ));
    assert!(matches!(
        percentile(&[1.0], 101.0),
        Err(AnalysisError::Invalid(_))
    ));
    assert!(matches!(
        reconstruction_errors(
            Array2::<f32>::zeros((3, 2)).view(),
            Array2::<f32>::zeros((2, 2)).view()
        ),
        Err(AnalysisError::LengthMismatch { .. })
    ));
}

#[test]
fn cancelled_runs_stop_with_cancelled() {
    let (points, _, _) = blobs();
    let control = TaskControl::new();
    control.cancel();
    let result = sweep_k(
        points.view(),
        ClusterMethod::Kmeans,
        2..=8,
        &ClusterOptions::default(),
        &control,
    );
    assert_eq!(result.err(), Some(AnalysisError::Cancelled));
}

/// Timings for the report: `cargo test --release --test analysis_clustering -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_kmeans_30k_and_ward_5k() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let centres = Array2::from_shape_fn((10, 256), |_| rng.random::<f32>() * 4.0);
    let latents = Array2::from_shape_fn((30_000, 256), |(i, j)| {
        centres[[i % 10, j]] + rng.random::<f32>()
    });
    let start = std::time::Instant::now();
    let result = cluster(
        latents.view(),
        ClusterMethod::Kmeans,
        10,
        &ClusterOptions::default(),
        &TaskControl::new(),
    )
    .unwrap();
    println!(
        "k-means 30000×256, K=10, 10 restarts: {:.2} s (inertia {:.1})",
        start.elapsed().as_secs_f64(),
        result.inertia
    );

    let subset = latents.slice(ndarray::s![..5_000, ..]);
    let start = std::time::Instant::now();
    let result = cluster(
        subset,
        ClusterMethod::Ward,
        10,
        &ClusterOptions::default(),
        &TaskControl::new(),
    )
    .unwrap();
    println!(
        "Ward 5000×256, cut at 10: {:.2} s ({} merges)",
        start.elapsed().as_secs_f64(),
        result.dendrogram.unwrap().merges.len()
    );
}
