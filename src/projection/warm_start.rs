//! Warm start for the live map: the previous layout, matched to the current members by id, and
//! the placement of members new to it near their nearest old neighbours in the input space.

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::knn::KnnGraph;
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// Old members a new member's position is averaged over.
pub const PLACEMENT_NEIGHBOURS: usize = 5;

/// A layout from an earlier run, one row per id.
#[derive(Debug, Clone)]
pub struct PreviousLayout {
    pub ids: Vec<String>,
    pub coords: Array2<f32>,
    /// The kNN graph behind the layout (rows in `ids` order), when it was kept: the next
    /// search starts from it instead of from scratch.
    pub knn: Option<Arc<KnnGraph>>,
}

/// For each current member (in row order), its previous position, if it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchors {
    pub positions: Vec<Option<[f32; 2]>>,
    /// The previous kNN graph in the current rows (neighbours that are gone replaced by
    /// random members), where there was one.
    pub knn_start: Option<KnnGraph>,
}

impl Anchors {
    /// Every member keeps its row's position (e.g. a previous layout of the same rows).
    pub fn from_layout(coords: ArrayView2<f32>) -> AnalysisResult<Self> {
        check_layout(coords)?;
        Ok(Self {
            positions: coords
                .rows()
                .into_iter()
                .map(|r| Some([r[0], r[1]]))
                .collect(),
            knn_start: None,
        })
    }

    pub fn n_known(&self) -> usize {
        self.positions.iter().filter(|p| p.is_some()).count()
    }
}

impl PreviousLayout {
    /// Matches `current_ids` (one per row of the data to embed) against this layout.
    /// Members absent from it get `None`; members of it that are gone are ignored.
    pub fn anchors(&self, current_ids: &[String]) -> AnalysisResult<Anchors> {
        if self.coords.nrows() != self.ids.len() {
            return Err(AnalysisError::LengthMismatch {
                what: "previous layout",
                expected: self.ids.len(),
                got: self.coords.nrows(),
            });
        }
        check_layout(self.coords.view())?;
        check_unique(current_ids)?;
        let mut by_id = HashMap::with_capacity(self.ids.len());
        for (row, id) in self.ids.iter().enumerate() {
            if by_id.insert(id.as_str(), row).is_some() {
                return Err(AnalysisError::Invalid(format!(
                    "previous layout lists id '{id}' twice"
                )));
            }
        }
        let previous_row: Vec<Option<usize>> = current_ids
            .iter()
            .map(|id| by_id.get(id.as_str()).copied())
            .collect();
        let positions = previous_row
            .iter()
            .map(|row| {
                row.map(|row| {
                    let r = self.coords.row(row);
                    [r[0], r[1]]
                })
            })
            .collect();
        let knn_start = self
            .knn
            .as_deref()
            .filter(|knn| knn.n_rows() == self.ids.len())
            .and_then(|knn| remap_graph(knn, &previous_row));
        Ok(Anchors {
            positions,
            knn_start,
        })
    }
}

/// `knn` (rows of the previous layout) as a graph of the current rows: `previous_row[i]` is
/// current row i's row in the previous layout. Neighbours that are gone, and the neighbours of
/// new members, become seeded random members (NN-descent replaces them). `None` when the
/// current rows are too few for `k` neighbours.
fn remap_graph(knn: &KnnGraph, previous_row: &[Option<usize>]) -> Option<KnnGraph> {
    let (n, k) = (previous_row.len(), knn.k());
    if n <= k {
        return None;
    }
    let mut current_row = vec![u32::MAX; knn.n_rows()];
    for (now, before) in previous_row.iter().enumerate() {
        if let Some(before) = before {
            current_row[*before] = now as u32;
        }
    }
    let indices: Vec<u32> = previous_row
        .par_iter()
        .enumerate()
        .flat_map_iter(|(row, before)| {
            let mut neighbours: Vec<u32> = before
                .map(|before| {
                    knn.neighbours(before)
                        .iter()
                        .map(|&j| current_row[j as usize])
                        .filter(|&j| j != u32::MAX && j as usize != row)
                        .collect()
                })
                .unwrap_or_default();
            let mut rng = ChaCha8Rng::seed_from_u64(row as u64);
            while neighbours.len() < k {
                let j = rng.random_range(0..n as u32);
                if j as usize != row && !neighbours.contains(&j) {
                    neighbours.push(j);
                }
            }
            neighbours
        })
        .collect();
    KnnGraph::from_indices(n, k, indices)
}

fn check_unique(ids: &[String]) -> AnalysisResult<()> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    match ids.iter().find(|id| !seen.insert(id.as_str())) {
        Some(id) => Err(AnalysisError::Invalid(format!(
            "member id '{id}' appears twice"
        ))),
        None => Ok(()),
    }
}

fn check_layout(coords: ArrayView2<f32>) -> AnalysisResult<()> {
    if coords.ncols() != 2 {
        return Err(AnalysisError::Invalid(format!(
            "a previous layout must have 2 columns, not {}",
            coords.ncols()
        )));
    }
    match coords
        .rows()
        .into_iter()
        .position(|r| !(r[0].is_finite() && r[1].is_finite()))
    {
        Some(row) => Err(AnalysisError::NonFinite {
            what: "previous layout",
            row,
        }),
        None => Ok(()),
    }
}

