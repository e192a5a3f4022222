//! t-SNE through manifolds-rs (Barnes-Hut repulsion, PCA initialisation). The crate runs the
//! whole optimisation in one call: cancellation is checked before and after it only, and no
//! intermediate layouts are available.

use manifolds_rs::TsneParams;
use manifolds_rs::data::nearest_neighbours::NearestNeighbourParams;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::umap::{EXACT_KNN_MAX_ROWS, Metric};
use super::{Layout, validate};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TsneConfig {
    pub perplexity: f32,
    pub epochs: usize,
    pub metric: Metric,
    pub seed: u64,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            epochs: 1000,
            metric: Metric::Euclidean,
            seed: 42,
        }
    }
}

pub(crate) fn embed(
    data: ArrayView2<f32>,
    config: &TsneConfig,
    control: &TaskControl,
) -> AnalysisResult<Layout> {
    let n = data.nrows();
    validate::check_matrix(data, "data to embed", 3)?;
    if !(config.perplexity.is_finite() && config.perplexity > 0.0) {
        return Err(AnalysisError::Invalid(format!(
            "perplexity must be positive, not {}",
            config.perplexity
        )));
    }
    // The crate searches 3·perplexity neighbours, which must exist.
    let needed = (3.0 * config.perplexity).ceil() as usize + 1;
    if needed >= n {
        return Err(AnalysisError::Invalid(format!(
            "perplexity {} needs more than {needed} members; there are {n}",
            config.perplexity
        )));
    }
    if config.epochs == 0 {
        return Err(AnalysisError::Invalid("epochs must be at least 1".into()));
    }
    control.check()?;
    control.report("tsne", 0, 1);
    let contiguous = data.as_standard_layout();
    let values = contiguous
        .as_slice()
        .ok_or_else(|| AnalysisError::Invalid("data is not contiguous".into()))?;
    let mut params = TsneParams::<f32>::new_default_2d(Some(config.perplexity));
    params.optim_params.n_epochs = config.epochs;
    params.optim_params.early_exag_iter =
        params.optim_params.early_exag_iter.min(config.epochs / 4);
    params.ann_type = if n <= EXACT_KNN_MAX_ROWS {
        "exhaustive"
    } else {
        "nndescent"
    }
    .to_string();
    params.nn_params = NearestNeighbourParams {
        dist_metric: match config.metric {
            Metric::Euclidean => "euclidean",
            Metric::Cosine => "cosine",
        }
        .to_string(),
        ..NearestNeighbourParams::default()
    };
    let columns = manifolds_rs::tsne(
        (values, n, data.ncols()),
        None,
        &params,
        "bh",
        config.seed as usize,
        0,
    )
    .map_err(|e| AnalysisError::Invalid(format!("t-SNE: {e}")))?;
    control.check()?;
    control.report("tsne", 1, 1);
    let [x, y] = columns.as_slice() else {
        return Err(AnalysisError::Invalid(
            "t-SNE returned a layout that is not 2-D".into(),
        ));
    };
    let coords = Array2::from_shape_fn((n, 2), |(i, d)| if d == 0 { x[i] } else { y[i] });
    if let Some(row) = coords
        .rows()
        .into_iter()
        .position(|r| !(r[0].is_finite() && r[1].is_finite()))
    {
        return Err(AnalysisError::NonFinite {
            what: "t-SNE layout",
            row,
        });
    }
    Ok(Layout {
        coords,
        epochs: config.epochs,
        warm_started: false,
        placed_new: 0,
        knn: None,
    })
}
