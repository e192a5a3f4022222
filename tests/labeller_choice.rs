//! Choosing the pseudo-labeller by held-out evidence: label spreading wins where the
//! features separate the classes, nothing is written where no labeller beats the majority
//! class, the classifier competes by k-fold with few labels, and the confidences are
//! calibrated on the held-out answers.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sense::classify::{
    ClassifierConfig, Estimation, FeatureSet, InputSize, LabelledSet, Labeller, LabellerOptions,
    LabellerStep, Refresh, SpreadingConfig, choose_and_label,
};
use sense::data::{ByteOrder, DType, Ensemble, RawArray, Shape};
use sense::task::TaskControl;
use sense::train::{BackendChoice, select_backend};
use std::path::Path;
use std::sync::Arc;

const SIDE_PX: usize = 12;

/// `count` members of `classes` classes (member i in class i % classes) whose pixels carry
/// the class as a bright row at height 2·class, over noise.
fn ensemble(count: usize, classes: usize, seed: u64) -> Ensemble {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bytes = Vec::with_capacity(count * SIDE_PX * SIDE_PX * 4);
    for i in 0..count {
        for y in 0..SIDE_PX {
            for _ in 0..SIDE_PX {
                let signal = if y == 2 * (i % classes) { 1.0 } else { 0.0 };
                let v: f32 = signal + rng.random_range(-0.4..0.4);
                bytes.extend(v.to_le_bytes());
            }
        }
    }
    let source = RawArray::from_bytes(
        Path::new("synthetic.raw"),
        bytes,
        DType::F32,
        ByteOrder::Little,
        count,
        Shape::new(1, SIDE_PX, SIDE_PX),
    )
    .expect("valid in-memory array");
    Ensemble::new(Arc::new(source))
}

/// Features: one Gaussian blob per class, `spread` wide, centres 4 apart.
fn blobs(classes: &[usize], spread: f32, seed: u64) -> Arc<Array2<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Arc::new(Array2::from_shape_fn((classes.len(), 5), |(i, d)| {
        let centre = if d == classes[i] % 5 { 4.0 } else { 0.0 };
        centre + spread * rng.random_range(-1.0f32..1.0)
    }))
}

fn set(rows: Arc<Array2<f32>>) -> FeatureSet {
    FeatureSet {
        name: "blobs",
        rows,
        start: None,
        start_is_current: false,
    }
}

fn labelled(classes: &[usize], n_classes: usize, every: usize) -> LabelledSet {
    let members: Vec<usize> = (0..classes.len()).step_by(every).collect();
    LabelledSet {
        classes: (0..n_classes).map(|c| format!("c{c}")).collect(),
        targets: members.iter().map(|&m| classes[m] as u32).collect(),
        members,
    }
}

fn spreading_only() -> LabellerOptions<'static> {
    LabellerOptions {
        spreading: Some(SpreadingConfig::default()),
        classifier: None,
        keep_both: false,
        refresh: None,
        seed: 0,
    }
}

#[test]
fn spreading_is_chosen_where_the_features_separate_the_classes() {
    let n = 600;
    let classes: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let labels = labelled(&classes, 3, 20);
    let outcome = choose_and_label(
        &ensemble(n, 3, 1),
        &labels,
        &[set(blobs(&classes, 1.0, 2))],
        &spreading_only(),
        &TaskControl::new(),
        &mut |_| {},
    )
    .unwrap();
    let choice = &outcome.choice;
    assert_eq!(choice.estimation, Estimation::KFold { folds: 5 });
    assert_eq!(choice.scored_members, 30);
    assert_eq!(
        choice.chosen,
        Some(Labeller::Spreading),
        "{}",
        choice.reason
    );
    assert!(choice.accuracy_of(Labeller::Spreading).unwrap() > 0.95);
    assert!((choice.majority_rate - 1.0 / 3.0).abs() < 1e-9);
    // Every unlabelled member gets a pseudo-label, nearly all right.
    assert_eq!(outcome.predictions.len(), n - 30);
    let right = outcome
        .predictions
        .iter()
        .filter(|p| p.class as usize == classes[p.member])
        .count();
    assert!(right as f64 / outcome.predictions.len() as f64 > 0.97);
    assert!(
        outcome
            .predictions
            .iter()
            .all(|p| p.confidence > 0.0 && p.confidence <= 1.0)
    );
}

