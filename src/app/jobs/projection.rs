//! The map's projection worker: one thread, the newest waiting request is projected next,
//! warm-started from the previous layout so the map moves smoothly between
//! epochs, with intermediate frames of a cold layout for the animation and the live metrics
//! (silhouette, neighbourhood hit of the hand-labelled members) computed beside it.

use std::sync::Arc;
use std::time::Instant;

use ndarray::{Array2, Axis};

use crate::analysis::embedding_metrics::{Sampling, neighbourhood_hit, silhouette};
use crate::app::error::{AppError, AppResult};
use crate::app::worker::{Queue, Report, Waker, Worker, WorkerContext};
use crate::classify::PixelFeatures;
use crate::data::Ensemble;
use crate::projection::{
    Frames, KnnGraph, LayoutFrame, PreviousLayout, ProjectionConfig, UmapConfig,
    project_with_frames,
};
use crate::task::{TaskControl, TaskProgress};

/// Neighbourhood size of the live neighbourhood hit (as `sense eval`).
pub const NEIGHBOURHOOD_K: usize = 17;

/// Where the map's high-dimensional points come from.
pub enum MapInput {
    /// Latents of a training epoch: one row per member.
    Latents {
        epoch: usize,
        values: Arc<Array2<f32>>,
    },
    /// The members' pixels (shrunk, PCA-50): a map before any model exists.
    Pixels(Ensemble),
}

pub struct ProjectionRequest {
    /// Ensemble indices of the rows.
    pub members: Vec<usize>,
    pub ids: Arc<Vec<String>>,
    pub input: MapInput,
    pub previous: Option<PreviousLayout>,
    /// Per row: the hand label (class index) the live metrics score, if any.
    pub metric_labels: Vec<Option<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapMetrics {
    pub silhouette: f64,
    pub neighbourhood_hit: f64,
    pub labelled_members: usize,
}

/// A finished layout.
pub struct ProjectedMap {
    pub members: Vec<usize>,
    pub ids: Arc<Vec<String>>,
    pub coords: Vec<[f32; 2]>,
    /// `None`: raw pixels; `Some(epoch)`: that epoch's latents.
    pub epoch: Option<usize>,
    /// The rows' latents (for clustering, export), when the map shows latents.
    pub latents: Option<Arc<Array2<f32>>>,
    /// UMAP's kNN graph of the rows, for the next warm update.
    pub knn: Option<Arc<KnnGraph>>,
    pub metrics: Option<MapMetrics>,
    pub warm_started: bool,
    pub elapsed_secs: f32,
}

pub enum ProjectionEvent {
    /// An intermediate layout of the request in flight (rows as in the request).
    Frame {
        members: Vec<usize>,
        coords: Vec<[f32; 2]>,
    },
    Done(ProjectedMap),
    Error(AppError),
}

/// The projection worker: requests in, layouts out. Requests that pile up while a layout is
/// in flight are skipped but the newest; the one in flight finishes first (cancelling it on
/// every epoch would starve the map when epochs are faster than UMAP).
pub struct ProjectionWorker {
    worker: Worker<ProjectionRequest, ProjectionEvent>,
}

impl ProjectionWorker {
    pub fn start(waker: Waker) -> AppResult<Self> {
        let worker = Worker::spawn("projection", Queue::Newest, waker, |request, context| {
            match run(request, context) {
                Ok(map) => context.send(ProjectionEvent::Done(map)),
                // Cancelled: the map keeps its last finished layout.
                Err(_) if context.control().is_cancelled() => {}
                Err(e) => context.send(ProjectionEvent::Error(e)),
            }
        })?;
        Ok(Self { worker })
    }

    pub fn request(&self, request: ProjectionRequest) {
        self.worker.send(request);
    }

    /// Stops the layout in flight (the map keeps its last finished layout).
    pub fn cancel(&self) {
        self.worker.cancel();
    }

    pub fn try_recv(&self) -> Option<ProjectionEvent> {
        Some(match self.worker.try_recv()? {
            Report::Event(event) => event,
            Report::Panicked(message) => ProjectionEvent::Error(AppError::Panicked(message)),
        })
    }

