//! Does the relabel loop earn its place where labels are scarce (issue 15, part 3)?
//!
//! MNIST (the 60K training set, or its first `--members`), `--hand` stratified hand labels,
//! per seed:
//! 1. train the app's AE with the label losses on the hand labels (`--epochs`), encode every
//!    member with the best checkpoint, and spread the hand labels over the latents' kNN graph
//!    (the pseudo-labeller's spreading, as the app runs it when spreading is trusted);
//! 2. a scripted user labels `--budget` more members with their true class, chosen
//!    (a) from the suggestion queue (`classify::suggest`), (b) at random, (c) not at all;
//! 3. the pseudo-labels are spread again from each arm's hand labels, and training continues
//!    for `--epochs` more with hand labels + confident pseudo-labels (≥ 0.9);
//! 4. scored on the members nobody labelled in any arm: pseudo-label accuracy, and the UMAP
//!    neighbourhood hit (k = 17) and silhouette (true classes) of their latents (a fixed
//!    subsample of `--score-members`).
//!
//! Targets: (a) beats (b) by ≥ 3 points of pseudo-label accuracy; after continuing, (a) beats
//! (c) in neighbourhood hit by ≥ 0.02. The bench is not tuned to the method: the model, λ and
//! spreading are the app's defaults.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

#[path = "common.rs"]
mod common;

use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sense::classify::{
    SPREADING_NEIGHBOURS, SpreadingConfig, SuggestConfig, SuggestInput, spread_labels, suggest,
};
use sense::data::{ClassLabels, Ensemble, OpenOptions};
use sense::labels::{LabelSnapshot, LabelStore, Provenance};
use sense::projection::{Distance, KnnGraph, KnnSearch, live_subsample};
use sense::task::TaskControl;
use sense::train::backend::cpu_backend;
use sense::train::{
    BackendChoice, CheckpointChoice, TrainConfig, TrainEvent, TrainedModel, Trainer,
};

sense::process_allocator!();

const CONFIDENT: f32 = 0.9;

#[derive(Parser)]
#[command(about = "Pseudo-label accuracy and map quality after a suggested, random or no relabel")]
struct Args {
    #[arg(long, default_value = "../shared/datasets/mnist")]
    mnist: PathBuf,
    /// Which MNIST images: `train` (60,000) or `t10k` (10,000, for a quick run).
    #[arg(long, default_value = "train")]
    split: String,
    #[arg(long, default_value_t = 100)]
    hand: usize,
    #[arg(long, default_value_t = 100)]
    budget: usize,
    /// Training epochs before the relabel, and again after it.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Members scored by UMAP neighbourhood hit and silhouette.
    #[arg(long, default_value_t = 5_000)]
    score_members: usize,
    /// Where the runs go (default: a temporary folder, removed at the end).
    #[arg(long)]
    work: Option<PathBuf>,
}

#[derive(Clone, Copy)]
enum Arm {
    Suggested,
    Random,
    None,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Self::Suggested => "(a) suggested",
            Self::Random => "(b) random",
            Self::None => "(c) none",
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let temp = tempfile::tempdir()?;
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let images = args
        .mnist
        .join(format!("{}-images.idx3-ubyte.gz", args.split));
    let options = OpenOptions {
        labels: Some(
            args.mnist
                .join(format!("{}-labels.idx1-ubyte.gz", args.split)),
        ),
        ..OpenOptions::default()
    };
    let ensemble = sense::data::open(&images.to_string_lossy(), &options)?;
    let truth: Vec<usize> = ensemble
        .labels
        .as_ref()
        .context("MNIST comes with labels")?
        .per_member
        .iter()
        .map(|c| c.map_or(usize::MAX, |c| c as usize))
        .collect();
    println!(
        "MNIST {} members, {} hand labels, budget {}, {} + {} epochs, {} threads",
        ensemble.len(),
        args.hand,
        args.budget,
        args.epochs,
        args.epochs,
        rayon::current_num_threads()
    );
    println!(
        "| seed | arm | pseudo-label accuracy | UMAP neighbourhood hit (k = 17) | UMAP silhouette | minutes |"
    );
    println!("|---|---|---|---|---|---|");
    for &seed in &args.seeds {
        run_seed(
            &args,
            &ensemble,
            &truth,
            seed,
            &work.join(format!("seed-{seed}")),
        )?;
    }
    Ok(())
}

