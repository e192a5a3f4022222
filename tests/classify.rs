//! The pseudo-labelling classifier on the flex CPU backend: network shapes, learning, early
//! stopping's best weights, pseudo-labels in the store, the worker, and `sense pseudo-label`
//! end to end with its errors.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sense::classify::{
    Classifier, ClassifierConfig, ClassifierEvent, EfficientNet, HandLabels, InputSize,
    LabelledSet, new_run_id, train_and_predict, write_pseudo_labels,
};
use sense::data::{ByteOrder, ClassLabels, DType, Ensemble, RawArray, Shape};
use sense::labels::{LabelStore, Provenance, Source};
use sense::task::TaskControl;
use sense::train::{BackendChoice, select_backend};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIDE_PX: usize = 28;
const CLASSES: [&str; 3] = ["bar", "column", "square"];

/// Member `i` of class `i % 3`: a horizontal bar, a vertical bar or a small square at a
/// random place, over Gaussian noise. Easy to tell apart, impossible to tell by brightness
/// alone (all three cover about the same area).
fn synthetic_pixels(count: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(count * SIDE_PX * SIDE_PX);
    for i in 0..count {
        let mut image = vec![0.0f32; SIDE_PX * SIDE_PX];
        for v in image.iter_mut() {
            *v = rng.random_range(-0.3..0.3);
        }
        let at = rng.random_range(4..SIDE_PX - 8);
        let from = rng.random_range(2..6);
        let (rows, cols) = match i % 3 {
            0 => (at..at + 2, from..from + 18),
            1 => (from..from + 18, at..at + 2),
            _ => (at..at + 6, from + 4..from + 10),
        };
        for y in rows {
            for x in cols.clone() {
                image[y * SIDE_PX + x] += 1.0;
            }
        }
        pixels.extend(image);
    }
    pixels
}

fn synthetic_ensemble(count: usize, seed: u64) -> Ensemble {
    let bytes = synthetic_pixels(count, seed)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let shape = Shape::new(1, SIDE_PX, SIDE_PX);
    let source = RawArray::from_bytes(
        Path::new("synthetic.raw"),
        bytes,
        DType::F32,
        ByteOrder::Little,
        count,
        shape,
    )
    .expect("valid in-memory array");
    Ensemble::new(Arc::new(source))
}

/// Labels for the members where `labelled(i)` holds.
fn labels(count: usize, labelled: impl Fn(usize) -> bool) -> ClassLabels {
    ClassLabels {
        classes: CLASSES.iter().map(|c| c.to_string()).collect(),
        per_member: (0..count)
            .map(|i| labelled(i).then_some((i % 3) as u32))
            .collect(),
    }
}

/// Small and quick: quarter width, one block per stage, no regularisation.
fn tiny_config(epochs: usize) -> ClassifierConfig {
    ClassifierConfig {
        width_multiplier: 0.25,
        depth_multiplier: 0.34,
        dropout: 0.0,
        stochastic_depth: 0.0,
        augmentation: Default::default(),
        max_shift_fraction: 0.0,
        epochs,
        batch_size: 16,
        learning_rate: 5e-3,
        patience_epochs: 0,
        heldout_fraction: 0.25,
        backend: BackendChoice::Cpu,
        ..ClassifierConfig::default()
    }
}

#[test]
fn logits_have_one_row_per_member_and_one_column_per_class() {
    let device = Device::flex();
    let config = tiny_config(1);
    for channels in [1, 3] {
        for (height, width) in [(28, 28), (50, 50), (37, 61), (160, 224)] {
            let shape = Shape::new(channels, height, width);
            let net = EfficientNet::new(&config, shape, 5, &device);
            let x = Tensor::<4>::zeros([2, channels, height, width], &device);
            assert_eq!(net.forward(x).dims(), [2, 5], "{shape}");
        }
    }
}

