//! Per-epoch schedules: learning rate, loss-term weights, best-epoch tracking and early
//! stopping. All of their state lives in [`ScheduleState`], which checkpoints save.

use serde::{Deserialize, Serialize};

use super::config::{LrScheduler, TrainConfig};
use super::events::TermWeights;

/// Everything the schedules remember between epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Multiplier from reduce-on-plateau and NaN recoveries.
    pub lr_factor: f64,
    pub best_val: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Epochs since the monitored loss last improved (early stopping).
    pub epochs_without_improvement: usize,
    /// Epochs since the last improvement or LR reduction (reduce-on-plateau).
    pub plateau_epochs: usize,
    pub lambda_cluster: f64,
    pub lambda_contrastive: f64,
}

impl ScheduleState {
    pub fn new(config: &TrainConfig) -> Self {
        Self {
            lr_factor: 1.0,
            best_val: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            plateau_epochs: 0,
            lambda_cluster: config.loss.lambda_cluster,
            lambda_contrastive: config.loss.lambda_contrastive,
        }
    }

    /// Learning rate of `epoch` (zero-based).
    pub fn learning_rate(&self, config: &TrainConfig, epoch: usize) -> f64 {
        let base = config.optimizer.learning_rate;
        let scheduled = match config.schedule.lr_scheduler {
            LrScheduler::None | LrScheduler::ReduceOnPlateau { .. } => base,
            LrScheduler::Step {
                every_epochs,
                gamma,
            } => base * gamma.powi((epoch / every_epochs.max(1)) as i32),
            LrScheduler::Cosine { min_lr } => {
                let progress = epoch as f64 / config.epochs.max(1) as f64;
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        let lr = scheduled * self.lr_factor;
        match config.schedule.lr_scheduler {
            LrScheduler::ReduceOnPlateau { min_lr, .. } => lr.max(min_lr),
            _ => lr,
        }
    }

    /// Term weights for `epoch` at fractional progress `epoch_progress` in [0, 1).
    pub fn weights(&self, config: &TrainConfig, epoch: usize, epoch_progress: f64) -> TermWeights {
        let s = &config.schedule;
        let kl = match s.kl_warmup_epochs > 0.0 {
            true => ((epoch as f64 + epoch_progress) / s.kl_warmup_epochs).min(1.0),
            false => 1.0,
        };
        let (reconstruction, label) = if epoch < s.pretrain_epochs {
            (1.0, 0.0)
        } else if s.adaptive_weights {
            let shifted = ((epoch - s.pretrain_epochs) as f64 * s.adaptive_step).min(1.0);
            (1.0 - shifted, shifted)
        } else {
            (1.0, 1.0)
        };
        TermWeights {
            reconstruction,
            kl,
            label,
            lambda_cluster: self.lambda_cluster,
            lambda_contrastive: self.lambda_contrastive,
        }
    }

    /// Records the epoch's monitored validation loss. Returns whether it is the best so far.
    pub fn observe(&mut self, config: &TrainConfig, epoch: usize, monitored: f64) -> bool {
        let min_delta = config.schedule.early_stopping.map_or(0.0, |e| e.min_delta);
        let improved = monitored.is_finite()
            && self
                .best_val
                .is_none_or(|best| monitored < best - min_delta.max(0.0));
        if improved {
            self.best_val = Some(monitored);
            self.best_epoch = Some(epoch);
            self.epochs_without_improvement = 0;
            self.plateau_epochs = 0;
        } else {
            self.epochs_without_improvement += 1;
            self.plateau_epochs += 1;
            if let LrScheduler::ReduceOnPlateau {
                factor, patience, ..
            } = config.schedule.lr_scheduler
                && self.plateau_epochs > patience
            {
                self.lr_factor *= factor;
                self.plateau_epochs = 0;
            }
        }
        improved
    }

    pub fn should_stop_early(&self, config: &TrainConfig) -> bool {
        config
            .schedule
            .early_stopping
            .is_some_and(|e| self.epochs_without_improvement >= e.patience.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::EarlyStopping;

    #[test]
    fn adaptive_weights_shift_after_pretraining() {
        let mut config = TrainConfig::default();
        config.schedule.pretrain_epochs = 2;
        config.schedule.adaptive_weights = true;
        let state = ScheduleState::new(&config);
        let w = |e| state.weights(&config, e, 0.0);
        assert_eq!((w(0).reconstruction, w(0).label), (1.0, 0.0));
        assert_eq!((w(2).reconstruction, w(2).label), (1.0, 0.0));
        assert!((w(5).label - 0.03).abs() < 1e-12);
        assert!((w(5).reconstruction - 0.97).abs() < 1e-12);
    }

    #[test]
    fn kl_warms_up_linearly() {
        let mut config = TrainConfig::default();
        config.schedule.kl_warmup_epochs = 4.0;
        let state = ScheduleState::new(&config);
        assert_eq!(state.weights(&config, 0, 0.0).kl, 0.0);
        assert_eq!(state.weights(&config, 1, 0.0).kl, 0.25);
        assert_eq!(state.weights(&config, 2, 0.5).kl, 0.625);
        assert_eq!(state.weights(&config, 9, 0.0).kl, 1.0);
    }

    #[test]
    fn plateau_lowers_lr_and_patience_stops() {
        let mut config = TrainConfig::default();
        config.schedule.lr_scheduler = LrScheduler::ReduceOnPlateau {
            factor: 0.5,
            patience: 1,
            min_lr: 0.0,
        };
        config.schedule.early_stopping = Some(EarlyStopping {
            patience: 3,
            min_delta: 0.0,
        });
        let mut state = ScheduleState::new(&config);
        assert!(state.observe(&config, 0, 1.0));
        assert!(!state.observe(&config, 1, 1.0));
        assert_eq!(state.lr_factor, 1.0);
        assert!(!state.observe(&config, 2, 1.5));
        assert_eq!(state.lr_factor, 0.5);
        assert!(!state.should_stop_early(&config));
        assert!(!state.observe(&config, 3, 1.2));
        assert!(state.should_stop_early(&config));
        assert_eq!(state.best_epoch, Some(0));
    }

    #[test]
    fn step_and_cosine_schedules() {
        let mut config = TrainConfig {
            epochs: 10,
            ..TrainConfig::default()
        };
        config.optimizer.learning_rate = 1.0;
        config.schedule.lr_scheduler = LrScheduler::Step {
            every_epochs: 3,
            gamma: 0.1,
        };
        let state = ScheduleState::new(&config);
        assert_eq!(state.learning_rate(&config, 2), 1.0);
        assert!((state.learning_rate(&config, 3) - 0.1).abs() < 1e-12);
        config.schedule.lr_scheduler = LrScheduler::Cosine { min_lr: 0.0 };
        assert_eq!(state.learning_rate(&config, 0), 1.0);
        assert!((state.learning_rate(&config, 5) - 0.5).abs() < 1e-12);
    }
}
