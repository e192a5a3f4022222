//! A dense N×C×H×W array in a file or in memory, read member by member.

use super::{DType, MemberSource, Shape};
use crate::error::{DataError, DataResult};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

/// Where the bytes of a [`RawArray`] live.
enum Storage {
    /// Decompressed or small data held in memory.
    Memory(Vec<u8>),
    /// Uncompressed data read with positioned reads. Page-cache pages are not counted in our
    /// resident set, unlike a memory map swept end to end, so a 4.8 GB ensemble streams
    /// through training with a resident set of a few batches.
    File { file: File, data_offset: u64 },
}

/// Dense array of `count` members of `shape`, stored contiguously in `dtype`.
pub struct RawArray {
    path: PathBuf,
    storage: Storage,
    dtype: DType,
    byte_order: ByteOrder,
    count: usize,
    shape: Shape,
}

impl RawArray {
    /// An array read from `file` starting at `data_offset`. Fails if the file is shorter
    /// than the header claims, so a lying header never causes a huge read or allocation.
    pub fn from_file(
        path: &Path,
        file: File,
        data_offset: u64,
        dtype: DType,
        byte_order: ByteOrder,
        count: usize,
        shape: Shape,
    ) -> DataResult<Self> {
        let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let needed = data_bytes(path, dtype, count, shape)?;
        let available = file_len.saturating_sub(data_offset);
        if (available as u128) < needed {
            return Err(DataError::new(
                path,
                format!(
                    "file is truncated: header declares {count} members of {shape} {dtype} \
                     ({needed} bytes) but only {available} bytes follow the header"
                ),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            storage: Storage::File { file, data_offset },
            dtype,
            byte_order,
            count,
            shape,
        })
    }

    /// An array over bytes already in memory (e.g. decompressed). `bytes` must hold exactly
    /// `count` members.
    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        dtype: DType,
        byte_order: ByteOrder,
        count: usize,
        shape: Shape,
    ) -> DataResult<Self> {
        let needed = data_bytes(path, dtype, count, shape)?;
        if (bytes.len() as u128) != needed {
            return Err(DataError::new(
                path,
                format!(
                    "data size mismatch: header declares {count} members of {shape} {dtype} \
                     ({needed} bytes) but the data holds {} bytes",
                    bytes.len()
                ),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            storage: Storage::Memory(bytes),
            dtype,
            byte_order,
            count,
            shape,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn member_bytes(&self) -> usize {
        self.shape.len() * self.dtype.size_bytes()
    }

    /// Copies the stored bytes of member `index` into `buf` (resized as needed).
    pub fn read_raw(&self, index: usize, buf: &mut Vec<u8>) -> DataResult<()> {
        self.check_index(index)?;
        let n = self.member_bytes();
        buf.resize(n, 0);
        match &self.storage {
            Storage::Memory(bytes) => buf.copy_from_slice(&bytes[index * n..(index + 1) * n]),
            Storage::File { file, data_offset } => {
                let offset = data_offset + (index * n) as u64;
                file.read_exact_at(buf, offset)
                    .map_err(|e| DataError::io(&self.path, e))?;
            }
        }
        Ok(())
    }

    fn check_index(&self, index: usize) -> DataResult<()> {
        if index >= self.count {
            return Err(DataError::new(
                &self.path,
                format!("member {index} out of range (ensemble has {})", self.count),
            ));
        }
        Ok(())
    }
}

/// Bytes the data section needs, checked for overflow.
fn data_bytes(path: &Path, dtype: DType, count: usize, shape: Shape) -> DataResult<u128> {
    let n = (count as u128)
        .checked_mul(shape.channels as u128)
        .and_then(|v| v.checked_mul(shape.height as u128))
        .and_then(|v| v.checked_mul(shape.width as u128))
        .and_then(|v| v.checked_mul(dtype.size_bytes() as u128));
    n.ok_or_else(|| DataError::new(path, "header declares an impossibly large array"))
}

/// Converts stored bytes of one member to `f32`.
pub(crate) fn decode_to_f32(bytes: &[u8], dtype: DType, order: ByteOrder, out: &mut [f32]) {
    macro_rules! convert {
        ($ty:ty, $n:expr) => {
            for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let arr: [u8; $n] = chunk.try_into().expect("chunk has exact size");
                *o = match order {
                    ByteOrder::Little => <$ty>::from_le_bytes(arr),
                    ByteOrder::Big => <$ty>::from_be_bytes(arr),
                } as f32;
            }
        };
    }
    match dtype {
        DType::U8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = b as f32;
            }
        }
        DType::U16 => convert!(u16, 2),
        DType::F32 => convert!(f32, 4),
        DType::F64 => convert!(f64, 8),
    }
}

impl MemberSource for RawArray {
    fn origin(&self) -> String {
        self.path.display().to_string()
    }

    fn len(&self) -> usize {
        self.count
    }

    fn shape(&self) -> Shape {
        self.shape
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn member_id(&self, index: usize) -> String {
        index.to_string()
    }

    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()> {
        self.check_index(index)?;
        let n = self.member_bytes();
        match &self.storage {
            Storage::Memory(bytes) => decode_to_f32(
                &bytes[index * n..(index + 1) * n],
                self.dtype,
                self.byte_order,
                out,
            ),
            Storage::File { .. } => {
                // One member is at most 3×256×256×8 bytes; a small per-call buffer is cheaper
                // than sharing one across threads.
                let mut buf = Vec::new();
                self.read_raw(index, &mut buf)?;
                decode_to_f32(&buf, self.dtype, self.byte_order, out);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_big_endian_u16_and_little_endian_f64() {
        let mut out = [0.0f32; 2];
        decode_to_f32(&[0x01, 0x02, 0xff, 0xff], DType::U16, ByteOrder::Big, &mut out);
        assert_eq!(out, [258.0, 65535.0]);
        let bytes: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        decode_to_f32(&bytes, DType::F64, ByteOrder::Little, &mut out);
        assert_eq!(out, [1.5, -2.0]);
    }

    #[test]
    fn rejects_header_larger_than_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let file = File::open(&path).unwrap();
        let err = RawArray::from_file(
            &path,
            file,
            16,
            DType::U8,
            ByteOrder::Big,
            1_000_000_000,
            Shape::new(1, 28, 28),
        )
        .err()
        .expect("must fail");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
