//! Shared limits on what hostile input may make us allocate: the decoded size of one member
//! and the bytes decompressed into memory. Checked before allocating, from header sizes.

use super::Shape;
use crate::error::{DataError, DataResult};
use std::path::Path;

/// Largest member as decoded `f32` (C·H·W·4 bytes): 64 MiB, e.g. 3×2364×2364. Members are
/// decoded on every core at once, so this times the thread count must stay well below memory.
pub const DEFAULT_MAX_MEMBER_BYTES: u64 = 64 << 20;

/// Largest stream decompressed into memory (gzip IDX, deflated NPZ, labels): 1 GiB. Larger
/// data is read in place from an uncompressed file instead.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

fn from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// The member limit; `SENSE_MAX_MEMBER_BYTES` overrides it.
pub fn max_member_bytes() -> u64 {
    from_env("SENSE_MAX_MEMBER_BYTES", DEFAULT_MAX_MEMBER_BYTES)
}

/// The decompression limit; `SENSE_MAX_DECOMPRESSED_BYTES` overrides it.
pub fn max_decompressed_bytes() -> u64 {
    from_env(
        "SENSE_MAX_DECOMPRESSED_BYTES",
        DEFAULT_MAX_DECOMPRESSED_BYTES,
    )
}

/// Bytes of one member of `channels × height × width` decoded to `f32`, without overflow.
pub fn member_f32_bytes(channels: usize, height: usize, width: usize) -> u128 {
    [channels, height, width]
        .iter()
        .fold(4u128, |acc, &d| acc.saturating_mul(d as u128))
}

/// Refuses members whose `f32` buffer would exceed [`max_member_bytes`].
pub fn check_member(path: &Path, shape: Shape) -> DataResult<()> {
    let bytes = member_f32_bytes(shape.channels, shape.height, shape.width);
    let limit = max_member_bytes();
    if bytes > limit as u128 {
        return Err(DataError::new(
            path,
            format!(
                "members of {shape} need {} MiB each as f32, over the {} MiB limit \
                 (set SENSE_MAX_MEMBER_BYTES to raise it, or use --resize)",
                bytes >> 20,
                limit >> 20
            ),
        ));
    }
    Ok(())
}

/// Refuses a declared decompressed size over [`max_decompressed_bytes`], before reading.
pub fn check_decompressed(path: &Path, declared_bytes: u64) -> DataResult<()> {
    let limit = max_decompressed_bytes();
    if declared_bytes > limit {
        return Err(DataError::new(
            path,
            format!(
                "the header declares {declared_bytes} bytes of data to decompress into memory, \
                 over the {} MiB limit; decompress the file first so it is read from disk \
                 (or set SENSE_MAX_DECOMPRESSED_BYTES)",
                limit >> 20
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_limit_counts_f32_bytes() {
        let path = Path::new("x");
        assert!(check_member(path, Shape::new(3, 256, 256)).is_ok());
        // 16384² u8 is 256 MiB stored but 1 GiB as f32.
        let err = check_member(path, Shape::new(1, 16384, 16384)).unwrap_err();
        assert!(err.reason.contains("1024 MiB"), "{err}");
        assert!(check_member(path, Shape::new(usize::MAX, usize::MAX, 2)).is_err());
    }

    #[test]
    fn decompressed_limit_is_checked_from_the_declared_size() {
        assert!(check_decompressed(Path::new("x.gz"), DEFAULT_MAX_DECOMPRESSED_BYTES).is_ok());
        let err = check_decompressed(Path::new("bomb.gz"), u32::MAX as u64).unwrap_err();
        assert!(err.reason.contains("over the 1024 MiB limit"), "{err}");
    }
}
