//! Embedding, partition and image metrics against scikit-learn / scikit-image reference values
//! (tests/fixtures/analysis/metrics_*.json, written by generate_metrics.py beside them) and
//! against small cases worked out by hand.

use ndarray::Array2;
use sense::analysis::AnalysisError;
use sense::analysis::embedding_metrics::{
    Sampling, embedding_scores, knn_accuracy, neighbourhood_hit, separability, silhouette,
    silhouette_samples, trustworthiness,
};
use sense::analysis::image_metrics::{image_scores, mse, psnr, ssim};
use sense::analysis::partition_metrics::{
    adjusted_rand_index, clustering_accuracy, normalized_mutual_info,
};
use sense::data::Shape;
use sense::task::TaskControl;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/analysis/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn integers(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

fn labels(value: &Value) -> Vec<usize> {
    integers(value).into_iter().map(|v| v as usize).collect()
}

/// Rebuilds the exact f32 points the reference saw: integers times a power-of-two scale.
fn points(ints: &Value, scale: &Value, dims: usize) -> Array2<f32> {
    let scale = scale.as_f64().unwrap() as f32;
    let values: Vec<f32> = integers(ints)
        .into_iter()
        .map(|i| i as f32 * scale)
        .collect();
    Array2::from_shape_vec((values.len() / dims, dims), values).unwrap()
}

fn point_set(set: &Value) -> (Array2<f32>, Vec<usize>) {
    let dims = set["dims"].as_u64().unwrap() as usize;
    (
        points(&set["points"], &set["scale"], dims),
        labels(&set["labels"]),
    )
}

fn assert_close(got: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (got - expected).abs() <= tolerance,
        "{what}: got {got}, expected {expected} (tolerance {tolerance})"
    );
}

fn none() -> TaskControl {
    TaskControl::new()
}

// ---------------------------------------------------------------------------------------------
// Silhouette

#[test]
fn silhouette_matches_scikit_learn() {
    let sets = fixture("metrics_silhouette.json");
    for set in sets["sets"].as_array().unwrap() {
        let name = set["name"].as_str().unwrap();
        let (x, y) = point_set(set);
        let score = silhouette(x.view(), &y, &Sampling::exact(), &none()).unwrap();
        assert!(!score.is_sampled(), "{name}");
        assert_close(score.value, set["silhouette"].as_f64().unwrap(), 1e-6, name);
        // The default budget scores these small sets exactly too.
        let default = silhouette(x.view(), &y, &Sampling::default(), &none()).unwrap();
        assert_eq!(default, score, "{name}");
    }
}

#[test]
fn silhouette_samples_match_scikit_learn_including_a_singleton() {
    let sets = fixture("metrics_silhouette.json");
    let with_samples: Vec<&Value> = sets["sets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|set| set.get("silhouette_samples").is_some())
        .collect();
    assert_eq!(with_samples.len(), 2);
    for set in with_samples {
        let name = set["name"].as_str().unwrap();
        let (x, y) = point_set(set);
        let got = silhouette_samples(x.view(), &y, &none()).unwrap();
        let expected = floats(&set["silhouette_samples"]);
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_close(*g, *e, 1e-6, &format!("{name} member {i}"));
        }
    }
    // The singleton (label 42, last row) scores exactly 0.
    let set = &sets["sets"][1];
    let (x, y) = point_set(set);
    assert_eq!(*y.last().unwrap(), 42);
    assert_eq!(
        *silhouette_samples(x.view(), &y, &none())
            .unwrap()
            .last()
            .unwrap(),
        0.0
    );
}

#[test]
fn sampled_silhouette_says_so_and_stays_close() {
    let sets = fixture("metrics_silhouette.json");
    let (x, y) = point_set(&sets["sets"][0]);
    let exact = silhouette(x.view(), &y, &Sampling::exact(), &none()).unwrap();
    let budget = Sampling {
        max_cost: 100 * 300 * (2 + 10),
        min_sample_members: 10,
        seed: 3,
    };
    let sampled = silhouette(x.view(), &y, &budget, &none()).unwrap();
    assert!(sampled.is_sampled());
    assert_eq!(sampled.members_total, 300);
    assert!((95..=105).contains(&sampled.members_used), "{sampled:?}");
    assert_close(sampled.value, exact.value, 0.05, "sampled silhouette");
    assert_ne!(sampled.value, exact.value);
    // Seeded: the same seed gives the same sample.
    assert_eq!(silhouette(x.view(), &y, &budget, &none()).unwrap(), sampled);
}

