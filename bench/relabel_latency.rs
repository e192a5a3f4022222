//! From a relabel to the trainer using the new pseudo-labels, on `sample:channels` (issue 15,
//! part 1), without the window: the app's path with its debounce left out.
//!
//! 1. The pseudo-labeller's first full run on the sample's 2,500 hand labels (estimates both
//!    labellers, chooses) — what every automatic retrain cost before refreshes.
//! 2. A training run of the paper AE starts with those pseudo-labels.
//! 3. The scripted user relabels `--relabel` members (true class; the store saves at once).
//! 4. A refresh (the last run's choice kept; spreading reruns, a chosen classifier's linear
//!    head is refitted from its weights on its cached features) proposes new pseudo-labels;
//!    they are written to the store and the trainer takes them at its next batch
//!    (`TrainEvent::LabelsUpdated`).
//!
//! ```text
//! cargo run --release --example relabel_latency -- [--relabel 20] [--backend cpu|gpu|auto]
//! ```

use std::time::Instant;

use anyhow::{Context, Result, bail};
use sense::classify::{Classifier, ClassifierConfig, ClassifierEvent, HandLabels};
use sense::data::ClassLabels;
use sense::labels::{LabelStore, Provenance};
use sense::train::{BackendChoice, TrainConfig, TrainEvent, Trainer};

sense::process_allocator!();

const THRESHOLD: f32 = 0.9;

fn args() -> Result<(usize, BackendChoice)> {
    let (mut relabel, mut backend) = (20, BackendChoice::Cpu);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--relabel" => relabel = value.parse()?,
            "--backend" => {
                backend = match value.as_str() {
                    "cpu" => BackendChoice::Cpu,
                    "gpu" => BackendChoice::Gpu,
                    "auto" => BackendChoice::Auto,
                    other => bail!("unknown backend {other}"),
                }
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok((relabel, backend))
}

/// Waits for the run's pseudo-labels, printing its stages; returns them with the run's
/// chosen labeller.
fn pseudo_labels(
    handle: &sense::classify::ClassifierHandle,
    run_id: &str,
) -> Result<(std::sync::Arc<sense::classify::PseudoLabelProposal>, String)> {
    let mut chosen = String::new();
    let started = Instant::now();
    loop {
        match handle.recv_timeout(std::time::Duration::from_secs(1800))? {
            ClassifierEvent::Stage { run_id: id, stage } if id == run_id => {
                println!("  {:6.1} s  {stage}", started.elapsed().as_secs_f64());
            }
            ClassifierEvent::Chosen { run_id: id, choice } if id == run_id => {
                chosen = choice.reason;
            }
            ClassifierEvent::PseudoLabels {
                run_id: id,
                proposal,
                ..
            } if id == run_id => return Ok((proposal, chosen)),
            ClassifierEvent::Error { message, .. } => bail!("pseudo-labeller: {message}"),
            ClassifierEvent::Stopped { .. } => bail!("pseudo-labeller stopped"),
            _ => {}
        }
    }
}

fn main() -> Result<()> {
    let (relabel, backend) = args()?;
    let dir = tempfile::tempdir()?;
    let ensemble = sense::samples::open("channels")?;
    let truth = ensemble.ground_truth.clone().context("no ground truth")?;
    let hand = ensemble.labels.clone().context("no hand labels")?;
    let mut store = LabelStore::create(dir.path().join("labels.csv"))?;
    store.import_manual(
        &hand,
        |i| ensemble.member_id(i),
        Provenance::sample("channels"),
    )?;
    let ids: Vec<String> = (0..ensemble.len()).map(|i| ensemble.member_id(i)).collect();
    let hand_labels = |store: &LabelStore| HandLabels {
        snapshot: store.snapshot(f32::NAN),
        origin: store.path().to_path_buf(),
    };
    let config = ClassifierConfig {
        backend,
        ..ClassifierConfig::default()
    };
    let classifier = Classifier::spawn(ensemble.clone(), config)?;

    let started = Instant::now();
    let run_id = classifier.train(hand_labels(&store));
    let (proposal, chosen) = pseudo_labels(&classifier, &run_id)?;
    let full_secs = started.elapsed().as_secs_f64();
    proposal.write_to(&mut store, |m| ids.get(m).map(String::as_str))?;
    println!("full run: {full_secs:.1} s ({chosen})");

    let train_config = TrainConfig {
        backend,
        ..TrainConfig::default()
    };
    let trainer = Trainer::spawn(
        ensemble.clone(),
        store.snapshot(THRESHOLD),
        train_config,
        dir.path().join("run"),
    )?;
    // Relabel once training is under way: wait for its first label report or epoch.
    loop {
        match trainer.recv().context("the trainer ended")? {
            TrainEvent::Backend { name, .. } => println!("training on {name}"),
            TrainEvent::Error(e) => bail!("trainer: {e}"),
            TrainEvent::Epoch(_) => break,
            event if event.is_final() => bail!("the trainer ended early"),
            _ => {}
        }
    }

    // The scripted user: the first `relabel` unlabelled members get their true class.
    let mut edits = ClassLabels {
        classes: truth.classes.clone(),
        per_member: vec![None; ensemble.len()],
    };
    let targets = (0..ensemble.len())
        .filter(|&m| hand.per_member[m].is_none())
        .take(relabel);
    for m in targets {
        let class = truth.class_name(m).context("member without truth")?;
        edits.per_member[m] = truth
            .classes
            .iter()
            .position(|c| c == class)
            .map(|c| c as u32);
    }
    let relabelled = Instant::now();
    store.import_manual(&edits, |i| ensemble.member_id(i), Provenance::user("bench"))?;
    let run_id = classifier.refresh(hand_labels(&store));
    let (proposal, chosen) = pseudo_labels(&classifier, &run_id)?;
    let refresh_secs = relabelled.elapsed().as_secs_f64();
    proposal.write_to(&mut store, |m| ids.get(m).map(String::as_str))?;
    let snapshot = store.snapshot(THRESHOLD);
    let revision = snapshot.revision();
    trainer.update_labels(snapshot);
    loop {
        match trainer.recv().context("the trainer ended")? {
            TrainEvent::LabelsUpdated {
                revision: r,
                labelled_members,
            } if r == revision => {
                println!("trainer took {labelled_members} labelled members");
                break;
            }
            TrainEvent::Error(e) => bail!("trainer: {e}"),
            event if event.is_final() => bail!("the trainer ended early"),
            _ => {}
        }
    }
    let trainer_secs = relabelled.elapsed().as_secs_f64();
    trainer.stop();
    println!("refresh: {refresh_secs:.1} s ({chosen})");
    println!(
        "| relabelled | full run (before) | relabel -> new pseudo-labels | relabel -> trainer uses them |"
    );
    println!("|---|---|---|---|");
    println!("| {relabel} | {full_secs:.1} s | {refresh_secs:.1} s | {trainer_secs:.1} s |");
    Ok(())
}
