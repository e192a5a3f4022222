//! The real MNIST test set (10,000 digits, 28×28), embedded in the binary so `sample:mnist`
//! works from any directory. Source and licence: `sample_data/README.md`.

use super::hand_labelled_subset;
use crate::data::{DType, Ensemble, MemberSource, RawArray, Shape, idx};
use crate::error::{DataError, DataResult};
use std::path::Path;
use std::sync::{Arc, OnceLock};

const IMAGES_GZ: &[u8] = include_bytes!("../../sample_data/mnist/t10k-images.idx3-ubyte.gz");
const LABELS_GZ: &[u8] = include_bytes!("../../sample_data/mnist/t10k-labels.idx1-ubyte.gz");
const ORIGIN: &str = "sample:mnist";
const FULL_COUNT: usize = 10_000;
const DEFAULT_LABELLED: usize = 2_500;

/// Opens the first `count` (default all 10,000) MNIST test images; `seed` chooses the
/// stratified hand-labelled subset (a quarter of the members).
pub fn open(count: Option<usize>, seed: u64) -> DataResult<Ensemble> {
    let (images, digits) = decoded()?;
    let count = count.unwrap_or(FULL_COUNT);
    if count == 0 || count > images.len() {
        return Err(DataError::new(
            ORIGIN,
            format!(
                "member count must be between 1 and {}, got {count}",
                images.len()
            ),
        ));
    }
    let classes: Vec<u32> = digits[..count].iter().map(|&d| d as u32).collect();
    let labelled = (DEFAULT_LABELLED * count).div_ceil(FULL_COUNT);
    let chosen = hand_labelled_subset(&classes, 10, labelled, seed);
    let class_names: Vec<String> = (0..10).map(|d| d.to_string()).collect();

    let source = Arc::new(FirstMembers {
        inner: images.clone(),
        count,
    });
    Ok(super::labelled_ensemble(
        source,
        class_names,
        classes,
        &chosen,
    ))
}

/// The decoded images and their digit labels.
type Decoded = (Arc<RawArray>, Arc<Vec<u8>>);

/// Decompresses the embedded files once per process.
fn decoded() -> DataResult<Decoded> {
    static DECODED: OnceLock<Result<Decoded, String>> = OnceLock::new();
    let origin = Path::new(ORIGIN);
    DECODED
        .get_or_init(|| {
            let images = idx::images_from_bytes(origin, IMAGES_GZ).map_err(|e| e.reason)?;
            let digits = idx::labels_from_bytes(origin, LABELS_GZ).map_err(|e| e.reason)?;
            if digits.len() != images.len() || digits.iter().any(|&d| d > 9) {
                return Err("embedded labels do not match the images".to_string());
            }
            Ok((Arc::new(images), Arc::new(digits)))
        })
        .clone()
        .map_err(|reason| DataError::new(ORIGIN, reason))
}

/// The first `count` members of another source.
struct FirstMembers {
    inner: Arc<RawArray>,
    count: usize,
}

impl MemberSource for FirstMembers {
    fn origin(&self) -> String {
        ORIGIN.to_string()
    }

    fn len(&self) -> usize {
        self.count
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
        if index >= self.count {
            return Err(DataError::new(
                ORIGIN,
                format!("member {index} out of range (ensemble has {})", self.count),
            ));
        }
        self.inner.read_f32(index, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sample_has_real_class_counts_and_a_stratified_quarter_labelled() {
        let ensemble = open(None, 1).unwrap();
        assert_eq!(ensemble.len(), 10_000);
        assert_eq!(ensemble.shape(), Shape::new(1, 28, 28));
        let truth = ensemble.ground_truth.as_ref().unwrap();
        assert_eq!(
            truth.class_counts(),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
        let labels = ensemble.labels.as_ref().unwrap();
        assert_eq!(labels.labelled_count(), 2_500);
        for (hand, all) in labels.class_counts().iter().zip(truth.class_counts()) {
            // Proportional share, ±1 for rounding.
            assert!(
                (*hand as f64 - all as f64 / 4.0).abs() <= 1.0,
                "{hand} vs {all}"
            );
        }
    }

    #[test]
    fn prefix_and_bounds() {
        let ensemble = open(Some(100), 1).unwrap();
        assert_eq!(ensemble.len(), 100);
        assert_eq!(ensemble.labels.as_ref().unwrap().labelled_count(), 25);
        let mut buf = vec![0.0; 784];
        assert!(ensemble.source.read_f32(100, &mut buf).is_err());
        assert!(open(Some(10_001), 1).is_err());
    }
}
