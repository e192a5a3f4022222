//! What the model shows after each epoch: validation losses and image quality, a gallery of
//! reconstructions, latent codes.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use std::sync::Arc;

use super::losses::LossSums;
use super::setup::Setup;
use super::{Engine, Flow, Halt};
use crate::nn::Autoencoder;
use crate::train::events::{Latents, Losses, Reconstruction, TrainEvent};
use crate::train::metrics::{Quality, QualityAccumulator};
use crate::train::run_dir::TrainerState;

pub(super) struct Validation {
    pub losses: Losses,
    pub quality: Option<Quality>,
}

impl Engine {
    pub(super) fn validate(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        state: &TrainerState,
        epoch: usize,
    ) -> Flow<Option<Validation>> {
        if setup.split.val.is_empty() {
            return Ok(None);
        }
        let valid = model.valid();
        let device = setup.backend.device.clone();
        let weights = state.schedule.weights(&self.config, epoch, 1.0);
        let mut sums = LossSums::default();
        let mut quality = QualityAccumulator::default();
        let batch_size = self.config.optimizer.batch_size;
        for batch in self.eval_loader(setup, setup.split.val.clone(), batch_size)? {
            self.check_stop()?;
            let batch = batch?;
            let x =
                Tensor::<4>::from_data(TensorData::new(batch.data.clone(), batch.shape), &device);
            let output = valid.forward(x.clone());
            let supervision = self.supervision(&weights, &batch.members, &device);
            let scored = self
                .objective
                .score(&output, x, supervision.as_ref(), &weights);
            let losses = scored
                .losses
                .read()
                .map_err(|e| Halt::Error(format!("cannot read the validation losses back: {e}")))?;
            sums.add(&losses, batch.len());
            let recon = to_vec(output.recon);
            quality.add(
                &batch.data,
                &recon,
                batch.shape,
                &setup.norm,
                &setup.ranges,
                setup.mean_image.as_deref(),
                &device,
            );
        }
        Ok(Some(Validation {
            losses: sums.mean(),
            quality: quality.finish(setup.mean_image.is_some()),
        }))
    }

    pub(super) fn send_reconstructions(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        epoch: usize,
    ) -> Flow<()> {
        if setup.recon_members.is_empty() {
            return Ok(());
        }
        let valid = model.valid();
        let device = setup.backend.device.clone();
        let shape = setup.sample_shape;
        let mut images = Vec::new();
        for batch in self.eval_loader(setup, setup.recon_members.clone(), 64)? {
            let batch = batch?;
            let x =
                Tensor::<4>::from_data(TensorData::new(batch.data.clone(), batch.shape), &device);
            let recon = to_vec(valid.forward(x).recon);
            for (i, &member) in batch.members.iter().enumerate() {
                let mut original = batch.sample(i).to_vec();
                let mut reconstruction = recon[i * shape.len()..(i + 1) * shape.len()].to_vec();
                setup.norm.invert(&mut original, shape);
                setup.norm.invert(&mut reconstruction, shape);
                images.push(Reconstruction {
                    member,
                    id: self.ensemble.member_id(member),
                    shape: [shape.channels, shape.height, shape.width],
                    original,
                    reconstruction,
                });
            }
        }
        // For a process following the run (the app, watching a cluster job).
        if let Some(live) = &self.live {
            live.reconstructions(epoch, images.clone());
        }
        self.events
            .send(TrainEvent::Reconstructions { epoch, images });
        Ok(())
    }

    /// Latent codes (μ for a VAE) of `members`, row-major.
    pub(super) fn encode(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        members: &[usize],
    ) -> Flow<Vec<f32>> {
        let valid = model.valid();
        let device = setup.backend.device.clone();
        let mut values = Vec::with_capacity(members.len() * self.config.model.latent_dim);
        for batch in self.eval_loader(setup, members.to_vec(), 256)? {
            self.check_stop()?;
            let batch = batch?;
            let x = Tensor::<4>::from_data(TensorData::new(batch.data, batch.shape), &device);
            values.extend(to_vec(valid.encode(x)));
        }
        Ok(values)
    }

    pub(super) fn send_latents(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        epoch: usize,
    ) -> Flow<()> {
        let members = setup.eval_members.clone();
        let values = self.encode(setup, model, &members)?;
        let ids = members
            .iter()
            .map(|&m| self.ensemble.member_id(m))
            .collect();
        let latents = Latents {
            epoch,
            members,
            ids: Arc::new(ids),
            dim: self.config.model.latent_dim,
            values,
        };
        if let Some(live) = &self.live {
            live.latents(latents.clone());
        }
        self.events.send(TrainEvent::Latents(latents));
        Ok(())
    }
}

pub(super) fn to_vec<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.try_into_vec_as::<f32>().unwrap_or_default()
}
