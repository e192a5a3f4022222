//! IDX files (MNIST's format), plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 <type> <ndims>`, `ndims` big-endian `u32`
//! dimensions, then the values in big-endian C order. Plain files are read member by member
//! with positioned reads; gzip files are decompressed into memory, bounded by the data that is
//! actually there rather than by what the header claims.

use super::{ByteOrder, DType, RawArray, Shape, limits};
use crate::error::{DataError, DataResult};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True for file names that are IDX by convention (`*-ubyte`, `*.idx`, optionally `.gz`).
pub fn looks_like_idx(lowercase_name: &str) -> bool {
    let name = lowercase_name.strip_suffix(".gz").unwrap_or(lowercase_name);
    name.ends_with("-ubyte") || name.ends_with(".idx")
}

/// True when `bytes` start like an IDX file or a gzip stream (which may hold one).
pub(crate) fn starts_like_idx_or_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
        || (bytes.len() >= 4 && bytes[0] == 0 && bytes[1] == 0 && (1..=4).contains(&bytes[3]))
}

/// For `X-images.idx3-ubyte[.gz]` or `X-images-idx3-ubyte[.gz]`, the labels file beside it
/// (`X-labels.idx1-ubyte[.gz]`, same naming style), if it exists. A compressed labels file
/// is preferred for compressed images and vice versa, but either is accepted.
pub fn sibling_labels_file(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    let (stem, gz) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    let prefix = stem.strip_suffix("idx3-ubyte")?;
    let separator = prefix.chars().last().filter(|c| matches!(c, '.' | '-'))?;
    let base = prefix[..prefix.len() - 1].strip_suffix("images")?;
    let labels_stem = format!("{base}labels{separator}idx1-ubyte");
    let [preferred, other] = if gz {
        [format!("{labels_stem}.gz"), labels_stem]
    } else {
        [labels_stem.clone(), format!("{labels_stem}.gz")]
    };
    [preferred, other]
        .into_iter()
        .map(|candidate| images.with_file_name(candidate))
        .find(|candidate| candidate.is_file())
}

/// Opens an IDX images file (N×H×W or N×C×H×W), plain or gzip-compressed (detected by content).
pub fn open_images(path: &Path) -> DataResult<RawArray> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    if is_gzip(path, &mut file)? {
        return images_from_reader(path, MultiGzDecoder::new(BufReader::new(file)));
    }

    let header = read_header(path, &mut file)?;
    let layout = images_layout(path, &header)?;
    let file_bytes = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    reject_trailing_bytes(path, file_bytes, header.header_bytes, layout.data_bytes)?;
    RawArray::from_file(
        path,
        file,
        header.header_bytes,
        layout.dtype,
        ByteOrder::Big,
        layout.count,
        layout.shape,
    )
}

/// Reads an IDX1 `u8` labels file, plain or gzip-compressed (detected by content), that must
/// hold `expected` labels. The count is compared from the header, before any data is read.
pub fn read_labels(path: &Path, expected: usize) -> DataResult<Vec<u8>> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    if is_gzip(path, &mut file)? {
        labels_from_reader(
            path,
            MultiGzDecoder::new(BufReader::new(file)),
            Some(expected),
        )
    } else {
        labels_from_reader(path, BufReader::new(file), Some(expected))
    }
}

/// IDX images from bytes in memory (e.g. embedded with `include_bytes!`), plain or gzip.
/// `origin` names the data in messages.
pub fn images_from_bytes(origin: &Path, bytes: &[u8]) -> DataResult<RawArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        images_from_reader(origin, MultiGzDecoder::new(bytes))
    } else {
        images_from_reader(origin, bytes)
    }
}

/// IDX1 labels from bytes in memory, plain or gzip. `origin` names the data in messages.
pub fn labels_from_bytes(origin: &Path, bytes: &[u8]) -> DataResult<Vec<u8>> {
    if bytes.starts_with(&GZIP_MAGIC) {
        labels_from_reader(origin, MultiGzDecoder::new(bytes), None)
    } else {
        labels_from_reader(origin, bytes, None)
    }
}

