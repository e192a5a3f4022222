//! Streaming mini-batches: decode, augment and normalise members in parallel on a background
//! thread, a bounded number of batches ahead of the consumer.
//!
//! Memory stays at `prefetch + 2` batches whatever the ensemble size: members are read one at
//! a time from the [`MemberSource`], and batch buffers handed back with
//! [`BatchLoader::recycle`] are reused instead of reallocated.

use super::augment::Augmentation;
use super::transform::Normalization;
use super::{MemberSource, Shape};
use crate::error::{DataError, DataResult};
use crossbeam_channel::{Receiver, Sender};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// `members.len()` samples of one shape, as one `[B, C, H, W]` array.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Member index of each sample (repeated when several patches of a member are drawn).
    pub members: Vec<usize>,
    /// `[batch, channels, height, width]`.
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Values of sample `i` (CHW).
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[i * n..(i + 1) * n]
    }
}

/// Configures a [`BatchLoader`]; [`BatchLoaderBuilder::start`] launches it.
#[must_use = "call .start() to launch the loader"]
pub struct BatchLoaderBuilder {
    source: Arc<dyn MemberSource>,
    indices: Vec<usize>,
    batch_size: usize,
    shuffle_seed: Option<u64>,
    epoch: u64,
    drop_last: bool,
    prefetch_batches: usize,
    normalization: Option<Arc<Normalization>>,
    augmentation: Option<Augmentation>,
    cancel: Arc<AtomicBool>,
}

impl BatchLoaderBuilder {
    /// Shuffles the samples with a permutation keyed by `(seed, epoch)`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }

    /// Epoch number: selects the shuffle order and the augmentation draws.
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// Skip a last batch smaller than the batch size.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Batches prepared ahead of the consumer (at least 1; default 2).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch_batches = batches.max(1);
        self
    }

    pub fn normalize(mut self, normalization: Arc<Normalization>) -> Self {
        self.normalization = Some(normalization);
        self
    }

    pub fn augment(mut self, augmentation: Augmentation) -> Self {
        self.augmentation = Some(augmentation);
        self
    }

    /// A flag that, once set, stops the loader (e.g. a shared "stop training" flag).
    pub fn cancel_flag(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = cancel;
        self
    }

    /// Checks the configuration and starts the background thread.
    pub fn start(self) -> DataResult<BatchLoader> {
        let origin = self.source.origin();
        let member_shape = self.source.shape();
        if self.batch_size == 0 {
            return Err(DataError::new(&origin, "batch size must be at least 1"));
        }
        if let Some(&bad) = self.indices.iter().find(|&&i| i >= self.source.len()) {
            return Err(DataError::new(
                &origin,
                format!(
                    "member {bad} out of range (ensemble has {})",
                    self.source.len()
                ),
            ));
        }
        if let Some(norm) = &self.normalization
            && norm.channel_count() != member_shape.channels
        {
            return Err(DataError::new(
                &origin,
                format!(
                    "normalisation was fitted for {} channels, the ensemble has {}",
                    norm.channel_count(),
                    member_shape.channels
                ),
            ));
        }
        if let Some(aug) = &self.augmentation
            && aug.input_shape() != member_shape
        {
            return Err(DataError::new(
                &origin,
                format!(
                    "augmentation was set up for {} members, the ensemble has {member_shape}",
                    aug.input_shape()
                ),
            ));
        }

        let patches = self
            .augmentation
            .as_ref()
            .map_or(1, |a| a.patches_per_member());
        let sample_count = self.indices.len() * patches;
        let mut order: Vec<usize> = (0..sample_count).collect();
        if let Some(seed) = self.shuffle_seed {
            order.shuffle(&mut order_rng(seed, self.epoch));
        }
        let batch_count = match self.drop_last {
            true => sample_count / self.batch_size,
            false => sample_count.div_ceil(self.batch_size),
        };
        order.truncate(batch_count * self.batch_size);

        let sample_shape = self
            .augmentation
            .as_ref()
            .map_or(member_shape, Augmentation::output_shape);
        let (batch_tx, batch_rx) = crossbeam_channel::bounded(self.prefetch_batches);
        // Room for every buffer in flight, so recycling never blocks.
        let (recycle_tx, recycle_rx) = crossbeam_channel::bounded(self.prefetch_batches + 2);
        let producer = Producer {
            source: self.source,
            indices: self.indices,
            patches,
            order,
            batch_size: self.batch_size,
            epoch: self.epoch,
            sample_shape,
            normalization: self.normalization,
            augmentation: self.augmentation,
            cancel: self.cancel.clone(),
            batches: batch_tx,
            recycled: recycle_rx,
        };
        let thread = std::thread::Builder::new()
            .name("sense-batch-loader".into())
            .spawn(move || producer.run())
            .map_err(|e| DataError::io(&origin, e))?;
        Ok(BatchLoader {
            batches: Some(batch_rx),
            recycle: recycle_tx,
            cancel: self.cancel,
            thread: Some(thread),
            batch_count,
            sample_shape,
        })
    }
}

