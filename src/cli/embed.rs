//! `sense embed`: project latents (or any N×D `.npy`) to 2-D with UMAP, PCA or t-SNE.
//!
//! Writes `OUT` (f32 N×2 `.npy`) and `OUT` with the extension `ids.csv` (`index,id`, the
//! members in row order). `--init PREV.npy` warm-starts UMAP from an earlier layout: members are
//! matched by the ids in `PREV.ids.csv` when it exists, else row by row. A UMAP layout also
//! gets `OUT` with the extension `knn.npy` (uint32 N×(n_neighbors − 1), the kNN graph in row
//! order): a warm start from it searches the new neighbours from the old ones instead of
//! from scratch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use ndarray::Axis;

use super::matrix_input::{RowsWithIds, labels_for, read_rows};
use crate::data::matrix::{
    Matrix, ids_path, read_latent_ids, read_matrix, read_npy_indices, read_npy_matrix,
    write_matrix_with_ids, write_npy_indices,
};
use crate::data::row_labels::LabelKind;
use crate::projection::warm_start::Anchors;
use crate::projection::{
    KnnGraph, Metric, PreviousLayout, ProjectionConfig, TsneConfig, UmapConfig, live_subsample,
    project,
};
use crate::task::TaskControl;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Latents: an N×D float32/float64 `.npy`, or a run directory (latents.npy + latent_ids.csv).
    #[arg(long)]
    pub latents: PathBuf,
    #[arg(long, value_enum, default_value = "umap")]
    pub method: Method,
    /// A previous layout (N×2 `.npy`) to continue from (UMAP only).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// UMAP neighbourhood size, the point itself included (as umap-learn).
    #[arg(long, default_value_t = 15)]
    pub n_neighbors: usize,
    #[arg(long, default_value_t = 0.1)]
    pub min_dist: f32,
    /// Optimisation epochs; default: UMAP 500 up to 10K members else 200 (warm start 40),
    /// t-SNE 1000.
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value = "euclidean")]
    pub metric: Metric,
    /// t-SNE perplexity.
    #[arg(long, default_value_t = 30.0)]
    pub perplexity: f32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Optimise the UMAP layout on every core (Hogwild, as umap-learn without a seed): faster,
    /// but the layout then varies a little from run to run with the same seed.
    #[arg(long)]
    pub parallel: bool,
    /// Embed at most this many members (a seeded subsample; the members `--labels` labels are
    /// always kept): the live map of a very large ensemble. Default: every member.
    #[arg(long)]
    pub max_members: Option<usize>,
    /// Members to keep in a `--max-members` subsample: an `id,label` CSV or a label store.
    #[arg(long, requires = "max_members")]
    pub labels: Option<PathBuf>,
    /// Output layout (N×2 float32 `.npy`).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Umap,
    Pca,
    Tsne,
}

