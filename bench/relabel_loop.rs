//! The app's relabel loop, measured without the window: train on `sample:channels`, look at
//! the map after a few epochs, relabel a confused group, push the new labels to the running
//! trainer (as the app does: label store edit + `TrainerHandle::update_labels`), train on,
//! and compare the neighbourhood hit with a control run that got no relabel.
//!
//! The "confused group" is what a scientist brushes: in the live map (a 10,000-member
//! subsample, hand-labelled members kept), the members that sit among another class — most of
//! their labelled neighbours among the 17 nearest (at least 5 labelled) carry a different
//! training label than the generator's truth — for the most common (true class, neighbours'
//! class) pair; they are relabelled by hand to their true class (the scientist recognises
//! them from the thumbnails).
//!
//! ```text
//! cargo run --release --example relabel_loop -- [--backend cpu|gpu|auto]
//!     [--before 3] [--after 3] [--store LABELS.csv] [--out DIR]
//! ```
//! `--store`: start from a label store with pseudo-labels (e.g. from `sense pseudo-label`);
//! default: the sample's 2,500 hand labels only.

use std::collections::HashMap;
use std::path::PathBuf;

#[path = "common.rs"]
mod common;

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use sense::data::Ensemble;
use sense::labels::{LabelStore, Provenance};
use sense::projection::{ProjectionConfig, UmapConfig, live_subsample, project};
use sense::task::TaskControl;
use sense::train::{BackendChoice, EvalSubset, Latents, TrainConfig, TrainEvent, Trainer};

sense::process_allocator!();

const K: usize = 17;
const MAP_MEMBERS: usize = 10_000;
const HELDOUT_MEMBERS: usize = 2_500;
const THRESHOLD: f32 = 0.9;
/// A point counts as "among another class" only if this many of its map neighbours carry a
/// training label (with hand labels alone most of the map is unlabelled).
const MIN_LABELLED_NEIGHBOURS: usize = 5;

struct Args {
    backend: BackendChoice,
    before: usize,
    after: usize,
    store: Option<PathBuf>,
    out: PathBuf,
}