#[test]
fn a_few_steps_reduce_the_training_loss() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let config = ClassifierConfig {
        dropout: 0.0,
        stochastic_depth: 0.0,
        ..tiny_config(1)
    };
    let shape = Shape::new(1, SIDE_PX, SIDE_PX);
    let mut net = EfficientNet::new(&config, shape, 3, &device);
    let batch = 24;
    let x = Tensor::<4>::from_data(
        TensorData::new(synthetic_pixels(batch, 1), [batch, 1, SIDE_PX, SIDE_PX]),
        &device,
    );
    let classes: Vec<i64> = (0..batch as i64).map(|i| i % 3).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(classes, [batch]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamWConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let loss = loss_fn.forward(net.forward(x.clone()), y.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(3e-3, net, grads);
    }
    assert!(
        losses[7] < 0.7 * losses[0],
        "loss did not fall enough: {losses:?}"
    );
}

#[test]
fn learns_an_easy_three_class_set_quickly() {
    let count = 150;
    let ensemble = synthetic_ensemble(count, 11);
    let labelled = LabelledSet::from_class_labels(&labels(count, |_| true), &ensemble).unwrap();
    let backend = select_backend(BackendChoice::Cpu);
    let mut epochs = Vec::new();
    let start = Instant::now();
    let classifier = sense::classify::train(
        &ensemble,
        &labelled,
        &tiny_config(8),
        &backend,
        &TaskControl::new(),
        &mut |e| epochs.push(e.clone()),
    )
    .unwrap();
    let report = classifier.report();
    assert_eq!(epochs.len(), 8);
    assert_eq!(report.heldout_members + report.train_members, count);
    // Stratified: each class holds out a quarter of its 50 members (12 or 13).
    for score in &report.per_class {
        assert!((12..=13).contains(&score.support), "{score:?}");
    }
    assert!(
        report.accuracy >= 0.9,
        "held-out accuracy {} after {:?}",
        report.accuracy,
        epochs
            .iter()
            .map(|e| e.heldout_accuracy)
            .collect::<Vec<_>>()
    );
    // The kept weights are the best epoch's, and the report says which.
    let best = epochs
        .iter()
        .map(|e| e.heldout_accuracy)
        .fold(0.0, f64::max);
    assert_eq!(report.accuracy, best);
    assert_eq!(epochs[report.best_epoch].heldout_accuracy, best);
    assert_eq!(report.confusion.total(), report.heldout_members);
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_refitted_head_starts_from_the_trained_one_and_learns_new_labels() {
    let count = 150;
    let ensemble = synthetic_ensemble(count, 11);
    let truth = labels(count, |_| true);
    let labelled = LabelledSet::from_class_labels(&truth, &ensemble).unwrap();
    let backend = select_backend(BackendChoice::Cpu);
    let control = TaskControl::new();
    let trained = sense::classify::train(
        &ensemble,
        &labelled,
        &tiny_config(8),
        &backend,
        &control,
        &mut |_| {},
    )
    .unwrap();
    let all: Vec<usize> = (0..count).collect();
    let features = trained.features(&ensemble, &all, &control).unwrap();
    assert_eq!(features.nrows(), count);
    let id_of = |row: usize| row.to_string();
    // The features with the head answer as the whole network does.
    let direct = trained.probabilities(&ensemble, &all, &control).unwrap();
    let via_features = trained
        .probabilities_from_features(features.view(), &id_of)
        .unwrap();
    let largest_gap = (&direct - &via_features)
        .iter()
        .fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(largest_gap < 1e-4, "{largest_gap}");

    // Refitted on the same labels, the head stays about as it was.
    let same = sense::classify::refit_head(&labelled, &trained, features.view(), &control).unwrap();
    let accuracy = |c: &sense::classify::TrainedClassifier| {
        let p = c
            .probabilities_from_features(features.view(), &id_of)
            .unwrap();
        let right = p
            .rows()
            .into_iter()
            .enumerate()
            .filter(|(m, row)| {
                let best = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(k, _)| k);
                best == Some(m % 3)
            })
            .count();
        right as f64 / count as f64
    };
    let before = accuracy(&trained);
    assert!(before >= 0.9, "{before}");
    assert!(
        accuracy(&same) >= before - 0.02,
        "{} -> {}",
        before,
        accuracy(&same)
    );

    // Every "bar" member but one relabelled "column" (a scientist merging two classes): the
    // refitted head follows the new labels.
    let mut swapped = truth.clone();
    let moved: Vec<usize> = (3..count).filter(|m| m % 3 == 0).collect();
    for &m in &moved {
        swapped.per_member[m] = Some(1);
    }
    let relabelled = LabelledSet::from_class_labels(&swapped, &ensemble).unwrap();
    assert_eq!(relabelled.classes, labelled.classes);
    let followed =
        sense::classify::refit_head(&relabelled, &trained, features.view(), &control).unwrap();
    let p = followed
        .probabilities_from_features(features.view(), &id_of)
        .unwrap();
    let now_columns = moved.iter().filter(|&&m| p[[m, 1]] > p[[m, 0]]).count();
    let before_columns = moved
        .iter()
        .filter(|&&m| via_features[[m, 1]] > via_features[[m, 0]])
        .count();
    assert!(
        now_columns > before_columns + moved.len() / 2,
        "{before_columns} -> {now_columns} of {}",
        moved.len()
    );

    // A class the head has no output for cannot be refitted in.
    let mut more = labels(count, |_| true);
    more.classes.push("ring".into());
    more.per_member[0] = Some(3);
    let four = LabelledSet::from_class_labels(&more, &ensemble).unwrap();
    let error = sense::classify::refit_head(&four, &trained, features.view(), &control)
        .unwrap_err()
        .to_string();
    assert!(error.contains("classes changed"), "{error}");
}