/// An iterator over one epoch of batches, prepared on a background thread.
///
/// Yields `Err` once if a member cannot be read, then ends. Dropping it (or setting the
/// cancel flag) stops the background thread within one member's decoding time.
pub struct BatchLoader {
    batches: Option<Receiver<DataResult<Batch>>>,
    recycle: Sender<Vec<f32>>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    batch_count: usize,
    sample_shape: Shape,
}

impl BatchLoader {
    /// Streams `indices` of `source` in batches of `batch_size` (in order, unless shuffled).
    pub fn builder(
        source: Arc<dyn MemberSource>,
        indices: Vec<usize>,
        batch_size: usize,
    ) -> BatchLoaderBuilder {
        BatchLoaderBuilder {
            source,
            indices,
            batch_size,
            shuffle_seed: None,
            epoch: 0,
            drop_last: false,
            prefetch_batches: 2,
            normalization: None,
            augmentation: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Batches in this epoch.
    pub fn batch_count(&self) -> usize {
        self.batch_count
    }

    /// Shape of each sample (after cropping).
    pub fn sample_shape(&self) -> Shape {
        self.sample_shape
    }

    /// Hands a consumed batch's buffer back for reuse.
    pub fn recycle(&self, batch: Batch) {
        // A full channel means enough buffers are queued already; dropping this one is fine.
        let _ = self.recycle.try_send(batch.data);
    }

    /// Stops the background thread; the iterator ends soon after.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Iterator for BatchLoader {
    type Item = DataResult<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.as_ref()?.recv().ok()
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        self.cancel();
        // Dropping the receiver wakes a producer blocked on a full channel.
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The background half: owns everything needed to build batches.
struct Producer {
    source: Arc<dyn MemberSource>,
    indices: Vec<usize>,
    patches: usize,
    /// Sample numbers (`position in indices × patches + patch`) in epoch order.
    order: Vec<usize>,
    batch_size: usize,
    epoch: u64,
    sample_shape: Shape,
    normalization: Option<Arc<Normalization>>,
    augmentation: Option<Augmentation>,
    cancel: Arc<AtomicBool>,
    batches: Sender<DataResult<Batch>>,
    recycled: Receiver<Vec<f32>>,
}

impl Producer {
    fn run(self) {
        for samples in self.order.chunks(self.batch_size) {
            if self.cancelled() {
                return;
            }
            let batch = self.build(samples);
            let failed = batch.is_err();
            if failed && self.cancelled() {
                return; // the "error" is our own cancellation
            }
            if self.batches.send(batch).is_err() || failed {
                return; // consumer gone, or the epoch cannot continue
            }
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn build(&self, samples: &[usize]) -> DataResult<Batch> {
        let sample_len = self.sample_shape.len();
        let mut data = self.recycled.try_recv().unwrap_or_default();
        data.resize(samples.len() * sample_len, 0.0);
        let members: Vec<usize> = samples
            .iter()
            .map(|&s| self.indices[s / self.patches])
            .collect();

        data.par_chunks_mut(sample_len)
            .zip(samples.par_iter())
            .try_for_each_init(Vec::new, |scratch, (out, &sample)| {
                if self.cancelled() {
                    return Err(DataError::new(self.source.origin(), "loading cancelled"));
                }
                let member = self.indices[sample / self.patches];
                self.load_sample(member, sample % self.patches, scratch, out)
            })?;

        let shape = self.sample_shape;
        Ok(Batch {
            members,
            shape: [samples.len(), shape.channels, shape.height, shape.width],
            data,
        })
    }

    /// Decode → crop/flip/rotate → brightness (data units) → normalise → noise.
    fn load_sample(
        &self,
        member: usize,
        patch: usize,
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) -> DataResult<()> {
        let plan = self
            .augmentation
            .as_ref()
            .map(|aug| aug.plan(self.epoch, member, patch));
        match plan.filter(|plan| !plan.is_identity()) {
            Some(plan) => {
                scratch.resize(self.source.shape().len(), 0.0);
                self.source.read_f32(member, scratch)?;
                plan.geometry(scratch, out);
                plan.brightness(out);
            }
            // Nothing to rearrange: decode straight into the batch.
            None => self.source.read_f32(member, out)?,
        }
        if let Some(norm) = &self.normalization {
            norm.apply(out, self.sample_shape);
        }
        if let Some(plan) = &plan {
            plan.add_noise(out);
        }
        Ok(())
    }
}

/// The shuffle stream for an epoch, separate from every augmentation stream.
fn order_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(b"shuffle!");
    ChaCha8Rng::from_seed(key)
}
