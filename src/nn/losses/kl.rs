//! KL divergence of a diagonal Gaussian posterior from the standard normal prior.

use burn::tensor::Tensor;

/// KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ_j (1 + log σ²_j − μ²_j − σ²_j), averaged over the batch.
///
/// `free_bits_nats` > 0 applies the free-bits floor of Kingma et al. (2016) per latent
/// dimension: Σ_j max(λ, mean_batch KL_j), so dimensions below λ nats are not pushed further
/// towards the prior (against posterior collapse). With λ = 0 this is exactly the plain KL.
///
/// `mu`, `logvar`: `[batch, latent_dim]`. Returns `[1]`.
pub fn kl_divergence(mu: Tensor<2>, logvar: Tensor<2>, free_bits_nats: f64) -> Tensor<1> {
    let per_dim = (logvar.clone().add_scalar(1.0) - mu.square() - logvar.exp()).mul_scalar(-0.5);
    let per_dim = per_dim.mean_dim(0);
    let per_dim = if free_bits_nats > 0.0 {
        per_dim.clamp_min(free_bits_nats)
    } else {
        per_dim
    };
    per_dim.sum()
}

/// Weight of the KL term in the SENSE loss: β · latent_dim / (H · W). Reconstruction is a mean
/// over pixels and KL a sum over latent dimensions; the ratio puts both on a per-unit scale so
/// that β keeps its meaning across image sizes and latent widths.
pub fn kl_weight(beta: f64, latent_dim: usize, height_px: usize, width_px: usize) -> f64 {
    beta * latent_dim as f64 / (height_px * width_px).max(1) as f64
}
