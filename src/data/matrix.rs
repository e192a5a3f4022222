//! N×D matrices on disk: any 2-D `.npy` (float32 or float64, C order, either byte order), or
//! a run directory's `latents.npy` with its `latent_ids.csv` (`index,id`); atomic writes of f32
//! `.npy` results (layouts, PCA scores); and uint32 index matrices (a layout's kNN graph).
//!
//! The header's shape is checked against the file's size before anything is allocated, so a
//! lying header costs at most the bytes the file really holds.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};
use npyz::{Endianness, TypeChar, WriterBuilder};

use crate::atomic_file::write_atomic;
use crate::error::{DataError, DataResult};

/// File names inside a run directory (as written by training, see `train::run_dir`).
pub const RUN_LATENTS: &str = "latents.npy";
pub const RUN_LATENT_IDS: &str = "latent_ids.csv";

/// A matrix with one id per row.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub values: Array2<f32>,
    /// Member ids from `latent_ids.csv`; for a bare `.npy`, the row numbers `"0"`, `"1"`, ….
    pub ids: Vec<String>,
    /// The `.npy` the values came from.
    pub path: PathBuf,
}

/// Reads a bare `.npy` (ids are row numbers) or a run directory (ids from `latent_ids.csv`).
pub fn read_matrix(path: &Path) -> DataResult<Matrix> {
    if path.is_dir() {
        let npy = path.join(RUN_LATENTS);
        let values = read_npy_matrix(&npy)?;
        let ids = read_latent_ids(&path.join(RUN_LATENT_IDS), values.nrows())?;
        Ok(Matrix {
            values,
            ids,
            path: npy,
        })
    } else {
        let values = read_npy_matrix(path)?;
        let ids = (0..values.nrows()).map(|i| i.to_string()).collect();
        Ok(Matrix {
            values,
            ids,
            path: path.to_path_buf(),
        })
    }
}

/// Reads a 2-D float32/float64 `.npy` into f32.
pub fn read_npy_matrix(path: &Path) -> DataResult<Array2<f32>> {
    // The whole file is read (its size bounds the allocation); the header tells the rest.
    let bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    let expected = "float32 ('<f4') or float64 ('<f8')";
    let (type_str, rows, cols, data) = parse_2d(path, &bytes, expected, |t| {
        t.type_char() == TypeChar::Float && matches!(t.size_field(), 4 | 8)
    })?;
    let item_bytes = type_str.size_field();
    let big = type_str.endianness() == Endianness::Big;
    let values: Vec<f32> = if item_bytes == 4 {
        data.chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                if big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                }
            })
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
                (if big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }) as f32
            })
            .collect()
    };
    Array2::from_shape_vec((rows, cols), values)
        .map_err(|e| DataError::new(path, format!("bad shape: {e}")))
}

/// The dtype, shape and data bytes of a C-ordered 2-D `.npy` whose dtype `accept`s, after
/// checking the shape against the bytes the file holds.
fn parse_2d<'a>(
    path: &Path,
    bytes: &'a [u8],
    expected_dtype: &str,
    accept: impl Fn(&npyz::TypeStr) -> bool,
) -> DataResult<(npyz::TypeStr, usize, usize, &'a [u8])> {
    let mut data = bytes;
    let header = npyz::NpyHeader::from_reader(&mut data)
        .map_err(|e| DataError::new(path, format!("not a valid .npy file: {e}")))?;
    let npyz::DType::Plain(type_str) = header.dtype() else {
        return Err(DataError::new(
            path,
            format!("unsupported structured dtype; expected {expected_dtype}"),
        ));
    };
    if !accept(&type_str) {
        return Err(DataError::new(
            path,
            format!("unsupported dtype '{type_str}'; expected {expected_dtype}"),
        ));
    }
    if header.order() == npyz::Order::Fortran {
        return Err(DataError::new(
            path,
            "unsupported Fortran order; save a C-ordered copy, \
             e.g. np.save(path, np.ascontiguousarray(a))",
        ));
    }
    let &[rows, cols] = header.shape() else {
        return Err(DataError::new(
            path,
            format!(
                "expected a 2-D array (N, D), found shape {:?}",
                header.shape()
            ),
        ));
    };
    let expected_bytes = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(type_str.size_field()))
        .ok_or_else(|| DataError::new(path, format!("impossibly large shape ({rows}, {cols})")))?;
    if expected_bytes != data.len() as u64 {
        return Err(DataError::new(
            path,
            format!(
                "shape ({rows}, {cols}) needs {expected_bytes} data bytes but the file holds {}",
                data.len()
            ),
        ));
    }
    if rows == 0 || cols == 0 {
        return Err(DataError::new(
            path,
            format!("the array is empty (shape ({rows}, {cols}))"),
        ));
    }
    // rows·cols·item_bytes equals the file's data length, so both fit in usize.
    Ok((type_str, rows as usize, cols as usize, data))
}

/// Reads a 2-D uint32 `.npy` (as [`write_npy_indices`] writes) into `(rows, cols, values)`.
pub fn read_npy_indices(path: &Path) -> DataResult<(usize, usize, Vec<u32>)> {
    let bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    let (type_str, rows, cols, data) = parse_2d(path, &bytes, "uint32 ('<u4')", |t| {
        t.type_char() == TypeChar::Uint && t.size_field() == 4
    })?;
    let big = type_str.endianness() == Endianness::Big;
    let values = data
        .chunks_exact(4)
        .map(|c| {
            let b = [c[0], c[1], c[2], c[3]];
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        })
        .collect();
    Ok((rows, cols, values))
}

