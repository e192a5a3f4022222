//! What the network reads: members at the working size (see
//! [`InputSize`](super::InputSize)), the hand-labelled ones decoded once and kept in memory,
//! and the random translation applied to training batches.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

use super::config::InputSize;
use crate::data::fit::{FitMode, FittedSource};
use crate::data::{Batch, DType, MemberSource, Shape};
use crate::error::DataResult;

/// `source` at the working size: resized with the data layer's antialiased resampler when
/// the policy shrinks it (the network's cost grows with the pixel count, and features a few
/// pixels wide survive a shrink to 96 px), unchanged otherwise.
pub fn working_source(source: Arc<dyn MemberSource>, policy: InputSize) -> Arc<dyn MemberSource> {
    let member = source.shape();
    let working = policy.working_shape(member);
    if working == member {
        return source;
    }
    let mode = FitMode::Resize {
        height: working.height,
        width: working.width,
    };
    Arc::new(FittedSource::new(source, mode))
}

/// A source with some members decoded up front (in parallel) and served from memory; the
/// others are read through.
pub struct CachedSource {
    inner: Arc<dyn MemberSource>,
    /// Member → offset of its values in `values`.
    slots: HashMap<usize, usize>,
    values: Vec<f32>,
}

impl CachedSource {
    /// Caches `members` if they fit in `limit_bytes`; otherwise returns `inner` unchanged.
    pub fn wrap(
        inner: Arc<dyn MemberSource>,
        members: &[usize],
        limit_bytes: usize,
    ) -> DataResult<Arc<dyn MemberSource>> {
        let len = inner.shape().len();
        let bytes = members.len().saturating_mul(len).saturating_mul(4);
        if members.is_empty() || bytes > limit_bytes {
            return Ok(inner);
        }
        let mut values = vec![0.0f32; members.len() * len];
        values
            .par_chunks_mut(len)
            .zip(members.par_iter())
            .try_for_each(|(out, &member)| inner.read_f32(member, out))?;
        let slots = members
            .iter()
            .enumerate()
            .map(|(slot, &member)| (member, slot * len))
            .collect();
        Ok(Arc::new(Self {
            inner,
            slots,
            values,
        }))
    }
}

impl MemberSource for CachedSource {
    fn origin(&self) -> String {
        self.inner.origin()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn shape(&self) -> Shape {
        self.inner.shape()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn member_id(&self, index: usize) -> String {
        self.inner.member_id(index)
    }
    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()> {
        match self.slots.get(&index) {
            Some(&offset) => {
                out.copy_from_slice(&self.values[offset..offset + out.len()]);
                Ok(())
            }
            None => self.inner.read_f32(index, out),
        }
    }
}

/// Translates every sample of `batch` by a random offset of up to `max_shift_fraction` of
/// its height and width; edge pixels repeat into the uncovered border, so no artificial
/// background value appears. Offsets come from `(seed, epoch, member, position in batch)`.
pub fn random_shift(batch: &mut Batch, max_shift_fraction: f64, seed: u64, epoch: usize) {
    let [_, channels, height, width] = batch.shape;
    let max_dy = (height as f64 * max_shift_fraction).round() as i64;
    let max_dx = (width as f64 * max_shift_fraction).round() as i64;
    if max_dy == 0 && max_dx == 0 {
        return;
    }
    let sample_len = channels * height * width;
    let members = batch.members.clone();
    batch
        .data
        .par_chunks_mut(sample_len)
        .enumerate()
        .for_each_init(Vec::new, |scratch: &mut Vec<f32>, (row, sample)| {
            let member = members.get(row).copied().unwrap_or(row) as u64;
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5348_4946_5421);
            rng.set_stream((epoch as u64) << 40 ^ member << 8 ^ row as u64);
            let dy = rng.random_range(-max_dy..=max_dy) as isize;
            let dx = rng.random_range(-max_dx..=max_dx) as isize;
            scratch.clear();
            scratch.extend_from_slice(sample);
            let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
            for (plane_in, plane_out) in scratch
                .chunks_exact(height * width)
                .zip(sample.chunks_exact_mut(height * width))
            {
                for y in 0..height {
                    let sy = clamp(y as isize - dy, height);
                    for x in 0..width {
                        let sx = clamp(x as isize - dx, width);
                        plane_out[y * width + x] = plane_in[sy * width + sx];
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_moves_content_and_repeats_edges() {
        // One 1×1×5 row; with a 40 % limit the offset is in -2..=2, and each result is the row
        // shifted with its edge value repeated.
        let row = [1.0, 2.0, 3.0, 4.0, 5.0];
        let shifted = |dx: isize| -> Vec<f32> {
            (0..5)
                .map(|x| row[(x as isize - dx).clamp(0, 4) as usize])
                .collect()
        };
        let expected: Vec<Vec<f32>> = (-2..=2).map(shifted).collect();
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..64 {
            let mut batch = Batch {
                members: vec![3],
                shape: [1, 1, 1, 5],
                data: row.to_vec(),
            };
            random_shift(&mut batch, 0.4, 9, epoch);
            let offset = expected.iter().position(|e| *e == batch.data);
            assert!(offset.is_some(), "{:?} is no shift of {row:?}", batch.data);
            seen.insert(offset);
        }
        assert!(seen.len() >= 3, "offsets seen: {seen:?}");
    }

    #[test]
    fn working_size_keeps_the_aspect_ratio() {
        let policy = InputSize::LongSide { max_px: 96 };
        assert_eq!(
            policy.working_shape(Shape::new(1, 160, 224)),
            Shape::new(1, 69, 96)
        );
        assert_eq!(
            policy.working_shape(Shape::new(3, 50, 50)),
            Shape::new(3, 50, 50)
        );
        assert_eq!(
            InputSize::Native.working_shape(Shape::new(1, 256, 256)),
            Shape::new(1, 256, 256)
        );
    }
}
