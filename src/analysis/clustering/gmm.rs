//! Gaussian mixture with full covariances: EM by linfa-clustering (k-means initialisation,
//! seeded), then the log-likelihood, assignments and BIC computed here from the fitted
//! parameters with a stable log-sum-exp (linfa exposes neither the likelihood nor a
//! log-space prediction; its `predict` exponentiates before summing, which underflows in high
//! dimensions).

use linfa::DatasetBase;
use linfa::prelude::{Fit, ParamGuard};
use linfa_clustering::{GaussianMixtureModel, GmmCovarType, GmmInitMethod};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ClusterMethod, Clustering, check_k, inertia};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// Defaults are scikit-learn's `GaussianMixture` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GmmOptions {
    /// Independent EM runs from different k-means initialisations; the highest likelihood
    /// wins (scikit-learn's `n_init`).
    pub n_restarts: usize,
    pub max_iterations: u64,
    /// EM stops when the mean per-member log-likelihood changes by less than this.
    pub tolerance: f64,
    /// Added to every covariance diagonal, keeping them positive definite.
    pub reg_covariance: f64,
}

impl Default for GmmOptions {
    fn default() -> Self {
        Self {
            n_restarts: 1,
            max_iterations: 100,
            tolerance: 1e-3,
            reg_covariance: 1e-6,
        }
    }
}

/// A fitted mixture and what model selection needs from it.
#[derive(Debug, Clone, PartialEq)]
pub struct GmmFit {
    pub weights: Array1<f64>,
    /// `k × dims` component means.
    pub means: Array2<f64>,
    /// Most probable component of each member.
    pub assignments: Vec<usize>,
    /// Total log-likelihood of the members, Σᵢ ln Σₖ πₖ N(xᵢ | μₖ, Σₖ).
    pub log_likelihood: f64,
    /// Free parameters: k·d means + k·d(d+1)/2 covariances + (k − 1) weights.
    pub n_parameters: usize,
    /// −2·logL + p·ln n, as scikit-learn's `GaussianMixture.bic`.
    pub bic: f64,
}

impl GmmFit {
    pub fn into_clustering(self, points: ArrayView2<f64>) -> Clustering {
        let k = self.weights.len();
        Clustering {
            method: ClusterMethod::Gmm,
            k,
            inertia: inertia(points, &self.assignments, k),
            assignments: self.assignments,
            log_likelihood: Some(self.log_likelihood),
            bic: Some(self.bic),
            dendrogram: None,
        }
    }
}

/// Fits a `k`-component full-covariance mixture to the (finite) `points`; restart `r` is
/// seeded with `seed + r`. Polls `control` between restarts (one EM run is not interruptible).
pub fn gmm(
    points: ArrayView2<f64>,
    k: usize,
    options: &GmmOptions,
    seed: u64,
    control: &TaskControl,
) -> AnalysisResult<GmmFit> {
    check_k(k, points.nrows())?;
    if options.n_restarts == 0 {
        return Err(AnalysisError::Invalid(
            "a Gaussian mixture needs at least one restart".into(),
        ));
    }
    let dataset = DatasetBase::new(points, ());
    let mut best: Option<GmmFit> = None;
    for restart in 0..options.n_restarts {
        control.check()?;
        let rng = Xoshiro256Plus::seed_from_u64(seed.wrapping_add(restart as u64));
        let model = GaussianMixtureModel::params_with_rng(k, rng)
            .covariance_type(GmmCovarType::Full)
            .init_method(GmmInitMethod::KMeans)
            .n_runs(1)
            .max_n_iterations(options.max_iterations)
            .tolerance(options.tolerance)
            .reg_covariance(options.reg_covariance)
            .check()
            .map_err(|e| AnalysisError::Invalid(format!("Gaussian mixture parameters: {e}")))?
            .fit(&dataset)
            .map_err(|e| {
                AnalysisError::Invalid(format!("Gaussian mixture with {k} components: {e}"))
            })?;
        let fit = evaluate(points, model.weights(), model.means(), model.covariances())?;
        if best
            .as_ref()
            .is_none_or(|b| fit.log_likelihood > b.log_likelihood)
        {
            best = Some(fit);
        }
        control.report("Gaussian mixture restarts", restart + 1, options.n_restarts);
    }
    best.ok_or_else(|| AnalysisError::Invalid("Gaussian mixture produced no fit".into()))
}

