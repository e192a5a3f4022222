//! Warm start for the live map: the previous layout, matched to the current members by id, and
//! the placement of members new to it near their nearest old neighbours in the input space.

use std::collections::HashMap;

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// Old members a new member's position is averaged over.
pub const PLACEMENT_NEIGHBOURS: usize = 5;

/// A layout from an earlier run, one row per id.
#[derive(Debug, Clone)]
pub struct PreviousLayout {
    pub ids: Vec<String>,
    pub coords: Array2<f32>,
}

/// For each current member (in row order), its previous position, if it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchors {
    pub positions: Vec<Option<[f32; 2]>>,
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
        let positions = current_ids
            .iter()
            .map(|id| {
                by_id.get(id.as_str()).map(|&row| {
                    let r = self.coords.row(row);
                    [r[0], r[1]]
                })
            })
            .collect();
        Ok(Anchors { positions })
    }
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
    knn_indices: &[Vec<usize>],
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
                let mut old_neighbours = knn_indices[i]
                    .iter()
                    .copied()
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