fn run_seed(
    args: &Args,
    ensemble: &Ensemble,
    truth: &[usize],
    seed: u64,
    dir: &Path,
) -> Result<()> {
    let started = Instant::now();
    let control = TaskControl::new();
    let n = ensemble.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hand: Vec<Option<usize>> = vec![None; n];
    for class in 0..10 {
        let mut rows: Vec<usize> = (0..n).filter(|&r| truth[r] == class).collect();
        rows.shuffle(&mut rng);
        for &r in rows.iter().take(args.hand / 10) {
            hand[r] = Some(class);
        }
    }
    let first_run = dir.join("first");
    train(
        ensemble,
        &labels_snapshot(ensemble, &hand, None, dir)?,
        seed,
        args.epochs,
        &first_run,
        false,
    )?;
    let latents = encode(ensemble, &first_run, CheckpointChoice::Best)?;
    let graph = knn(&latents, seed)?;
    let pseudo = spread(&graph, &hand, &control)?;

    let unlabelled: Vec<usize> = (0..n).filter(|&m| hand[m].is_none()).collect();
    let suggested: Vec<usize> = {
        let input = SuggestInput {
            features: latents.view(),
            hand: &hand,
            pseudo: &pseudo,
            threshold: CONFIDENT,
        };
        let config = SuggestConfig {
            count: args.budget,
            seed,
            ..SuggestConfig::default()
        };
        suggest(&input, &config, &control)?
            .into_iter()
            .map(|s| s.member)
            .collect()
    };
    let random: Vec<usize> = rand::seq::index::sample(
        &mut rng,
        unlabelled.len(),
        args.budget.min(unlabelled.len()),
    )
    .into_iter()
    .map(|i| unlabelled[i])
    .collect();
    let labelled_anywhere: HashSet<usize> = suggested.iter().chain(&random).copied().collect();
    let scored: Vec<usize> = unlabelled
        .iter()
        .copied()
        .filter(|m| !labelled_anywhere.contains(m))
        .collect();
    let umap_rows: Vec<usize> = live_subsample(scored.len(), args.score_members, &[], seed)?
        .into_iter()
        .map(|i| scored[i])
        .collect();

    for arm in [Arm::Suggested, Arm::Random, Arm::None] {
        let mut arm_hand = hand.clone();
        let picked: &[usize] = match arm {
            Arm::Suggested => &suggested,
            Arm::Random => &random,
            Arm::None => &[],
        };
        for &m in picked {
            arm_hand[m] = Some(truth[m]);
        }
        let arm_pseudo = spread(&graph, &arm_hand, &control)?;
        let correct = scored
            .iter()
            .filter(|&&m| arm_pseudo[m].map(|p| p.0) == Some(truth[m]))
            .count();
        let accuracy = correct as f64 / scored.len() as f64;
        let arm_dir = dir.join(arm.name().split(' ').nth(1).unwrap_or("arm"));
        copy_dir(&first_run, &arm_dir)?;
        let snapshot = labels_snapshot(ensemble, &arm_hand, Some(&arm_pseudo), &arm_dir)?;
        train(ensemble, &snapshot, seed, 2 * args.epochs, &arm_dir, true)?;
        // The continued run's last weights: its best-validation copy would stay the first
        // run's whenever the label losses raise the monitored total.
        let arm_latents = encode(ensemble, &arm_dir, CheckpointChoice::Last)?;
        let rows = arm_latents.select(ndarray::Axis(0), &umap_rows);
        let classes: Vec<usize> = umap_rows.iter().map(|&m| truth[m]).collect();
        let (hit, sil) = common::umap_scores(rows.view(), &classes)?;
        println!(
            "| {seed} | {} | {accuracy:.4} | {:.4} | {:.4} | {:.1} |",
            arm.name(),
            hit,
            sil,
            started.elapsed().as_secs_f64() / 60.0
        );
    }
    Ok(())
}

