//! One optimiser step, and the seeding that makes it repeatable.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::Engine;
use crate::data::Batch;
use crate::nn::Autoencoder;
use crate::train::events::TermWeights;
use crate::train::objective::DeviceLosses;

/// burn seeds its CPU backend's random generator process-wide: trainers in one process (tests,
/// an app comparing runs) hold this while they seed and draw, so each sees only its own seed.
static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(super) fn lock_device_rng() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding it leaves nothing inconsistent: the guard protects no data.
    DEVICE_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The inputs of one step besides the model and optimiser.
pub(super) struct StepInput<'a> {
    pub device: &'a Device,
    pub batch: &'a Batch,
    pub weights: &'a TermWeights,
    pub lr: f64,
    pub seed: u64,
    pub attempt: u64,
}

impl Engine {
    /// One optimiser step. Nothing is read back: the losses stay on the device, so the host
    /// can queue the next step while the device works. The step is taken even when the losses
    /// turn out non-finite; the caller notices at read-back and rolls back.
    pub(super) fn train_step(
        &self,
        model: Autoencoder,
        optim: &mut ModuleOptimizer,
        input: StepInput,
    ) -> (Autoencoder, DeviceLosses) {
        let StepInput {
            device,
            batch,
            weights,
            lr,
            seed,
            attempt,
        } = input;
        if self.config.inject_panic_at_attempts.contains(&attempt) {
            panic!("injected failure at step attempt {attempt}");
        }
        // Only models that draw random numbers in the forward pass need the lock held.
        let model_config = &self.config.model;
        let stochastic = model_config.kind.is_variational() || model_config.dropout > 0.0;
        let rng_guard = stochastic.then(lock_device_rng);
        device.seed(seed);
        let target =
            Tensor::<4>::from_data(TensorData::new(batch.data.clone(), batch.shape), device);
        let input = match self.config.variant.denoising_noise_std {
            sigma if sigma > 0.0 => {
                let noisy = add_noise(&batch.data, sigma as f32, seed);
                Tensor::<4>::from_data(TensorData::new(noisy, batch.shape), device)
            }
            _ => target.clone(),
        };
        let output = model.forward(input);
        drop(rng_guard);
        let supervision = self.supervision(weights, &batch.members, device);
        let scored = self
            .objective
            .score(&output, target, supervision.as_ref(), weights);
        let mut total = scored.total;
        let mut losses = scored.losses;
        if self.config.inject_non_finite_at_attempts.contains(&attempt) {
            total = total.mul_scalar(f64::NAN);
            losses.values = losses.values.mul_scalar(f64::NAN);
        }
        let grads = GradientsParams::from_grads(total.backward(), &model);
        (optim.step(lr, model, grads), losses)
    }
}

/// Seed of one step's random draws, from `(seed, epoch, step)` (SplitMix64 finaliser).
pub(super) fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn add_noise(data: &[f32], sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6E6F_6973_6521);
    match Normal::new(0.0f32, sigma) {
        Ok(normal) => data.iter().map(|v| v + normal.sample(&mut rng)).collect(),
        Err(_) => data.to_vec(), // σ was validated finite and positive
    }
}
