//! What happens when an epoch cannot finish normally.
//!
//! - A non-finite loss or weight: the epoch is trained again from the state saved at its start,
//!   with half the learning rate; a second time stops the run. With deferred loss read-back the
//!   optimiser may already have stepped on the bad batch (and the ones after it) when the NaN
//!   is noticed: the saved state predates all of them, and no checkpoint was written since.
//! - A panic on the GPU (a lost device, a driver error): the run continues on the CPU from the
//!   last checkpoint, or from scratch when there is none. On the CPU a panic ends the run.

use super::setup::Setup;
use super::{Engine, Flow, Halt, RunState};
use crate::train::backend::{BackendKind, cpu_backend};
use crate::train::events::{Losses, TrainEvent};
use crate::train::run_dir as files;

/// What went non-finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NonFinite {
    Loss,
    /// Every step loss was finite, yet a weight is not (a non-finite gradient).
    Weights,
}

impl NonFinite {
    fn noun(self) -> &'static str {
        match self {
            NonFinite::Loss => "loss",
            NonFinite::Weights => "weights",
        }
    }
}

impl Engine {
    /// Rolls back to `saved` (the start of `epoch`) with the learning rate halved, once.
    pub(super) fn recover_non_finite(
        &mut self,
        saved: RunState,
        epoch: usize,
        step: usize,
        what: NonFinite,
        losses: Losses,
    ) -> Flow<RunState> {
        let (model, optim, mut state) = saved;
        let what = what.noun();
        if state.recoveries >= 1 {
            return Err(Halt::Error(format!(
                "the {what} became non-finite again (epoch {epoch}, step {step}: {losses:?}) \
                 after going back to the last good state with half the learning rate; \
                 stopping. Lower the learning rate or check the data for extreme values"
            )));
        }
        state.recoveries += 1;
        state.schedule.lr_factor *= 0.5;
        let new_lr = state.schedule.learning_rate(&self.config, epoch);
        self.events.send(TrainEvent::Recovered {
            epoch,
            step,
            learning_rate: new_lr,
            message: format!(
                "non-finite {what} at epoch {epoch}, step {step}; restarted the epoch \
                 from the last good state with the learning rate halved to {new_lr:e}"
            ),
        });
        Ok((model, optim, state))
    }

    /// After a panic in an epoch: on the GPU, continue on the CPU; on the CPU, stop.
    pub(super) fn recover_from_panic(
        &mut self,
        setup: &mut Setup,
        message: String,
    ) -> Flow<RunState> {
        if setup.backend.kind != BackendKind::Gpu {
            return Err(Halt::Error(format!("training failed: {message}")));
        }
        let backend = cpu_backend(Some(format!(
            "the GPU failed during training ({message}); continuing on the CPU \
             from the last checkpoint"
        )));
        self.announce_backend(&backend);
        setup.backend = backend;
        // The last checkpoint on the new backend, or a fresh start.
        self.resume = self
            .run_dir
            .join(files::CHECKPOINT)
            .join(files::STATE_FILE)
            .exists();
        self.initial_state(setup)
    }
}
