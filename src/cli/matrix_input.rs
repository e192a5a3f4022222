//! Reading the matrices the analysis commands take: a run directory (latents.npy +
//! latent_ids.csv), a layout written by `sense embed` (Y.npy + Y.ids.csv), or a bare N×D `.npy`
//! (rows numbered).

use std::path::Path;

use crate::data::matrix::{Matrix, ids_path, read_matrix, read_matrix_with_ids};
use crate::data::row_labels::{LabelKind, RowLabels, load_row_labels};
use crate::error::DataResult;

/// A matrix and whether its ids came from a file (else they are row numbers).
pub struct RowsWithIds {
    pub matrix: Matrix,
    pub ids_from_file: bool,
}

pub fn read_rows(path: &Path) -> DataResult<RowsWithIds> {
    if path.is_file() && ids_path(path).is_file() {
        return Ok(RowsWithIds {
            matrix: read_matrix_with_ids(path)?,
            ids_from_file: true,
        });
    }
    Ok(RowsWithIds {
        ids_from_file: path.is_dir(),
        matrix: read_matrix(path)?,
    })
}

/// The labels of `rows`' members from `labels` (plain CSV or label store).
pub fn labels_for(rows: &RowsWithIds, labels: &Path, kind: LabelKind) -> DataResult<RowLabels> {
    load_row_labels(labels, &rows.matrix.ids, !rows.ids_from_file, kind)
}
