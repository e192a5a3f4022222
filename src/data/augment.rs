//! Training-time augmentation: random crops (optionally many patches per member), flips,
//! rotations, brightness and additive noise.
//!
//! Every random choice for a sample comes from a ChaCha8 stream keyed by
//! `(seed, epoch, member, patch)`, so results do not depend on thread scheduling or batch
//! order: the same run decodes the same pixels, however many threads decode them.

use super::Shape;
use crate::error::{DataError, DataResult};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// A crop window of `height × width` pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropSize {
    pub height: usize,
    pub width: usize,
}

/// What to randomise. The default changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    pub seed: u64,
    /// Random horizontal and vertical flips (each with probability ½).
    pub flips: bool,
    /// Random rotation by a multiple of 90° for square samples, of 180° otherwise.
    pub rotations: bool,
    /// Random crop position; the sample shape becomes this size.
    pub crop: Option<CropSize>,
    /// Samples drawn per member per epoch (independent crops); 1 without a crop.
    pub patches_per_member: usize,
    /// Multiplies data values by a factor uniform in `[1 − b, 1 + b]` (0.1 = ±10 %), before
    /// normalisation, i.e. in data units.
    pub brightness: f32,
    /// Standard deviation of additive Gaussian noise, in normalised units (after normalisation).
    pub noise_std: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            flips: false,
            rotations: false,
            crop: None,
            patches_per_member: 1,
            brightness: 0.0,
            noise_std: 0.0,
        }
    }
}

impl AugmentConfig {
    /// The deterministic part for validation and embedding: same crop size and patch count,
    /// no flips, rotations, brightness or noise. With a fixed epoch, patches stay put.
    pub fn for_evaluation(&self) -> Self {
        Self {
            seed: self.seed,
            crop: self.crop,
            patches_per_member: self.patches_per_member,
            ..Self::default()
        }
    }
}

/// A validated [`AugmentConfig`] for members of one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmentation {
    config: AugmentConfig,
    input: Shape,
    output: Shape,
}

impl Augmentation {
    /// Checks `config` against members of `input` shape; `origin` names the dataset in errors.
    pub fn new(config: AugmentConfig, input: Shape, origin: &str) -> DataResult<Self> {
        let invalid = |reason: String| Err(DataError::new(origin, reason));
        let output = match config.crop {
            Some(crop) if crop.height == 0 || crop.width == 0 => {
                return invalid(format!("crop {}×{} is empty", crop.height, crop.width));
            }
            Some(crop) if crop.height > input.height || crop.width > input.width => {
                return invalid(format!(
                    "crop {}×{} is larger than the members ({input})",
                    crop.height, crop.width
                ));
            }
            Some(crop) => Shape::new(input.channels, crop.height, crop.width),
            None => input,
        };
        if config.patches_per_member == 0 {
            return invalid("patches per member must be at least 1".into());
        }
        if config.patches_per_member > 1 && config.crop.is_none() {
            return invalid("several patches per member need a crop size".into());
        }
        if !(0.0..1.0).contains(&config.brightness) {
            return invalid(format!(
                "brightness {} must be in [0, 1) (a fraction: 0.1 = ±10 %)",
                config.brightness
            ));
        }
        if !(config.noise_std >= 0.0 && config.noise_std.is_finite()) {
            return invalid(format!(
                "noise σ {} must be finite and >= 0",
                config.noise_std
            ));
        }
        Ok(Self {
            config,
            input,
            output,
        })
    }

    pub fn config(&self) -> &AugmentConfig {
        &self.config
    }

    pub fn input_shape(&self) -> Shape {
        self.input
    }

    /// Shape of each augmented sample.
    pub fn output_shape(&self) -> Shape {
        self.output
    }

    pub fn patches_per_member(&self) -> usize {
        self.config.patches_per_member
    }

    /// Draws every random choice for one sample.
    pub fn plan(&self, epoch: u64, member: usize, patch: usize) -> SamplePlan {
        let mut rng = sample_rng(self.config.seed, epoch, member, patch);
        let (top, left) = match self.config.crop {
            Some(crop) => (
                rng.random_range(0..=self.input.height - crop.height),
                rng.random_range(0..=self.input.width - crop.width),
            ),
            None => (0, 0),
        };
        let (flip_horizontal, flip_vertical) = if self.config.flips {
            (rng.random_bool(0.5), rng.random_bool(0.5))
        } else {
            (false, false)
        };
        let quarter_turns = match self.config.rotations {
            false => 0,
            true if self.output.height == self.output.width => rng.random_range(0..4),
            true => 2 * rng.random_range(0..2),
        };
        let b = self.config.brightness;
        let gain = if b > 0.0 {
            1.0 + rng.random_range(-b..=b)
        } else {
            1.0
        };
        SamplePlan {
            input: self.input,
            output: self.output,
            top,
            left,
            flip_horizontal,
            flip_vertical,
            quarter_turns,
            gain,
            noise_std: self.config.noise_std,
            noise_seed: rng.random(),
        }
    }
}