/// Writes `rows × cols` row-major `values` as a uint32 `.npy`, atomically.
pub fn write_npy_indices(path: &Path, rows: usize, cols: usize, values: &[u32]) -> DataResult<()> {
    if values.len() != rows * cols {
        return Err(DataError::new(
            path,
            format!("{} values for a {rows} × {cols} matrix", values.len()),
        ));
    }
    write_npy(path, (rows, cols), values.iter().copied())
}

/// Reads `latent_ids.csv` (`index,id` header, one row per latent row): the ids, unique.
pub fn read_latent_ids(path: &Path, expected_rows: usize) -> DataResult<Vec<String>> {
    let file = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
    let headers = reader
        .headers()
        .map_err(|e| DataError::new(path, e.to_string()))?;
    if headers.len() != 2 || &headers[0] != "index" || &headers[1] != "id" {
        return Err(DataError::new(
            path,
            format!(
                "expected the header 'index,id', found '{}'",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut ids = Vec::with_capacity(expected_rows);
    let mut seen = HashSet::with_capacity(expected_rows);
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| DataError::new(path, e.to_string()))?;
        if ids.len() == expected_rows {
            return Err(DataError::new(
                path,
                format!("more than the {expected_rows} rows of the latents"),
            ));
        }
        let id = record.get(1).unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(DataError::new(path, format!("row {} has no id", row + 1)));
        }
        if !seen.insert(id.clone()) {
            return Err(DataError::new(path, format!("id '{id}' appears twice")));
        }
        ids.push(id);
    }
    if ids.len() != expected_rows {
        return Err(DataError::new(
            path,
            format!("{} ids for {expected_rows} latent rows", ids.len()),
        ));
    }
    Ok(ids)
}

/// Writes `values` as a float32 `.npy`, atomically (a temporary file beside it, renamed).
pub fn write_npy_matrix(path: &Path, values: ArrayView2<f32>) -> DataResult<()> {
    // `iter` walks in logical (C) order whatever the view's strides.
    write_npy(path, values.dim(), values.iter().copied())
}

/// A C-ordered `rows × cols` `.npy` of `values`, written atomically.
fn write_npy<T: npyz::AutoSerialize>(
    path: &Path,
    (rows, cols): (usize, usize),
    values: impl Iterator<Item = T>,
) -> DataResult<()> {
    let mut bytes = Vec::with_capacity(rows * cols * std::mem::size_of::<T>() + 128);
    {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(&mut bytes)
            .begin_nd()
            .map_err(|e| DataError::io(path, e))?;
        writer.extend(values).map_err(|e| DataError::io(path, e))?;
        writer.finish().map_err(|e| DataError::io(path, e))?;
    }
    write_atomic(path, &bytes)
}

/// Where the member ids of a matrix or layout `X.npy` live: `X.ids.csv`.
pub fn ids_path(npy: &Path) -> PathBuf {
    npy.with_extension("ids.csv")
}

/// Writes an N×D matrix (a layout, latents) and its member ids: `npy` and
/// [`ids_path`]`(npy)`, each atomically.
pub fn write_matrix_with_ids(
    npy: &Path,
    values: ArrayView2<f32>,
    ids: &[String],
) -> DataResult<()> {
    if ids.len() != values.nrows() {
        return Err(DataError::new(
            npy,
            format!("{} ids for {} rows", ids.len(), values.nrows()),
        ));
    }
    write_npy_matrix(npy, values)?;
    write_ids(&ids_path(npy), ids)
}

/// Reads `npy` and its member ids from [`ids_path`]`(npy)` (one per row, unique).
pub fn read_matrix_with_ids(npy: &Path) -> DataResult<Matrix> {
    let values = read_npy_matrix(npy)?;
    let ids = read_latent_ids(&ids_path(npy), values.nrows())?;
    Ok(Matrix {
        values,
        ids,
        path: npy.to_path_buf(),
    })
}

/// Writes `ids` as `index,id` rows (the `latent_ids.csv` format), atomically.
pub fn write_ids(path: &Path, ids: &[String]) -> DataResult<()> {
    let rows = || -> Result<Vec<u8>, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["index", "id"])?;
        for (i, id) in ids.iter().enumerate() {
            writer.write_record([i.to_string().as_str(), id.as_str()])?;
        }
        writer
            .into_inner()
            .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
    };
    let bytes = rows().map_err(|e| DataError::new(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_and_its_ids_travel_together() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("layout.npy");
        let values = ndarray::array![[0.0f32, 1.0], [2.0, 3.0], [4.0, 5.0]];
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        write_matrix_with_ids(&npy, values.view(), &ids).unwrap();
        assert!(dir.path().join("layout.ids.csv").is_file());
        let read = read_matrix_with_ids(&npy).unwrap();
        assert_eq!((read.values, read.ids), (values.clone(), ids.clone()));
        // Ids that do not fit the rows are refused before anything is written.
        let other = dir.path().join("other.npy");
        let err = write_matrix_with_ids(&other, values.view(), &ids[..2]).unwrap_err();
        assert!(err.to_string().contains("2 ids for 3 rows"), "{err}");
        assert!(!other.exists());
        // A missing ids file is an error naming it.
        std::fs::remove_file(ids_path(&npy)).unwrap();
        let err = read_matrix_with_ids(&npy).unwrap_err();
        assert!(err.to_string().contains("layout.ids.csv"), "{err}");
    }
}
