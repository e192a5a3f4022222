//! Differentiable training losses (burn tensor ops) and an exact silhouette for reference.
//!
//! Every loss returns a one-element tensor `[1]` that takes part in autodiff when its inputs
//! do. [`TotalLoss`] computes the terms SENSE trains on, unweighted; the trainer's `Objective`
//! (`crate::train`) combines them: `L = L_rec (+ w_KL·KL) + λ_cl·L_cl + λ_con·L_con`.

mod contrastive;
mod distance;
mod kl;
mod reconstruction;
mod silhouette;
mod total;

pub use contrastive::contrastive_loss;
pub use distance::{pairwise_distances, pairwise_sq_distances};
pub use kl::{kl_divergence, kl_weight};
pub use reconstruction::{ReconstructionLoss, SsimConfig, mse, mse_ssim, ssim};
pub use silhouette::{silhouette_exact, soft_silhouette_loss, soft_silhouette_score};
pub use total::{LossConfig, LossTerms, Supervision, TotalLoss};
