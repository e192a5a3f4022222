//! NPY and NPZ arrays shaped (N, H, W) or (N, C, H, W).
//!
//! `npyz` parses the header; the data is never loaded whole when it can be read in place:
//! an `.npy` file and an uncompressed (stored) `.npz` entry are read member by member with
//! positioned reads. A deflated `.npz` entry is decompressed into memory, bounded by the data
//! actually present.

use super::idx::read_declared_bytes;
use super::{ByteOrder, DType, RawArray, Shape, limits};
use crate::error::{DataError, DataResult};
use npyz::{Endianness, Order, TypeChar};
use std::fs::File;
use std::io::Read;
use std::path::Path;

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy itself refuses headers above 10,000 bytes by default; anything far larger is garbage.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Arrays `open_npz` picks by name when the archive holds several.
const PREFERRED_NAMES: [&str; 3] = ["images", "x", "data"];

/// Opens an `.npy` file; the data stays on disk and is read one member at a time.
pub fn open_npy(path: &Path) -> DataResult<RawArray> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let file_bytes = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let layout = read_layout(path, &mut file, file_bytes)?;
    layout.check_fits(path, file_bytes)?;
    RawArray::from_file(
        path,
        file,
        layout.header_bytes,
        layout.dtype,
        layout.byte_order,
        layout.count,
        layout.shape,
    )
}

/// Opens one array of an `.npz` archive: `array` by name, or with `None` the only array, or
/// the one named `images`, `x` or `data`.
pub fn open_npz(path: &Path, array: Option<&str>) -> DataResult<RawArray> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| DataError::new(path, format!("not a valid NPZ (zip) archive: {e}")))?;
    let entry_name = choose_entry(path, &archive, array)?;
    let array_name = npyz::npz::array_name_from_file_name(&entry_name)
        .unwrap_or(&entry_name)
        .to_string();
    let in_array =
        |e: DataError| DataError::new(path, format!("array '{array_name}': {}", e.reason));

    let mut entry = archive
        .by_name(&entry_name)
        .map_err(|e| DataError::new(path, format!("cannot read array '{array_name}': {e}")))?;
    let entry_bytes = entry.size();
    let layout = read_layout(path, &mut entry, entry_bytes).map_err(in_array)?;
    layout.check_fits(path, entry_bytes).map_err(in_array)?;

    match entry.compression() {
        zip::CompressionMethod::Stored => {
            let data_offset = entry.data_start() + layout.header_bytes;
            drop(entry);
            RawArray::from_file(
                path,
                archive.into_inner(),
                data_offset,
                layout.dtype,
                layout.byte_order,
                layout.count,
                layout.shape,
            )
        }
        zip::CompressionMethod::Deflated => {
            let data =
                read_declared_bytes(path, &mut entry, layout.data_bytes).map_err(in_array)?;
            RawArray::from_bytes(
                path,
                data,
                layout.dtype,
                layout.byte_order,
                layout.count,
                layout.shape,
            )
        }
        other => Err(DataError::new(
            path,
            format!(
                "array '{array_name}' uses unsupported compression {other}; use np.savez or np.savez_compressed"
            ),
        )),
    }
}