// ---------------------------------------------------------------------------------------------
// Neighbourhood metrics

#[test]
fn neighbourhood_metrics_match_a_hand_computed_line() {
    // 1-D points (second coordinate 0). Point 1 is equidistant from 0 and 2: the smaller index
    // (0) is the nearer neighbour. Tied votes go to the smallest label.
    let x = Array2::from_shape_vec(
        (6, 2),
        vec![
            0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 10.0, 0.0, 11.0, 0.0, 12.5, 0.0,
        ],
    )
    .unwrap();
    let y = [0, 0, 1, 1, 1, 0];
    let exact = Sampling::exact();
    // k = 1: neighbours 1, 0, 1, 4, 3, 4 → labels 0, 0, 0, 1, 1, 1 vs own 0, 0, 1, 1, 1, 0.
    let hit1 = neighbourhood_hit(x.view(), &y, 1, &exact, &none()).unwrap();
    let acc1 = knn_accuracy(x.view(), &y, 1, &exact, &none()).unwrap();
    assert_eq!((hit1.value, acc1.value), (4.0 / 6.0, 4.0 / 6.0));
    // k = 2: neighbour pairs {1,2} {0,2} {1,0} {4,5} {3,5} {4,3}; same-label fractions
    // ½ ½ 0 ½ ½ 0; votes (ties → 0) 0 0 0 0 0 1 → right for members 0 and 1 only.
    let hit2 = neighbourhood_hit(x.view(), &y, 2, &exact, &none()).unwrap();
    let acc2 = knn_accuracy(x.view(), &y, 2, &exact, &none()).unwrap();
    assert_close(hit2.value, 2.0 / 6.0, 1e-12, "hit k=2");
    assert_close(acc2.value, 2.0 / 6.0, 1e-12, "accuracy k=2");
}

#[test]
fn neighbourhood_metrics_match_scikit_learn_neighbours() {
    let sets = fixture("metrics_silhouette.json");
    for set in sets["sets"].as_array().unwrap() {
        let Some(hit) = set.get("neighbourhood_hit_17") else {
            continue;
        };
        let name = set["name"].as_str().unwrap();
        let (x, y) = point_set(set);
        let exact = Sampling::exact();
        let got = neighbourhood_hit(x.view(), &y, 17, &exact, &none()).unwrap();
        assert_close(got.value, hit.as_f64().unwrap(), 1e-12, name);
        let sep = separability(x.view(), &y, &exact, &none()).unwrap();
        assert_close(
            sep.value,
            set["knn_accuracy_17"].as_f64().unwrap(),
            1e-12,
            name,
        );
        let acc5 = knn_accuracy(x.view(), &y, 5, &exact, &none()).unwrap();
        assert_close(
            acc5.value,
            set["knn_accuracy_5"].as_f64().unwrap(),
            1e-12,
            name,
        );
    }
}