/// Hand labels (and pseudo-labels) as the trainer gets them from a label store.
fn labels_snapshot(
    ensemble: &Ensemble,
    hand: &[Option<usize>],
    pseudo: Option<&[Option<(usize, f32)>]>,
    dir: &Path,
) -> Result<LabelSnapshot> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("labels.csv");
    let _ = std::fs::remove_file(&path);
    let mut store = LabelStore::create(&path)?;
    let classes: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    let labels = ClassLabels {
        classes: classes.clone(),
        per_member: hand.iter().map(|c| c.map(|c| c as u32)).collect(),
    };
    store.import_manual(
        &labels,
        |i| ensemble.member_id(i),
        Provenance::user("bench"),
    )?;
    if let Some(pseudo) = pseudo {
        let entries: Vec<(String, String, f32)> = pseudo
            .iter()
            .enumerate()
            .filter(|(m, _)| hand[*m].is_none())
            .filter_map(|(m, p)| {
                p.map(|(c, conf)| (ensemble.member_id(m), classes[c].clone(), conf))
            })
            .collect();
        store.set_pseudo(entries, Provenance::classifier("spreading:latent@bench"))?;
    }
    Ok(store.snapshot(CONFIDENT))
}

/// Trains (or continues, to `epochs` in all) the app's model in `run_dir` on the CPU.
fn train(
    ensemble: &Ensemble,
    labels: &LabelSnapshot,
    seed: u64,
    epochs: usize,
    run_dir: &Path,
    resume: bool,
) -> Result<()> {
    let mut config = TrainConfig {
        epochs,
        seed,
        backend: BackendChoice::Cpu,
        ..TrainConfig::default()
    };
    config.evaluation.latents_every_epochs = 0;
    config.evaluation.reconstructions = 0;
    let handle = match resume {
        true => Trainer::resume(ensemble.clone(), labels.clone(), config, run_dir)?,
        false => Trainer::spawn(ensemble.clone(), labels.clone(), config, run_dir)?,
    };
    loop {
        match handle.recv_timeout(Duration::from_secs(3600)) {
            Ok(TrainEvent::Finished(_)) => return Ok(()),
            Ok(TrainEvent::Error(e)) => bail!("training failed: {e}"),
            Ok(TrainEvent::Stopped { .. }) => bail!("training stopped"),
            Ok(_) => {}
            Err(e) => bail!("no training event: {e}"),
        }
    }
}

fn encode(ensemble: &Ensemble, run_dir: &Path, weights: CheckpointChoice) -> Result<Array2<f32>> {
    let backend = cpu_backend(None);
    let model = TrainedModel::load(run_dir, ensemble.shape(), weights, &backend)?;
    let members: Vec<usize> = (0..ensemble.len()).collect();
    let values = model.encode(ensemble, &members)?;
    Ok(Array2::from_shape_vec(
        (members.len(), model.latent_dim()),
        values,
    )?)
}

fn knn(latents: &Array2<f32>, seed: u64) -> Result<KnnGraph> {
    let data = latents.as_standard_layout();
    Ok(KnnSearch {
        data: data.as_slice().context("contiguous")?,
        n_rows: data.nrows(),
        dim: data.ncols(),
        k: SPREADING_NEIGHBOURS,
        distance: Distance::Euclidean,
        seed,
    }
    .auto(None, &|| false, &|_, _| {})?)
}

/// Spreading's pseudo-label (class, score) for every member without a hand label.
fn spread(
    graph: &KnnGraph,
    hand: &[Option<usize>],
    control: &TaskControl,
) -> Result<Vec<Option<(usize, f32)>>> {
    let spread = spread_labels(graph, hand, 10, &SpreadingConfig::default(), control)?;
    Ok((0..hand.len())
        .map(|m| match hand[m] {
            Some(_) => None,
            None => spread
                .prediction(m)
                .map(|(c, s)| (c, s.clamp(0.0, 1.0) as f32)),
        })
        .collect())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        match entry.file_type()?.is_dir() {
            true => copy_dir(&entry.path(), &target)?,
            false => {
                std::fs::copy(entry.path(), &target)?;
            }
        }
    }
    Ok(())
}
