//! The latent map's state: which members it shows, where, what they are coloured by, and the
//! selection (kept as ensemble members, so it survives a new layout or subsample).

use std::collections::BTreeSet;
use std::sync::Arc;

use egui::Color32;
use ndarray::Array2;

use super::jobs::projection::{MapMetrics, ProjectedMap};
use super::label_keeper::LabelView;
use crate::data::ParameterTable;
use crate::projection::KnnGraph;

/// Unlabelled points: grey, so labelled classes stand out.
pub const UNLABELLED: Color32 = Color32::from_rgb(120, 120, 120);
/// Alpha factor of unselected points while there is a selection (dimmed, never hidden).
const DIMMED: f32 = 0.18;
/// Alpha factor of marked points (suggestions): between dimmed and selected.
const MARKED: f32 = 0.7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColourMode {
    /// Manual label, else a confident pseudo-label (what training uses).
    #[default]
    Label,
    Manual,
    Pseudo,
    Confidence,
    Cluster,
    ReconstructionError,
    Parameter(usize),
}

impl ColourMode {
    pub fn name(self, parameters: Option<&ParameterTable>) -> String {
        match self {
            Self::Label => "label (manual, else pseudo ≥ threshold)".into(),
            Self::Manual => "manual label".into(),
            Self::Pseudo => "pseudo-label".into(),
            Self::Confidence => "pseudo-label confidence".into(),
            Self::Cluster => "cluster".into(),
            Self::ReconstructionError => "reconstruction error".into(),
            Self::Parameter(i) => parameters
                .and_then(|p| p.names.get(i).cloned())
                .unwrap_or_else(|| format!("parameter {i}")),
        }
    }
}

/// What the colours mean, for the legend under the map.
#[derive(Debug, Clone, PartialEq)]
pub enum Legend {
    Classes(Vec<(String, Color32, usize)>),
    Continuous { name: String, min: f64, max: f64 },
    Missing(String),
}

/// The map as shown: rows are members of the ensemble.
#[derive(Default)]
pub struct MapState {
    pub members: Vec<usize>,
    pub ids: Arc<Vec<String>>,
    pub coords: Arc<Vec<[f32; 2]>>,
    /// `None` before training (raw pixels); else the epoch whose latents these are.
    pub epoch: Option<usize>,
    /// The rows' latents (when the map shows latents): clustering, interpolation, export.
    pub latents: Option<Arc<Array2<f32>>>,
    /// UMAP's kNN graph of the rows behind the layout: the next warm update starts from it.
    pub knn: Option<Arc<KnnGraph>>,
    pub metrics: Option<MapMetrics>,
    /// How the last layout was made: seconds, and whether it continued the previous one.
    pub projection: Option<(f32, bool)>,
    /// (epoch, metrics) of every latent map so far.
    pub metrics_history: Vec<(usize, MapMetrics)>,
    pub clusters: Option<Vec<usize>>,
    /// Per row: mean squared reconstruction error (data units).
    pub errors: Option<Vec<f32>>,
    pub colour_mode: ColourMode,
    pub selection: BTreeSet<usize>,
    /// Members highlighted besides the selection (the suggestion queue), less dimmed.
    pub marked: BTreeSet<usize>,
    /// The layout was the session's saved one (no projection ran yet).
    pub restored: bool,
}

impl MapState {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Takes a finished layout; per-row extras of the old layout no longer apply.
    pub fn apply(&mut self, map: ProjectedMap) {
        self.members = map.members;
        self.ids = map.ids;
        self.coords = Arc::new(map.coords);
        self.epoch = map.epoch;
        self.restored = false;
        self.metrics = map.metrics;
        self.projection = Some((map.elapsed_secs, map.warm_started));
        if let (Some(epoch), Some(metrics)) = (map.epoch, map.metrics) {
            self.metrics_history.push((epoch, metrics));
        }
        self.latents = map.latents;
        self.knn = map.knn;
        self.clusters = None;
        self.errors = None;
    }

