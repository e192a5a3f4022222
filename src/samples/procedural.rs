//! Ensembles rendered on the fly: member `i` is drawn from its own random stream, so any
//! member can be read at any time, from any thread, with nothing stored but its class.

use crate::data::{DType, MemberSource, Shape};
use crate::error::{DataError, DataResult};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Draws members of one procedural sample.
pub trait Generator: Send + Sync + 'static {
    /// The sample's name as in `sample:NAME`.
    fn name(&self) -> &'static str;

    fn shape(&self) -> Shape;

    /// Class names in label order.
    fn class_names(&self) -> &'static [&'static str];

    /// Renders one member of `class` into `out` (CHW) as intensities in `0..=1`.
    fn render(&self, class: u32, rng: &mut ChaCha8Rng, out: &mut [f32]);
}

/// Stream reserved for choosing member classes; members use streams `0..count`.
const CLASS_STREAM: u64 = u64::MAX;

/// A [`MemberSource`] that renders member `i` from `(seed, i)` each time it is read.
///
/// Members are bit-identical across runs and threads on one platform. Rendering uses `f32`
/// `sin`/`exp` from the platform's maths library, so another platform may differ by a grey
/// level here and there.
///
/// Member ids are the index zero-padded to at least six digits (`"000123"`), so ids sort in
/// member order and match the file stems `sense sample` writes.
pub struct ProceduralSource<G> {
    generator: G,
    seed: u64,
    classes: Vec<u32>,
    id_width: usize,
}

impl<G: Generator> ProceduralSource<G> {
    /// `count` members with balanced classes (counts differ by at most one), assigned by a
    /// seeded shuffle so neighbouring indices are not correlated.
    pub fn new(generator: G, count: usize, seed: u64) -> Self {
        let n_classes = generator.class_names().len() as u32;
        let mut classes: Vec<u32> = (0..count as u32).map(|i| i % n_classes).collect();
        classes.shuffle(&mut stream_rng(seed, CLASS_STREAM));
        let id_width = count.saturating_sub(1).to_string().len().max(6);
        Self {
            generator,
            seed,
            classes,
            id_width,
        }
    }

    /// Class of every member, in member order.
    pub fn classes(&self) -> &[u32] {
        &self.classes
    }

    pub fn class_names(&self) -> &'static [&'static str] {
        self.generator.class_names()
    }
}

/// The ChaCha8 stream `stream` of `seed`: independent streams per member make random access
/// deterministic without replaying earlier members.
fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

impl<G: Generator> MemberSource for ProceduralSource<G> {
    fn origin(&self) -> String {
        format!("sample:{}", self.generator.name())
    }

    fn len(&self) -> usize {
        self.classes.len()
    }

    fn shape(&self) -> Shape {
        self.generator.shape()
    }

    fn dtype(&self) -> DType {
        DType::U8
    }

    fn member_id(&self, index: usize) -> String {
        format!("{index:0width$}", width = self.id_width)
    }

    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()> {
        let Some(&class) = self.classes.get(index) else {
            return Err(DataError::new(
                self.origin(),
                format!("member {index} out of range (ensemble has {})", self.len()),
            ));
        };
        let expected = self.shape().len();
        if out.len() != expected {
            return Err(DataError::new(
                self.origin(),
                format!(
                    "output buffer holds {} values, member has {expected}",
                    out.len()
                ),
            ));
        }
        let mut rng = stream_rng(self.seed, index as u64);
        self.generator.render(class, &mut rng, out);
        // Quantise like an 8-bit camera image, so the sample behaves like real data.
        for v in out.iter_mut() {
            *v = if v.is_nan() {
                0.0
            } else {
                (*v * 255.0).round().clamp(0.0, 255.0)
            };
        }
        Ok(())
    }
}