/// The random choices for one sample, applied in pipeline order: [`Self::geometry`] and
/// [`Self::brightness`] on data values, then normalisation, then [`Self::add_noise`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplePlan {
    input: Shape,
    output: Shape,
    pub top: usize,
    pub left: usize,
    pub flip_horizontal: bool,
    pub flip_vertical: bool,
    /// Counter-clockwise quarter turns, 0–3.
    pub quarter_turns: u8,
    pub gain: f32,
    noise_std: f32,
    noise_seed: u64,
}

impl SamplePlan {
    /// Crops, flips and rotates `input` (a whole member, CHW) into `out` (the sample shape):
    /// every output value is exactly one input value.
    pub fn geometry(&self, input: &[f32], out: &mut [f32]) {
        let (in_w, out_h, out_w) = (self.input.width, self.output.height, self.output.width);
        assert_eq!(input.len(), self.input.len(), "input is not {}", self.input);
        assert_eq!(
            out.len(),
            self.output.len(),
            "output is not {}",
            self.output
        );
        for (in_plane, out_plane) in input
            .chunks_exact(self.input.plane_len())
            .zip(out.chunks_exact_mut(self.output.plane_len()))
        {
            for y in 0..out_h {
                let out_row = &mut out_plane[y * out_w..(y + 1) * out_w];
                for (x, o) in out_row.iter_mut().enumerate() {
                    let (sy, sx) = self.source_pixel(y, x);
                    *o = in_plane[(self.top + sy) * in_w + self.left + sx];
                }
            }
        }
    }

    /// Window coordinates that output pixel `(y, x)` comes from: undo the rotation, then
    /// the flips. Rotations only ever see square windows (or half turns), so the window
    /// and the output have the same size.
    #[inline]
    fn source_pixel(&self, y: usize, x: usize) -> (usize, usize) {
        let (h, w) = (self.output.height, self.output.width);
        let (mut sy, mut sx) = match self.quarter_turns {
            0 => (y, x),
            1 => (x, w - 1 - y),
            2 => (h - 1 - y, w - 1 - x),
            _ => (h - 1 - x, y),
        };
        if self.flip_vertical {
            sy = h - 1 - sy;
        }
        if self.flip_horizontal {
            sx = w - 1 - sx;
        }
        (sy, sx)
    }

    /// Scales data values by the brightness gain.
    pub fn brightness(&self, sample: &mut [f32]) {
        if self.gain != 1.0 {
            sample.iter_mut().for_each(|v| *v *= self.gain);
        }
    }

    /// Adds Gaussian noise to normalised values.
    pub fn add_noise(&self, sample: &mut [f32]) {
        if self.noise_std <= 0.0 {
            return;
        }
        let Ok(normal) = Normal::new(0.0f32, self.noise_std) else {
            return; // unreachable: σ was validated finite and positive
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.noise_seed);
        for v in sample {
            *v += normal.sample(&mut rng);
        }
    }

    /// True when the plan only copies (no crop offset, flip, rotation or gain).
    pub fn is_identity(&self) -> bool {
        self.input == self.output
            && !self.flip_horizontal
            && !self.flip_vertical
            && self.quarter_turns == 0
            && self.gain == 1.0
    }
}

/// Independent streams per (seed, epoch, member, patch): the key fills the 32-byte seed,
/// so distinct keys can never collide.
fn sample_rng(seed: u64, epoch: u64, member: usize, patch: usize) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&(member as u64).to_le_bytes());
    key[24..32].copy_from_slice(&(patch as u64).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(quarter_turns: u8, flip_horizontal: bool, flip_vertical: bool) -> SamplePlan {
        let shape = Shape::new(1, 2, 2);
        SamplePlan {
            input: shape,
            output: shape,
            top: 0,
            left: 0,
            flip_horizontal,
            flip_vertical,
            quarter_turns,
            gain: 1.0,
            noise_std: 0.0,
            noise_seed: 0,
        }
    }

    #[test]
    fn quarter_turn_is_counter_clockwise() {
        // [a b; c d] turned 90° counter-clockwise is [b d; a c].
        let mut out = [0.0; 4];
        plan(1, false, false).geometry(&[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, [2.0, 4.0, 1.0, 3.0]);
        plan(3, false, false).geometry(&[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, [3.0, 1.0, 4.0, 2.0]);
    }

    #[test]
    fn flips_mirror_rows_and_columns() {
        let mut out = [0.0; 4];
        plan(0, true, false).geometry(&[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, [2.0, 1.0, 4.0, 3.0]);
        plan(0, false, true).geometry(&[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, [3.0, 4.0, 1.0, 2.0]);
    }

    #[test]
    fn distinct_keys_give_distinct_streams() {
        let a = sample_rng(1, 0, 5, 0).random::<u64>();
        let b = sample_rng(1, 0, 0, 5).random::<u64>();
        let c = sample_rng(1, 0, 5, 0).random::<u64>();
        assert_ne!(a, b);
        assert_eq!(a, c);
    }
}