#[test]
fn pseudo_labels_land_in_the_store_with_provenance() {
    let count = 120;
    let ensemble = synthetic_ensemble(count, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::create(dir.path().join("labels.csv")).unwrap();
    // Every other member labelled by hand.
    let given = labels(count, |i| i % 2 == 0);
    store
        .import_manual(&given, |i| ensemble.member_id(i), Provenance::user("test"))
        .unwrap();
    let snapshot = store.snapshot(f32::NAN);
    let labelled = LabelledSet::from_snapshot(&snapshot, &ensemble, store.path()).unwrap();
    assert_eq!(labelled.len(), count / 2);

    let run_id = new_run_id();
    let config = tiny_config(4);
    let outcome = train_and_predict(
        &ensemble,
        &labelled,
        &config,
        &select_backend(BackendChoice::Cpu),
        &run_id,
        &TaskControl::new(),
        &mut |_| {},
    )
    .unwrap();
    write_pseudo_labels(
        &mut store,
        &ensemble,
        outcome.classifier.classes(),
        &outcome.predictions,
        Provenance::classifier(&run_id),
    )
    .unwrap();
    drop(store);

    let store = LabelStore::open_read_only(dir.path().join("labels.csv")).unwrap();
    for i in 0..count {
        let id = ensemble.member_id(i);
        match i % 2 {
            0 => assert!(
                store.pseudo(&id).is_none(),
                "hand-labelled {id} got a pseudo-label"
            ),
            _ => {
                let pseudo = store
                    .pseudo(&id)
                    .expect("a pseudo-label per unlabelled member");
                assert!(CLASSES.contains(&pseudo.class));
                assert!(pseudo.confidence > 0.0 && pseudo.confidence <= 1.0);
                assert_eq!(
                    pseudo.provenance.source,
                    Source::Classifier {
                        run_id: run_id.clone()
                    }
                );
            }
        }
    }
    // The summary's "above threshold" is what the store's snapshot lets train.
    let threshold = config.confidence_threshold;
    let confident = store
        .snapshot(threshold)
        .iter()
        .filter(|(_, l)| !l.manual)
        .count();
    assert_eq!(confident, outcome.summary.above_threshold);
    assert_eq!(outcome.summary.pseudo_labelled, count / 2);
}

#[test]
fn the_worker_trains_writes_and_stops_promptly() {
    let count = 90;
    let ensemble = synthetic_ensemble(count, 8);
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::create(dir.path().join("labels.csv")).unwrap();
    store
        .import_manual(
            &labels(count, |i| i < 60),
            |i| ensemble.member_id(i),
            Provenance::user("test"),
        )
        .unwrap();
    let hand_labels = HandLabels {
        snapshot: store.snapshot(f32::NAN),
        origin: store.path().to_path_buf(),
    };
    let ids: Vec<String> = (0..count).map(|i| ensemble.member_id(i)).collect();
    let handle = Classifier::spawn(ensemble, tiny_config(2)).unwrap();

    // A full run ends with its pseudo-labels proposed; the store's owner writes them.
    let run_id = handle.train(hand_labels.clone());
    let mut seen_epochs = 0;
    let summary = loop {
        match handle
            .recv_timeout(Duration::from_secs(60))
            .expect("an event")
        {
            ClassifierEvent::Epoch { run_id: id, .. } if id == run_id => seen_epochs += 1,
            ClassifierEvent::PseudoLabels {
                run_id: id,
                proposal,
                summary,
            } if id == run_id => {
                proposal
                    .write_to(&mut store, |m| ids.get(m).map(String::as_str))
                    .unwrap();
                break summary;
            }
            event @ (ClassifierEvent::Error { .. } | ClassifierEvent::Stopped { .. }) => {
                panic!("unexpected {event:?}")
            }
            _ => {}
        }
    };
    // Two epochs per classifier training: five cross-validation folds, and the final one on
    // every hand label unless spreading alone was chosen.
    assert!(
        seen_epochs == 10 || seen_epochs == 12,
        "{seen_epochs} epochs"
    );
    assert_eq!(summary.pseudo_labelled, 30);
    let pseudo_count = store.members().filter(|(_, _, p)| p.is_some()).count();
    assert_eq!(pseudo_count, 30);
    // One change: undo takes every pseudo-label back.
    assert!(store.undo().unwrap());
    assert_eq!(store.members().filter(|(_, _, p)| p.is_some()).count(), 0);

    // After a few more hand labels, a refresh keeps the choice and trains no epoch: spreading
    // reruns, or the classifier's head is refitted on its cached features.
    store
        .import_manual(
            &labels(count, |i| i < 66),
            |i| ids[i].clone(),
            Provenance::user("test"),
        )
        .unwrap();
    let more_labels = HandLabels {
        snapshot: store.snapshot(f32::NAN),
        origin: store.path().to_path_buf(),
    };
    let run_id = handle.refresh(more_labels);
    let (mut refresh_epochs, mut reason) = (0, String::new());
    let summary = loop {
        match handle
            .recv_timeout(Duration::from_secs(60))
            .expect("an event")
        {
            ClassifierEvent::Epoch { run_id: id, .. } if id == run_id => refresh_epochs += 1,
            ClassifierEvent::Chosen { run_id: id, choice } if id == run_id => {
                reason = choice.reason
            }
            ClassifierEvent::PseudoLabels {
                run_id: id,
                summary,
                ..
            } if id == run_id => break summary,
            event @ (ClassifierEvent::Error { .. } | ClassifierEvent::Stopped { .. }) => {
                panic!("unexpected {event:?}")
            }
            _ => {}
        }
    };
    assert_eq!(refresh_epochs, 0, "a refresh trains no epoch");
    assert!(
        reason.starts_with("refreshed after hand-label edits"),
        "{reason}"
    );
    assert_eq!(summary.pseudo_labelled, 24);

    // A long run stops within moments of being asked, after its first epoch began.
    let long = {
        let ensemble = synthetic_ensemble(count, 8);
        Classifier::spawn(ensemble, tiny_config(10_000)).unwrap()
    };
    let run_id = long.train(hand_labels);
    loop {
        if let ClassifierEvent::Epoch { .. } = long
            .recv_timeout(Duration::from_secs(60))
            .expect("a first epoch")
        {
            break;
        }
    }
    let asked = Instant::now();
    long.stop();
    loop {
        match long
            .recv_timeout(Duration::from_secs(10))
            .expect("a final event")
        {
            ClassifierEvent::Stopped { run_id: id } => {
                assert_eq!(id, run_id);
                break;
            }
            ClassifierEvent::Epoch { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        asked.elapsed()
    );
}

// ---- CLI ----------------------------------------------------------------------------------

/// Writes 90 synthetic members as `f32 [90, 1, 28, 28]` .npy, a labels CSV for the first 60
/// and an eval labels CSV for all of them; returns their paths.
fn write_dataset(dir: &Path) -> (String, String, String) {
    use npyz::WriterBuilder;
    let count = 90;
    let npy = dir.join("shapes.npy");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&npy).unwrap());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[count as u64, 1, SIDE_PX as u64, SIDE_PX as u64])
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    writer.extend(synthetic_pixels(count, 21)).unwrap();
    writer.finish().unwrap();
    drop(out);
    let write_labels = |name: &str, members: usize| {
        let path = dir.join(name);
        let mut text = String::from("id,label\n");
        for i in 0..members {
            text.push_str(&format!("{i},{}\n", CLASSES[i % 3]));
        }
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let labels = write_labels("labels.csv", 60);
    let eval = write_labels("eval.csv", count);
    (npy.display().to_string(), labels, eval)
}

fn write_config(dir: &Path) -> String {
    let path = dir.join("classifier.toml");
    let mut config = tiny_config(3);
    config.input_size = InputSize::Native;
    std::fs::write(&path, config.to_toml()).unwrap();
    path.display().to_string()
}

fn sense(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sense"))
        .args(args)
        .output()
        .expect("sense runs")
}

#[test]
fn cli_pseudo_labels_a_dataset_and_reports_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels, eval) = write_dataset(dir.path());
    let config = write_config(dir.path());
    let out = dir.path().join("store.csv");
    let output = sense(&[
        "pseudo-label",
        "--data",
        &data,
        "--labels",
        &labels,
        "--limit-labels",
        "45",
        "--config",
        &config,
        "--out",
        out.to_str().unwrap(),
        "--eval-data",
        &data,
        "--eval-labels",
        &eval,
        "--json",
        "--backend",
        "cpu",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let in_unit = |v: &serde_json::Value| (0.0..=1.0).contains(&v.as_f64().unwrap_or(-1.0));
    // Both labellers and their mean were estimated by 5-fold over the 45 hand labels, and
    // all three scored on the evaluation data.
    assert_eq!(report["estimation"]["method"], "k-fold", "{report}");
    assert_eq!(report["scored_members"], 45, "{report}");
    for labeller in ["spreading", "classifier", "combined"] {
        assert!(in_unit(&report["cv_accuracy"][labeller]), "{report}");
        assert!(
            in_unit(&report["eval_accuracy_by_labeller"][labeller]),
            "{report}"
        );
    }
    let classifier = &report["classifier"];
    assert!(in_unit(&classifier["heldout_accuracy"]), "{report}");
    let per_class = classifier["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 3);
    for class in per_class {
        assert!(class.get("precision").is_some() && class.get("recall").is_some());
    }
    // Bars, columns and squares are easy: a labeller beats the majority class, and its
    // pseudo-labels cover the 45 members without a hand label.
    let chosen = report["labeller"].as_str().expect("a labeller is chosen");
    let best = report["cv_accuracy"][chosen].as_f64().unwrap();
    assert!(best > report["majority_rate"].as_f64().unwrap(), "{report}");
    assert!(in_unit(&report["eval_accuracy"]), "{report}");
    assert_eq!(report["pseudo_labelled"], 45);
    let above = report["above_threshold"].as_u64().unwrap();
    assert!(above <= 45);

    // The store holds the 45 hand labels, imported with the labels file as provenance, and
    // the 45 pseudo-labels.
    let store = LabelStore::open_read_only(&out).unwrap();
    let manual = store.members().filter(|(_, m, _)| m.is_some()).count();
    let pseudo = store.members().filter(|(_, _, p)| p.is_some()).count();
    assert_eq!((manual, pseudo), (45, 45));
    let (_, _, first_pseudo) = store.members().find(|(_, _, p)| p.is_some()).unwrap();
    let features = report["features"].as_str().unwrap();
    let expected_kind = match chosen {
        "spreading" => format!("spreading:{features}@"),
        "classifier" => "classifier:effnetv2@".to_string(),
        _ => format!("combined:effnetv2+{features}@"),
    };
    let provenance = first_pseudo.unwrap().provenance.source.to_string();
    assert!(provenance.starts_with(&expected_kind), "{provenance}");
    let (_, first_manual, _) = store.members().find(|(_, m, _)| m.is_some()).unwrap();
    assert_eq!(
        first_manual.unwrap().provenance.source,
        Source::Import {
            path: labels.clone().into()
        }
    );
}

#[test]
fn cli_scores_pseudo_labels_against_a_samples_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("store.csv");
    let output = sense(&[
        "pseudo-label",
        "--data",
        "sample:channels",
        "--limit-labels",
        "50",
        "--labeller",
        "spreading",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--quiet",
        "--backend",
        "cpu",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // Every pseudo-label is scored, and the confident ones are exactly those counted above
    // the threshold.
    assert_eq!(
        report["pseudo_label_truth_members"], report["pseudo_labelled"],
        "{report}"
    );
    assert_eq!(
        report["confident_pseudo_label_truth_members"], report["above_threshold"],
        "{report}"
    );
    let all = report["pseudo_label_truth_accuracy"].as_f64().unwrap();
    let confident = report["confident_pseudo_label_truth_accuracy"]
        .as_f64()
        .unwrap();
    // Spreading over the spectrum gets most channel maps right from 50 labels, and its
    // calibrated confidence means something: the confident ones are right more often.
    assert!(all > 0.8, "{report}");
    assert!(confident > all, "{report}");
}

#[test]
fn cli_names_the_file_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels, _) = write_dataset(dir.path());
    let config = write_config(dir.path());
    let out = dir.path().join("store.csv");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "pseudo-label",
            "--data",
            &data,
            "--config",
            &config,
            "--out",
            out.to_str().unwrap(),
            "--backend",
            "cpu",
        ];
        args.extend_from_slice(extra);
        let output = sense(&args);
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).to_string()
    };

    // Labels of another dataset: ids this one does not have.
    let foreign = dir.path().join("foreign.csv");
    std::fs::write(&foreign, "id,label\n0,bar\n1000,column\n").unwrap();
    let err = run(&["--labels", foreign.to_str().unwrap()]);
    assert!(
        err.contains("foreign.csv") && err.contains("unknown id"),
        "{err}"
    );

    // A gzipped IDX labels file with another member count.
    let idx = dir.path().join("other-labels-idx1-ubyte.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &[0, 0, 8, 1, 0, 0, 0, 5, 0, 1, 2, 0, 1]).unwrap();
    std::fs::write(&idx, gz.finish().unwrap()).unwrap();
    let err = run(&["--labels", idx.to_str().unwrap()]);
    assert!(
        err.contains("other-labels-idx1-ubyte.gz") && err.contains("90"),
        "{err}"
    );

    // A "run" for --latents that is no training run.
    let not_a_run = dir.path().join("not-a-run");
    std::fs::create_dir_all(&not_a_run).unwrap();
    let err = run(&[
        "--labels",
        &labels,
        "--latents",
        not_a_run.to_str().unwrap(),
    ]);
    assert!(err.contains("not-a-run"), "{err}");

    // Evaluation labels with a class the classifier never saw.
    let odd = dir.path().join("odd-eval.csv");
    std::fs::write(&odd, "id,label\n0,bar\n1,triangle\n").unwrap();
    let err = run(&[
        "--labels",
        &labels,
        "--eval-data",
        &data,
        "--eval-labels",
        odd.to_str().unwrap(),
    ]);
    assert!(
        err.contains("odd-eval.csv") && err.contains("triangle"),
        "{err}"
    );
}