/// Reads exactly `declared_bytes` from `reader` into memory. A declared size over the
/// decompression limit is refused before reading; below it the buffer grows with the data
/// actually read, so a lying header costs nothing unless the data is there. A stream shorter
/// or longer than declared is an error.
pub(crate) fn read_declared_bytes(
    path: &Path,
    reader: impl Read,
    declared_bytes: u64,
) -> DataResult<Vec<u8>> {
    limits::check_decompressed(path, declared_bytes)?;
    // Checked while reading: at most one byte past the declared size (itself within the
    // limit) is ever decompressed, enough to tell "more data" from "exact".
    let mut data = Vec::new();
    reader
        .take(declared_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| DataError::io(path, e))?;
    let read_bytes = data.len() as u64;
    if read_bytes < declared_bytes {
        return Err(DataError::new(
            path,
            format!(
                "data is truncated: the header declares {declared_bytes} bytes of data \
                 but only {read_bytes} are present"
            ),
        ));
    }
    if read_bytes > declared_bytes {
        return Err(DataError::new(
            path,
            format!(
                "more data than the header declares ({declared_bytes} bytes); \
                 the header or the data is wrong"
            ),
        ));
    }
    Ok(data)
}

/// The parsed magic number and dimensions.
struct IdxHeader {
    type_code: u8,
    dims: Vec<u32>,
    header_bytes: u64,
}

/// How the images of an IDX file are laid out.
struct ImagesLayout {
    dtype: DType,
    count: usize,
    shape: Shape,
    data_bytes: u64,
}

fn read_header(path: &Path, reader: &mut impl Read) -> DataResult<IdxHeader> {
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|e| DataError::io(path, e))?;
    let [zero0, zero1, type_code, ndims] = magic;
    if zero0 != 0 || zero1 != 0 || !(1..=4).contains(&ndims) {
        return Err(DataError::new(
            path,
            format!(
                "not an IDX file: bad magic number {:02x} {:02x} {:02x} {:02x} \
                 (expected 00 00 <type> <1 to 4 dimensions>)",
                zero0, zero1, type_code, ndims
            ),
        ));
    }
    let mut dims = Vec::with_capacity(ndims as usize);
    for _ in 0..ndims {
        let mut dim = [0u8; 4];
        reader
            .read_exact(&mut dim)
            .map_err(|e| DataError::io(path, e))?;
        dims.push(u32::from_be_bytes(dim));
    }
    Ok(IdxHeader {
        type_code,
        dims,
        header_bytes: 4 + 4 * ndims as u64,
    })
}

/// The element type of an IDX type code, or why it is not supported.
fn dtype_of(path: &Path, type_code: u8) -> DataResult<DType> {
    let unsupported = |name: &str| {
        DataError::new(
            path,
            format!(
                "unsupported IDX element type 0x{type_code:02x} ({name}); \
                 supported: 0x08 (u8), 0x0D (f32), 0x0E (f64)"
            ),
        )
    };
    match type_code {
        0x08 => Ok(DType::U8),
        0x0D => Ok(DType::F32),
        0x0E => Ok(DType::F64),
        0x09 => Err(unsupported("signed 8-bit")),
        0x0B => Err(unsupported("signed 16-bit")),
        0x0C => Err(unsupported("signed 32-bit")),
        _ => Err(unsupported("unknown type code")),
    }
}