#[test]
fn embedding_scores_gather_the_metrics_under_their_json_names() {
    let sets = fixture("metrics_silhouette.json");
    let set = &sets["sets"][0];
    let (x, y) = point_set(set);
    let exact = Sampling::exact();
    let scores = embedding_scores(x.view(), &y, None, &exact, &none()).unwrap();
    assert_close(
        scores.silhouette,
        set["silhouette"].as_f64().unwrap(),
        1e-6,
        "silhouette",
    );
    assert_close(
        scores.separability,
        set["knn_accuracy_17"].as_f64().unwrap(),
        1e-12,
        "sep",
    );
    assert_close(
        scores.neighbourhood_hit,
        set["neighbourhood_hit_17"].as_f64().unwrap(),
        1e-12,
        "hit",
    );
    assert_close(
        scores.knn_accuracy,
        set["knn_accuracy_5"].as_f64().unwrap(),
        1e-12,
        "knn",
    );
    assert_eq!(scores.trustworthiness, None);
    assert_eq!(scores.sampled_members, None);

    let json = serde_json::to_value(scores).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "knn_accuracy",
            "neighbourhood_hit",
            "separability",
            "silhouette",
            "trustworthiness"
        ]
    );

    // An embedding that is its own input keeps every neighbourhood.
    let with_input = embedding_scores(x.view(), &y, Some(x.view()), &exact, &none()).unwrap();
    assert_eq!(with_input.trustworthiness, Some(1.0));

    // Sampled: one stratified sample serves every metric and the JSON says how many.
    let budget = Sampling {
        max_cost: 150 * 300 * (2 * 12 + 12 + 12),
        min_sample_members: 10,
        seed: 1,
    };
    let sampled = embedding_scores(x.view(), &y, Some(x.view()), &budget, &none()).unwrap();
    let used = sampled.sampled_members.unwrap();
    assert!((145..=155).contains(&used), "{used}");
    assert_close(
        sampled.silhouette,
        scores.silhouette,
        0.05,
        "sampled silhouette",
    );
    assert_eq!(sampled.trustworthiness, Some(1.0));
    assert!(
        serde_json::to_value(sampled)
            .unwrap()
            .get("sampled_members")
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// Trustworthiness

#[test]
fn trustworthiness_matches_scikit_learn() {
    let sets = fixture("metrics_trustworthiness.json");
    for set in sets["sets"].as_array().unwrap() {
        let name = set["name"].as_str().unwrap();
        let high_dims = set["high_dims"].as_u64().unwrap() as usize;
        let high = points(&set["high"], &set["high_scale"], high_dims);
        let low = points(&set["low"], &set["low_scale"], 2);
        for (k, expected) in set["trustworthiness"].as_object().unwrap() {
            let k: usize = k.parse().unwrap();
            let got =
                trustworthiness(high.view(), low.view(), k, &Sampling::exact(), &none()).unwrap();
            assert_close(
                got.value,
                expected.as_f64().unwrap(),
                1e-9,
                &format!("{name} k={k}"),
            );
            assert!(got.value < 1.0);
        }
    }
}

#[test]
fn sampled_trustworthiness_estimates_the_exact_value() {
    let sets = fixture("metrics_trustworthiness.json");
    let set = &sets["sets"][0];
    let high = points(&set["high"], &set["high_scale"], 20);
    let low = points(&set["low"], &set["low_scale"], 2);
    let budget = Sampling {
        max_cost: 100 * 200 * (30 + 12),
        min_sample_members: 10,
        seed: 5,
    };
    let got = trustworthiness(high.view(), low.view(), 10, &budget, &none()).unwrap();
    assert_eq!((got.members_used, got.members_total), (100, 200));
    let expected = set["trustworthiness"]["10"].as_f64().unwrap();
    assert_close(got.value, expected, 0.02, "sampled trustworthiness");
}

// ---------------------------------------------------------------------------------------------
// Partition metrics

#[test]
fn ari_and_nmi_match_scikit_learn() {
    let cases = fixture("metrics_partition.json");
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (a, b) = (labels(&case["labels_true"]), labels(&case["labels_pred"]));
        let ari = adjusted_rand_index(&a, &b).unwrap();
        assert_close(
            ari,
            case["ari"].as_f64().unwrap(),
            1e-12,
            &format!("{name} ARI"),
        );
        let nmi = normalized_mutual_info(&a, &b).unwrap();
        assert_close(
            nmi,
            case["nmi"].as_f64().unwrap(),
            1e-12,
            &format!("{name} NMI"),
        );
    }
}

