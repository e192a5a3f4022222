//! Label spreading on MNIST from a few hand labels (issue 17's first target): the 60K
//! training and 10K test images (pixels / 255) reduced to 50 principal components, a kNN graph
//! over all 70K, N stratified hand labels of the training set spread over it, and the accuracy
//! on the test set; with spreading's own stratified 5-fold estimate from the N labels.
//!
//! ```text
//! cargo run --release --example spreading_mnist -- [--mnist ../shared/datasets/mnist]
//!     [--labels 100,250,1000,2500] [--seeds 0,1,2] [--k 10]
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{Array2, concatenate};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sense::classify::{SpreadingConfig, cross_validate, spread_labels};
use sense::projection::{Distance, KnnSearch, Pca};
use sense::task::TaskControl;

sense::process_allocator!();

fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(path).with_context(|| path.display().to_string())?,
    )
    .read_to_end(&mut bytes)?;
    let ndim = usize::from(*bytes.get(3).context("short IDX")?);
    let shape: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    Ok((shape, bytes[4 + 4 * ndim..].to_vec()))
}

fn images(dir: &Path, split: &str) -> Result<(Array2<f32>, Vec<usize>)> {
    let (shape, pixels) = read_idx(&dir.join(format!("{split}-images.idx3-ubyte.gz")))?;
    let (_, labels) = read_idx(&dir.join(format!("{split}-labels.idx1-ubyte.gz")))?;
    let values = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let images = Array2::from_shape_vec((shape[0], shape[1] * shape[2]), values)?;
    Ok((images, labels.iter().map(|&l| usize::from(l)).collect()))
}

fn list(text: &str) -> Result<Vec<usize>> {
    text.split(',').map(|v| Ok(v.trim().parse()?)).collect()
}

fn main() -> Result<()> {
    let (mut dir, mut counts, mut seeds, mut k) = (
        PathBuf::from("../shared/datasets/mnist"),
        vec![100, 250, 1000, 2500],
        vec![0, 1, 2],
        10,
    );
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--mnist" => dir = value.into(),
            "--labels" => counts = list(&value)?,
            "--seeds" => seeds = list(&value)?.into_iter().map(|s| s as u64).collect(),
            "--k" => k = value.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let (train, train_y) = images(&dir, "train")?;
    let (test, test_y) = images(&dir, "t10k")?;
    let all = concatenate![ndarray::Axis(0), train, test];
    let control = TaskControl::new();
    let started = Instant::now();
    let features = Pca::fit(all.view(), 50, &control)?.transform(all.view())?;
    let pca_s = started.elapsed().as_secs_f64();
    let values = features.as_standard_layout().to_owned();
    let started = Instant::now();
    let graph = KnnSearch {
        data: values.as_slice().context("contiguous")?,
        n_rows: values.nrows(),
        dim: values.ncols(),
        k,
        distance: Distance::Euclidean,
        seed: 0,
    }
    .nn_descent(None, &|| false, &|_, _| {})?;
    let knn_s = started.elapsed().as_secs_f64();
    println!(
        "70K × 784 → PCA-50 {pca_s:.1} s; kNN (k = {k}) {knn_s:.1} s; {} threads",
        rayon::current_num_threads()
    );
    println!("| hand labels | seed | test accuracy | 5-fold estimate | majority rate | spread s |");
    println!("|---|---|---|---|---|---|");
    let n_train = train_y.len();
    let config = SpreadingConfig::default();
    for &count in &counts {
        for &seed in &seeds {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut labels = vec![None; values.nrows()];
            for class in 0..10 {
                let mut rows: Vec<usize> = (0..n_train).filter(|&r| train_y[r] == class).collect();
                rows.shuffle(&mut rng);
                for &r in rows.iter().take(count / 10) {
                    labels[r] = Some(class);
                }
            }
            let started = Instant::now();
            let spread = spread_labels(&graph, &labels, 10, &config, &control)?;
            let spread_s = started.elapsed().as_secs_f64();
            let correct = (0..test_y.len())
                .filter(|&t| spread.prediction(n_train + t).map(|p| p.0) == Some(test_y[t]))
                .count();
            let cv = cross_validate(&graph, &labels, 10, &config, 5, seed, &control)?;
            println!(
                "| {count} | {seed} | {:.4} | {:.4} | {:.3} | {spread_s:.2} |",
                correct as f64 / test_y.len() as f64,
                cv.accuracy,
                cv.majority_rate
            );
        }
    }
    Ok(())
}
