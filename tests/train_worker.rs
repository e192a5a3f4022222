//! The training engine on the flex CPU backend, on a small MNIST subset: event order, learning,
//! pause/resume/stop, live label updates, NaN recovery, exact resume, an epoch recorded in
//! metrics.jsonl before its checkpoint, backend choice.

use sense::data::Ensemble;
use sense::labels::LabelSnapshot;
use sense::nn::{ModelConfig, ModelKind};
use sense::train::heartbeat::{self, RunEnd};
use sense::train::{
    BackendChoice, BackendKind, LossWeights, RunSummary, StepProgress, TrainConfig, TrainEvent,
    Trainer, TrainerHandle,
};
use std::time::{Duration, Instant};

/// 512 MNIST digits (64 of them hand-labelled).
/// burn's CPU backend draws from one process-wide random generator, so trainers running
/// side by side in this binary would perturb each other's initialisation and noise. The
/// tests here compare exact losses, so they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn mnist() -> Ensemble {
    sense::samples::open_with("mnist", Some(512), 7).expect("embedded MNIST sample")
}

fn labels_of(ensemble: &Ensemble) -> LabelSnapshot {
    let labels = ensemble.labels.as_ref().expect("sample has hand labels");
    LabelSnapshot::from_class_labels(labels, |i| ensemble.member_id(i))
}

/// A small, fast run: latent 16, 16 filters, batch 64.
fn tiny_config(epochs: usize) -> TrainConfig {
    let mut config = TrainConfig {
        epochs,
        backend: BackendChoice::Cpu,
        model: ModelConfig::new(ModelKind::Ae)
            .with_latent_dim(16)
            .with_filters(16),
        ..TrainConfig::default()
    };
    config.optimizer.batch_size = 64;
    config.optimizer.learning_rate = 2e-3;
    config.evaluation.step_event_every = 1;
    config
}

/// Every event until the final one (with a generous deadline so a hang fails, not blocks).
fn collect(handle: &TrainerHandle) -> Vec<TrainEvent> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut events = Vec::new();
    while Instant::now() < deadline {
        match handle.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => {
                let last = event.is_final();
                events.push(event);
                if last {
                    return events;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    panic!("no final event; got {events:?}")
}

fn finished(events: &[TrainEvent]) -> &RunSummary {
    match events.last() {
        Some(TrainEvent::Finished(summary)) => summary,
        other => panic!("run did not finish: {other:?}"),
    }
}

fn step_losses(events: &[TrainEvent]) -> Vec<(usize, usize, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Step(StepProgress {
                epoch,
                step,
                losses,
                ..
            }) => Some((*epoch, *step, losses.total)),
            _ => None,
        })
        .collect()
}

#[test]
fn events_arrive_in_order_and_the_model_learns() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ensemble = mnist();
    let labels = labels_of(&ensemble);
    let mut config = tiny_config(10);
    config.optimizer.batch_size = 32;
    config.optimizer.learning_rate = 5e-3;
    let handle = Trainer::spawn(ensemble, labels, config, dir.path()).unwrap();
    let events = collect(&handle);

    assert!(matches!(
        events[0],
        TrainEvent::Backend {
            kind: BackendKind::Cpu,
            ..
        }
    ));
    assert!(matches!(
        events[1],
        TrainEvent::Started { first_epoch: 0, .. }
    ));
    // Steps count up; each epoch summary comes after its steps and before the next epoch's.
    let mut last_global = 0;
    let mut epochs_seen = 0;
    let (mut steps, mut supervised_steps) = (0, 0);
    for event in &events {
        match event {
            TrainEvent::Step(StepProgress {
                epoch,
                global_step,
                losses,
                ..
            }) => {
                assert_eq!(*epoch, epochs_seen);
                assert!(*global_step > last_global);
                last_global = *global_step;
                assert!(losses.is_finite(), "{losses:?}");
                // Hand labels are present: the label losses come and go together.
                assert_eq!(losses.cluster.is_some(), losses.contrastive.is_some());
                supervised_steps += usize::from(losses.cluster.is_some());
                steps += 1;
            }
            TrainEvent::Epoch(summary) => {
                assert_eq!(summary.epoch, epochs_seen);
                epochs_seen += 1;
                let val = summary.val.expect("validation losses");
                assert!(val.is_finite() && summary.train.is_finite());
                assert!(summary.val_psnr_db.unwrap().is_finite());
                assert!(summary.images_per_sec > 0.0);
            }
            _ => {}
        }
    }
    assert_eq!(epochs_seen, 10);
    // ~4 of 32 members per batch carry a label: most batches hold two classes.
    assert!(
        supervised_steps > steps / 2,
        "{supervised_steps} of {steps}"
    );
    let recon = events.iter().find_map(|e| match e {
        TrainEvent::Reconstructions { images, .. } => Some(images),
        _ => None,
    });
    let recon = recon.expect("reconstructions");
    assert_eq!(recon.len(), 8);
    assert_eq!(recon[0].shape, [1, 28, 28]);
    assert_eq!(recon[0].original.len(), 784);
    let latents = events.iter().find_map(|e| match e {
        TrainEvent::Latents(l) => Some(l),
        _ => None,
    });
    let latents = latents.expect("latents");
    assert_eq!(latents.dim, 16);
    assert_eq!(latents.values.len(), latents.members.len() * 16);
    assert_eq!(latents.ids.len(), latents.members.len());

    let summary = finished(&events);
    assert_eq!(summary.epochs, 10);
    // The last heartbeat names this process, the last step, and how the run ended.
    let beat = heartbeat::read(dir.path()).unwrap().expect("a heartbeat");
    assert_eq!(
        (beat.pid, beat.end),
        (std::process::id(), Some(RunEnd::Finished))
    );
    let last = beat.step.expect("the last step");
    assert_eq!(
        (last.epoch, last.step + 1, last.global_step),
        (9, last.steps_per_epoch, summary.steps)
    );
    let epoch_val: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Epoch(s) => s.val.map(|v| v.reconstruction),
            _ => None,
        })
        .collect();
    assert!(
        epoch_val[9] < epoch_val[0],
        "validation reconstruction did not improve: {epoch_val:?}"
    );
    let (mse, baseline) = (summary.val_mse.unwrap(), summary.baseline_val_mse.unwrap());
    println!("val MSE {mse} vs baseline {baseline}; epochs {epoch_val:?}");
    assert!(mse < 0.7 * baseline, "val MSE {mse} vs baseline {baseline}");
}

