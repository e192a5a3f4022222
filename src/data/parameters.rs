//! Named numeric simulation parameters per member, from a parameters CSV.

use super::Ensemble;
use super::class_labels::{csv_error, unknown_id};
use crate::error::{DataError, DataResult};
use std::path::Path;

/// A member × parameter table; `NaN` marks a missing value.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterTable {
    pub names: Vec<String>,
    /// Row-major: `values[member * names.len() + p]`.
    pub values: Vec<f64>,
}

impl ParameterTable {
    pub fn value(&self, member: usize, parameter: usize) -> f64 {
        self.values[member * self.names.len() + parameter]
    }

    /// Column `parameter` for all members.
    pub fn column(&self, parameter: usize) -> Vec<f64> {
        self.values
            .chunks_exact(self.names.len())
            .map(|row| row[parameter])
            .collect()
    }
}

impl ParameterTable {
    /// Loads a parameters CSV for `ensemble`: an `id` column plus one column per parameter,
    /// numeric values, blank = missing. Members absent from the file get missing (`NaN`) rows.
    pub fn load(path: &Path, ensemble: &Ensemble) -> DataResult<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| csv_error(path, e))?;
        let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
        let id_columns: Vec<usize> = (0..header.len()).filter(|&i| &header[i] == "id").collect();
        let &[id_column] = id_columns.as_slice() else {
            return Err(DataError::new(
                path,
                format!(
                    "line 1: the header needs exactly one `id` column, found `{}`",
                    header.iter().collect::<Vec<_>>().join(",")
                ),
            ));
        };
        let columns: Vec<usize> = (0..header.len()).filter(|&i| i != id_column).collect();
        let names: Vec<String> = columns.iter().map(|&i| header[i].to_string()).collect();
        if names.is_empty() {
            return Err(DataError::new(
                path,
                "line 1: no parameter columns besides `id`",
            ));
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || names[..i].contains(name) {
                return Err(DataError::new(
                    path,
                    format!(
                        "line 1: parameter column {} has an empty or repeated name '{name}'",
                        i + 2
                    ),
                ));
            }
        }

        let mut values = vec![f64::NAN; ensemble.len() * names.len()];
        let mut line_of_member: Vec<u64> = vec![0; ensemble.len()];
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(path, e))?;
            let line = record.position().map_or(0, |p| p.line());
            let id = &record[id_column];
            let index = ensemble
                .index_of(id)
                .ok_or_else(|| unknown_id(path, line, id, ensemble))?;
            if line_of_member[index] != 0 {
                return Err(DataError::new(
                    path,
                    format!(
                        "line {line}: duplicate id '{id}' (already on line {})",
                        line_of_member[index]
                    ),
                ));
            }
            line_of_member[index] = line;
            let row = &mut values[index * names.len()..(index + 1) * names.len()];
            for ((value, &column), name) in row.iter_mut().zip(&columns).zip(&names) {
                let cell = &record[column];
                if cell.is_empty() {
                    continue;
                }
                *value = cell.parse().map_err(|_| {
                    DataError::new(
                        path,
                        format!("line {line}, column '{name}': '{cell}' is not a number"),
                    )
                })?;
            }
        }
        Ok(Self { names, values })
    }
}
