//! Bringing members of another size to the ensemble's size: resize or centre crop.
//! STUB: to be implemented.

use super::{DType, MemberSource, Shape};
use crate::error::DataResult;
use std::sync::Arc;

/// How to bring a member to `height × width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitMode {
    Resize { height: usize, width: usize },
    CenterCrop { height: usize, width: usize },
}

impl FitMode {
    pub fn target_shape(&self, channels: usize) -> Shape {
        match *self {
            FitMode::Resize { height, width } | FitMode::CenterCrop { height, width } => {
                Shape::new(channels, height, width)
            }
        }
    }
}

/// A source whose members are fitted to one size on read.
pub struct FittedSource {
    inner: Arc<dyn MemberSource>,
    mode: FitMode,
}

impl FittedSource {
    pub fn new(inner: Arc<dyn MemberSource>, mode: FitMode) -> Self {
        Self { inner, mode }
    }
}

impl MemberSource for FittedSource {
    fn origin(&self) -> String {
        self.inner.origin()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn shape(&self) -> Shape {
        self.mode.target_shape(self.inner.shape().channels)
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn member_id(&self, index: usize) -> String {
        self.inner.member_id(index)
    }
    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()> {
        let mut full = vec![0.0; self.inner.shape().len()];
        self.inner.read_f32(index, &mut full)?;
        out.fill(0.0);
        Ok(())
    }
}
