//! Ensembles: how members are stored, read, normalised, augmented, split and batched.
//!
//! Every format opens to an [`Ensemble`]: a [`MemberSource`] (the pixels, in the compact dtype
//! they came in) plus optional labels and simulation parameters. Members are decoded to `f32`
//! one at a time, so an ensemble far larger than memory streams through training.

pub mod augment;
pub mod batch;
mod class_labels;
mod ensemble;
pub mod fit;
pub mod idx;
pub mod image_folder;
pub mod limits;
pub mod matrix;
pub mod npy;
mod open;
mod parameters;
mod raw_array;
pub mod row_labels;
mod shape;
mod source;
pub mod split;
pub mod summary;
pub mod transform;

pub use augment::{AugmentConfig, Augmentation, CropSize};
pub use batch::{Batch, BatchLoader};
pub use class_labels::ClassLabels;
pub use ensemble::Ensemble;
pub use open::{NanPolicy, OpenOptions, open};
pub use parameters::ParameterTable;
pub use raw_array::{ByteOrder, RawArray};
pub use shape::{DType, Shape};
pub use source::MemberSource;
pub use split::{Fold, Split, SplitFractions};
pub use transform::{Normalization, NormalizationConfig, PreTransform, Scaling};
