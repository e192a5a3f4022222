//! Everything about the open dataset: the ensemble, its label keeper and the latest label
//! view, the training run, the pseudo-labeller, the projection worker and the map, and the
//! textures made from their results.

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::Array2;

use super::error::AppResult;
use super::images::{ReconstructionTextures, Thumbnails};
use super::jobs::PseudoLabeller;
use super::jobs::projection::{MapInput, ProjectionRequest, ProjectionWorker};
use super::jobs::training::TrainingRun;
use super::label_keeper::{LabelKeeper, LabelView};
use super::map::{Legend, MapState};
use super::session::{Loaded, Session};
use super::worker::Waker;
use crate::classify::ClassifierConfig;
use crate::data::Ensemble;
use crate::projection::{PreviousLayout, live_subsample};

/// Seed of the map's member subsample (stable, so warm starts match members).
const MAP_SEED: u64 = 17;

/// Members suggested for labelling, best first, and the one being looked at.
pub struct SuggestionQueue {
    pub items: Vec<crate::classify::Suggestion>,
    pub current: usize,
}

impl SuggestionQueue {
    pub fn current_member(&self) -> Option<usize> {
        self.items.get(self.current).map(|s| s.member)
    }
}

/// The interpolation strip between two members.
#[derive(Default)]
pub struct Interpolation {
    pub a: Option<usize>,
    pub b: Option<usize>,
    /// Decoded images from A to B, as textures.
    pub strip: Vec<egui::TextureHandle>,
}

pub struct Workspace {
    pub ensemble: Ensemble,
    pub keeper: LabelKeeper,
    /// The keeper's latest view (`None` until its first answer).
    pub labels: Option<Arc<LabelView>>,
    pub training: Option<TrainingRun>,
    pub pseudo: Option<PseudoLabeller>,
    pub projection: ProjectionWorker,
    pub map: MapState,
    pub legend: Legend,
    /// The map's colours must be recomputed (labels, selection or colouring changed).
    pub colours_dirty: bool,
    pub thumbnails: Thumbnails,
    /// The run's latest reconstructions of fixed validation members.
    pub reconstructions: ReconstructionTextures,
    /// Reconstruction and error map of inspected members.
    pub inspected: HashMap<usize, [egui::TextureHandle; 2]>,
    pub interpolation: Interpolation,
    /// When the pseudo-labeller retrains after the latest hand-label edits.
    pub retrain_due: Option<std::time::Instant>,
    /// What to label next, when the user asked.
    pub suggestions: Option<SuggestionQueue>,
    /// The run directory has a checkpoint (from opening, then the trainer's events).
    pub has_checkpoint: bool,
    waker: Waker,
}

impl Workspace {
    /// Starts the label keeper and the projection worker for freshly opened data.
    pub fn open(loaded: Loaded, session: &Session, waker: Waker) -> AppResult<Self> {
        let Loaded {
            ensemble,
            store,
            layout,
            layout_metrics,
            past_run,
            has_checkpoint,
            ..
        } = loaded;
        let keeper = LabelKeeper::start(
            ensemble.clone(),
            store,
            session.file.pseudo_threshold,
            waker.clone(),
        )?;
        let projection = ProjectionWorker::start(waker.clone())?;
        let training = match session.is_following() {
            true => Some(TrainingRun::follow(
                session.run_dir(),
                &ensemble,
                waker.clone(),
            )?),
            false => past_run.map(TrainingRun::restored),
        };
        let mut ws = Self {
            ensemble,
            keeper,
            labels: None,
            training,
            pseudo: None,
            projection,
            map: MapState::default(),
            legend: Legend::Missing("the map is being computed".into()),
            colours_dirty: false,
            thumbnails: Thumbnails::new(4096),
            reconstructions: Default::default(),
            inspected: HashMap::new(),
            interpolation: Default::default(),
            retrain_due: None,
            suggestions: None,
            has_checkpoint,
            waker,
        };
        match layout {
            Some(layout) => {
                ws.map.members = layout.members;
                ws.map.ids = Arc::new(layout.ids);
                ws.map.coords = Arc::new(layout.coords);
                ws.map.restored = true;
                ws.map.metrics = layout_metrics;
                ws.colours_dirty = true;
            }
            None => ws.request_pixel_map(session),
        }
        Ok(ws)
    }

    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// The pseudo-labeller, started on first use.
    pub fn pseudo_labeller(&mut self, threshold: f32) -> AppResult<&mut PseudoLabeller> {
        let labeller = match self.pseudo.take() {
            Some(labeller) => labeller,
            None => {
                let config = ClassifierConfig {
                    confidence_threshold: threshold,
                    ..ClassifierConfig::default()
                };
                PseudoLabeller::start(self.ensemble.clone(), config, self.waker.clone())?
            }
        };
        Ok(self.pseudo.insert(labeller))
    }

    pub fn is_training(&self) -> bool {
        self.training.as_ref().is_some_and(|t| t.state.is_active())
    }

    /// Something in this workspace runs or waits: training, pseudo-labelling, a layout, or
    /// label edits being saved.
    pub fn busy(&self) -> bool {
        self.is_training()
            || self.pseudo.as_ref().is_some_and(|p| p.running)
            || self.projection.is_busy()
            || self.keeper.is_busy()
    }