fn images_layout(path: &Path, header: &IdxHeader) -> DataResult<ImagesLayout> {
    let dtype = dtype_of(path, header.type_code)?;
    let dims: Vec<usize> = header.dims.iter().map(|&d| d as usize).collect();
    let (count, shape) = match dims[..] {
        [n, h, w] => (n, Shape::new(1, h, w)),
        [n, c, h, w] => (n, Shape::new(c, h, w)),
        _ => {
            return Err(DataError::new(
                path,
                format!(
                    "IDX images need 3 (N×H×W) or 4 (N×C×H×W) dimensions, found {} {:?}{}",
                    dims.len(),
                    dims,
                    if dims.len() == 1 {
                        " (is this a labels file?)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    };
    if count == 0 || shape.is_empty() {
        return Err(DataError::new(
            path,
            format!("IDX file holds no image data (dimensions {dims:?})"),
        ));
    }
    limits::check_member(path, shape)?;
    // Each factor is below 2^32 and there are at most five, so u128 cannot overflow.
    let data_bytes = dims.iter().map(|&d| d as u128).product::<u128>() * dtype.size_bytes() as u128;
    let data_bytes = u64::try_from(data_bytes).map_err(|_| {
        DataError::new(
            path,
            format!("header declares an impossibly large array {dims:?}"),
        )
    })?;
    Ok(ImagesLayout {
        dtype,
        count,
        shape,
        data_bytes,
    })
}

/// Reads images from a stream into memory.
fn images_from_reader(path: &Path, mut reader: impl Read) -> DataResult<RawArray> {
    let header = read_header(path, &mut reader)?;
    let layout = images_layout(path, &header)?;
    let data = read_declared_bytes(path, reader, layout.data_bytes)?;
    RawArray::from_bytes(
        path,
        data,
        layout.dtype,
        ByteOrder::Big,
        layout.count,
        layout.shape,
    )
}

fn labels_from_reader(
    path: &Path,
    mut reader: impl Read,
    expected: Option<usize>,
) -> DataResult<Vec<u8>> {
    let header = read_header(path, &mut reader)?;
    if header.type_code != 0x08 || header.dims.len() != 1 {
        return Err(DataError::new(
            path,
            format!(
                "not an IDX labels file: expected one dimension of u8 (magic 00 00 08 01), \
                 found type 0x{:02x} with {} dimensions",
                header.type_code,
                header.dims.len()
            ),
        ));
    }
    let declared = header.dims[0] as usize;
    if let Some(expected) = expected
        && declared != expected
    {
        return Err(DataError::new(
            path,
            format!("holds {declared} labels but the ensemble has {expected} members"),
        ));
    }
    read_declared_bytes(path, reader, declared as u64)
}

/// Checks the magic bytes, then rewinds so the caller reads from the start.
fn is_gzip(path: &Path, file: &mut File) -> DataResult<bool> {
    use std::io::{Seek, SeekFrom};
    let mut magic = Vec::with_capacity(2);
    (&mut *file)
        .take(2)
        .read_to_end(&mut magic)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .map_err(|e| DataError::io(path, e))?;
    Ok(magic == GZIP_MAGIC)
}

fn reject_trailing_bytes(
    path: &Path,
    file_bytes: u64,
    header_bytes: u64,
    data_bytes: u64,
) -> DataResult<()> {
    let extra = file_bytes
        .saturating_sub(header_bytes)
        .saturating_sub(data_bytes);
    if extra > 0 {
        return Err(DataError::new(
            path,
            format!(
                "{extra} bytes beyond the {data_bytes} bytes of data the header declares; \
                 the header or the data is wrong"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, type_code, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn sibling_labels_keep_the_naming_style() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "train-labels-idx1-ubyte.gz",
            "t10k-labels.idx1-ubyte",
            "t10k-labels.idx1-ubyte.gz",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let sibling = |name: &str| {
            sibling_labels_file(&dir.path().join(name))
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        };
        assert_eq!(
            sibling("train-images-idx3-ubyte.gz").as_deref(),
            Some("train-labels-idx1-ubyte.gz")
        );
        // Falls back to the compressed labels when no plain ones exist.
        assert_eq!(
            sibling("train-images-idx3-ubyte").as_deref(),
            Some("train-labels-idx1-ubyte.gz")
        );
        assert_eq!(
            sibling("t10k-images.idx3-ubyte").as_deref(),
            Some("t10k-labels.idx1-ubyte")
        );
        assert_eq!(
            sibling("t10k-images.idx3-ubyte.gz").as_deref(),
            Some("t10k-labels.idx1-ubyte.gz")
        );
        assert_eq!(sibling("other-images.idx3-ubyte"), None);
        assert_eq!(sibling("data.npy"), None);
    }

    #[test]
    fn plain_bytes_round_trip_with_four_dimensions() {
        let data: Vec<u8> = (0..2 * 3 * 2 * 2).collect();
        let bytes = idx_bytes(0x08, &[2, 3, 2, 2], &data);
        let array = images_from_bytes(Path::new("mem"), &bytes).unwrap();
        use crate::data::MemberSource;
        assert_eq!(array.shape(), Shape::new(3, 2, 2));
        let mut out = vec![0.0; 12];
        array.read_f32(1, &mut out).unwrap();
        let expected: Vec<f32> = (12..24).map(|v| v as f32).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn rejects_signed_types_and_trailing_data() {
        let err = images_from_bytes(Path::new("mem"), &idx_bytes(0x0B, &[1, 1, 1], &[0, 0]))
            .err()
            .unwrap();
        assert!(err.reason.contains("signed 16-bit"), "{err}");
        let err = images_from_bytes(Path::new("mem"), &idx_bytes(0x08, &[1, 1, 1], &[0, 0]))
            .err()
            .unwrap();
        assert!(err.reason.contains("more data"), "{err}");
    }

    #[test]
    fn labels_from_bytes_checks_the_count() {
        let ok = labels_from_bytes(Path::new("mem"), &idx_bytes(0x08, &[3], &[1, 2, 3])).unwrap();
        assert_eq!(ok, [1, 2, 3]);
        let err = labels_from_bytes(Path::new("mem"), &idx_bytes(0x08, &[1_000_000], &[1]))
            .err()
            .unwrap();
        assert!(err.reason.contains("truncated"), "{err}");
    }
}
