use super::{DType, Shape};
use crate::error::DataResult;

/// Random access to the members of an ensemble, whatever the storage.
///
/// Implementations keep data compact (memory-mapped, streamed from disk, or generated on the
/// fly) and decode one member at a time, so callers never need the whole ensemble in memory.
pub trait MemberSource: Send + Sync {
    /// Where the members come from (a path or `sample:NAME`), for messages.
    fn origin(&self) -> String;

    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shape(&self) -> Shape;

    /// The dtype members are stored in.
    fn dtype(&self) -> DType;

    /// Stable identifier of member `index`: a relative file path for image folders, the
    /// zero-based index for array formats.
    fn member_id(&self, index: usize) -> String;

    /// Decodes member `index` into `out` (length `shape().len()`, CHW order) as raw values
    /// converted to `f32`, with no normalisation.
    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()>;
}