/// Log-likelihood, assignments and BIC of a mixture with the given parameters.
fn evaluate(
    points: ArrayView2<f64>,
    weights: &Array1<f64>,
    means: &Array2<f64>,
    covariances: &ndarray::Array3<f64>,
) -> AnalysisResult<GmmFit> {
    let (n, d) = points.dim();
    let k = weights.len();
    let components = (0..k)
        .map(|c| {
            let chol = cholesky(covariances.index_axis(ndarray::Axis(0), c)).ok_or_else(|| {
                AnalysisError::Invalid(format!(
                    "Gaussian mixture: covariance of component {c} is not positive definite"
                ))
            })?;
            let log_det = 2.0 * chol.diag().iter().map(|v| v.ln()).sum::<f64>();
            let log_norm =
                weights[c].ln() - 0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det);
            Ok((chol, log_norm))
        })
        .collect::<AnalysisResult<Vec<_>>>()?;

    let per_member: Vec<(usize, f64)> =
        (0..n)
            .into_par_iter()
            .map(|i| {
                let mut scratch = vec![0.0; d];
                let log_probs: Vec<f64> = components
                    .iter()
                    .zip(means.rows())
                    .map(|((chol, log_norm), mean)| {
                        log_norm
                            - 0.5 * mahalanobis_squared(chol, points.row(i), mean, &mut scratch)
                    })
                    .collect();
                let (best, max) = log_probs.iter().copied().enumerate().fold(
                    (0, f64::NEG_INFINITY),
                    |b, (c, v)| if v > b.1 { (c, v) } else { b },
                );
                let sum: f64 = log_probs.iter().map(|v| (v - max).exp()).sum();
                (best, max + sum.ln())
            })
            .collect();

    let log_likelihood: f64 = per_member.iter().map(|(_, l)| l).sum();
    if !log_likelihood.is_finite() {
        return Err(AnalysisError::Invalid(
            "Gaussian mixture: the log-likelihood is not finite".into(),
        ));
    }
    let n_parameters = k * d + k * d * (d + 1) / 2 + k - 1;
    Ok(GmmFit {
        weights: weights.clone(),
        means: means.clone(),
        assignments: per_member.into_iter().map(|(c, _)| c).collect(),
        log_likelihood,
        n_parameters,
        bic: -2.0 * log_likelihood + n_parameters as f64 * (n as f64).ln(),
    })
}

/// Lower Cholesky factor L (Σ = L·Lᵀ), or `None` if Σ is not positive definite.
fn cholesky(sigma: ArrayView2<f64>) -> Option<Array2<f64>> {
    let d = sigma.nrows();
    let mut l = Array2::<f64>::zeros((d, d));
    for j in 0..d {
        let diag = sigma[[j, j]] - (0..j).map(|m| l[[j, m]] * l[[j, m]]).sum::<f64>();
        if diag.is_nan() || diag <= 0.0 {
            return None;
        }
        let ljj = diag.sqrt();
        l[[j, j]] = ljj;
        for i in j + 1..d {
            let off = sigma[[i, j]] - (0..j).map(|m| l[[i, m]] * l[[j, m]]).sum::<f64>();
            l[[i, j]] = off / ljj;
        }
    }
    Some(l)
}

/// (x − μ)ᵀ Σ⁻¹ (x − μ) = |L⁻¹(x − μ)|², by forward substitution into `y`.
fn mahalanobis_squared(
    chol: &Array2<f64>,
    x: ArrayView1<f64>,
    mean: ArrayView1<f64>,
    y: &mut [f64],
) -> f64 {
    let d = y.len();
    // `chol` is built in standard layout by `cholesky`, so its rows are contiguous.
    let Some(l) = chol.as_slice() else {
        return f64::NAN;
    };
    let mut total = 0.0;
    for i in 0..d {
        let row = &l[i * d..i * d + i];
        let dot: f64 = row.iter().zip(&y[..i]).map(|(a, b)| a * b).sum();
        y[i] = (x[i] - mean[i] - dot) / l[i * d + i];
        total += y[i] * y[i];
    }
    total
}