#[test]
fn cli_suggests_unlabelled_members_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (data, labels, _) = write_dataset(dir.path());
    let config = write_config(dir.path());
    let store_path = dir.path().join("store.csv");
    let store = store_path.to_str().unwrap();
    let output = sense(&[
        "pseudo-label",
        "--data",
        &data,
        "--labels",
        &labels,
        "--limit-labels",
        "45",
        "--config",
        &config,
        "--out",
        store,
        "--backend",
        "cpu",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = dir.path().join("suggestions.csv");
    let output = sense(&[
        "suggest",
        "--data",
        &data,
        "--labels",
        store,
        "--count",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = LabelStore::open_read_only(&store_path).unwrap();
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(&header[..4], ["rank", "id", "score", "reason"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 10);
    let mut ids = std::collections::HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], (i + 1).to_string());
        assert!(ids.insert(row[1].to_string()), "{} twice", &row[1]);
        assert!(
            store.manual(&row[1]).is_none(),
            "{} is hand-labelled",
            &row[1]
        );
        let score: f32 = row[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(
            [
                "uncertain",
                "disagrees with its neighbours",
                "far from every hand label"
            ]
            .contains(&&row[3]),
            "{}",
            &row[3]
        );
    }
    // A store that is not there is an error naming it.
    let missing = dir.path().join("nope.csv");
    let output = sense(&[
        "suggest",
        "--data",
        &data,
        "--labels",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope.csv"));
}
