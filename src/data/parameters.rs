//! Named numeric simulation parameters per member, from a parameters CSV.

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
    /// Loads a parameters CSV for `ensemble`. STUB: to be implemented.
    pub fn load(path: &std::path::Path, _ensemble: &super::Ensemble) -> crate::error::DataResult<Self> {
        Err(crate::error::DataError::new(path, "parameters not implemented yet"))
    }
}
