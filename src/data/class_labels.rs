//! Class labels attached to an ensemble on load: from a labels CSV (`id,label`), an IDX labels
//! file, or a built-in sample's ground truth.

use super::{Ensemble, idx};
use crate::error::{DataError, DataResult};
use crate::labels::MAX_CLASS_NAME_BYTES;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// One optional class per member, by index into `classes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLabels {
    /// Class names: sorted when loaded from a file, or the sample's defined order.
    pub classes: Vec<String>,
    /// `per_member[i]` is the class index of member `i`, or `None` when unlabelled.
    pub per_member: Vec<Option<u32>>,
}

impl ClassLabels {
    /// Members that carry a label.
    pub fn labelled_count(&self) -> usize {
        self.per_member.iter().filter(|l| l.is_some()).count()
    }

    /// Members per class, in `classes` order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &class in self.per_member.iter().flatten() {
            counts[class as usize] += 1;
        }
        counts
    }

    pub fn class_name(&self, member: usize) -> Option<&str> {
        self.per_member
            .get(member)
            .copied()
            .flatten()
            .map(|c| self.classes[c as usize].as_str())
    }
}

impl ClassLabels {
    /// Loads labels for `ensemble` from an IDX labels file (recognised by its name or magic
    /// number, plain or gzip) or a CSV with the header `id,label` (either order; a blank
    /// label leaves the member unlabelled, as does a member missing from the file).
    ///
    /// Classes are sorted, numerically when every label is a number, so the class order
    /// does not depend on the row order.
    pub fn load(path: &Path, ensemble: &Ensemble) -> DataResult<Self> {
        if is_idx(path)? {
            Self::from_idx(path, ensemble)
        } else {
            Self::from_csv(path, ensemble)
        }
    }

    /// One label per member, in member order.
    fn from_idx(path: &Path, ensemble: &Ensemble) -> DataResult<Self> {
        let values = idx::read_labels(path, ensemble.len())?;
        if values.len() != ensemble.len() {
            return Err(DataError::new(
                path,
                format!(
                    "holds {} labels but the ensemble has {} members",
                    values.len(),
                    ensemble.len()
                ),
            ));
        }
        let mut present = [false; 256];
        for &v in &values {
            present[v as usize] = true;
        }
        let mut class_of_value = [0u32; 256];
        let mut classes = Vec::new();
        for value in (0..=255u8).filter(|&v| present[v as usize]) {
            class_of_value[value as usize] = classes.len() as u32;
            classes.push(value.to_string());
        }
        let per_member = values
            .iter()
            .map(|&v| Some(class_of_value[v as usize]))
            .collect();
        Ok(Self {
            classes,
            per_member,
        })
    }

    fn from_csv(path: &Path, ensemble: &Ensemble) -> DataResult<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::Headers)
            .from_path(path)
            .map_err(|e| csv_error(path, e))?;
        let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
        let column = |name: &str| header.iter().position(|h| h == name);
        let (Some(id_column), Some(label_column), 2) =
            (column("id"), column("label"), header.len())
        else {
            let missing: Vec<String> = ["id", "label"]
                .into_iter()
                .filter(|name| column(name).is_none())
                .map(|name| format!("`{name}`"))
                .collect();
            let problem = if missing.is_empty() {
                "extra columns".to_string()
            } else {
                format!("missing column {}", missing.join(" and "))
            };
            return Err(DataError::new(
                path,
                format!(
                    "line 1: {problem}: the header must be exactly `id,label`, found `{}`",
                    header.iter().collect::<Vec<_>>().join(",")
                ),
            ));
        };

        // Per member: the line that labelled it and its label ("" for unlabelled).
        let mut seen: Vec<Option<(u64, String)>> = vec![None; ensemble.len()];
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(path, e))?;
            let line = record.position().map_or(0, |p| p.line());
            // Ids match exactly first: a file may be named " lead.png". Padding added by hand
            // (`a.png, cat`) is forgiven when no member has the padded name.
            let raw_id = &record[id_column];
            let id = match ensemble.index_of(raw_id) {
                Some(_) => raw_id,
                None => raw_id.trim(),
            };
            let label = record[label_column].trim();
            if label.len() > MAX_CLASS_NAME_BYTES {
                return Err(DataError::new(
                    path,
                    format!(
                        "line {line}: label is {} bytes long (at most {MAX_CLASS_NAME_BYTES})",
                        label.len()
                    ),
                ));
            }
            let index = ensemble
                .index_of(id)
                .ok_or_else(|| unknown_id(path, line, id, ensemble))?;
            if let Some((first_line, first_label)) = &seen[index] {
                let reason = if first_label == label {
                    format!("line {line}: duplicate id '{id}' (already on line {first_line})")
                } else {
                    format!(
                        "line {line}: conflicting labels for id '{id}': '{label}' here but \
                         '{first_label}' on line {first_line}"
                    )
                };
                return Err(DataError::new(path, reason));
            }
            seen[index] = Some((line, label.to_string()));
        }

        let classes = sorted_classes(seen.iter().flatten().map(|(_, label)| label.as_str()));
        let class_index: HashMap<&str, u32> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as u32))
            .collect();
        let per_member = seen
            .iter()
            .map(|entry| {
                let label = entry.as_ref().map(|(_, label)| label.as_str())?;
                class_index.get(label).copied()
            })
            .collect();
        Ok(Self {
            classes,
            per_member,
        })
    }
}

/// Distinct non-blank labels, numerically sorted when all are numbers, else lexically.
fn sorted_classes<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut classes: Vec<String> = labels
        .filter(|l| !l.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect();
    let numbers: Option<Vec<f64>> = classes.iter().map(|c| c.parse::<f64>().ok()).collect();
    if let Some(numbers) = numbers {
        let mut paired: Vec<(f64, String)> = numbers.into_iter().zip(classes).collect();
        paired.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        classes = paired.into_iter().map(|(_, c)| c).collect();
    }
    classes
}

/// IDX by name (`*-ubyte`, `*.idx`, `.gz`) or by its first bytes.
fn is_idx(path: &Path) -> DataResult<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if idx::looks_like_idx(&name) {
        return Ok(true);
    }
    let mut start = Vec::with_capacity(4);
    File::open(path)
        .and_then(|file| file.take(4).read_to_end(&mut start))
        .map_err(|e| DataError::io(path, e))?;
    Ok(idx::starts_like_idx_or_gzip(&start))
}

/// A CSV row naming a member the ensemble does not have.
pub(super) fn unknown_id(path: &Path, line: u64, id: &str, ensemble: &Ensemble) -> DataError {
    DataError::new(
        path,
        format!(
            "line {line}: unknown id '{id}' (not a member of {}; ids are file paths relative \
             to the folder, or zero-based indices)",
            ensemble.origin()
        ),
    )
}

pub(super) fn csv_error(path: &Path, err: csv::Error) -> DataError {
    let reason = if err.is_io_error() {
        err.to_string()
    } else {
        format!("invalid CSV: {err}")
    };
    DataError::new(path, reason)
}
