//! TEMPORARY: manifolds-rs's search wrapped as a KnnGraph until our NN-descent lands.

use faer::MatRef;
use manifolds_rs::data::nearest_neighbours::{NearestNeighbourParams, run_ann_search};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    Euclidean,
    Cosine,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    k: usize,
    indices: Vec<u32>,
    distances: Vec<f32>,
}

impl KnnGraph {
    pub fn from_parts(k: usize, indices: Vec<u32>, distances: Vec<f32>) -> Option<Self> {
        (k > 0 && indices.len() == distances.len() && indices.len() % k == 0).then_some(Self {
            k,
            indices,
            distances,
        })
    }
    pub fn from_indices(n_rows: usize, k: usize, indices: Vec<u32>) -> Option<Self> {
        (k > 0 && indices.len() == n_rows * k).then(|| Self {
            k,
            distances: vec![0.0; indices.len()],
            indices,
        })
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn n_rows(&self) -> usize {
        self.indices.len() / self.k
    }
    pub fn neighbours(&self, row: usize) -> &[u32] {
        &self.indices[row * self.k..(row + 1) * self.k]
    }
    pub fn distances(&self, row: usize) -> &[f32] {
        &self.distances[row * self.k..(row + 1) * self.k]
    }
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }
}

pub struct KnnSearch<'a> {
    pub data: &'a [f32],
    pub n_rows: usize,
    pub dim: usize,
    pub k: usize,
    pub distance: Distance,
    pub seed: u64,
}

impl KnnSearch<'_> {
    fn run(&self, ann: &str) -> Result<KnnGraph, Cancelled> {
        let matrix = MatRef::from_row_major_slice(self.data, self.n_rows, self.dim);
        let params = NearestNeighbourParams::<f32> {
            dist_metric: match self.distance {
                Distance::Euclidean => "euclidean",
                Distance::Cosine => "cosine",
            }
            .to_string(),
            ..NearestNeighbourParams::default()
        };
        let (idx, dist) = run_ann_search(
            matrix,
            self.k,
            ann.to_string(),
            &params,
            self.seed as usize,
            0,
        )
        .map_err(|_| Cancelled)?;
        let mut indices = Vec::new();
        let mut distances = Vec::new();
        for (i, d) in idx.iter().zip(&dist) {
            indices.extend(i.iter().map(|&j| j as u32));
            distances.extend(d.iter().copied());
        }
        Ok(KnnGraph {
            k: self.k,
            indices,
            distances,
        })
    }
    pub fn exact(
        &self,
        _c: &(dyn Fn() -> bool + Sync),
        _p: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<KnnGraph, Cancelled> {
        self.run("exhaustive")
    }
    pub fn nn_descent(
        &self,
        _start: Option<&KnnGraph>,
        _c: &(dyn Fn() -> bool + Sync),
        _p: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<KnnGraph, Cancelled> {
        self.run("nndescent")
    }
}