/// Where a UMAP layout's kNN graph lives: `Y.npy` → `Y.knn.npy`.
pub fn knn_path(layout: &Path) -> PathBuf {
    layout.with_extension("knn.npy")
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    // Checked before the (long) projection; a run's latents.npy is one click from gone.
    crate::train::run_dir::refuse_overwrite(&args.out, args.force)?;
    let matrix = match args.max_members {
        Some(max) => subsample(
            read_rows(&args.latents)?,
            max,
            args.labels.as_deref(),
            args.seed,
        )?,
        None => read_matrix(&args.latents)?,
    };
    let config = match args.method {
        Method::Umap => {
            let mut umap = UmapConfig {
                n_neighbors: args.n_neighbors,
                min_dist: args.min_dist,
                metric: args.metric,
                seed: args.seed,
                deterministic: !args.parallel,
                ..UmapConfig::default()
            };
            if let Some(epochs) = args.epochs {
                match args.init {
                    Some(_) => umap.warm_epochs = epochs,
                    None => umap.epochs = Some(epochs),
                }
            }
            ProjectionConfig::Umap(umap)
        }
        Method::Pca => ProjectionConfig::Pca(Default::default()),
        Method::Tsne => ProjectionConfig::Tsne(TsneConfig {
            perplexity: args.perplexity,
            epochs: args.epochs.unwrap_or(TsneConfig::default().epochs),
            metric: args.metric,
            seed: args.seed,
        }),
    };
    let anchors = match &args.init {
        None => None,
        Some(_) if args.method != Method::Umap => {
            bail!("--init (warm start) works with --method umap only")
        }
        Some(prev) => Some(previous_anchors(prev, &matrix.ids)?),
    };

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let sink = bar.clone();
    let control = TaskControl::new().with_progress(move |p| {
        sink.set_message(p.stage);
        sink.set_length(p.total as u64);
        sink.set_position(p.done as u64);
    });
    let started = Instant::now();
    let layout = project(matrix.values.view(), &config, anchors.as_ref(), &control)
        .with_context(|| format!("embedding {}", matrix.path.display()))?;
    bar.finish_and_clear();

    write_matrix_with_ids(&args.out, layout.coords.view(), &matrix.ids)?;
    if let Some(knn) = &layout.knn {
        write_npy_indices(&knn_path(&args.out), knn.n_rows(), knn.k(), knn.indices())?;
    }
    if !args.quiet {
        let (n, dim) = matrix.values.dim();
        let warm = if layout.warm_started {
            format!(", warm start ({} new members placed)", layout.placed_new)
        } else {
            String::new()
        };
        eprintln!(
            "{n} × {dim} → {} in {:.1} s ({} epochs{warm})",
            args.out.display(),
            started.elapsed().as_secs_f64(),
            layout.epochs
        );
    }
    Ok(())
}

/// At most `max` rows of `rows`, always with the members `labels` labels.
fn subsample(
    rows: RowsWithIds,
    max: usize,
    labels: Option<&Path>,
    seed: u64,
) -> anyhow::Result<Matrix> {
    let always = match labels {
        Some(path) => labels_for(&rows, path, LabelKind::Manual)?.rows,
        None => Vec::new(),
    };
    let matrix = rows.matrix;
    let keep = live_subsample(matrix.values.nrows(), max, &always, seed)?;
    Ok(Matrix {
        values: matrix.values.select(Axis(0), &keep),
        ids: keep.iter().map(|&i| matrix.ids[i].clone()).collect(),
        path: matrix.path,
    })
}

/// The previous layout's positions for the current members: by id when `PREV.ids.csv`
/// exists, else row by row (then the row counts must agree).
fn previous_anchors(prev: &Path, ids: &[String]) -> anyhow::Result<Anchors> {
    let coords = read_npy_matrix(prev)?;
    let prev_ids = ids_path(prev);
    let anchors = if prev_ids.exists() {
        let previous = PreviousLayout {
            ids: read_latent_ids(&prev_ids, coords.nrows())?,
            knn: previous_knn(prev, coords.nrows())?,
            coords,
        };
        previous.anchors(ids)
    } else {
        if coords.nrows() != ids.len() {
            bail!(
                "{}: {} rows for {} members, and no {} to match them by id",
                prev.display(),
                coords.nrows(),
                ids.len(),
                prev_ids.display()
            );
        }
        let knn = previous_knn(prev, coords.nrows())?;
        Anchors::from_layout(coords.view()).map(|mut anchors| {
            anchors.knn_start = knn.map(|graph| (*graph).clone());
            anchors
        })
    };
    anchors.with_context(|| format!("warm start from {}", prev.display()))
}

/// The kNN graph saved beside a previous layout, if there is one.
fn previous_knn(prev: &Path, rows: usize) -> anyhow::Result<Option<Arc<KnnGraph>>> {
    let path = knn_path(prev);
    if !path.exists() {
        return Ok(None);
    }
    let (n, k, indices) = read_npy_indices(&path)?;
    if n != rows {
        bail!(
            "{}: a kNN graph of {n} rows beside a layout of {rows}",
            path.display()
        );
    }
    let graph = KnnGraph::from_indices(n, k, indices).with_context(|| {
        format!(
            "{}: not a kNN graph (neighbour out of range, or a row listing itself)",
            path.display()
        )
    })?;
    Ok(Some(Arc::new(graph)))
}
