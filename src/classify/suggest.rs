//! What to label next: unlabelled members ranked by what a hand label there would fix most.
//!
//! Three signals, each turned into a rank among the candidates (0 = least, 1 = most):
//! - **uncertain**: the pseudo-labeller's confidence is low (1 − confidence; no pseudo-label
//!   counts as fully uncertain);
//! - **disagrees**: the member's latent neighbours carry other labels than its pseudo-label
//!   (hand labels, else confident pseudo-labels), so a boundary or a systematic error runs
//!   through it;
//! - **unexplored**: it is far from every hand-labelled member, in a region nobody labelled.
//!
//! The score is the mean of the three ranks and the reason the strongest one. The pick is
//! greedy and spread out: a candidate among the k nearest neighbours of one already picked
//! waits until no other candidate is left, so a batch does not spend its labels on one
//! clump of near-duplicates.
//!
//! While hand labels are scarce (fewer than [`SuggestConfig::cover_below_per_class`] per
//! class), ranking by those signals sends labels to boundaries and outliers, where a label
//! spreads least: the cold start of uncertainty sampling, measured in `bench/loop_gain.sh`.
//! Then the batch first covers the data (TypiClust, Hacohen, Dekel & Weinshall 2022): k-means
//! into as many clusters as there will be labels, and from each cluster no hand label covers,
//! largest first, its most **typical** member (densest: smallest mean distance to its
//! neighbours). The ranked list fills whatever places are left.

use ndarray::ArrayView2;

use crate::analysis::clustering::{KMeansOptions, kmeans};
use crate::analysis::{AnalysisError, AnalysisResult};
use crate::projection::{Distance, KnnGraph, KnnSearch};
use crate::task::TaskControl;

/// Why a member is suggested: its strongest signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestReason {
    Uncertain,
    Disagrees,
    Unexplored,
    /// The most typical member of a cluster no hand label covers (scarce labels only).
    Typical,
}

impl SuggestReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::Uncertain => "uncertain",
            Self::Disagrees => "disagrees with its neighbours",
            Self::Unexplored => "far from every hand label",
            Self::Typical => "typical of a cluster nobody labelled",
        }
    }
}

/// One suggested member with the signals behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub member: usize,
    /// Mean rank of the three signals, in 0..=1.
    pub score: f32,
    pub reason: SuggestReason,
    /// 1 − pseudo-label confidence.
    pub uncertainty: f32,
    /// Share of labelled neighbours whose label differs from the member's pseudo-label (its
    /// neighbours' majority when it has none).
    pub disagreement: f32,
    /// Distance to the nearest hand-labelled member, in feature units.
    pub distance: f32,
}

/// The members and what is known of them; every slice has one entry per feature row.
pub struct SuggestInput<'a> {
    /// Features per member (an epoch's latents, or pixel features before training).
    pub features: ArrayView2<'a, f32>,
    /// Hand label (class index) per member.
    pub hand: &'a [Option<usize>],
    /// Pseudo-label per member: (class index, confidence).
    pub pseudo: &'a [Option<(usize, f32)>],
    /// Pseudo-labels at or above this confidence count as neighbours' labels.
    pub threshold: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SuggestConfig {
    pub count: usize,
    /// Neighbours for the disagreement signal, typicality and the spread-out pick.
    pub neighbours: usize,
    /// Below this many hand labels per class, cover unlabelled clusters first (0: never).
    pub cover_below_per_class: usize,
    pub seed: u64,
}

impl Default for SuggestConfig {
    fn default() -> Self {
        Self {
            count: 50,
            neighbours: 15,
            cover_below_per_class: 20,
            seed: 0,
        }
    }
}

/// Clusters smaller than this are noise to the coverage pick (TypiClust drops them too).
const MIN_COVERED_CLUSTER: usize = 5;

