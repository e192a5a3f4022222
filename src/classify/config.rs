//! [`ClassifierConfig`]: network size, training schedule, augmentation and the pseudo-label
//! confidence threshold, as one serde/TOML table.

use serde::{Deserialize, Serialize};

use crate::data::{AugmentConfig, NormalizationConfig, Shape};
use crate::train::BackendChoice;

/// An invalid classifier setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid classifier configuration: {0}")]
pub struct ClassifierConfigError(pub String);

/// Which size the network sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "kebab-case")]
pub enum InputSize {
    /// Members as they are.
    Native,
    /// Members whose longer side exceeds `max_px` are resized (antialiased, aspect ratio
    /// kept) so that it becomes `max_px`; smaller members stay as they are.
    LongSide { max_px: usize },
}

impl Default for InputSize {
    /// 64 px: 28–64-px members stay as they are; a 160×224 frame becomes 46×64, ~12× fewer
    /// pixels, which is what makes training on 7,000 such frames a matter of minutes on
    /// the CPU (features a few pixels wide at full size survive the antialiased shrink as
    /// one-pixel features; raise it for finer detail).
    fn default() -> Self {
        InputSize::LongSide { max_px: 64 }
    }
}

/// Smallest side a resized member may have: below it the network has nothing left to pool.
pub const MIN_SIDE_PX: usize = 8;

impl InputSize {
    /// The working shape for members of shape `member`.
    pub fn working_shape(self, member: Shape) -> Shape {
        let long = member.height.max(member.width);
        match self {
            InputSize::LongSide { max_px } if long > max_px => {
                let scale = max_px as f64 / long as f64;
                let side = |px: usize| ((px as f64 * scale).round() as usize).max(MIN_SIDE_PX);
                Shape::new(member.channels, side(member.height), side(member.width))
            }
            _ => member,
        }
    }
}

/// How the classifier is built and trained. Every field has a default; a TOML file sets
/// only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Multiplies every stage's channel count (rounded to a multiple of 4, at least 8).
    pub width_multiplier: f64,
    /// Multiplies every stage's block count (rounded up, at least 1).
    pub depth_multiplier: f64,
    /// Dropout before the linear head, in [0, 1).
    pub dropout: f64,
    /// Stochastic-depth drop rate of the last residual block; earlier blocks get linearly
    /// less (EfficientNet's rule). In [0, 1).
    pub stochastic_depth: f64,
    pub input_size: InputSize,
    pub normalization: NormalizationConfig,
    /// Data-layer augmentation of training batches (flips and rotations only where the
    /// classes are symmetric: not for digits).
    pub augmentation: AugmentConfig,
    /// Random translation of training samples by up to this fraction of each side (edge
    /// pixels repeat into the gap); 0 disables it.
    pub max_shift_fraction: f64,
    pub epochs: usize,
    /// Full-batch steps of a refresh after hand-label edits: the trained network's linear
    /// head refitted from its weights on the new labels (the app's automatic retrain).
    pub refresh_steps: usize,
    pub batch_size: usize,
    /// Peak learning rate of AdamW (after a one-epoch warm-up; cosine decay to the end).
    pub learning_rate: f64,
    /// Decoupled (AdamW) weight decay.
    pub weight_decay: f64,
    /// Epochs without a better held-out accuracy before stopping; 0 never stops early.
    pub patience_epochs: usize,
    /// Share of the hand-labelled members held out (stratified) to measure accuracy.
    pub heldout_fraction: f64,
    /// Pseudo-labels with at least this softmax confidence feed the auxiliary losses.
    pub confidence_threshold: f32,
    /// Members per forward pass when predicting.
    pub predict_batch_size: usize,
    /// Hand-labelled members decoded once and kept in memory, at most this many bytes
    /// (procedural and compressed ensembles are costly to decode every epoch).
    pub cache_limit_bytes: usize,
    pub backend: BackendChoice,
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            // Half the table's widths: on the CPU backend, full width costs ~3× the time for
            // no gain on the sample ensembles.
            width_multiplier: 0.5,
            depth_multiplier: 1.0,
            dropout: 0.2,
            stochastic_depth: 0.1,
            input_size: InputSize::default(),
            normalization: NormalizationConfig::default(),
            augmentation: AugmentConfig {
                brightness: 0.1,
                ..AugmentConfig::default()
            },
            max_shift_fraction: 0.1,
            epochs: 40,
            refresh_steps: 200,
            batch_size: 64,
            learning_rate: 3e-3,
            weight_decay: 0.05,
            patience_epochs: 10,
            heldout_fraction: 0.2,
            confidence_threshold: 0.9,
            predict_batch_size: 256,
            cache_limit_bytes: 1 << 30,
            backend: BackendChoice::Auto,
            seed: 42,
        }
    }
}

impl ClassifierConfig {
    pub fn from_toml(text: &str) -> Result<Self, ClassifierConfigError> {
        toml::from_str(text).map_err(|e| ClassifierConfigError(e.to_string()))
    }

    pub fn to_toml(&self) -> String {
        // Every field is a plain value, table or enum: serialisation cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Rejects settings that would fail later or train nonsense.
    pub fn validate(&self) -> Result<(), ClassifierConfigError> {
        let fail = |reason: String| Err(ClassifierConfigError(reason));
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let fraction = |x: f64| (0.0..1.0).contains(&x);
        if !positive(self.width_multiplier) || !positive(self.depth_multiplier) {
            return fail(format!(
                "width and depth multipliers must be > 0, got {} and {}",
                self.width_multiplier, self.depth_multiplier
            ));
        }
        if !fraction(self.dropout) || !fraction(self.stochastic_depth) {
            return fail(format!(
                "dropout and stochastic_depth must be in [0, 1), got {} and {}",
                self.dropout, self.stochastic_depth
            ));
        }
        if let InputSize::LongSide { max_px } = self.input_size
            && max_px < MIN_SIDE_PX
        {
            return fail(format!(
                "input_size max_px must be at least {MIN_SIDE_PX}, got {max_px}"
            ));
        }
        if !(0.0..0.5).contains(&self.max_shift_fraction) {
            return fail(format!(
                "max_shift_fraction must be in [0, 0.5), got {}",
                self.max_shift_fraction
            ));
        }
        if self.epochs == 0 || self.batch_size < 2 || self.predict_batch_size == 0 {
            return fail(format!(
                "epochs must be >= 1, batch_size >= 2 (batch norm) and predict_batch_size >= 1, \
                 got {}, {} and {}",
                self.epochs, self.batch_size, self.predict_batch_size
            ));
        }
        if !positive(self.learning_rate) || self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return fail(format!(
                "learning_rate must be > 0 and weight_decay >= 0, got {} and {}",
                self.learning_rate, self.weight_decay
            ));
        }
        if !(self.heldout_fraction > 0.0 && self.heldout_fraction < 1.0) {
            return fail(format!(
                "heldout_fraction must be in (0, 1), got {}",
                self.heldout_fraction
            ));
        }
        if !(0.0..=1.0).contains(&self.confidence_threshold) {
            return fail(format!(
                "confidence_threshold must be in [0, 1], got {}",
                self.confidence_threshold
            ));
        }
        Ok(())
    }
}
