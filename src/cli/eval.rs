//! `sense eval`: how well an embedding separates the labelled classes — silhouette,
//! separability and neighbourhood hit (k = 17), trustworthiness (k = 10, with the latents it
//! came from) and kNN accuracy; with the latents also a linear probe (logistic regression on
//! the latents, held-out accuracy).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use ndarray::{Array2, Axis};

use super::matrix_input::{labels_for, read_rows};
use serde::Serialize;

use crate::analysis::embedding_metrics::{self, EmbeddingScores, NeighbourCounts, Sampling};
use crate::analysis::linear_probe::{ProbeOptions, ProbeResult, ProbeSplit, linear_probe};
use crate::data::row_labels::LabelKind;
use crate::task::TaskControl;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The embedding: a layout from `sense embed` (Y.npy + Y.ids.csv), a run directory (its
    /// latents), or any N×D `.npy`.
    #[arg(long)]
    pub embedding: PathBuf,
    /// Class labels: `id,label` CSV or a label store (its hand labels).
    #[arg(long)]
    pub labels: PathBuf,
    /// The high-dimensional data the embedding came from (run directory or `.npy`), for
    /// trustworthiness; members matched by id.
    #[arg(long)]
    pub latents: Option<PathBuf>,
    /// Also count pseudo-labels of a label store.
    #[arg(long)]
    pub pseudo: bool,
    /// Score every member even when that takes long (default: a stratified sample above
    /// ~50K members, reported as such).
    #[arg(long)]
    pub exact: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let embedding = read_rows(&args.embedding)?;
    let kind = match args.pseudo {
        true => LabelKind::ManualOrPseudo,
        false => LabelKind::Manual,
    };
    let labels = labels_for(&embedding, &args.labels, kind)?;
    let points = embedding.matrix.values.select(Axis(0), &labels.rows);
    let high = match &args.latents {
        Some(path) => Some(matching_rows(path, &embedding.matrix.ids, &labels.rows)?),
        None => None,
    };
    let sampling = match args.exact {
        true => Sampling::exact(),
        false => Sampling::default(),
    };
    let control = TaskControl::new();
    let scores = embedding_metrics::embedding_scores(
        points.view(),
        &labels.classes,
        high.as_ref().map(Array2::view),
        &sampling,
        &control,
    )?;
    let probe = match &high {
        Some(high) => Some(linear_probe(
            high.view(),
            &labels.classes,
            &ProbeSplit::default(),
            &ProbeOptions::default(),
            &control,
        )?),
        None => None,
    };
    let output = EvalOutput {
        scores,
        linear_probe_accuracy: probe.as_ref().map(|p| p.test_accuracy),
    };
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&output)?),
        false => {
            print_scores(
                &output.scores,
                labels.rows.len(),
                embedding.matrix.values.nrows(),
                &labels.class_names,
            );
            print_probe(probe.as_ref());
        }
    }
    Ok(())
}

/// The JSON `sense eval` prints: the embedding scores, and the probe when latents were given.
#[derive(Debug, Serialize)]
struct EvalOutput {
    #[serde(flatten)]
    scores: EmbeddingScores,
    #[serde(skip_serializing_if = "Option::is_none")]
    linear_probe_accuracy: Option<f64>,
}

fn print_probe(probe: Option<&ProbeResult>) {
    match probe {
        Some(p) => println!(
            "linear probe      {:.4}  (logistic regression on the latents; {} train / {} held out)",
            p.test_accuracy, p.n_train, p.n_test
        ),
        None => println!("linear probe      -       (needs --latents)"),
    }
}

/// Rows of the matrix at `path` for the members `ids[rows]`, matched by id.
fn matching_rows(
    path: &std::path::Path,
    ids: &[String],
    rows: &[usize],
) -> anyhow::Result<Array2<f32>> {
    let high = read_rows(path)?;
    let index: HashMap<&str, usize> = high
        .matrix
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut picked = Vec::with_capacity(rows.len());
    for &row in rows {
        match index.get(ids[row].as_str()) {
            Some(&i) => picked.push(i),
            None => bail!(
                "{}: member `{}` of the embedding is not in these latents",
                high.matrix.path.display(),
                ids[row]
            ),
        }
    }
    Ok(high.matrix.values.select(Axis(0), &picked))
}

fn print_scores(scores: &EmbeddingScores, labelled: usize, total: usize, classes: &[String]) {
    println!(
        "{labelled} of {total} members labelled, {} classes{}",
        classes.len(),
        scores.sampled_members.map_or(String::new(), |n| format!(
            " (scores on a stratified sample of {n})"
        ))
    );
    let k = scores
        .reduced_neighbours
        .unwrap_or(NeighbourCounts::STANDARD);
    if scores.reduced_neighbours.is_some() {
        println!(
            "note: only {labelled} labelled members: neighbourhood metrics use smaller k than \
             the standard 17 / 10 / 5, so they compare only with runs scored the same way"
        );
    }
    println!("silhouette        {:.4}", scores.silhouette);
    println!(
        "separability      {:.4}  (kNN vote, k = {})",
        scores.separability, k.class
    );
    println!(
        "neighbourhood_hit {:.4}  (k = {})",
        scores.neighbourhood_hit, k.class
    );
    match scores.trustworthiness {
        Some(t) => println!("trustworthiness   {t:.4}  (k = {})", k.trustworthiness),
        None => println!("trustworthiness   -       (needs --latents)"),
    }
    println!(
        "knn_accuracy      {:.4}  (k = {})",
        scores.knn_accuracy, k.knn
    );
}
