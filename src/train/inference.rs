//! A trained model loaded back from its run directory, for what comes after training:
//! reconstructions of chosen members, their latents, and decoding arbitrary latent points
//! (the report, the app's inspector and its interpolation strip).

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;
use std::path::Path;

use super::backend::SelectedBackend;
use super::config::TrainConfig;
use super::events::Reconstruction;
use super::run_dir::{self as files, BEST, CHECKPOINT, MODEL_FILE};
use super::worker::Trainer;
use crate::data::{Ensemble, Normalization, Shape, Split};
use crate::error::{DataError, DataResult};
use crate::nn::Autoencoder;

/// Members per forward pass.
const BATCH_MEMBERS: usize = 64;

/// Which weights of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointChoice {
    /// The best validation epoch (`best/`), else the last checkpoint.
    #[default]
    Best,
    /// The last completed epoch (`checkpoint/`).
    Last,
}

pub struct TrainedModel {
    model: Autoencoder,
    device: Device,
    pub config: TrainConfig,
    pub normalization: Normalization,
    pub split: Split,
    pub shape: Shape,
}

impl TrainedModel {
    /// Loads the run in `run_dir` for members of shape `shape` (the ensemble it was trained
    /// on) onto `backend`.
    pub fn load(
        run_dir: &Path,
        shape: Shape,
        choice: CheckpointChoice,
        backend: &SelectedBackend,
    ) -> DataResult<Self> {
        let config = Trainer::load_config(run_dir)?;
        let normalization: Normalization = files::read_json(&run_dir.join(files::NORMALIZATION))?;
        let split: Split = files::read_json(&run_dir.join(files::SPLIT))?;
        let model_path = [BEST, CHECKPOINT]
            .iter()
            .skip(usize::from(choice == CheckpointChoice::Last))
            .map(|dir| run_dir.join(dir).join(MODEL_FILE))
            .find(|path| path.is_file())
            .ok_or_else(|| DataError::new(run_dir, "no model checkpoint in this run directory"))?;
        let device = backend.device.clone();
        let model = config
            .model
            .init(shape, &device.clone().autodiff())
            .map_err(|e| DataError::new(run_dir.join(files::CONFIG), e.to_string()))?
            .try_load_file(&model_path)
            .map_err(|e| {
                DataError::new(
                    &model_path,
                    format!("cannot load the model (trained on other data?): {e}"),
                )
            })?
            .valid();
        Ok(Self {
            model,
            device,
            config,
            normalization,
            split,
            shape,
        })
    }

    pub fn latent_dim(&self) -> usize {
        self.config.model.latent_dim
    }

    /// Normalised members, concatenated (decoded in parallel).
    fn normalised_batch(&self, ensemble: &Ensemble, members: &[usize]) -> DataResult<Vec<f32>> {
        let len = self.shape.len();
        let mut data = vec![0.0; members.len() * len];
        data.par_chunks_mut(len)
            .zip(members)
            .try_for_each(|(out, &member)| {
                ensemble.source.read_f32(member, out)?;
                self.normalization.apply(out, self.shape);
                Ok::<_, DataError>(())
            })?;
        Ok(data)
    }

    fn input(&self, data: Vec<f32>, batch: usize) -> Tensor<4> {
        let dims = [
            batch,
            self.shape.channels,
            self.shape.height,
            self.shape.width,
        ];
        Tensor::from_data(TensorData::new(data, dims), &self.device)
    }

    /// Originals and reconstructions of `members`, in data units.
    pub fn reconstruct(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
    ) -> DataResult<Vec<Reconstruction>> {
        let len = self.shape.len();
        let mut out = Vec::with_capacity(members.len());
        for chunk in members.chunks(BATCH_MEMBERS) {
            let data = self.normalised_batch(ensemble, chunk)?;
            let recon = to_vec(
                self.model
                    .forward(self.input(data.clone(), chunk.len()))
                    .recon,
            );
            for (i, &member) in chunk.iter().enumerate() {
                let mut original = data[i * len..(i + 1) * len].to_vec();
                let mut reconstruction = recon[i * len..(i + 1) * len].to_vec();
                self.normalization.invert(&mut original, self.shape);
                self.normalization.invert(&mut reconstruction, self.shape);
                out.push(Reconstruction {
                    member,
                    id: ensemble.member_id(member),
                    shape: [self.shape.channels, self.shape.height, self.shape.width],
                    original,
                    reconstruction,
                });
            }
        }
        Ok(out)
    }

    /// Mean squared reconstruction error of each of `members`, in data units (what the map's
    /// error colouring shows). `control` reports progress per batch; `Ok(None)` when it was
    /// cancelled.
    pub fn reconstruction_errors(
        &self,
        ensemble: &Ensemble,
        members: &[usize],
        control: &crate::task::TaskControl,
    ) -> DataResult<Option<Vec<f32>>> {
        let mut errors = Vec::with_capacity(members.len());
        for chunk in members.chunks(BATCH_MEMBERS) {
            if control.is_cancelled() {
                return Ok(None);
            }
            control.report("reconstruct", errors.len(), members.len());
            errors.extend(self.reconstruct(ensemble, chunk)?.iter().map(|r| {
                let squared: f32 = r
                    .original
                    .iter()
                    .zip(&r.reconstruction)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                squared / r.original.len().max(1) as f32
            }));
        }
        Ok(Some(errors))
    }

    /// Latent codes (μ for a VAE) of `members`, row-major `members.len() × latent_dim`.
    pub fn encode(&self, ensemble: &Ensemble, members: &[usize]) -> DataResult<Vec<f32>> {
        let mut values = Vec::with_capacity(members.len() * self.latent_dim());
        for chunk in members.chunks(BATCH_MEMBERS) {
            let data = self.normalised_batch(ensemble, chunk)?;
            values.extend(to_vec(self.model.encode(self.input(data, chunk.len()))));
        }
        Ok(values)
    }

    /// Images (data units) decoded from latent points, row-major `n × latent_dim` in.
    pub fn decode(&self, latents: &[f32]) -> Vec<Vec<f32>> {
        let dim = self.latent_dim();
        let len = self.shape.len();
        let mut images = Vec::with_capacity(latents.len() / dim.max(1));
        for chunk in latents.chunks(BATCH_MEMBERS * dim) {
            let rows = chunk.len() / dim;
            let z =
                Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, dim]), &self.device);
            let decoded = to_vec(self.model.decode(z));
            for image in decoded.chunks_exact(len) {
                let mut image = image.to_vec();
                self.normalization.invert(&mut image, self.shape);
                images.push(image);
            }
        }
        images
    }
}

fn to_vec<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.try_into_vec_as::<f32>().unwrap_or_default()
}