/// Up to `config.count` unlabelled members, best first.
pub fn suggest(
    input: &SuggestInput<'_>,
    config: &SuggestConfig,
    control: &TaskControl,
) -> AnalysisResult<Vec<Suggestion>> {
    let (n, dim) = input.features.dim();
    if input.hand.len() != n || input.pseudo.len() != n {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: n,
            got: input.hand.len().min(input.pseudo.len()),
        });
    }
    if let Some(row) = input
        .features
        .rows()
        .into_iter()
        .position(|r| r.iter().any(|v| !v.is_finite()))
    {
        return Err(AnalysisError::NonFinite {
            what: "features",
            row,
        });
    }
    let candidates: Vec<usize> = (0..n).filter(|&m| input.hand[m].is_none()).collect();
    let labelled: Vec<usize> = (0..n).filter(|&m| input.hand[m].is_some()).collect();
    if candidates.is_empty() || config.count == 0 {
        return Ok(Vec::new());
    }
    let features = input.features.as_standard_layout();
    let data = features.as_slice().expect("standard layout");
    let k = config.neighbours.clamp(1, n.saturating_sub(1).max(1));
    control.report("neighbours", 0, 3);
    let graph = (n > k)
        .then(|| {
            KnnSearch {
                data,
                n_rows: n,
                dim,
                k,
                distance: Distance::Euclidean,
                seed: config.seed,
            }
            .auto(None, &|| control.is_cancelled(), &|_, _| {})
        })
        .transpose()?;
    control.check()?;
    control.report("distances", 1, 3);
    let distance = distance_to_labelled(data, dim, &candidates, &labelled, control)?;
    control.report("ranking", 2, 3);
    let effective = |m: usize| {
        input.hand[m].or(input.pseudo[m]
            .filter(|&(_, confidence)| confidence >= input.threshold)
            .map(|(class, _)| class))
    };
    let mut rows: Vec<Suggestion> = candidates
        .iter()
        .zip(&distance)
        .map(|(&member, &distance)| {
            let pseudo = input.pseudo[member];
            let neighbour_labels: Vec<usize> = graph
                .as_ref()
                .map(|g| {
                    g.neighbours(member)
                        .iter()
                        .filter_map(|&j| effective(j as usize))
                        .collect()
                })
                .unwrap_or_default();
            Suggestion {
                member,
                score: 0.0,
                reason: SuggestReason::Uncertain,
                uncertainty: pseudo.map_or(1.0, |(_, confidence)| 1.0 - confidence),
                disagreement: disagreement(pseudo.map(|(class, _)| class), &neighbour_labels),
                distance,
            }
        })
        .collect();
    score(&mut rows);
    rows.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.member.cmp(&b.member)));
    let classes = input
        .hand
        .iter()
        .flatten()
        .collect::<std::collections::HashSet<_>>()
        .len()
        .max(1);
    let scarce = labelled.len() < config.cover_below_per_class * classes;
    let mut covering = Vec::new();
    if scarce && let Some(graph) = &graph {
        control.report("clusters", 2, 3);
        let typical = typical_of_uncovered_clusters(
            input.features,
            &labelled,
            graph,
            config.count,
            config.seed,
            control,
        )?;
        for member in typical {
            if let Some(at) = rows.iter().position(|r| r.member == member) {
                let mut row = rows.remove(at);
                row.reason = SuggestReason::Typical;
                covering.push(row);
            }
        }
    }
    let rest = config.count - covering.len();
    covering.extend(spread_out(rows, graph.as_ref(), rest));
    Ok(covering)
}

