//! Step losses on their way to the host, and their means over an epoch.
//!
//! A training step leaves its losses on the device ([`DeviceLosses`]); [`PendingSteps`] holds
//! them until the epoch loop reads them all back in one transfer. Reading after every step
//! would make the host wait for the device before it could queue the next step.

use burn::tensor::{Tensor, TensorReadError};

use crate::train::events::Losses;
use crate::train::objective::DeviceLosses;

/// Where a step's losses came from.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepRecord {
    /// Step within the epoch, zero-based.
    pub step: usize,
    /// Steps over the run, this one included.
    pub global_step: u64,
    /// The step attempt (see `TrainConfig::inject_non_finite_at_attempts`).
    pub attempt: u64,
    pub samples: usize,
}

/// Steps whose losses are still on the device, oldest first.
#[derive(Default)]
pub(super) struct PendingSteps {
    steps: Vec<(StepRecord, DeviceLosses)>,
}

impl PendingSteps {
    pub fn push(&mut self, record: StepRecord, losses: DeviceLosses) {
        self.steps.push((record, losses));
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Reads every pending step back in one transfer and empties the queue.
    pub fn read(&mut self) -> Result<Vec<(StepRecord, Losses)>, TensorReadError> {
        if self.steps.is_empty() {
            return Ok(Vec::new());
        }
        let (records, losses): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.steps).into_iter().unzip();
        let layouts: Vec<_> = losses.iter().map(|l| l.layout).collect();
        let values = Tensor::cat(losses.into_iter().map(|l| l.values).collect(), 0)
            .try_into_vec_as::<f64>()?;
        let mut offset = 0;
        Ok(records
            .into_iter()
            .zip(layouts)
            .map(|(record, layout)| {
                let end = offset + layout.len();
                // A short read leaves NaN in the missing places: it fails as non-finite.
                let losses = layout.losses(values.get(offset..end).unwrap_or_default());
                offset = end;
                (record, losses)
            })
            .collect())
    }
}

/// Sample-weighted means of loss terms over an epoch.
#[derive(Default)]
pub(super) struct LossSums {
    samples: f64,
    total: f64,
    reconstruction: f64,
    /// (weighted sum, samples) of KL, cluster, contrastive, sparsity: each over the batches
    /// that had it.
    optional: [(f64, f64); 4],
}

impl LossSums {
    pub fn add(&mut self, losses: &Losses, samples: usize) {
        let n = samples as f64;
        self.samples += n;
        self.total += losses.total * n;
        self.reconstruction += losses.reconstruction * n;
        let terms = [
            losses.kl,
            losses.cluster,
            losses.contrastive,
            losses.sparsity,
        ];
        for (acc, term) in self.optional.iter_mut().zip(terms) {
            if let Some(v) = term {
                acc.0 += v * n;
                acc.1 += n;
            }
        }
    }

    pub fn mean(&self) -> Losses {
        let n = self.samples.max(1.0);
        let [kl, cluster, contrastive, sparsity] = self
            .optional
            .map(|(sum, count)| (count > 0.0).then(|| sum / count));
        Losses {
            total: self.total / n,
            reconstruction: self.reconstruction / n,
            kl,
            cluster,
            contrastive,
            sparsity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::objective::TermLayout;
    use burn::tensor::{Device, TensorData};

    fn on_device(values: &[f32], layout: TermLayout, device: &Device) -> DeviceLosses {
        DeviceLosses {
            values: Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device),
            layout,
        }
    }

    fn record(step: usize, samples: usize) -> StepRecord {
        StepRecord {
            step,
            global_step: step as u64 + 1,
            attempt: step as u64,
            samples,
        }
    }

    /// Steps with different terms present come back in order, each with its own values.
    #[test]
    fn pending_steps_read_back_in_order() {
        let device = Device::flex();
        let plain = TermLayout::new([false; 4]);
        let labelled = TermLayout::new([false, true, true, false]);
        let mut pending = PendingSteps::default();
        pending.push(record(0, 4), on_device(&[1.0, 0.5], plain, &device));
        pending.push(
            record(1, 2),
            on_device(&[2.0, 0.25, 0.75, 0.125], labelled, &device),
        );
        assert_eq!(pending.len(), 2);
        let read = pending.read().unwrap();
        assert_eq!(pending.len(), 0);
        assert_eq!(read.len(), 2);
        assert_eq!((read[0].0.step, read[0].1.total), (0, 1.0));
        assert_eq!(read[0].1.cluster, None);
        assert_eq!(read[1].1.reconstruction, 0.25);
        assert_eq!(read[1].1.cluster, Some(0.75));
        assert_eq!(read[1].1.contrastive, Some(0.125));
        assert!(pending.read().unwrap().is_empty());

        // Means weight each batch by its size; optional terms over the batches that had them.
        let mut sums = LossSums::default();
        for (record, losses) in &read {
            sums.add(losses, record.samples);
        }
        let mean = sums.mean();
        assert!((mean.total - (4.0 * 1.0 + 2.0 * 2.0) / 6.0).abs() < 1e-12);
        assert_eq!(mean.cluster, Some(0.75));
        assert_eq!(mean.kl, None);
    }

    #[test]
    fn a_nan_step_reads_back_as_non_finite() {
        let device = Device::flex();
        let plain = TermLayout::new([false; 4]);
        let mut pending = PendingSteps::default();
        pending.push(record(0, 1), on_device(&[1.0, 1.0], plain, &device));
        pending.push(record(1, 1), on_device(&[f32::NAN, 1.0], plain, &device));
        let read = pending.read().unwrap();
        assert!(read[0].1.is_finite());
        assert!(!read[1].1.is_finite());
    }
}