#[test]
fn partition_metrics_ignore_label_names() {
    let truth = [0, 0, 0, 1, 1, 2, 2, 2, 2];
    let renamed = [7, 7, 7, 3, 3, 9, 9, 9, 9];
    assert_eq!(adjusted_rand_index(&truth, &renamed).unwrap(), 1.0);
    assert_close(
        normalized_mutual_info(&truth, &renamed).unwrap(),
        1.0,
        1e-12,
        "NMI",
    );
    assert_eq!(clustering_accuracy(&truth, &renamed).unwrap(), 1.0);
    // Single cluster on both sides: sklearn's conventions.
    assert_eq!(normalized_mutual_info(&[1, 1, 1], &[4, 4, 4]).unwrap(), 1.0);
    assert_eq!(adjusted_rand_index(&[1, 1, 1], &[4, 4, 4]).unwrap(), 1.0);
}

#[test]
fn clustering_accuracy_finds_the_best_matching() {
    // Clusters are a permutation of classes (0→2, 1→0, 2→1) with two members misplaced.
    let truth = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
    let found = [2, 2, 2, 0, 0, 0, 0, 0, 1, 1, 1, 2];
    assert_close(
        clustering_accuracy(&truth, &found).unwrap(),
        10.0 / 12.0,
        1e-12,
        "perm",
    );
    // More clusters than classes: the best cluster per class counts, the rest is wrong.
    let split = [5, 5, 6, 6, 1, 1, 1, 1, 3, 3, 3, 3];
    assert_close(
        clustering_accuracy(&truth, &split).unwrap(),
        10.0 / 12.0,
        1e-12,
        "split",
    );
    // Fewer clusters than classes: one class goes unmatched.
    let merged = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
    assert_close(
        clustering_accuracy(&truth, &merged).unwrap(),
        8.0 / 12.0,
        1e-12,
        "merged",
    );
}

// ---------------------------------------------------------------------------------------------
// Image metrics

#[test]
fn ssim_psnr_and_mse_match_scikit_image() {
    let cases = fixture("metrics_images.json");
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 11);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dims: Vec<usize> = labels(&case["shape"]);
        let shape = Shape::new(dims[0], dims[1], dims[2]);
        let (a_u8, b_u8) = (integers(&case["a"]), integers(&case["b"]));
        // As the generator: f32(v) / f32(255), and the raw values with range 255.
        let unit = |v: &[i64]| -> Vec<f32> { v.iter().map(|&x| x as f32 / 255.0).collect() };
        let raw = |v: &[i64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };

        let (a, b) = (unit(&a_u8), unit(&b_u8));
        let expected = &case["range_1"];
        let scores = image_scores(&a, &b, shape, 1.0).unwrap();
        assert_close(scores.ssim, expected["ssim"].as_f64().unwrap(), 1e-4, name);
        assert_close(scores.psnr, expected["psnr"].as_f64().unwrap(), 1e-4, name);
        assert_close(scores.mse, expected["mse"].as_f64().unwrap(), 1e-9, name);

        let (a, b) = (raw(&a_u8), raw(&b_u8));
        let expected = &case["range_255"];
        assert_close(
            ssim(&a, &b, shape, 255.0).unwrap(),
            expected["ssim"].as_f64().unwrap(),
            1e-4,
            name,
        );
        assert_close(
            psnr(&a, &b, 255.0).unwrap(),
            expected["psnr"].as_f64().unwrap(),
            1e-4,
            name,
        );
    }
}