/// TypiClust's pick: k-means into `labelled + count` clusters; from each cluster without a
/// labelled member (largest first, at least [`MIN_COVERED_CLUSTER`] members) the member
/// with the smallest mean distance to its graph neighbours. At most `count` members.
fn typical_of_uncovered_clusters(
    features: ArrayView2<f32>,
    labelled: &[usize],
    graph: &KnnGraph,
    count: usize,
    seed: u64,
    control: &TaskControl,
) -> AnalysisResult<Vec<usize>> {
    let n = features.nrows();
    let k = (labelled.len() + count).min(n / MIN_COVERED_CLUSTER);
    if k < 2 {
        return Ok(Vec::new());
    }
    let points = features.mapv(f64::from);
    // One start and fewer iterations: the clusters only need to tile the data.
    let options = KMeansOptions {
        n_restarts: 1,
        max_iterations: 50,
        ..KMeansOptions::default()
    };
    let fit = kmeans(points.view(), k, &options, seed, control)?;
    let mut covered = vec![false; k];
    for &m in labelled {
        covered[fit.assignments[m]] = true;
    }
    let mut size = vec![0usize; k];
    // Per cluster, its most typical member so far: (mean neighbour distance, member).
    let mut densest: Vec<Option<(f32, usize)>> = vec![None; k];
    for (m, &c) in fit.assignments.iter().enumerate() {
        size[c] += 1;
        let distances = graph.distances(m);
        let spread = distances.iter().sum::<f32>() / distances.len().max(1) as f32;
        if !covered[c] && densest[c].is_none_or(|(best, _)| spread < best) {
            densest[c] = Some((spread, m));
        }
    }
    let mut uncovered: Vec<usize> = (0..k)
        .filter(|&c| !covered[c] && size[c] >= MIN_COVERED_CLUSTER)
        .collect();
    uncovered.sort_by_key(|&c| (std::cmp::Reverse(size[c]), c));
    Ok(uncovered
        .into_iter()
        .filter_map(|c| densest[c].map(|(_, m)| m))
        .take(count)
        .collect())
}

/// Share of `labels` other than `own`; without `own`, other than their majority.
fn disagreement(own: Option<usize>, labels: &[usize]) -> f32 {
    if labels.is_empty() {
        return 0.0;
    }
    let reference = own.unwrap_or_else(|| {
        let mut counts = std::collections::HashMap::new();
        for &l in labels {
            *counts.entry(l).or_insert(0usize) += 1;
        }
        counts
            .into_iter()
            .max_by_key(|&(label, count)| (count, std::cmp::Reverse(label)))
            .map_or(0, |(label, _)| label)
    });
    labels.iter().filter(|&&l| l != reference).count() as f32 / labels.len() as f32
}

/// Euclidean distance from each candidate to its nearest labelled member (+∞ without any).
fn distance_to_labelled(
    data: &[f32],
    dim: usize,
    candidates: &[usize],
    labelled: &[usize],
    control: &TaskControl,
) -> AnalysisResult<Vec<f32>> {
    if labelled.is_empty() {
        return Ok(vec![f32::INFINITY; candidates.len()]);
    }
    let row = |m: usize| &data[m * dim..(m + 1) * dim];
    let known: Vec<f32> = labelled.iter().flat_map(|&m| row(m)).copied().collect();
    let queries: Vec<f32> = candidates.iter().flat_map(|&m| row(m)).copied().collect();
    let nearest = KnnSearch {
        data: &known,
        n_rows: labelled.len(),
        dim,
        k: 1,
        distance: Distance::Euclidean,
        seed: 0,
    }
    .query(&queries, &|| control.is_cancelled())?;
    Ok(candidates
        .iter()
        .zip(&nearest)
        .map(|(&m, &j)| {
            let other = row(labelled[j as usize]);
            row(m)
                .iter()
                .zip(other)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt()
        })
        .collect())
}

