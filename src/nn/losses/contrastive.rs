//! Contrastive loss (Hadsell, Chopra, LeCun 2006) over all labelled pairs of a batch.

use burn::tensor::{Int, Tensor};

use super::distance::{pairwise_sq_distances, safe_sqrt};

/// Mean over pairs i < j of y·D² + (1 − y)·max(0, m − D)², with D the Euclidean distance of
/// latents `z` `[B, D]`, y = 1 when `labels` `[B]` agree, and margin m. Returns `[1]`; 0 for
/// fewer than two rows.
pub fn contrastive_loss(z: Tensor<2>, labels: Tensor<1, Int>, margin: f64) -> Tensor<1> {
    let [batch, _] = z.dims();
    let device = z.device();
    if batch < 2 {
        return Tensor::zeros([1], &device);
    }
    let sq = pairwise_sq_distances(z);
    let dist = safe_sqrt(sq.clone());
    let same = labels
        .clone()
        .unsqueeze_dim::<2>(1)
        .expand([batch, batch])
        .equal(labels.unsqueeze_dim::<2>(0).expand([batch, batch]))
        .float();
    // Positives use D² directly (smooth at 0); negatives the hinge on the safe distance.
    let hinge = dist.neg().add_scalar(margin).clamp_min(0.0).square();
    let per_pair = same.clone() * sq + same.neg().add_scalar(1.0) * hinge;
    let upper = Tensor::<2>::ones([batch, batch], &device).triu(1);
    let pairs = (batch * (batch - 1) / 2) as f64;
    (per_pair * upper).sum().div_scalar(pairs)
}