    /// The previous positions of the current rows' members, for an animated transition to
    /// `next` (members new to the map start where they end).
    pub fn positions_for(&self, members: &[usize], next: &[[f32; 2]]) -> Option<Vec<[f32; 2]>> {
        if self.members.is_empty() {
            return None;
        }
        let old: std::collections::HashMap<usize, [f32; 2]> = self
            .members
            .iter()
            .copied()
            .zip(self.coords.iter().copied())
            .collect();
        Some(
            members
                .iter()
                .zip(next)
                .map(|(m, &p)| old.get(m).copied().unwrap_or(p))
                .collect(),
        )
    }

    /// Rows whose members are selected.
    #[cfg(test)]
    fn selected_rows(&self) -> Vec<usize> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| self.selection.contains(m))
            .map(|(row, _)| row)
            .collect()
    }

    /// Applies a brush or click: `rows` of the map, combined with the selection by `op`.
    pub fn select_rows(&mut self, rows: &[usize], op: super::scatter::SelectionOp) {
        use super::scatter::SelectionOp;
        let members = rows.iter().filter_map(|&r| self.members.get(r).copied());
        match op {
            SelectionOp::Replace => self.selection = members.collect(),
            SelectionOp::Add => self.selection.extend(members),
            SelectionOp::Subtract => {
                for m in members {
                    self.selection.remove(&m);
                }
            }
        }
    }

    /// One colour per row and the legend that explains them.
    pub fn colours(
        &self,
        labels: Option<&LabelView>,
        parameters: Option<&ParameterTable>,
    ) -> (Vec<Color32>, Legend) {
        let rows = self.members.len();
        let classes_legend = |per_row: &dyn Fn(usize) -> Option<usize>, labels: &LabelView| {
            let mut counts = vec![0usize; labels.classes.len()];
            let colours = (0..rows)
                .map(|r| match per_row(r) {
                    Some(c) => {
                        if let Some(n) = counts.get_mut(c) {
                            *n += 1;
                        }
                        labels.classes.get(c).map_or(UNLABELLED, |k| k.colour)
                    }
                    None => UNLABELLED,
                })
                .collect::<Vec<_>>();
            let legend = labels
                .classes
                .iter()
                .zip(counts)
                .map(|(c, n)| (c.name.clone(), c.colour, n))
                .collect();
            (colours, Legend::Classes(legend))
        };
        let (colours, legend) = match (self.colour_mode, labels) {
            (ColourMode::Label, Some(l)) => classes_legend(&|r| l.effective(self.members[r]), l),
            (ColourMode::Manual, Some(l)) => {
                classes_legend(&|r| l.manual.get(self.members[r]).copied().flatten(), l)
            }
            (ColourMode::Pseudo, Some(l)) => classes_legend(
                &|r| {
                    l.pseudo
                        .get(self.members[r])
                        .copied()
                        .flatten()
                        .map(|p| p.class)
                },
                l,
            ),
            (ColourMode::Confidence, Some(l)) => continuous(
                "pseudo-label confidence",
                &self
                    .members
                    .iter()
                    .map(|&m| {
                        l.pseudo
                            .get(m)
                            .copied()
                            .flatten()
                            .map_or(f64::NAN, |p| f64::from(p.confidence))
                    })
                    .collect::<Vec<_>>(),
            ),
            (ColourMode::Cluster, _) => match &self.clusters {
                Some(clusters) => {
                    let k = clusters.iter().max().map_or(0, |m| m + 1);
                    let mut counts = vec![0usize; k];
                    let colours = clusters
                        .iter()
                        .map(|&c| {
                            counts[c] += 1;
                            palette(c)
                        })
                        .collect();
                    let legend = (0..k)
                        .map(|c| (format!("cluster {}", c + 1), palette(c), counts[c]))
                        .collect();
                    (colours, Legend::Classes(legend))
                }
                None => missing(rows, "run k-means or GMM from the map's toolbar"),
            },
            (ColourMode::ReconstructionError, _) => match &self.errors {
                Some(errors) => continuous(
                    "reconstruction MSE",
                    &errors.iter().map(|&e| f64::from(e)).collect::<Vec<_>>(),
                ),
                None => missing(rows, "compute reconstruction errors from the map's toolbar"),
            },
            (ColourMode::Parameter(i), _) => match parameters {
                Some(p) if i < p.names.len() => continuous(
                    &p.names[i],
                    &self
                        .members
                        .iter()
                        .map(|&m| p.value(m, i))
                        .collect::<Vec<_>>(),
                ),
                _ => missing(rows, "this dataset has no such parameter"),
            },
            (_, None) => missing(rows, "labels are loading"),
        };
        (self.dim_unselected(colours), legend)
    }

    fn dim_unselected(&self, mut colours: Vec<Color32>) -> Vec<Color32> {
        if self.selection.is_empty() && self.marked.is_empty() {
            return colours;
        }
        for (colour, member) in colours.iter_mut().zip(&self.members) {
            if self.selection.contains(member) {
                continue;
            }
            *colour = match self.marked.contains(member) {
                true => colour.gamma_multiply(MARKED),
                false => colour.gamma_multiply(DIMMED),
            };
        }
        colours
    }
}