/// Fills each row's score (mean rank of its signals) and reason (its highest rank).
fn score(rows: &mut [Suggestion]) {
    let ranks = |get: fn(&Suggestion) -> f32| -> Vec<f32> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| get(&rows[a]).total_cmp(&get(&rows[b])));
        let mut rank = vec![0.0; rows.len()];
        let last = rows.len().saturating_sub(1).max(1) as f32;
        // Ties share the rank of their first position, so a constant signal ranks 0 for all.
        let mut position = 0;
        for (i, &row) in order.iter().enumerate() {
            if i > 0 && get(&rows[order[i - 1]]) != get(&rows[row]) {
                position = i;
            }
            rank[row] = position as f32 / last;
        }
        rank
    };
    let uncertain = ranks(|s| s.uncertainty);
    let disagrees = ranks(|s| s.disagreement);
    let unexplored = ranks(|s| s.distance);
    for (i, row) in rows.iter_mut().enumerate() {
        let signals = [
            (SuggestReason::Uncertain, uncertain[i]),
            (SuggestReason::Disagrees, disagrees[i]),
            (SuggestReason::Unexplored, unexplored[i]),
        ];
        row.score = signals.iter().map(|(_, r)| r).sum::<f32>() / 3.0;
        row.reason = signals
            .iter()
            .fold(signals[0], |best, &s| if s.1 > best.1 { s } else { best })
            .0;
    }
}

