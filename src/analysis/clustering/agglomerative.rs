//! Agglomerative clustering on Euclidean distances by the `kodama` crate (the fastcluster
//! algorithms scipy uses), returning the merge tree in scipy's `linkage` convention.

use ndarray::ArrayView2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{relabel_by_first_appearance, squared_distance_slices};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// The pairwise distance matrix takes n(n−1)/2 `f64`s (≈ 0.9 GB at this size): larger sets
/// must be subsampled by the caller.
pub const MAX_AGGLOMERATIVE_MEMBERS: usize = 15_000;

/// How the distance between two clusters follows from member distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Linkage {
    /// Minimum increase of within-cluster variance; merge heights as scipy's `ward`.
    Ward,
    Complete,
    Average,
    Single,
}

impl Linkage {
    fn kodama(self) -> kodama::Method {
        match self {
            Self::Ward => kodama::Method::Ward,
            Self::Complete => kodama::Method::Complete,
            Self::Average => kodama::Method::Average,
            Self::Single => kodama::Method::Single,
        }
    }
}

/// One merge of the tree. Clusters `0..n` are the members; merge `s` creates cluster `n + s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merge {
    /// The smaller of the two joined cluster labels.
    pub a: usize,
    pub b: usize,
    /// Linkage distance at which they join (non-decreasing along the merges).
    pub distance: f64,
    /// Members in the new cluster.
    pub size: usize,
}

/// The full merge tree, i.e. scipy's linkage matrix `Z` row by row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dendrogram {
    pub linkage: Linkage,
    pub n_members: usize,
    /// `n_members − 1` merges in order of increasing distance.
    pub merges: Vec<Merge>,
}

impl Dendrogram {
    /// The flat clustering into `k` clusters (clamped to `1..=n_members`): the state after the
    /// first `n_members − k` merges. Labels follow first appearance (member 0 is in cluster 0).
    pub fn cut(&self, k: usize) -> Vec<usize> {
        let n = self.n_members;
        let k = k.clamp(1, n.max(1));
        // Union-find over members; `representative[label]` is a member of cluster `label`.
        let mut parent: Vec<usize> = (0..n).collect();
        let mut representative: Vec<usize> = (0..n).collect();
        for merge in self.merges.iter().take(n - k) {
            let a = find(&mut parent, representative[merge.a]);
            let b = find(&mut parent, representative[merge.b]);
            parent[b] = a;
            representative.push(a);
        }
        let mut labels: Vec<usize> = (0..n).map(|i| find(&mut parent, i)).collect();
        relabel_by_first_appearance(&mut labels);
        labels
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Builds the merge tree of the (finite) `points` under `linkage`. Polls `control` while
/// computing distances; the linkage itself (seconds at a few thousand members) is not
/// interruptible.
pub fn agglomerative(
    points: ArrayView2<f64>,
    linkage: Linkage,
    control: &TaskControl,
) -> AnalysisResult<Dendrogram> {
    let n = points.nrows();
    if n < 2 {
        return Err(AnalysisError::Invalid(format!(
            "agglomerative clustering needs at least 2 members, got {n}"
        )));
    }
    if n > MAX_AGGLOMERATIVE_MEMBERS {
        return Err(AnalysisError::Invalid(format!(
            "agglomerative clustering of {n} members would need {:.1} GB of distances; \
             subsample to at most {MAX_AGGLOMERATIVE_MEMBERS}",
            (n * (n - 1) / 2 * 8) as f64 / 1e9
        )));
    }
    let mut condensed = condensed_distances(points, control)?;
    control.check()?;
    control.report("agglomerative linkage", 0, 1);
    let tree = kodama::linkage(&mut condensed, n, linkage.kodama());
    control.report("agglomerative linkage", 1, 1);
    Ok(Dendrogram {
        linkage,
        n_members: n,
        merges: tree
            .steps()
            .iter()
            .map(|step| Merge {
                a: step.cluster1,
                b: step.cluster2,
                distance: step.dissimilarity,
                size: step.size,
            })
            .collect(),
    })
}

/// Euclidean distances of all pairs i < j, row-major (scipy's `pdist` order), in parallel.
fn condensed_distances(points: ArrayView2<f64>, control: &TaskControl) -> AnalysisResult<Vec<f64>> {
    const ROWS_PER_BLOCK: usize = 256;
    let (n, d) = points.dim();
    // Row-major copy: rows as contiguous slices for the vectorised distance.
    let flat: Vec<f64> = points.iter().copied().collect();
    let row = |i: usize| &flat[i * d..(i + 1) * d];
    let mut condensed = vec![0.0; n * (n - 1) / 2];
    // Split into one slice per row i (its n − 1 − i distances to later members).
    let mut rows: Vec<(usize, &mut [f64])> = Vec::with_capacity(n);
    let mut rest = condensed.as_mut_slice();
    for i in 0..n {
        let (distances, tail) = rest.split_at_mut(n - 1 - i);
        rows.push((i, distances));
        rest = tail;
    }
    let n_blocks = n.div_ceil(ROWS_PER_BLOCK);
    for (block, chunk) in rows.chunks_mut(ROWS_PER_BLOCK).enumerate() {
        control.check()?;
        chunk.par_iter_mut().for_each(|(i, distances)| {
            let a = row(*i);
            for (offset, out) in distances.iter_mut().enumerate() {
                *out = squared_distance_slices(a, row(*i + 1 + offset)).sqrt();
            }
        });
        control.report("pairwise distances", block + 1, n_blocks);
    }
    Ok(condensed)
}