/// Picks the zip entry holding the wanted array.
fn choose_entry(
    path: &Path,
    archive: &zip::ZipArchive<File>,
    wanted: Option<&str>,
) -> DataResult<String> {
    let mut arrays: Vec<(&str, &str)> = archive
        .file_names()
        .filter_map(|entry| Some((npyz::npz::array_name_from_file_name(entry)?, entry)))
        .collect();
    arrays.sort_unstable();
    let names = || {
        arrays
            .iter()
            .map(|(name, _)| format!("'{name}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if arrays.is_empty() {
        return Err(DataError::new(
            path,
            "the NPZ archive holds no arrays (.npy entries)",
        ));
    }
    let chosen = match wanted {
        Some(wanted) => arrays
            .iter()
            .find(|(name, _)| *name == wanted)
            .ok_or_else(|| {
                DataError::new(
                    path,
                    format!("no array named '{wanted}'; the archive holds {}", names()),
                )
            })?,
        None if arrays.len() == 1 => &arrays[0],
        None => PREFERRED_NAMES
            .iter()
            .find_map(|preferred| arrays.iter().find(|(name, _)| name == preferred))
            .ok_or_else(|| {
                DataError::new(
                    path,
                    format!(
                        "no suitable array: the archive holds {} and none is named \
                         'images', 'x' or 'data'",
                        names()
                    ),
                )
            })?,
    };
    Ok(chosen.1.to_string())
}

/// Where the data of an NPY stream lies and how it is laid out.
#[derive(Debug)]
struct NpyLayout {
    header_bytes: u64,
    dtype: DType,
    byte_order: ByteOrder,
    count: usize,
    shape: Shape,
    data_bytes: u64,
}

impl NpyLayout {
    /// The data must fill exactly what follows the header in `available_bytes`.
    fn check_fits(&self, path: &Path, available_bytes: u64) -> DataResult<()> {
        let present = available_bytes.saturating_sub(self.header_bytes);
        let declared = self.data_bytes;
        if present != declared {
            let what = if present < declared {
                "data is truncated"
            } else {
                "more data than the header declares"
            };
            return Err(DataError::new(
                path,
                format!(
                    "{what}: the header declares {} members of {} {} ({declared} bytes) \
                     but {present} bytes follow the header",
                    self.count, self.shape, self.dtype
                ),
            ));
        }
        Ok(())
    }
}

/// Reads and checks an NPY header, leaving `reader` at the first data byte.
/// `available_bytes` bounds the header allocation.
fn read_layout(path: &Path, reader: &mut impl Read, available_bytes: u64) -> DataResult<NpyLayout> {
    let garbage = |why: &str| DataError::new(path, format!("not a valid NPY header: {why}"));
    let mut prefix = [0u8; 10];
    reader
        .read_exact(&mut prefix)
        .map_err(|e| DataError::io(path, e))?;
    if &prefix[..6] != NPY_MAGIC {
        return Err(garbage("missing the \\x93NUMPY magic string"));
    }
    let mut header = prefix.to_vec();
    let (major, minor) = (prefix[6], prefix[7]);
    let text_bytes = match (major, minor) {
        (1, 0) => u16::from_le_bytes([prefix[8], prefix[9]]) as u64,
        (2, 0) | (3, 0) => {
            let mut rest = [0u8; 2];
            reader
                .read_exact(&mut rest)
                .map_err(|e| DataError::io(path, e))?;
            header.extend_from_slice(&rest);
            u32::from_le_bytes([prefix[8], prefix[9], rest[0], rest[1]]) as u64
        }
        _ => {
            return Err(garbage(&format!(
                "unsupported format version {major}.{minor}"
            )));
        }
    };
    let header_bytes = header.len() as u64 + text_bytes;
    if text_bytes > MAX_HEADER_BYTES || header_bytes > available_bytes {
        return Err(garbage(&format!(
            "header length {text_bytes} bytes is impossible for this file"
        )));
    }
    reader
        .take(text_bytes)
        .read_to_end(&mut header)
        .map_err(|e| DataError::io(path, e))?;
    if header.len() as u64 != header_bytes {
        return Err(DataError::new(
            path,
            "file is truncated inside the NPY header",
        ));
    }
    let parsed = npyz::NpyHeader::from_reader(&header[..]).map_err(|e| garbage(&e.to_string()))?;
    interpret(path, &parsed, header_bytes)
}

fn interpret(path: &Path, header: &npyz::NpyHeader, header_bytes: u64) -> DataResult<NpyLayout> {
    let npyz::DType::Plain(type_str) = header.dtype() else {
        return Err(DataError::new(
            path,
            format!(
                "unsupported dtype {} (a structured or sub-array dtype); \
                 supported: uint8, uint16, float32, float64",
                header.dtype().descr()
            ),
        ));
    };
    let dtype = match (type_str.type_char(), type_str.size_field()) {
        (TypeChar::Uint, 1) => DType::U8,
        (TypeChar::Uint, 2) => DType::U16,
        (TypeChar::Float, 4) => DType::F32,
        (TypeChar::Float, 8) => DType::F64,
        _ => {
            return Err(DataError::new(
                path,
                format!(
                    "unsupported dtype '{type_str}'; supported: uint8 ('|u1'), uint16 ('<u2'), \
                     float32 ('<f4'), float64 ('<f8'), either byte order"
                ),
            ));
        }
    };
    let byte_order = match type_str.endianness() {
        Endianness::Big => ByteOrder::Big,
        Endianness::Little | Endianness::Irrelevant => ByteOrder::Little,
    };
    if header.order() == Order::Fortran {
        return Err(DataError::new(
            path,
            "unsupported Fortran order (fortran_order: True); save a C-ordered copy, \
             e.g. np.save(path, np.ascontiguousarray(a))",
        ));
    }

    let dims = header.shape();
    let to_usize = |d: u64| usize::try_from(d).ok();
    let (count, shape) = match *dims {
        [n, h, w] => (to_usize(n), [Some(1), to_usize(h), to_usize(w)]),
        [n, c, h, w] => (to_usize(n), [to_usize(c), to_usize(h), to_usize(w)]),
        _ => {
            return Err(DataError::new(
                path,
                format!("unsupported shape {dims:?}: expected (N, H, W) or (N, C, H, W)"),
            ));
        }
    };
    let (Some(count), [Some(c), Some(h), Some(w)]) = (count, shape) else {
        return Err(DataError::new(
            path,
            format!("impossibly large shape {dims:?}"),
        ));
    };
    let shape = Shape::new(c, h, w);
    if count == 0 || c == 0 || h == 0 || w == 0 {
        return Err(DataError::new(
            path,
            format!("the array holds no image data (shape {dims:?})"),
        ));
    }
    limits::check_member(path, shape)?;
    let data_bytes = dims
        .iter()
        .try_fold(dtype.size_bytes() as u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::new(path, format!("impossibly large shape {dims:?}")))?;
    Ok(NpyLayout {
        header_bytes,
        dtype,
        byte_order,
        count,
        shape,
        data_bytes,
    })
}
