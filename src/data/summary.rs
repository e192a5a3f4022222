//! A one-pass summary of an ensemble's values, for `sense info` and the dataset panel.

use super::{DType, MemberSource};
use crate::error::DataResult;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Range and non-finite count over every value of every member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueSummary {
    /// Smallest finite value (`NaN` if there is none).
    pub min: f64,
    /// Largest finite value (`NaN` if there is none).
    pub max: f64,
    pub nan_count: u64,
}

/// Scans members in parallel, one member buffer per thread, so memory stays a few members
/// whatever the ensemble's size. Integer data stops early once it spans its dtype's full range:
/// nothing later can change the answer.
pub fn summarize(source: &dyn MemberSource) -> DataResult<ValueSummary> {
    let full_range = match source.dtype() {
        DType::U8 => Some((0.0, u8::MAX as f32)),
        DType::U16 => Some((0.0, u16::MAX as f32)),
        DType::F32 | DType::F64 => None,
    };
    let saturated = AtomicBool::new(false);
    let len = source.shape().len();
    let empty = Partial {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        nan_count: 0,
    };
    // Chunks of members keep per-chunk bookkeeping cheap and let saturation stop the scan.
    const MEMBERS_PER_CHUNK: usize = 256;
    let chunks: Vec<usize> = (0..source.len()).step_by(MEMBERS_PER_CHUNK).collect();
    let partial = chunks
        .into_par_iter()
        .map_init(
            || vec![0.0f32; len],
            |buf, start| -> DataResult<Partial> {
                let mut acc = empty;
                if saturated.load(Ordering::Relaxed) {
                    return Ok(acc);
                }
                for i in start..(start + MEMBERS_PER_CHUNK).min(source.len()) {
                    source.read_f32(i, buf)?;
                    acc = acc.merge(Partial::of(buf));
                }
                if let Some((lo, hi)) = full_range
                    && acc.min <= lo
                    && acc.max >= hi
                {
                    saturated.store(true, Ordering::Relaxed);
                }
                Ok(acc)
            },
        )
        .try_reduce(|| empty, |a, b| Ok(a.merge(b)))?;
    let finite_or_nan = |v: f32| if v.is_finite() { v as f64 } else { f64::NAN };
    Ok(ValueSummary {
        min: finite_or_nan(partial.min),
        max: finite_or_nan(partial.max),
        nan_count: partial.nan_count,
    })
}

#[derive(Clone, Copy)]
struct Partial {
    min: f32,
    max: f32,
    nan_count: u64,
}

impl Partial {
    fn of(values: &[f32]) -> Self {
        let mut p = Partial {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            nan_count: 0,
        };
        for &v in values {
            if v.is_finite() {
                p.min = p.min.min(v);
                p.max = p.max.max(v);
            } else {
                p.nan_count += 1;
            }
        }
        p
    }

    fn merge(self, other: Self) -> Self {
        Partial {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            nan_count: self.nan_count + other.nan_count,
        }
    }
}