#[test]
fn nothing_is_written_when_no_labeller_beats_the_majority_class() {
    // Labels unrelated to the features, 70 % in one class: the best guess is the majority.
    let n = 500;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let classes: Vec<usize> = (0..n)
        .map(|_| usize::from(rng.random::<f32>() < 0.3))
        .collect();
    let noise = Arc::new(Array2::from_shape_fn((n, 8), |_| rng.random::<f32>()));
    let outcome = choose_and_label(
        &ensemble(n, 2, 1),
        &labelled(&classes, 2, 5),
        &[set(noise)],
        &spreading_only(),
        &TaskControl::new(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(outcome.choice.chosen, None, "{}", outcome.choice.reason);
    assert!(outcome.predictions.is_empty());
    assert!(outcome.choice.reason.contains("no pseudo-labels"));
}

#[test]
fn calibrated_confidences_follow_the_estimated_accuracy() {
    // Overlapping blobs: spreading is right about 3 times in 4, and its raw scores are far
    // surer than that. The calibrated confidences average near the held-out accuracy.
    let n = 1500;
    let classes: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let features = blobs(&classes, 5.0, 7);
    let outcome = choose_and_label(
        &ensemble(n, 3, 1),
        &labelled(&classes, 3, 10),
        &[set(features)],
        &spreading_only(),
        &TaskControl::new(),
        &mut |_| {},
    )
    .unwrap();
    let accuracy = outcome.choice.accuracy_of(Labeller::Spreading).unwrap();
    assert!((0.45..0.95).contains(&accuracy), "{accuracy}");
    let mean_confidence = outcome
        .predictions
        .iter()
        .map(|p| f64::from(p.confidence))
        .sum::<f64>()
        / outcome.predictions.len() as f64;
    let truth = outcome
        .predictions
        .iter()
        .filter(|p| p.class as usize == classes[p.member])
        .count() as f64
        / outcome.predictions.len() as f64;
    assert!(
        (mean_confidence - truth).abs() < 0.12,
        "mean confidence {mean_confidence:.3}, accuracy {truth:.3}"
    );
}

#[test]
fn the_classifier_competes_by_k_fold_and_the_mean_is_scored_too() {
    let n = 240;
    let classes: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let config = ClassifierConfig {
        width_multiplier: 0.25,
        depth_multiplier: 0.34,
        epochs: 2,
        batch_size: 16,
        patience_epochs: 0,
        input_size: InputSize::Native,
        backend: BackendChoice::Cpu,
        ..ClassifierConfig::default()
    };
    let backend = select_backend(BackendChoice::Cpu);
    let options = LabellerOptions {
        spreading: Some(SpreadingConfig::default()),
        classifier: Some((&config, &backend)),
        keep_both: true,
        refresh: None,
        seed: 0,
    };
    let ensemble = ensemble(n, 3, 3);
    let mut stages = Vec::new();
    let outcome = choose_and_label(
        &ensemble,
        &labelled(&classes, 3, 5),
        &[set(blobs(&classes, 1.0, 4))],
        &options,
        &TaskControl::new(),
        &mut |step| {
            if let sense::classify::LabellerStep::Stage(stage) = step {
                stages.push(stage.to_string());
            }
        },
    )
    .unwrap();
    let labellers: Vec<Labeller> = outcome
        .choice
        .estimates
        .iter()
        .map(|e| e.labeller)
        .collect();
    assert_eq!(
        labellers,
        [
            Labeller::Spreading,
            Labeller::Classifier,
            Labeller::Combined
        ]
    );
    assert!(
        stages.iter().any(|s| s == "classifier, fold 5 of 5"),
        "{stages:?}"
    );
    // Kept both: the final classifier exists even if spreading won.
    assert!(outcome.classifier.is_some() && outcome.spreading.is_some());
    assert!(outcome.choice.chosen.is_some(), "{}", outcome.choice.reason);
    // Cancelled before it starts: no result.
    let cancelled = TaskControl::new();
    cancelled.cancel();
    let stopped = choose_and_label(
        &ensemble,
        &labelled(&classes, 3, 5),
        &[set(blobs(&classes, 1.0, 4))],
        &options,
        &cancelled,
        &mut |_| {},
    );
    assert!(stopped.is_err());
}

#[test]
fn spreading_uses_the_feature_set_with_the_best_estimate() {
    let n = 600;
    let classes: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let noise = Arc::new(Array2::from_shape_fn((n, 5), |_| rng.random::<f32>()));
    let sets = [
        FeatureSet {
            name: "pixels",
            rows: noise,
            start: None,
            start_is_current: false,
        },
        FeatureSet {
            name: "spectrum",
            rows: blobs(&classes, 1.0, 2),
            start: None,
            start_is_current: false,
        },
    ];
    let outcome = choose_and_label(
        &ensemble(n, 3, 1),
        &labelled(&classes, 3, 20),
        &sets,
        &spreading_only(),
        &TaskControl::new(),
        &mut |_| {},
    )
    .unwrap();
    let choice = &outcome.choice;
    assert_eq!(
        choice.features.as_deref(),
        Some("spectrum"),
        "{}",
        choice.reason
    );
    let names: Vec<&str> = choice
        .feature_estimates
        .iter()
        .map(|e| e.features.as_str())
        .collect();
    assert_eq!(names, ["pixels", "spectrum"]);
    assert!(choice.feature_estimates[1].accuracy > choice.feature_estimates[0].accuracy + 0.3);
    assert_eq!(outcome.graphs.len(), 2);
    assert!(
        choice
            .reason
            .contains("spreading over the spectrum features"),
        "{}",
        choice.reason
    );
}

/// A graph built on exactly the rows given is used as it is (no new search), and a refresh
/// keeps the earlier choice and says so.
#[test]
fn a_current_graph_is_reused_and_a_refresh_keeps_the_choice() {
    let n = 300;
    let classes: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let rows = blobs(&classes, 1.0, 5);
    let first = choose_and_label(
        &ensemble(n, 3, 1),
        &labelled(&classes, 3, 20),
        &[set(rows.clone())],
        &spreading_only(),
        &TaskControl::new(),
        &mut |_| {},
    )
    .unwrap();
    let graph = first.graphs[0].1.clone();
    let current = FeatureSet {
        start: Some(graph.clone()),
        start_is_current: true,
        ..set(rows)
    };
    let options = LabellerOptions {
        refresh: Some(Refresh {
            choice: &first.choice,
            classifier: None,
            features: None,
        }),
        ..spreading_only()
    };
    let mut stages = Vec::new();
    // Offered another feature set too, the refresh spreads over the one chosen before only.
    let other = FeatureSet {
        name: "other",
        ..set(blobs(&classes, 3.0, 6))
    };
    let again = choose_and_label(
        &ensemble(n, 3, 1),
        &labelled(&classes, 3, 10),
        &[other, current],
        &options,
        &TaskControl::new(),
        &mut |step| {
            if let LabellerStep::Stage(s) = step {
                stages.push(s.to_string())
            }
        },
    )
    .unwrap();
    assert_eq!(again.graphs.len(), 1);
    assert!(Arc::ptr_eq(&again.graphs[0].1, &graph));
    assert_eq!(again.choice.features.as_deref(), Some("blobs"));
    assert_eq!(again.choice.chosen, Some(Labeller::Spreading));
    assert!(
        again
            .choice
            .reason
            .starts_with("refreshed after hand-label edits"),
        "{}",
        again.choice.reason
    );
    // No fold of a new estimate ran.
    assert!(!stages.iter().any(|s| s.contains("fold")), "{stages:?}");
    assert_eq!(again.predictions.len(), n - n / 10);
}