/// Positions for every member: known members where they were, new members at the mean of
/// the old positions of their nearest old members (from the kNN graph when it holds any,
/// else by a brute-force search over the old members), plus a small seeded jitter so members
/// placed on the same spot do not coincide.
///
/// `jitter` is in layout units (e.g. 1% of the layout's extent).
pub(crate) fn place_members(
    data: ArrayView2<f32>,
    anchors: &Anchors,
    knn: &KnnGraph,
    jitter: f32,
    seed: u64,
    control: &TaskControl,
) -> AnalysisResult<Vec<[f32; 2]>> {
    let old: Vec<usize> = (0..anchors.positions.len())
        .filter(|&i| anchors.positions[i].is_some())
        .collect();
    if old.is_empty() {
        return Err(AnalysisError::Invalid(
            "no member of the previous layout is among the members to embed".into(),
        ));
    }
    let mean_of = |rows: &mut dyn Iterator<Item = usize>| {
        let (mut sum, mut n) = ([0.0f32; 2], 0usize);
        for p in rows.filter_map(|j| anchors.positions[j]) {
            sum[0] += p[0];
            sum[1] += p[1];
            n += 1;
        }
        (n > 0).then(|| [sum[0] / n as f32, sum[1] / n as f32])
    };
    let mut positions: Vec<Option<[f32; 2]>> = anchors
        .positions
        .par_iter()
        .enumerate()
        .map(|(i, known)| {
            known.or_else(|| {
                let mut old_neighbours = knn
                    .neighbours(i)
                    .iter()
                    .map(|&j| j as usize)
                    .filter(|&j| anchors.positions[j].is_some())
                    .take(PLACEMENT_NEIGHBOURS);
                mean_of(&mut old_neighbours)
            })
        })
        .collect();

    // Members whose whole neighbourhood is new: search the old members directly.
    let orphans: Vec<usize> = (0..positions.len())
        .filter(|&i| positions[i].is_none())
        .collect();
    for chunk in orphans.chunks(256) {
        control.check()?;
        let placed: Vec<(usize, Option<[f32; 2]>)> = chunk
            .par_iter()
            .map(|&i| {
                let row = data.row(i);
                let mut best: Vec<(f32, usize)> = Vec::with_capacity(PLACEMENT_NEIGHBOURS + 1);
                for &j in &old {
                    let d: f32 = row
                        .iter()
                        .zip(data.row(j).iter())
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    if best.len() < PLACEMENT_NEIGHBOURS || d < best[best.len() - 1].0 {
                        let at = best.partition_point(|&(bd, _)| bd <= d);
                        best.insert(at, (d, j));
                        best.truncate(PLACEMENT_NEIGHBOURS);
                    }
                }
                (i, mean_of(&mut best.iter().map(|&(_, j)| j)))
            })
            .collect();
        for (i, p) in placed {
            positions[i] = p;
        }
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f1a7);
    Ok(positions
        .into_iter()
        .zip(&anchors.positions)
        .map(|(p, known)| {
            // `old` is non-empty, so every member got a position above.
            let p = p.unwrap_or([0.0, 0.0]);
            match known {
                Some(_) => p,
                None => [
                    p[0] + jitter * rng.random_range(-1.0f32..1.0),
                    p[1] + jitter * rng.random_range(-1.0f32..1.0),
                ],
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_graph_follows_the_members_by_id() {
        let ids = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Previous rows a b c d e; each lists its two alphabetical successors.
        let knn = KnnGraph::from_indices(5, 2, vec![1, 2, 2, 3, 3, 4, 4, 0, 0, 1]).unwrap();
        let previous = PreviousLayout {
            ids: ids(&["a", "b", "c", "d", "e"]),
            coords: Array2::zeros((5, 2)),
            knn: Some(Arc::new(knn)),
        };
        // Now: d is gone, x is new, and the order changed.
        let current = ids(&["b", "a", "e", "x", "c"]);
        let anchors = previous.anchors(&current).unwrap();
        let start = anchors.knn_start.expect("a start graph");
        let row = |id: &str| current.iter().position(|c| c == id).unwrap() as u32;
        // a listed b, c: both still here.
        assert_eq!(start.neighbours(1), [row("b"), row("c")]);
        // b listed c, d: d is gone and replaced by some other member.
        assert_eq!(start.neighbours(0)[0], row("c"));
        for r in 0..current.len() {
            let neighbours = start.neighbours(r);
            assert!(
                neighbours
                    .iter()
                    .all(|&j| j as usize != r && (j as usize) < 5)
            );
            assert_ne!(neighbours[0], neighbours[1], "row {r}: {neighbours:?}");
        }
        // Too few members for k neighbours each: no start graph, not an error.
        let few = previous.anchors(&ids(&["a", "b"])).unwrap();
        assert!(few.knn_start.is_none());
    }
}
