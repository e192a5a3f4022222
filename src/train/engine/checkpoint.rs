//! The run's state on disk: where a run starts (fresh or from its checkpoint), the checkpoint
//! written after every epoch, and the files written at the end.
//!
//! A checkpoint is written only after an epoch whose every step loss was read back finite and
//! whose weights are all finite, so a resume or a CPU fallback never starts from NaN.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::tensor::{Bool, Tensor};
use std::path::PathBuf;

use super::setup::Setup;
use super::{Engine, Flow, RunState};
use crate::error::DataError;
use crate::nn::Autoencoder;
use crate::train::events::{Losses, RunSummary, TrainEvent};
use crate::train::metrics::Quality;
use crate::train::run_dir::{self as files, TrainerState};
use crate::train::schedule::ScheduleState;

impl Engine {
    /// The state a run starts from: fresh, or the checkpoint when resuming.
    pub(super) fn initial_state(&self, setup: &Setup) -> Flow<RunState> {
        let model = self.new_model(setup)?;
        let optim = self.new_optimizer();
        if !self.resume {
            // A fresh run: forget metrics of an earlier run in the same directory.
            files::truncate_metrics(&self.run_dir, 0)?;
            files::truncate_epoch_layouts(&self.run_dir, 0)?;
            crate::train::live::clear(&self.run_dir)?;
            let summary = self.run_dir.join(files::SUMMARY);
            if summary.is_file() {
                std::fs::remove_file(&summary).map_err(|e| DataError::io(&summary, e))?;
            }
            let state = TrainerState {
                epochs_done: 0,
                global_step: 0,
                schedule: ScheduleState::new(&self.config),
                recoveries: 0,
                train_secs: 0.0,
                last_epoch: None,
            };
            return Ok((model, optim, state));
        }
        let dir = self.run_dir.join(files::CHECKPOINT);
        let state: TrainerState = files::read_json(&dir.join(files::STATE_FILE))?;
        let model_path = dir.join(files::MODEL_FILE);
        let model = model
            .try_load_file(&model_path)
            .map_err(|e| DataError::new(&model_path, format!("cannot load the model: {e}")))?;
        let optim_path = dir.join(files::OPTIMIZER_FILE);
        let optim = optim.load(&optim_path).map_err(|e| {
            DataError::new(&optim_path, format!("cannot load the optimiser state: {e}"))
        })?;
        files::truncate_metrics(&self.run_dir, state.epochs_done)?;
        files::truncate_epoch_layouts(&self.run_dir, state.epochs_done)?;
        Ok((model, optim, state))
    }

    pub(super) fn write_checkpoint(
        &self,
        model: &Autoencoder,
        optim: &ModuleOptimizer,
        state: &TrainerState,
        best: bool,
    ) -> Flow<()> {
        let save = |name: &str, with_optimizer: bool| -> Flow<PathBuf> {
            let staging = files::staging_dir(&self.run_dir, name)?;
            let model_path = staging.join(files::MODEL_FILE);
            model
                .clone()
                .save_file(&model_path)
                .map_err(|e| DataError::new(&model_path, format!("cannot save the model: {e}")))?;
            if with_optimizer {
                let path = staging.join(files::OPTIMIZER_FILE);
                optim.save(&path).map_err(|e| {
                    DataError::new(&path, format!("cannot save the optimiser state: {e}"))
                })?;
            }
            files::write_json(&staging.join(files::STATE_FILE), state)?;
            Ok(files::commit_dir(&self.run_dir, name, &staging)?)
        };
        let path = save(files::CHECKPOINT, true)?;
        self.events.send(TrainEvent::CheckpointWritten {
            epoch: state.epochs_done.saturating_sub(1),
            path,
            best: false,
        });
        if best {
            let path = save(files::BEST, false)?;
            self.events.send(TrainEvent::CheckpointWritten {
                epoch: state.epochs_done.saturating_sub(1),
                path,
                best: true,
            });
        }
        Ok(())
    }

    pub(super) fn finish(
        &self,
        setup: &Setup,
        model: &Autoencoder,
        state: &TrainerState,
        last_val: Option<Losses>,
        last_quality: Option<Quality>,
        stopped_early: bool,
    ) -> Flow<RunSummary> {
        let last = state.last_epoch.as_ref();
        let last_val = last_val.or_else(|| last.and_then(|e| e.val));
        let summary = RunSummary {
            backend: setup.backend.name.clone(),
            backend_kind: setup.backend.kind,
            epochs: state.epochs_done,
            steps: state.global_step,
            final_train_loss: last.map_or(f64::NAN, |e| e.train.total),
            final_val_loss: last_val.map(|v| v.total),
            val_mse: last_quality.map(|q| q.mse),
            baseline_val_mse: last_quality.and_then(|q| q.baseline_mse),
            val_psnr: last_quality
                .map(|q| q.psnr_db)
                .or_else(|| last.and_then(|e| e.val_psnr_db)),
            val_ssim: last_quality
                .map(|q| q.ssim)
                .or_else(|| last.and_then(|e| e.val_ssim)),
            images_per_sec: last.map_or(0.0, |e| e.images_per_sec),
            best_epoch: state.schedule.best_epoch,
            best_val_loss: state.schedule.best_val,
            stopped_early,
            train_members: setup.split.train.len(),
            val_members: setup.split.val.len(),
            latent_dim: self.config.model.latent_dim,
        };
        let members: Vec<usize> = match self.config.evaluation.export_all_latents {
            true => (0..self.ensemble.len()).collect(),
            false => setup.eval_members.clone(),
        };
        let values = self.encode(setup, model, &members)?;
        let ids: Vec<String> = members
            .iter()
            .map(|&m| self.ensemble.member_id(m))
            .collect();
        files::write_latents(
            &self.run_dir,
            &members,
            &ids,
            self.config.model.latent_dim,
            &values,
        )?;
        files::write_summary(&self.run_dir, &summary)?;
        Ok(summary)
    }
}

/// Whether every weight of `model` is finite, in one read-back.
pub(super) fn weights_are_finite(model: &Autoencoder) -> Result<bool, String> {
    struct AllFinite(Vec<Tensor<1, Bool>>);
    impl ModuleVisitor for AllFinite {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().is_finite().all());
        }
    }
    let mut visitor = AllFinite(Vec::new());
    model.visit(&mut visitor);
    if visitor.0.is_empty() {
        return Ok(true);
    }
    let all = Tensor::cat(visitor.0, 0)
        .all()
        .float()
        .try_into_vec_as::<f32>()
        .map_err(|e| format!("cannot read the weights check back: {e}"))?;
    Ok(all.first() == Some(&1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Shape;
    use crate::nn::{ModelConfig, ModelKind};
    use burn::module::ModuleMapper;
    use burn::tensor::Device;

    /// Puts a NaN into the first float parameter it meets.
    struct SpoilOne(bool);

    impl ModuleMapper for SpoilOne {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            match std::mem::replace(&mut self.0, true) {
                true => param,
                false => param.map(|t| t.mul_scalar(f64::NAN)),
            }
        }
    }

    #[test]
    fn one_nan_weight_fails_the_check() {
        let device = Device::flex();
        let model = ModelConfig::new(ModelKind::Ae)
            .with_latent_dim(4)
            .with_filters(4)
            .init(Shape::new(1, 28, 28), &device)
            .unwrap();
        assert_eq!(weights_are_finite(&model), Ok(true));
        let spoiled = model.map(&mut SpoilOne(false));
        assert_eq!(weights_are_finite(&spoiled), Ok(false));
    }
}
