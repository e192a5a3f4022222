//! Pairwise Euclidean distances within a batch of latents.

use burn::tensor::Tensor;

/// Added under the square root so that d(z, z) = √ε instead of 0: the derivative of √x is
/// infinite at 0, and duplicate latents (common after collapse) would otherwise give NaN
/// gradients. Since |∂d/∂z| = |z_i − z_j| / √(|z_i − z_j|² + ε) ≤ 1, gradients stay bounded.
pub const SQRT_EPS: f64 = 1e-12;

/// Squared distances `[B, B]` from explicit differences (O(B²·D) memory). Unlike the
/// `|a|² + |b|² − 2a·b` expansion this has no cancellation: duplicates give exactly 0 and their
/// gradient is exactly 0.
pub fn pairwise_sq_distances(z: Tensor<2>) -> Tensor<2> {
    let [batch, dim] = z.dims();
    let rows = z.clone().unsqueeze_dim::<3>(1).expand([batch, batch, dim]);
    let cols = z.unsqueeze_dim::<3>(0).expand([batch, batch, dim]);
    (rows - cols).square().sum_dim(2).reshape([batch, batch])
}

/// Distances `[B, B]` as √(d² + [`SQRT_EPS`]) (finite gradients everywhere).
pub fn pairwise_distances(z: Tensor<2>) -> Tensor<2> {
    safe_sqrt(pairwise_sq_distances(z))
}

pub(super) fn safe_sqrt(sq: Tensor<2>) -> Tensor<2> {
    sq.add_scalar(SQRT_EPS).sqrt()
}
