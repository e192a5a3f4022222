use super::{ClassLabels, DType, MemberSource, ParameterTable, Shape};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// A loaded ensemble: members plus whatever annotations came with it.
#[derive(Clone)]
pub struct Ensemble {
    pub source: Arc<dyn MemberSource>,
    /// Labels given with the data: a labels file, or a sample's hand-labelled subset.
    pub labels: Option<ClassLabels>,
    /// Full ground truth where it is known (built-in samples); for evaluation only.
    pub ground_truth: Option<ClassLabels>,
    pub parameters: Option<ParameterTable>,
    /// Non-finite values found on load (only counted for float data).
    pub nan_count: u64,
    id_index: Arc<OnceLock<HashMap<String, usize>>>,
}

impl Ensemble {
    pub fn new(source: Arc<dyn MemberSource>) -> Self {
        Self {
            source,
            labels: None,
            ground_truth: None,
            parameters: None,
            nan_count: 0,
            id_index: Arc::new(OnceLock::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    pub fn shape(&self) -> Shape {
        self.source.shape()
    }

    pub fn dtype(&self) -> DType {
        self.source.dtype()
    }

    pub fn origin(&self) -> String {
        self.source.origin()
    }

    pub fn member_id(&self, index: usize) -> String {
        self.source.member_id(index)
    }

    /// Member index for an id, built once on first use.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.id_index
            .get_or_init(|| {
                (0..self.len())
                    .map(|i| (self.source.member_id(i), i))
                    .collect()
            })
            .get(id)
            .copied()
    }
}
