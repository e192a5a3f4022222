//! How long label spreading's choice takes at ensemble scale (issue 17: 30K members ≤ 5 s,
//! 135K ≤ 30 s on 2 cores): the kNN graph (k = 10, NN-descent), spreading's stratified
//! 5-fold estimate and the final spread with calibrated pseudo-labels, as
//! `choose_and_label` runs them with spreading alone, from 100 stratified hand labels.
//!
//! ```text
//! cargo run --release --example spreading_scale -- --latents X.npy [--labels Y.npy]
//! cargo run --release --example spreading_scale -- --synthetic 135000 [--dim 256]
//! ```
//! Without labels, or with `--synthetic` (10 Gaussian blobs, spread 1, centres ~N(0, 1) per
//! dimension), the classes are the nearest blob / the labels file's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sense::classify::{
    FeatureSet, LabelledSet, LabellerOptions, LabellerStep, SpreadingConfig, choose_and_label,
};
use sense::data::{ByteOrder, DType, Ensemble, RawArray, Shape};
use sense::task::TaskControl;

sense::process_allocator!();

const CLASSES: usize = 10;
const HAND_LABELS: usize = 100;

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let v: f32 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn synthetic(n: usize, dim: usize) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let centres: Vec<f32> = (0..CLASSES * dim).map(|_| gaussian(&mut rng)).collect();
    let classes: Vec<usize> = (0..n).map(|i| i % CLASSES).collect();
    let rows = Array2::from_shape_fn((n, dim), |(i, d)| {
        centres[classes[i] * dim + d] + 0.5 * gaussian(&mut rng)
    });
    (rows, classes)
}

fn read(latents: &Path, labels: Option<&Path>) -> Result<(Array2<f32>, Vec<usize>)> {
    let rows = sense::data::matrix::read_npy_matrix(latents)?;
    let classes = match labels {
        Some(path) => {
            let values: Vec<i64> = npyz::NpyFile::new(std::fs::File::open(path)?)?.into_vec()?;
            values
                .iter()
                .map(|&v| v.max(0) as usize % CLASSES)
                .collect()
        }
        None => (0..rows.nrows()).map(|i| i % CLASSES).collect(),
    };
    Ok((rows, classes))
}

fn main() -> Result<()> {
    let (mut latents, mut labels, mut count, mut dim) = (None::<PathBuf>, None, None, 256);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--latents" => latents = Some(value.into()),
            "--labels" => labels = Some(PathBuf::from(value)),
            "--synthetic" => count = Some(value.parse::<usize>()?),
            "--dim" => dim = value.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let (rows, classes) = match (latents, count) {
        (Some(path), _) => read(&path, labels.as_deref())?,
        (None, Some(n)) => synthetic(n, dim),
        (None, None) => bail!("pass --latents X.npy or --synthetic N"),
    };
    let n = rows.nrows();
    // Spreading reads only the ensemble's size and ids: one float per member will do.
    let ensemble = Ensemble::new(Arc::new(RawArray::from_bytes(
        Path::new("members.raw"),
        vec![0u8; n * 4],
        DType::F32,
        ByteOrder::Little,
        n,
        Shape::new(1, 1, 1),
    )?));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut members = Vec::new();
    for class in 0..CLASSES {
        let mut of_class: Vec<usize> = (0..n).filter(|&m| classes[m] == class).collect();
        for _ in 0..(HAND_LABELS / CLASSES).min(of_class.len()) {
            members.push(of_class.swap_remove(rng.random_range(0..of_class.len())));
        }
    }
    members.sort_unstable();
    let labelled = LabelledSet {
        classes: (0..CLASSES).map(|c| c.to_string()).collect(),
        targets: members.iter().map(|&m| classes[m] as u32).collect(),
        members,
    };
    let sets = [FeatureSet {
        name: "latent",
        rows: Arc::new(rows),
        start: None,
        start_is_current: false,
    }];
    let options = LabellerOptions {
        spreading: Some(SpreadingConfig::default()),
        classifier: None,
        keep_both: false,
        refresh: None,
        seed: 0,
    };
    let started = Instant::now();
    let mut last = Instant::now();
    let mut stages: Vec<(String, f64)> = Vec::new();
    let mut current = String::from("start");
    let outcome = choose_and_label(
        &ensemble,
        &labelled,
        &sets,
        &options,
        &TaskControl::new(),
        &mut |step| {
            if let LabellerStep::Stage(stage) = step {
                stages.push((
                    std::mem::replace(&mut current, stage.into()),
                    last.elapsed().as_secs_f64(),
                ));
                last = Instant::now();
            }
        },
    )?;
    stages.push((current, last.elapsed().as_secs_f64()));
    let total = started.elapsed().as_secs_f64();
    let right = outcome
        .predictions
        .iter()
        .filter(|p| p.class as usize == classes[p.member])
        .count();
    println!(
        "{n} × {} on {} threads: {total:.2} s in all; spreading 5-fold {:.3}; pseudo-labels {} \
         ({:.4} right)",
        sets[0].rows.ncols(),
        rayon::current_num_threads(),
        outcome
            .choice
            .accuracy_of(sense::classify::Labeller::Spreading)
            .unwrap_or(0.0),
        outcome.predictions.len(),
        right as f64 / outcome.predictions.len().max(1) as f64
    );
    for (stage, secs) in stages.iter().filter(|(s, _)| s != "start") {
        println!("  {stage:<32} {secs:.2} s");
    }
    Ok(())
}