#[test]
fn pause_resume_and_stop_within_a_second() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ensemble = mnist();
    let handle = Trainer::spawn(
        ensemble,
        LabelSnapshot::empty(),
        tiny_config(50),
        dir.path(),
    )
    .unwrap();
    // Wait for training to be under way.
    loop {
        match handle.recv_timeout(Duration::from_secs(60)).unwrap() {
            TrainEvent::Step(_) => break,
            e => assert!(!e.is_final(), "{e:?}"),
        }
    }
    handle.pause();
    let mut paused = false;
    while !paused {
        paused = matches!(
            handle.recv_timeout(Duration::from_secs(10)).unwrap(),
            TrainEvent::Paused
        );
    }
    // Nothing trains while paused.
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(event) = handle.try_recv() {
        assert!(!matches!(event, TrainEvent::Step(_)), "{event:?}");
    }
    handle.resume();
    loop {
        match handle.recv_timeout(Duration::from_secs(10)).unwrap() {
            TrainEvent::Step(_) => break,
            e => assert!(!e.is_final(), "{e:?}"),
        }
    }
    let asked = Instant::now();
    handle.stop();
    let events = collect(&handle);
    let waited = asked.elapsed();
    let Some(&TrainEvent::Stopped { epoch, global_step }) = events.last() else {
        panic!("{:?}", events.last());
    };
    assert!(waited < Duration::from_secs(1), "stop took {waited:?}");
    let beat = heartbeat::read(dir.path()).unwrap().expect("a heartbeat");
    assert_eq!(beat.end, Some(RunEnd::Stopped { epoch, global_step }));
}

#[test]
fn labels_sent_mid_run_switch_on_the_label_losses() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ensemble = mnist();
    let labels = labels_of(&ensemble);
    let mut config = tiny_config(2);
    config.evaluation.latents_every_epochs = 0;
    let handle = Trainer::spawn(ensemble, LabelSnapshot::empty(), config, dir.path()).unwrap();
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut sent = false;
    for event in collect_until_final(&handle, |event| {
        // After the first step, hand the trainer labels.
        if let TrainEvent::Step(StepProgress { global_step: 1, .. }) = event {
            Some(labels.clone())
        } else {
            None
        }
    }) {
        match event {
            TrainEvent::LabelsUpdated {
                labelled_members, ..
            } => {
                assert_eq!(labelled_members, labels.len());
                sent = true;
            }
            TrainEvent::Step(StepProgress { losses, .. }) if !sent => before.push(losses),
            TrainEvent::Step(StepProgress { losses, .. }) => after.push(losses),
            _ => {}
        }
    }
    assert!(!before.is_empty() && !after.is_empty());
    assert!(before.iter().all(|l| l.cluster.is_none()), "{before:?}");
    // Batches of 64 drawn from 512 members with 64 labelled: most hold ≥ 2 classes.
    assert!(
        after.iter().filter(|l| l.cluster.is_some()).count() > after.len() / 2,
        "{after:?}"
    );

    /// Runs to the final event, sending `labels_for(event)` when it returns some.
    fn collect_until_final(
        handle: &TrainerHandle,
        labels_for: impl Fn(&TrainEvent) -> Option<LabelSnapshot>,
    ) -> Vec<TrainEvent> {
        let mut events = Vec::new();
        loop {
            let event = handle.recv_timeout(Duration::from_secs(60)).unwrap();
            if let Some(labels) = labels_for(&event) {
                handle.update_labels(labels);
            }
            let last = event.is_final();
            events.push(event);
            if last {
                return events;
            }
        }
    }
}