/// The categorical palette the label store uses (tab10 first).
pub fn palette(index: usize) -> Color32 {
    let c = crate::labels::palette_colour(index);
    Color32::from_rgb(c.0[0], c.0[1], c.0[2])
}

fn missing(rows: usize, why: &str) -> (Vec<Color32>, Legend) {
    (vec![UNLABELLED; rows], Legend::Missing(why.to_string()))
}

/// Viridis over the finite range of `values`; non-finite values grey.
fn continuous(name: &str, values: &[f64]) -> (Vec<Color32>, Legend) {
    let (min, max) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if min > max {
        return missing(values.len(), &format!("no {name} values yet"));
    }
    let span = (max - min).max(f64::EPSILON);
    let colours = values
        .iter()
        .map(|&v| match v.is_finite() {
            true => {
                let [r, g, b] = crate::report::viridis(((v - min) / span) as f32);
                Color32::from_rgb(r, g, b)
            }
            false => UNLABELLED,
        })
        .collect();
    (
        colours,
        Legend::Continuous {
            name: name.to_string(),
            min,
            max,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::scatter::SelectionOp;
    use super::*;

    fn map() -> MapState {
        MapState {
            members: vec![10, 11, 12, 13],
            coords: Arc::new(vec![[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]),
            ..MapState::default()
        }
    }

    #[test]
    fn selection_is_kept_by_member_and_combines() {
        let mut m = map();
        m.select_rows(&[0, 1], SelectionOp::Replace);
        m.select_rows(&[2], SelectionOp::Add);
        m.select_rows(&[0], SelectionOp::Subtract);
        assert_eq!(
            m.selection.iter().copied().collect::<Vec<_>>(),
            vec![11, 12]
        );
        assert_eq!(m.selected_rows(), vec![1, 2]);
        m.members = vec![12, 99];
        assert_eq!(m.selected_rows(), vec![0]);
    }

    #[test]
    fn transitions_start_from_old_positions_of_the_same_members() {
        let m = map();
        let from = m
            .positions_for(&[12, 50], &[[9.0, 9.0], [5.0, 5.0]])
            .unwrap();
        assert_eq!(from, vec![[2.0, 0.0], [5.0, 5.0]]);
    }

    #[test]
    fn unselected_points_are_dimmed_not_hidden() {
        let mut m = map();
        m.colour_mode = ColourMode::Cluster;
        m.clusters = Some(vec![0, 1, 0, 1]);
        m.select_rows(&[0], SelectionOp::Replace);
        let (colours, legend) = m.colours(None, None);
        assert_eq!(colours[0], palette(0));
        assert!(colours[2].a() > 0 && colours[2].a() < colours[0].a());
        assert_eq!(
            legend,
            Legend::Classes(vec![
                ("cluster 1".into(), palette(0), 2),
                ("cluster 2".into(), palette(1), 2)
            ])
        );
    }

    #[test]
    fn continuous_colours_span_the_finite_range() {
        let (colours, legend) = continuous("p", &[1.0, f64::NAN, 3.0]);
        assert_eq!(colours[1], UNLABELLED);
        assert_ne!(colours[0], colours[2]);
        assert_eq!(
            legend,
            Legend::Continuous {
                name: "p".into(),
                min: 1.0,
                max: 3.0
            }
        );
    }
}