/// The best `count` rows, skipping those among the neighbours of a row already picked until
/// nothing else is left.
fn spread_out(rows: Vec<Suggestion>, graph: Option<&KnnGraph>, count: usize) -> Vec<Suggestion> {
    let Some(graph) = graph else {
        return rows.into_iter().take(count).collect();
    };
    let mut near_picked = std::collections::HashSet::new();
    let (mut picked, mut waiting) = (Vec::new(), Vec::new());
    for row in rows {
        if picked.len() == count {
            break;
        }
        if near_picked.contains(&row.member) {
            waiting.push(row);
            continue;
        }
        near_picked.extend(graph.neighbours(row.member).iter().map(|&j| j as usize));
        picked.push(row);
    }
    let missing = count.saturating_sub(picked.len());
    picked.extend(waiting.into_iter().take(missing));
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Two well separated blobs of 40 (classes 0 and 1), plus a far cluster of 10 nobody
    /// labelled; a few members of blob 0 carry the wrong pseudo-label with low confidence.
    /// Features, hand labels and pseudo-labels of a test scene.
    type Scene = (Array2<f32>, Vec<Option<usize>>, Vec<Option<(usize, f32)>>);

    fn scene() -> Scene {
        let mut rows = Vec::new();
        let mut hand = Vec::new();
        let mut pseudo = Vec::new();
        for i in 0..90 {
            let (centre, class) = match i {
                0..40 => (0.0, 0),
                40..80 => (10.0, 1),
                _ => (40.0, 1),
            };
            let jitter = ((i * 37 % 11) as f32 - 5.0) * 0.05;
            rows.extend([centre + jitter, jitter * 0.5]);
            let labelled = i < 80 && i % 8 == 0;
            hand.push(labelled.then_some(class));
            pseudo.push(match (labelled, i) {
                (true, _) => None,
                // Wrongly pseudo-labelled, unsure.
                (false, 3 | 5) => Some((1, 0.55)),
                (false, _) => Some((class, 0.97)),
            });
        }
        (Array2::from_shape_vec((90, 2), rows).unwrap(), hand, pseudo)
    }

    #[test]
    fn the_mislabelled_and_the_unexplored_come_first_and_spread_out() {
        let (features, hand, pseudo) = scene();
        let input = SuggestInput {
            features: features.view(),
            hand: &hand,
            pseudo: &pseudo,
            threshold: 0.9,
        };
        let config = SuggestConfig {
            count: 6,
            neighbours: 5,
            cover_below_per_class: 0,
            seed: 1,
        };
        let picked = suggest(&input, &config, &TaskControl::new()).unwrap();
        assert_eq!(picked.len(), 6);
        let members: Vec<usize> = picked.iter().map(|s| s.member).collect();
        // Never a hand-labelled member.
        assert!(members.iter().all(|&m| hand[m].is_none()));
        // Both wrong pseudo-labels are suggested (uncertain and at odds with their
        // neighbours), and so is the far cluster, but only once or twice: spread out.
        assert!(members.contains(&3) && members.contains(&5), "{members:?}");
        // Without the spread-out pick the far cluster would take all four other places.
        let far = members.iter().filter(|&&m| m >= 80).count();
        assert!((1..=3).contains(&far), "{members:?}");
        let wrong = picked.iter().find(|s| s.member == 3).unwrap();
        assert!(wrong.disagreement > 0.5 && wrong.uncertainty > 0.4);
        let unexplored = picked.iter().find(|s| s.member >= 80).unwrap();
        assert_eq!(unexplored.reason, SuggestReason::Unexplored);
        // The best comes first.
        assert!(picked.iter().all(|s| s.score <= picked[0].score));
    }

    /// Three dense blobs of 30 with a thin halo each; hand labels only in the first.
    fn blobs_with_one_labelled() -> Scene {
        let mut rows = Vec::new();
        for blob in 0..3 {
            let centre = blob as f32 * 20.0;
            for i in 0..30 {
                // Member 0 of each blob sits at its centre; the radius grows with i.
                let angle = i as f32 * 2.4;
                let radius = 0.05 * i as f32;
                rows.extend([centre + radius * angle.cos(), radius * angle.sin()]);
            }
        }
        let hand = (0..90)
            .map(|m| (m < 30 && m % 10 == 5).then_some(0))
            .collect();
        let pseudo = vec![Some((0, 0.6)); 90];
        (Array2::from_shape_vec((90, 2), rows).unwrap(), hand, pseudo)
    }

    #[test]
    fn scarce_labels_first_cover_the_clusters_nobody_labelled_at_their_typical_member() {
        let (features, hand, pseudo) = blobs_with_one_labelled();
        let input = SuggestInput {
            features: features.view(),
            hand: &hand,
            pseudo: &pseudo,
            threshold: 0.9,
        };
        let config = SuggestConfig {
            count: 2,
            neighbours: 5,
            seed: 3,
            ..SuggestConfig::default()
        };
        let picked = suggest(&input, &config, &TaskControl::new()).unwrap();
        let blobs: Vec<usize> = picked.iter().map(|s| s.member / 30).collect();
        // One member of each unlabelled blob, not two of one; both typical, near the centre.
        assert_eq!(
            blobs.iter().collect::<std::collections::HashSet<_>>().len(),
            2,
            "{picked:?}"
        );
        assert!(!blobs.contains(&0), "{picked:?}");
        for s in &picked {
            assert_eq!(s.reason, SuggestReason::Typical);
            assert!(s.member % 30 < 10, "not the blob's dense core: {s:?}");
        }
        // With plenty of labels per class the same data is ranked, not covered.
        let plenty = SuggestConfig {
            cover_below_per_class: 1,
            ..config
        };
        let ranked = suggest(&input, &plenty, &TaskControl::new()).unwrap();
        assert!(ranked.iter().all(|s| s.reason != SuggestReason::Typical));
    }

    #[test]
    fn bad_input_is_an_error_and_nothing_to_suggest_is_empty() {
        let (mut features, hand, pseudo) = scene();
        let config = SuggestConfig::default();
        let short = SuggestInput {
            features: features.view(),
            hand: &hand[..10],
            pseudo: &pseudo,
            threshold: 0.9,
        };
        assert!(matches!(
            suggest(&short, &config, &TaskControl::new()),
            Err(AnalysisError::LengthMismatch { .. })
        ));
        let all_labelled = vec![Some(0); 90];
        let done = SuggestInput {
            features: features.view(),
            hand: &all_labelled,
            pseudo: &pseudo,
            threshold: 0.9,
        };
        assert!(
            suggest(&done, &config, &TaskControl::new())
                .unwrap()
                .is_empty()
        );
        features[[7, 1]] = f32::NAN;
        let nan = SuggestInput {
            features: features.view(),
            hand: &hand,
            pseudo: &pseudo,
            threshold: 0.9,
        };
        assert!(matches!(
            suggest(&nan, &config, &TaskControl::new()),
            Err(AnalysisError::NonFinite { row: 7, .. })
        ));
    }
}