#[test]
fn loss_weight_update_applies_from_the_next_epoch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ensemble = mnist();
    let labels = labels_of(&ensemble);
    let mut config = tiny_config(2);
    config.evaluation.latents_every_epochs = 0;
    let handle = Trainer::spawn(ensemble, labels, config, dir.path()).unwrap();
    handle.update_loss_weights(LossWeights {
        lambda_cluster: 0.0,
        lambda_contrastive: 0.7,
    });
    let events = collect(&handle);
    finished(&events);
    let weights: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Epoch(s) => Some(s.weights),
            _ => None,
        })
        .collect();
    // Read during epoch 0, applied from epoch 1.
    assert_eq!(weights.len(), 2);
    assert_eq!(
        (weights[0].lambda_cluster, weights[0].lambda_contrastive),
        (0.2, 0.2)
    );
    assert_eq!(
        (weights[1].lambda_cluster, weights[1].lambda_contrastive),
        (0.0, 0.7)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TrainEvent::LossWeightsUpdated { .. }))
    );
}

#[test]
fn non_finite_loss_recovers_once_then_stops() {
    let _serial = serial();
    let ensemble = mnist();
    // One NaN: recovery, and the run completes.
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(1);
    config.inject_non_finite_at_attempts = vec![2];
    let handle =
        Trainer::spawn(ensemble.clone(), LabelSnapshot::empty(), config, dir.path()).unwrap();
    let events = collect(&handle);
    let recovered = events.iter().find_map(|e| match e {
        TrainEvent::Recovered {
            learning_rate,
            step,
            ..
        } => Some((*learning_rate, *step)),
        _ => None,
    });
    let (lr, step) = recovered.expect("a recovery event");
    assert_eq!(step, 2);
    assert!((lr - 1e-3).abs() < 1e-12, "LR {lr}");
    let summary = finished(&events);
    assert!(summary.final_train_loss.is_finite());

    // A second NaN after the recovery: the run stops with an error.
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(1);
    config.inject_non_finite_at_attempts = vec![2, 4];
    let handle = Trainer::spawn(ensemble, LabelSnapshot::empty(), config, dir.path()).unwrap();
    let events = collect(&handle);
    match events.last() {
        Some(TrainEvent::Error(message)) => {
            assert!(message.contains("non-finite"), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Losses are read back in groups (`loss_readback_steps`): every step still gets its event, in
/// order, and a NaN on the last step of an epoch (found only at its end, after the optimiser
/// stepped on it) rolls the epoch back before any checkpoint of it is written.
#[test]
fn deferred_read_back_reports_every_step_and_a_late_nan_never_reaches_a_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(2);
    config.evaluation.loss_readback_steps = 4;
    let probe = Trainer::spawn(mnist(), LabelSnapshot::empty(), config.clone(), dir.path());
    let steps = collect(&probe.unwrap())
        .iter()
        .find_map(|e| match e {
            TrainEvent::Started {
                steps_per_epoch, ..
            } => Some(*steps_per_epoch),
            _ => None,
        })
        .expect("a start event");
    assert!(steps > 4, "{steps} steps per epoch");

    let dir = tempfile::tempdir().unwrap();
    config.inject_non_finite_at_attempts = vec![steps as u64 - 1];
    let handle = Trainer::spawn(mnist(), LabelSnapshot::empty(), config, dir.path()).unwrap();
    let events = collect(&handle);
    let summary = finished(&events);
    assert!(summary.final_train_loss.is_finite());

    let recovered = events
        .iter()
        .position(|e| matches!(e, TrainEvent::Recovered { epoch: 0, .. }))
        .expect("a recovery");
    assert!(matches!(
        events[recovered],
        TrainEvent::Recovered { step, .. } if step == steps - 1
    ));
    assert!(
        !events[..recovered].iter().any(|e| matches!(
            e,
            TrainEvent::CheckpointWritten { .. } | TrainEvent::Epoch(_)
        )),
        "a checkpoint of the NaN epoch was written"
    );
    // After the recovery: each epoch's steps once, in order, every one reported.
    let after: Vec<_> = step_losses(&events[recovered..])
        .into_iter()
        .map(|(epoch, step, loss)| {
            assert!(loss.is_finite());
            (epoch, step)
        })
        .collect();
    let expected: Vec<_> = (0..2)
        .flat_map(|epoch| (0..steps).map(move |step| (epoch, step)))
        .collect();
    assert_eq!(after, expected);
}

#[test]
fn resume_repeats_the_uninterrupted_next_step() {
    let _serial = serial();
    let ensemble = mnist();
    let first_step_of_epoch_1 = |events: &[TrainEvent]| {
        step_losses(events)
            .into_iter()
            .find(|&(epoch, step, _)| epoch == 1 && step == 0)
            .map(|(_, _, loss)| loss)
            .expect("a step-0 event in epoch 1")
    };

    let whole = tempfile::tempdir().unwrap();
    let handle = Trainer::spawn(
        ensemble.clone(),
        LabelSnapshot::empty(),
        tiny_config(2),
        whole.path(),
    )
    .unwrap();
    let uninterrupted = collect(&handle);
    finished(&uninterrupted);

    let split = tempfile::tempdir().unwrap();
    let handle = Trainer::spawn(
        ensemble.clone(),
        LabelSnapshot::empty(),
        tiny_config(1),
        split.path(),
    )
    .unwrap();
    finished(&collect(&handle));
    let mut config = Trainer::load_config(split.path()).unwrap();
    config.epochs = 2;
    let handle = Trainer::resume(ensemble, LabelSnapshot::empty(), config, split.path()).unwrap();
    let resumed = collect(&handle);
    assert!(matches!(
        resumed[1],
        TrainEvent::Started { first_epoch: 1, .. }
    ));
    assert_eq!(finished(&resumed).epochs, 2);

    let (a, b) = (
        first_step_of_epoch_1(&uninterrupted),
        first_step_of_epoch_1(&resumed),
    );
    assert!((a - b).abs() <= 1e-6 * a.abs(), "{a} vs {b}");
    // metrics.jsonl holds each epoch once.
    let metrics = std::fs::read_to_string(split.path().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
}

/// A run killed between an epoch's two records (its metrics line and its checkpoint) must
/// resume into a `metrics.jsonl` that holds every epoch once. Here the metrics line of epoch 1
/// cannot be written (the path is a directory): the checkpoint must still say one epoch, so
/// that the resume trains epoch 1 again and records it.
#[test]
fn an_epoch_whose_metrics_line_is_lost_is_not_checkpointed_and_trains_again() {
    let _serial = serial();
    let ensemble = mnist();
    let run = tempfile::tempdir().unwrap();
    let metrics = run.path().join("metrics.jsonl");
    let epochs_checkpointed = || {
        let state = std::fs::read_to_string(run.path().join("checkpoint/state.json")).unwrap();
        let state: sense::train::run_dir::TrainerState = serde_json::from_str(&state).unwrap();
        state.epochs_done
    };
    let resume = |epochs: usize| {
        let mut config = Trainer::load_config(run.path()).unwrap();
        config.epochs = epochs;
        let handle =
            Trainer::resume(ensemble.clone(), LabelSnapshot::empty(), config, run.path()).unwrap();
        collect(&handle)
    };

    let handle = Trainer::spawn(
        ensemble.clone(),
        LabelSnapshot::empty(),
        tiny_config(1),
        run.path(),
    )
    .unwrap();
    finished(&collect(&handle));
    let first_line = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(epochs_checkpointed(), 1);

    std::fs::remove_file(&metrics).unwrap();
    std::fs::create_dir(&metrics).unwrap();
    let failed = resume(2);
    assert!(
        matches!(failed.last(), Some(TrainEvent::Error(e)) if e.contains("metrics.jsonl")),
        "{:?}",
        failed.last()
    );
    assert_eq!(
        epochs_checkpointed(),
        1,
        "an epoch without its line was checkpointed"
    );

    std::fs::remove_dir(&metrics).unwrap();
    std::fs::write(&metrics, &first_line).unwrap();
    let resumed = resume(2);
    assert!(matches!(
        resumed[1],
        TrainEvent::Started { first_epoch: 1, .. }
    ));
    assert_eq!(finished(&resumed).epochs, 2);
    let epochs: Vec<u64> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, [0, 1]);
}

#[test]
fn auto_backend_picks_the_cpu_here_and_says_so() {
    let _serial = serial();
    // This machine (and CI) has no hardware GPU; a GPU request must fall back, not crash.
    for choice in [BackendChoice::Auto, BackendChoice::Gpu] {
        let backend = sense::train::select_backend(choice);
        assert_eq!(
            backend.kind,
            BackendKind::Cpu,
            "{choice:?}: {}",
            backend.name
        );
        let reason = backend.fallback_reason.expect("a reason for the CPU");
        assert!(reason.contains("CPU"), "{reason}");
        if choice == BackendChoice::Gpu {
            assert!(reason.starts_with("GPU requested"), "{reason}");
        }
    }
}

#[test]
fn latents_on_request_and_a_failing_step_is_an_error_not_a_crash() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ensemble = mnist();
    let labels = labels_of(&ensemble);
    let labelled = labels.len();
    let mut config = tiny_config(1);
    config.evaluation.latents_every_epochs = 0;
    config.inject_panic_at_attempts = vec![3];
    let handle = Trainer::spawn(ensemble, labels, config, dir.path()).unwrap();
    loop {
        match handle.recv_timeout(Duration::from_secs(60)).unwrap() {
            TrainEvent::Step(_) => break,
            e => assert!(!e.is_final(), "{e:?}"),
        }
    }
    handle.request_latents();
    let events = collect(&handle);
    let latents = events.iter().find_map(|e| match e {
        TrainEvent::Latents(l) => Some(l),
        _ => None,
    });
    // The evaluation subset is the hand-labelled members.
    let latents = latents.expect("latents after the request");
    assert_eq!(latents.members.len(), labelled);
    assert_eq!(latents.epoch, 0);
    // On the CPU a panicking step cannot fall back anywhere: the run reports it and ends.
    match events.last() {
        Some(TrainEvent::Error(message)) => {
            assert!(message.contains("injected failure"), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_run_wakes_its_watcher_and_reloads_for_per_member_errors() {
    use sense::train::{CheckpointChoice, TrainedModel};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ensemble = mnist();
    let labels = labels_of(&ensemble);
    let handle = Trainer::spawn(ensemble.clone(), labels, tiny_config(1), dir.path()).unwrap();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    handle.on_event(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let events = collect(&handle);
    assert!(matches!(events.last(), Some(TrainEvent::Finished(_))));
    // Events sent before `on_event` was set cannot wake; every one after does.
    let woken = wakes.load(Ordering::SeqCst);
    assert!(
        woken + 3 >= events.len() && woken > 0,
        "{woken} of {}",
        events.len()
    );

    let backend = sense::train::backend::cpu_backend(None);
    let model = TrainedModel::load(
        dir.path(),
        ensemble.shape(),
        CheckpointChoice::Best,
        &backend,
    )
    .unwrap();
    let members: Vec<usize> = (0..70).collect();
    let control = sense::task::TaskControl::new();
    let errors = model
        .reconstruction_errors(&ensemble, &members, &control)
        .unwrap()
        .expect("not cancelled");
    let reconstructions = model.reconstruct(&ensemble, &members).unwrap();
    assert_eq!(errors.len(), members.len());
    for (error, r) in errors.iter().zip(&reconstructions) {
        let mse = r
            .original
            .iter()
            .zip(&r.reconstruction)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / r.original.len() as f32;
        assert!(
            (error - mse).abs() <= 1e-6 * mse.max(1.0),
            "{error} vs {mse}"
        );
        assert!(mse.is_finite() && mse > 0.0);
    }
    control.cancel();
    let cancelled = model.reconstruction_errors(&ensemble, &members, &control);
    assert!(matches!(cancelled, Ok(None)));
}

#[test]
fn a_latent_subsample_keeps_every_hand_labelled_member() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ensemble = mnist();
    let labels = labels_of(&ensemble);
    let hand: Vec<usize> = (0..ensemble.len())
        .filter(|&i| ensemble.labels.as_ref().unwrap().per_member[i].is_some())
        .collect();
    let mut config = tiny_config(1);
    config.evaluation.subset = sense::train::EvalSubset::All;
    config.evaluation.max_members = Some(200);
    let handle = Trainer::spawn(ensemble, labels, config, dir.path()).unwrap();
    let events = collect(&handle);
    let latents = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Latents(latents) => Some(latents),
            _ => None,
        })
        .expect("latents after the epoch");
    assert_eq!(latents.members.len(), 200);
    assert!(!hand.is_empty() && hand.len() < 200);
    assert!(hand.iter().all(|m| latents.members.contains(m)));
    let mut unique = latents.members.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 200);
}
