//! Class labels for the rows of a matrix (latents, a 2-D layout): read from a plain `id,label`
//! CSV or a label-store CSV (`id,manual_label,pseudo_label,…`) and matched to the rows by
//! member id. Rows without a label are left out of the metrics, and said to be.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::{DataError, DataResult};

/// Which labels of a label-store CSV count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelKind {
    /// Hand labels only (`manual_label`): what an embedding is judged by.
    #[default]
    Manual,
    /// Hand labels, else pseudo-labels.
    ManualOrPseudo,
}

/// How rows were matched to the labels file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowMatch {
    /// By member id.
    ById,
    /// Row `i` ↔ data row `i` of the CSV: the matrix had no ids (a bare `.npy`) and the CSV
    /// has exactly one row per matrix row.
    ByRowOrder,
}

/// The labelled rows of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLabels {
    /// Matrix rows that carry a label, ascending.
    pub rows: Vec<usize>,
    /// Class index (into `class_names`) of each of `rows`.
    pub classes: Vec<usize>,
    /// Sorted, numerically when every name is a number.
    pub class_names: Vec<String>,
    pub matched: RowMatch,
}

/// Reads `path` and labels the rows whose ids are `ids`.
///
/// `ids_are_row_numbers`: the ids were made up from row numbers (a bare `.npy`); then, when no
/// id matches, rows are matched by order if the counts agree.
pub fn load_row_labels(
    path: &Path,
    ids: &[String],
    ids_are_row_numbers: bool,
    kind: LabelKind,
) -> DataResult<RowLabels> {
    let fail = |reason: String| DataError::new(path, reason);
    let mut reader = csv::Reader::from_path(path).map_err(|e| fail(e.to_string()))?;
    let headers = reader.headers().map_err(|e| fail(e.to_string()))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
    };
    let id_column = column("id").ok_or_else(|| fail("no `id` column".into()))?;
    let label_columns: Vec<usize> = match (column("label"), column("manual_label")) {
        (Some(label), _) => vec![label],
        (None, Some(manual)) => match (kind, column("pseudo_label")) {
            (LabelKind::ManualOrPseudo, Some(pseudo)) => vec![manual, pseudo],
            _ => vec![manual],
        },
        (None, None) => {
            return Err(fail(
                "no `label` or `manual_label` column (expected `id,label` or a label store)".into(),
            ));
        }
    };

    let mut labels_in_file: Vec<(String, Option<String>)> = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| fail(e.to_string()))?;
        let id = record
            .get(id_column)
            .ok_or_else(|| fail(format!("row {} has no id", line + 2)))?
            .trim()
            .to_string();
        let label = label_columns
            .iter()
            .filter_map(|&c| record.get(c))
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string);
        labels_in_file.push((id, label));
    }

    let by_id: HashMap<&str, Option<&str>> = labels_in_file
        .iter()
        .map(|(id, label)| (id.as_str(), label.as_deref()))
        .collect();
    if by_id.len() != labels_in_file.len() {
        return Err(fail("a member id appears twice".into()));
    }
    let matched_ids = ids.iter().filter(|id| by_id.contains_key(id.as_str())).count();
    let (matched, row_label): (RowMatch, Vec<Option<&str>>) = if matched_ids > 0 {
        let labels = ids
            .iter()
            .map(|id| by_id.get(id.as_str()).copied().flatten())
            .collect();
        (RowMatch::ById, labels)
    } else if ids_are_row_numbers && labels_in_file.len() == ids.len() {
        let labels = labels_in_file.iter().map(|(_, l)| l.as_deref()).collect();
        (RowMatch::ByRowOrder, labels)
    } else {
        return Err(fail(format!(
            "none of the {} row ids (e.g. `{}`) is in this file, and its {} rows do not match \
             the matrix row by row",
            ids.len(),
            ids.first().map_or("", String::as_str),
            labels_in_file.len()
        )));
    };

    let names: BTreeSet<&str> = row_label.iter().flatten().copied().collect();
    if names.is_empty() {
        return Err(fail("no row of the matrix has a label in this file".into()));
    }
    let class_names = sorted_class_names(names);
    let index: HashMap<&str, usize> = class_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let (rows, classes) = row_label
        .iter()
        .enumerate()
        .filter_map(|(row, label)| label.map(|l| (row, index[l])))
        .unzip();
    Ok(RowLabels {
        rows,
        classes,
        class_names,
        matched,
    })
}

/// Numeric order when every name is a number, else lexical.
fn sorted_class_names(names: BTreeSet<&str>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(str::to_string).collect();
    if names.iter().all(|n| n.parse::<f64>().is_ok()) {
        names.sort_by(|a, b| {
            let (a, b) = (a.parse::<f64>().unwrap_or(0.0), b.parse::<f64>().unwrap_or(0.0));
            a.total_cmp(&b)
        });
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_csv_matched_by_id_skips_unlabelled_rows() {
        let file = csv("id,label\nb,10\na,2\nc,\n");
        let got = load_row_labels(file.path(), &ids(&["a", "b", "c", "d"]), false, LabelKind::Manual)
            .unwrap();
        assert_eq!(got.class_names, ["2", "10"]);
        assert_eq!(got.rows, [0, 1]);
        assert_eq!(got.classes, [0, 1]);
        assert_eq!(got.matched, RowMatch::ById);
    }

    #[test]
    fn label_store_manual_or_pseudo() {
        let file = csv(
            "id,manual_label,pseudo_label,pseudo_confidence\nx,cat,,\ny,,dog,0.95\nz,,,\n",
        );
        let rows = ids(&["x", "y", "z"]);
        let manual = load_row_labels(file.path(), &rows, false, LabelKind::Manual).unwrap();
        assert_eq!((manual.rows, manual.class_names), (vec![0], vec!["cat".to_string()]));
        let both = load_row_labels(file.path(), &rows, false, LabelKind::ManualOrPseudo).unwrap();
        assert_eq!(both.rows, [0, 1]);
        assert_eq!(both.class_names, ["cat", "dog"]);
    }

    #[test]
    fn bare_matrix_rows_match_by_order_only_when_counts_agree() {
        let file = csv("id,label\n000007,a\n000009,b\n");
        let got = load_row_labels(file.path(), &ids(&["0", "1"]), true, LabelKind::Manual).unwrap();
        assert_eq!(got.matched, RowMatch::ByRowOrder);
        assert_eq!(got.classes, [0, 1]);
        let err = load_row_labels(file.path(), &ids(&["0", "1", "2"]), true, LabelKind::Manual)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none of the 3 row ids"), "{err}");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
    }

    #[test]
    fn bad_files_name_the_file_and_reason() {
        for (text, reason) in [
            ("name,label\na,1\n", "no `id` column"),
            ("id,colour\na,red\n", "no `label`"),
            ("id,label\na,1\na,2\n", "appears twice"),
            ("id,label\na,\n", "no row of the matrix has a label"),
        ] {
            let file = csv(text);
            let err = load_row_labels(file.path(), &ids(&["a"]), false, LabelKind::Manual)
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }
}
