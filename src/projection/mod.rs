//! 2-D maps of latents (or any N×D matrix): UMAP with a warm start for the live view, PCA and
//! t-SNE. [`project`] is the one entry point the CLI (`sense embed`) and the app use.
//!
//! ```text
//! knn.rs         exact kNN and NN-descent (seeded, parallel, cancellable, warm-startable)
//! umap/          UMAP as umap-learn: fuzzy graph, a/b fit, SGD epoch loop
//! warm_start.rs  previous layout matched by id; new members placed by their old neighbours
//! pca.rs         PCA fit / transform / inverse transform (also the image-reconstruction baseline)
//! tsne.rs        t-SNE through manifolds-rs
//! procrustes.rs  similarity alignment of two layouts and the drift between them
//! subsample.rs   the live subsample of a large ensemble
//! ```

pub mod knn;
pub mod pca;
pub mod procrustes;
pub mod subsample;
pub mod tsne;
pub mod umap;
mod validate;
pub mod warm_start;

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::analysis::AnalysisResult;
use crate::task::TaskControl;

pub use knn::{Distance, KnnGraph, KnnSearch};
pub use pca::{Pca, PcaConfig};
pub use procrustes::{Alignment, procrustes};
pub use subsample::live_subsample;
pub use tsne::TsneConfig;
pub use umap::{Metric, UmapConfig};
pub use warm_start::PreviousLayout;

/// Which projection and its parameters (serialised with a `method` tag, e.g.
/// `{"method": "umap", "n_neighbors": 15}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum ProjectionConfig {
    Umap(UmapConfig),
    Pca(PcaConfig),
    Tsne(TsneConfig),
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self::Umap(UmapConfig::default())
    }
}

/// An N×2 layout, rows in the order of the input rows.
#[derive(Debug, Clone)]
pub struct Layout {
    pub coords: Array2<f32>,
    /// Optimisation epochs actually run (0 for PCA).
    pub epochs: usize,
    /// Whether the layout continued from a previous one.
    pub warm_started: bool,
    /// Members that were not in the previous layout and were placed by their neighbours.
    pub placed_new: usize,
    /// UMAP's kNN graph of the input rows, kept to start the next warm update's search from.
    pub knn: Option<Arc<KnnGraph>>,
}

/// An intermediate layout during optimisation, for an animated view.
pub struct LayoutFrame<'a> {
    pub epoch: usize,
    pub n_epochs: usize,
    pub coords: ArrayView2<'a, f32>,
}

/// Where intermediate layouts go: `sink` is called every `every_epochs` epochs (and after the
/// last) on the working thread, so it should be cheap (e.g. copy into a channel).
pub struct Frames<'a> {
    pub every_epochs: usize,
    pub sink: &'a mut dyn FnMut(LayoutFrame<'_>),
}

/// Projects the rows of `data` to 2-D.
///
/// `init` continues from a previous layout (UMAP only; PCA and t-SNE ignore it): members are
/// matched by id, see [`PreviousLayout::anchors`]. Polls `control` between stages and every
/// epoch, and reports progress per stage (`knn`, `graph`, `init`, `optimise`).
pub fn project(
    data: ArrayView2<f32>,
    config: &ProjectionConfig,
    init: Option<&warm_start::Anchors>,
    control: &TaskControl,
) -> AnalysisResult<Layout> {
    project_with_frames(data, config, init, control, None)
}

/// [`project`], streaming intermediate layouts to `frames` (UMAP only).
pub fn project_with_frames(
    data: ArrayView2<f32>,
    config: &ProjectionConfig,
    init: Option<&warm_start::Anchors>,
    control: &TaskControl,
    frames: Option<Frames<'_>>,
) -> AnalysisResult<Layout> {
    match config {
        ProjectionConfig::Umap(umap) => umap::embed(data, umap, init, control, frames),
        ProjectionConfig::Pca(PcaConfig {}) => {
            let fitted = Pca::fit(data, 2, control)?;
            Ok(Layout {
                coords: fitted.transform(data)?,
                epochs: 0,
                warm_started: false,
                placed_new: 0,
                knn: None,
            })
        }
        ProjectionConfig::Tsne(tsne) => tsne::embed(data, tsne, control),
    }
}