    /// Stage and fraction of the layout in flight.
    pub fn progress(&self) -> Option<TaskProgress> {
        self.worker.progress()
    }

    /// A layout is in flight or waits.
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
    }
}

fn run(
    request: ProjectionRequest,
    context: &WorkerContext<ProjectionEvent>,
) -> AppResult<ProjectedMap> {
    let control = context.control();
    let started = Instant::now();
    let (data, epoch, latents) = match request.input {
        MapInput::Latents { epoch, values } => (values.clone(), Some(epoch), Some(values)),
        MapInput::Pixels(ensemble) => (
            Arc::new(PixelFeatures::fit_transform(&ensemble, &request.members, control)?.1),
            None,
            None,
        ),
    };
    let anchors = match &request.previous {
        Some(previous) => Some(previous.anchors(&request.ids)?),
        None => None,
    }
    .filter(|a| a.n_known() > 0);
    // The live map is redrawn every epoch: Hogwild on every core beats a reproducible layout.
    let config = ProjectionConfig::Umap(UmapConfig {
        deterministic: false,
        ..UmapConfig::default()
    });
    let members = request.members.clone();
    let mut send_frame = |frame: LayoutFrame<'_>| {
        context.send(ProjectionEvent::Frame {
            members: members.clone(),
            coords: rows_of(frame.coords.view()),
        });
    };
    // A warm start moves little: only a cold layout is worth animating frame by frame.
    let frames = match anchors {
        None => Some(Frames {
            every_epochs: 25,
            sink: &mut send_frame,
        }),
        Some(_) => None,
    };
    let layout = project_with_frames(data.view(), &config, anchors.as_ref(), control, frames)?;
    let coords = rows_of(layout.coords.view());
    let metrics = live_metrics(&coords, &request.metric_labels, control);
    Ok(ProjectedMap {
        members: request.members,
        ids: request.ids,
        coords,
        epoch,
        latents,
        knn: layout.knn,
        metrics,
        warm_started: layout.warm_started,
        elapsed_secs: started.elapsed().as_secs_f32(),
    })
}

fn rows_of(coords: ndarray::ArrayView2<f32>) -> Vec<[f32; 2]> {
    coords.axis_iter(Axis(0)).map(|r| [r[0], r[1]]).collect()
}

/// Silhouette and neighbourhood hit of the labelled rows in the 2-D layout.
pub fn live_metrics(
    coords: &[[f32; 2]],
    labels: &[Option<usize>],
    control: &TaskControl,
) -> Option<MapMetrics> {
    let (points, classes): (Vec<[f32; 2]>, Vec<usize>) = coords
        .iter()
        .zip(labels)
        .filter_map(|(&p, &l)| l.map(|l| (p, l)))
        .unzip();
    let distinct = classes
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if points.len() <= NEIGHBOURHOOD_K || distinct < 2 || distinct >= points.len() {
        return None;
    }
    let matrix = Array2::from_shape_vec(
        (points.len(), 2),
        points.iter().flat_map(|p| [p[0], p[1]]).collect(),
    )
    .ok()?;
    let sampling = Sampling::default();
    let sil = silhouette(matrix.view(), &classes, &sampling, control).ok()?;
    let hit =
        neighbourhood_hit(matrix.view(), &classes, NEIGHBOURHOOD_K, &sampling, control).ok()?;
    Some(MapMetrics {
        silhouette: sil.value,
        neighbourhood_hit: hit.value,
        labelled_members: points.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_metrics_need_two_classes_and_see_separation() {
        let control = TaskControl::new();
        let mut coords = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40 {
            let class = i % 2;
            coords.push([
                class as f32 * 10.0 + (i as f32 * 0.01),
                (i as f32 * 0.37).sin(),
            ]);
            labels.push(Some(class));
        }
        let metrics = live_metrics(&coords, &labels, &control).unwrap();
        assert!(metrics.neighbourhood_hit > 0.99 && metrics.silhouette > 0.8);
        assert_eq!(metrics.labelled_members, 40);
        let one_class: Vec<Option<usize>> = labels.iter().map(|_| Some(0)).collect();
        assert!(live_metrics(&coords, &one_class, &control).is_none());
    }
}
