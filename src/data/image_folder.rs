//! A folder of images (PNG, BMP, TIFF). STUB: to be implemented.

use super::fit::FitMode;
use super::{DType, MemberSource, Shape};
use crate::error::{DataError, DataResult};
use std::path::Path;

pub struct ImageFolder {}

impl ImageFolder {
    pub fn open(path: &Path, _fit: Option<FitMode>) -> DataResult<Self> {
        Err(DataError::new(path, "image folders not implemented yet"))
    }
}

impl MemberSource for ImageFolder {
    fn origin(&self) -> String {
        String::new()
    }
    fn len(&self) -> usize {
        0
    }
    fn shape(&self) -> Shape {
        Shape::new(1, 1, 1)
    }
    fn dtype(&self) -> DType {
        DType::U8
    }
    fn member_id(&self, index: usize) -> String {
        index.to_string()
    }
    fn read_f32(&self, _index: usize, _out: &mut [f32]) -> DataResult<()> {
        Ok(())
    }
}