#[test]
fn identical_images_are_perfect() {
    let shape = Shape::new(2, 12, 15);
    let a: Vec<f32> = (0..shape.len()).map(|i| (i % 17) as f32 / 17.0).collect();
    assert_eq!(mse(&a, &a).unwrap(), 0.0);
    assert_eq!(psnr(&a, &a, 1.0).unwrap(), f64::INFINITY);
    assert_close(
        ssim(&a, &a, shape, 1.0).unwrap(),
        1.0,
        1e-12,
        "SSIM of identical images",
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_gives_the_right_error() {
    let x = Array2::from_shape_fn((30, 2), |(i, j)| (i * 3 + j) as f32);
    let y: Vec<usize> = (0..30).map(|i| i % 3).collect();
    let exact = Sampling::exact();

    let err = silhouette(x.view(), &y[..29], &exact, &none()).unwrap_err();
    assert_eq!(
        err,
        AnalysisError::LengthMismatch {
            what: "labels",
            expected: 30,
            got: 29
        }
    );

    let mut with_nan = x.clone();
    with_nan[[7, 1]] = f32::NAN;
    let err = knn_accuracy(with_nan.view(), &y, 3, &exact, &none()).unwrap_err();
    assert_eq!(
        err,
        AnalysisError::NonFinite {
            what: "points",
            row: 7
        }
    );
    let err = trustworthiness(x.view(), with_nan.view(), 3, &exact, &none()).unwrap_err();
    assert_eq!(
        err,
        AnalysisError::NonFinite {
            what: "embedding",
            row: 7
        }
    );

    let one_class = vec![4; 30];
    for result in [
        silhouette(x.view(), &one_class, &exact, &none()),
        neighbourhood_hit(x.view(), &one_class, 3, &exact, &none()),
        separability(x.view(), &one_class, &exact, &none()),
    ] {
        assert!(
            matches!(result, Err(AnalysisError::Invalid(_))),
            "{result:?}"
        );
    }
    // sklearn: silhouette needs fewer labels than members.
    let all_different: Vec<usize> = (0..30).collect();
    assert!(matches!(
        silhouette_samples(x.view(), &all_different, &none()),
        Err(AnalysisError::Invalid(_))
    ));
    // Too many neighbours for the members.
    assert!(matches!(
        knn_accuracy(x.view(), &y, 30, &exact, &none()),
        Err(AnalysisError::Invalid(_))
    ));
    assert!(matches!(
        trustworthiness(x.view(), x.view(), 15, &exact, &none()),
        Err(AnalysisError::Invalid(_))
    ));
    let short = Array2::<f32>::zeros((29, 2));
    assert!(matches!(
        trustworthiness(x.view(), short.view(), 3, &exact, &none()),
        Err(AnalysisError::LengthMismatch { .. })
    ));

    assert!(matches!(
        adjusted_rand_index(&[0, 1, 1], &[0, 1]),
        Err(AnalysisError::LengthMismatch { .. })
    ));
    assert!(matches!(
        normalized_mutual_info(&[], &[]),
        Err(AnalysisError::Invalid(_))
    ));

    let shape = Shape::new(1, 10, 12);
    let img = vec![0.5f32; shape.len()];
    assert!(matches!(
        ssim(&img, &img, shape, 1.0),
        Err(AnalysisError::Invalid(_))
    ));
    let shape = Shape::new(1, 12, 12);
    let img = vec![0.5f32; shape.len()];
    assert!(matches!(
        ssim(&img, &img[1..], shape, 1.0),
        Err(AnalysisError::LengthMismatch { .. })
    ));
    assert!(matches!(
        psnr(&img, &img, 0.0),
        Err(AnalysisError::Invalid(_))
    ));
    let mut bad = img.clone();
    bad[3] = f32::INFINITY;
    assert!(matches!(
        mse(&img, &bad),
        Err(AnalysisError::NonFinite { .. })
    ));
}

#[test]
fn cancelled_work_stops_with_cancelled() {
    let x = Array2::from_shape_fn((200, 3), |(i, j)| ((i * 7 + j * 13) % 31) as f32);
    let y: Vec<usize> = (0..200).map(|i| i % 4).collect();
    let control = TaskControl::new();
    control.cancel();
    let err = silhouette(x.view(), &y, &Sampling::exact(), &control).unwrap_err();
    assert_eq!(err, AnalysisError::Cancelled);
    let err =
        embedding_scores(x.view(), &y, Some(x.view()), &Sampling::exact(), &control).unwrap_err();
    assert_eq!(err, AnalysisError::Cancelled);
}

#[test]
fn clustering_accuracy_refuses_id_like_labellings() {
    let ids: Vec<usize> = (0..2000).collect();
    assert!(matches!(
        clustering_accuracy(&ids, &ids),
        Err(AnalysisError::Invalid(_))
    ));
}