    /// Latents of every member, in member order, when `latents` cover them all: moved, not
    /// copied, when they already come in member order (this runs on the UI thread).
    pub fn all_member_latents(&self, latents: crate::train::Latents) -> Option<Arc<Array2<f32>>> {
        let n = self.ensemble.len();
        if latents.members.len() != n {
            return None;
        }
        let shape = (n, latents.dim);
        if latents.members.iter().enumerate().all(|(row, &m)| row == m) {
            return Array2::from_shape_vec(shape, latents.values)
                .ok()
                .map(Arc::new);
        }
        let mut rows = Array2::<f32>::zeros(shape);
        for (row, &member) in latents.members.iter().enumerate() {
            let values = latents
                .values
                .get(row * latents.dim..(row + 1) * latents.dim)?;
            rows.row_mut(member)
                .assign(&ndarray::ArrayView1::from(values));
        }
        Some(Arc::new(rows))
    }

    /// Members with a hand label (the labels that came with the data until the keeper's
    /// first view).
    fn manual_members(&self) -> Vec<usize> {
        match &self.labels {
            Some(labels) => (0..labels.manual.len())
                .filter(|&m| labels.manual[m].is_some())
                .collect(),
            None => self.ensemble.labels.as_ref().map_or_else(Vec::new, |l| {
                (0..l.per_member.len())
                    .filter(|&m| l.per_member[m].is_some())
                    .collect()
            }),
        }
    }

    /// Hand label per member for the live metrics.
    fn metric_labels(&self, members: &[usize]) -> Vec<Option<usize>> {
        members
            .iter()
            .map(|&m| match &self.labels {
                Some(labels) => labels.manual.get(m).copied().flatten(),
                // Before the label view arrives: the labels that came with the data.
                None => {
                    let labels = self.ensemble.labels.as_ref()?;
                    labels
                        .per_member
                        .get(m)
                        .copied()
                        .flatten()
                        .map(|c| c as usize)
                }
            })
            .collect()
    }

    /// Before any model: a map of the raw pixels.
    pub fn request_pixel_map(&mut self, session: &Session) {
        let members = map_rows(
            self.ensemble.len(),
            session.file.map_max_members,
            &self.manual_members(),
        );
        let ids = Arc::new(
            members
                .iter()
                .map(|&m| self.ensemble.member_id(m))
                .collect(),
        );
        let metric_labels = self.metric_labels(&members);
        self.projection.request(ProjectionRequest {
            members,
            ids,
            input: MapInput::Pixels(self.ensemble.clone()),
            previous: None,
            metric_labels,
        });
    }

    /// A training epoch's latents → a warm-started map of (a subsample of) them.
    pub fn request_latent_map(&mut self, session: &Session, latents: &crate::train::Latents) {
        self.request_map_of(latents, session.file.map_max_members);
    }

    /// Every member's latents → a map of the whole ensemble, warm-started from the live one.
    pub fn request_full_map(&mut self, latents: &crate::train::Latents) {
        self.request_map_of(latents, usize::MAX);
    }

    fn request_map_of(&mut self, latents: &crate::train::Latents, limit: usize) {
        let row_of: HashMap<usize, usize> = latents
            .members
            .iter()
            .enumerate()
            .map(|(row, &m)| (m, row))
            .collect();
        let manual: Vec<usize> = self
            .manual_members()
            .into_iter()
            .filter_map(|m| row_of.get(&m).copied())
            .collect();
        let rows = map_rows(latents.members.len(), limit, &manual);
        let members: Vec<usize> = rows.iter().map(|&r| latents.members[r]).collect();
        let ids: Arc<Vec<String>> =
            Arc::new(rows.iter().map(|&r| latents.ids[r].clone()).collect());
        let mut values = Vec::with_capacity(rows.len() * latents.dim);
        for &r in &rows {
            values.extend_from_slice(&latents.values[r * latents.dim..(r + 1) * latents.dim]);
        }
        let Ok(values) = Array2::from_shape_vec((rows.len(), latents.dim), values) else {
            return;
        };
        // The first latent map starts cold (and animates from scratch): continuing from the
        // raw-pixel layout would bias it towards pixel similarity.
        let previous = self.map.epoch.is_some().then(|| PreviousLayout {
            ids: self.map.ids.to_vec(),
            coords: Array2::from_shape_fn((self.map.coords.len(), 2), |(i, j)| {
                self.map.coords[i][j]
            }),
            knn: self.map.knn.clone(),
        });
        let metric_labels = self.metric_labels(&members);
        self.projection.request(ProjectionRequest {
            members,
            ids,
            input: MapInput::Latents {
                epoch: latents.epoch,
                values: Arc::new(values),
            },
            previous,
            metric_labels,
        });
    }
}

/// The members a map of `n` rows shows: all up to the limit, else a seeded subsample that
/// keeps every hand-labelled member.
fn map_rows(n: usize, limit: usize, always: &[usize]) -> Vec<usize> {
    live_subsample(n, limit, always, MAP_SEED).unwrap_or_else(|_| (0..n.min(limit)).collect())
}