fn args() -> Result<Args> {
    let mut args = Args {
        backend: BackendChoice::Cpu,
        before: 3,
        after: 3,
        store: None,
        out: std::env::temp_dir().join("sense-relabel-loop"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                args.backend = match value()?.as_str() {
                    "cpu" => BackendChoice::Cpu,
                    "gpu" => BackendChoice::Gpu,
                    "auto" => BackendChoice::Auto,
                    other => bail!("unknown backend {other}"),
                }
            }
            "--before" => args.before = value()?.parse()?,
            "--after" => args.after = value()?.parse()?,
            "--store" => args.store = Some(value()?.into()),
            "--out" => args.out = value()?.into(),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// Neighbourhood hit and silhouette of `members` (with `classes`) in a fresh UMAP of their
/// latents.
fn scores(latents: &Latents, members: &[usize], classes: &[usize]) -> Result<(f64, f64)> {
    common::umap_scores(rows_of(latents, members)?.view(), classes)
}

fn rows_of(latents: &Latents, members: &[usize]) -> Result<Array2<f32>> {
    let row_of: HashMap<usize, usize> = latents
        .members
        .iter()
        .enumerate()
        .map(|(r, &m)| (m, r))
        .collect();
    let dim = latents.dim;
    let mut values = Vec::with_capacity(members.len() * dim);
    for m in members {
        let r = *row_of.get(m).context("member without latents")?;
        values.extend_from_slice(&latents.values[r * dim..(r + 1) * dim]);
    }
    Ok(Array2::from_shape_vec((members.len(), dim), values)?)
}

/// The largest group of map members whose map neighbours mostly carry another training label
/// than their true class: (members, true class name).
fn confused_group(
    latents: &Latents,
    ensemble: &Ensemble,
    store: &LabelStore,
    hand: &[usize],
) -> Result<(Vec<usize>, String)> {
    let truth = ensemble.ground_truth.as_ref().context("no ground truth")?;
    let map = live_subsample(ensemble.len(), MAP_MEMBERS, hand, 11)?;
    let rows = rows_of(latents, &map)?;
    let layout = project(
        rows.view(),
        &ProjectionConfig::Umap(UmapConfig::default()),
        None,
        &TaskControl::new(),
    )?;
    let snapshot = store.snapshot(THRESHOLD);
    let label_of = |m: usize| {
        snapshot
            .get(&ensemble.member_id(m))
            .and_then(|l| snapshot.classes().get(l.class as usize))
            .map(|c| c.name.clone())
    };
    let coords = layout.coords;
    let labels: Vec<Option<String>> = map.iter().map(|&m| label_of(m)).collect();
    let mut groups: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, &member) in map.iter().enumerate() {
        if store.manual(&ensemble.member_id(member)).is_some() {
            continue;
        }
        let Some(true_class) = truth.class_name(member) else {
            continue;
        };
        // Brute-force k nearest neighbours in the 2-D map.
        let mut d: Vec<(f32, usize)> = (0..map.len())
            .filter(|&j| j != i)
            .map(|j| {
                let (dx, dy) = (
                    coords[[i, 0]] - coords[[j, 0]],
                    coords[[i, 1]] - coords[[j, 1]],
                );
                (dx * dx + dy * dy, j)
            })
            .collect();
        d.select_nth_unstable_by(K, |a, b| a.0.total_cmp(&b.0));
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for &(_, j) in &d[..K] {
            if let Some(l) = &labels[j] {
                *votes.entry(l.as_str()).or_default() += 1;
            }
        }
        // What the scientist sees: the point's neighbourhood is coloured as another class.
        let labelled: usize = votes.values().sum();
        if let Some((&majority, &count)) = votes.iter().max_by_key(|(_, c)| **c)
            && majority != true_class
            && labelled >= MIN_LABELLED_NEIGHBOURS
            && count * 2 > labelled
        {
            groups
                .entry((true_class.to_string(), majority.to_string()))
                .or_default()
                .push(member);
        }
    }
    let ((true_class, among), members) = groups
        .into_iter()
        .max_by_key(|(_, members)| members.len())
        .context("no confused group in the map")?;
    println!(
        "confused group: {} members of '{true_class}' sitting among '{among}'",
        members.len()
    );
    Ok((members, true_class))
}

/// Trains one run; `relabel` gets the latents after `before` epochs and may return new labels.
fn run(
    name: &str,
    ensemble: &Ensemble,
    store: &mut LabelStore,
    config: &TrainConfig,
    args: &Args,
    mut relabel: impl FnMut(&Latents, &mut LabelStore) -> Result<bool>,
) -> Result<(Latents, Latents)> {
    let handle = Trainer::spawn(
        ensemble.clone(),
        store.snapshot(THRESHOLD),
        config.clone(),
        args.out.join(name),
    )?;
    let (mut at_relabel, mut last) = (None, None);
    while let Some(event) = handle.recv() {
        match event {
            TrainEvent::Backend { name: backend, .. } => println!("{name}: training on {backend}"),
            TrainEvent::Epoch(e) => println!(
                "{name}: epoch {} train {:.4} labelled {}",
                e.epoch + 1,
                e.train.total,
                e.labelled_members
            ),
            TrainEvent::Latents(latents) => {
                if latents.epoch + 1 == args.before && at_relabel.is_none() {
                    if relabel(&latents, store)? {
                        handle.update_labels(store.snapshot(THRESHOLD));
                    }
                    at_relabel = Some(latents.clone());
                }
                last = Some(latents);
            }
            TrainEvent::Error(e) => bail!("{name}: {e}"),
            event if event.is_final() => break,
            _ => {}
        }
    }
    Ok((
        at_relabel.context("no latents at the relabel epoch")?,
        last.context("no final latents")?,
    ))
}

fn main() -> Result<()> {
    let args = args()?;
    std::fs::create_dir_all(&args.out)?;
    let ensemble = sense::samples::open("channels")?;
    let truth = ensemble.ground_truth.clone().context("no ground truth")?;
    let class_index: HashMap<&str, usize> = truth
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let open_store = |name: &str| -> Result<LabelStore> {
        let path = args.out.join(format!("{name}-labels.csv"));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("classes.json"));
        if let Some(source) = &args.store {
            std::fs::copy(source, &path)?;
            let sidecar = source.with_extension("classes.json");
            if sidecar.is_file() {
                std::fs::copy(&sidecar, path.with_extension("classes.json"))?;
            }
            return Ok(LabelStore::open(&path)?);
        }
        let mut store = LabelStore::create(&path)?;
        let labels = ensemble.labels.as_ref().context("no hand labels")?;
        store.import_manual(
            labels,
            |i| ensemble.member_id(i),
            Provenance::sample("channels"),
        )?;
        Ok(store)
    };
    let hand: Vec<usize> = (0..ensemble.len())
        .filter(|&m| {
            ensemble
                .labels
                .as_ref()
                .is_some_and(|l| l.per_member[m].is_some())
        })
        .collect();
    let hand_classes: Vec<usize> = hand
        .iter()
        .map(|&m| class_index[truth.class_name(m).unwrap_or_default()])
        .collect();
    let others: Vec<usize> = (0..ensemble.len()).filter(|m| !hand.contains(m)).collect();
    let heldout = {
        let picked = live_subsample(others.len(), HELDOUT_MEMBERS, &[], 3)?;
        picked.iter().map(|&i| others[i]).collect::<Vec<_>>()
    };
    let heldout_classes: Vec<usize> = heldout
        .iter()
        .map(|&m| class_index[truth.class_name(m).unwrap_or_default()])
        .collect();

    let mut config = TrainConfig {
        epochs: args.before + args.after,
        backend: args.backend,
        seed: 7,
        ..TrainConfig::default()
    };
    config.evaluation.subset = EvalSubset::All;
    config.evaluation.latents_every_epochs = 1;
    config.labels.pseudo_threshold = THRESHOLD;

    let mut group = Vec::new();
    let mut relabel_store = open_store("relabel")?;
    let (before, after) = run(
        "relabel",
        &ensemble,
        &mut relabel_store,
        &config,
        &args,
        |latents, store| {
            let (members, true_class) = confused_group(latents, &ensemble, store, &hand)?;
            let ids: Vec<String> = members.iter().map(|&m| ensemble.member_id(m)).collect();
            store.set_manual(&ids, &true_class, Provenance::user("relabel-loop"))?;
            group = members;
            Ok(true)
        },
    )?;
    let mut control_store = open_store("control")?;
    let (_, control) = run(
        "control",
        &ensemble,
        &mut control_store,
        &config,
        &args,
        |_, _| Ok(false),
    )?;

    let group_classes: Vec<usize> = group
        .iter()
        .map(|&m| class_index[truth.class_name(m).unwrap_or_default()])
        .collect();
    println!();
    println!(
        "neighbourhood hit (k = {K}) / silhouette in a fresh UMAP of each member set, true classes"
    );
    println!(
        "{:<34} {:>16} {:>16} {:>16}",
        "", "hand-labelled", "held-out 2,500", "+ group"
    );
    let mixed: Vec<usize> = heldout.iter().chain(&group).copied().collect();
    let mixed_classes: Vec<usize> = heldout_classes
        .iter()
        .chain(&group_classes)
        .copied()
        .collect();
    for (name, latents) in [
        (
            format!("epoch {} (before the relabel)", args.before),
            &before,
        ),
        (
            format!("epoch {}, relabelled", args.before + args.after),
            &after,
        ),
        (
            format!("epoch {}, control (no relabel)", args.before + args.after),
            &control,
        ),
    ] {
        let (h, hs) = scores(latents, &hand, &hand_classes)?;
        let (o, os) = scores(latents, &heldout, &heldout_classes)?;
        let (g, gs) = scores(latents, &mixed, &mixed_classes)?;
        println!("{name:<34} {h:>8.4} / {hs:<6.3} {o:>8.4} / {os:<6.3} {g:>8.4} / {gs:<6.3}");
    }
    println!("relabelled group: {} members", group.len());
    Ok(())
}
