//! The app's state: the session, the open workspace, the one-shot jobs, what the forms hold,
//! and the map widget. Views read it (and edit their own form fields); commands and worker
//! events change the rest.

use std::collections::BTreeSet;

use super::jobs::JobTable;
use super::notifications::Notifications;
use super::scatter::{ScatterBackend, ScatterPlot};
use super::session::Session;
use super::worker::Waker;
use super::workspace::Workspace;
use crate::analysis::clustering::ClusterMethod;
use crate::train::TrainConfig;

/// The tabs of the bottom panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BottomTab {
    #[default]
    LossCurves,
    Reconstructions,
    Interpolation,
}

/// What the forms hold between frames (view state: editing it starts nothing).
pub struct Forms {
    /// The training form (saved into the session).
    pub train: TrainConfig,
    pub new_class: String,
    pub rename_from: Option<String>,
    pub rename_to: String,
    /// Classes picked for merging.
    pub merge: BTreeSet<String>,
    /// The inspector's "label as new class" field.
    pub inspector_new_class: String,
    pub cluster_method: ClusterMethod,
    pub cluster_k: usize,
    pub interpolation_steps: usize,
}

impl Forms {
    fn new(train: TrainConfig) -> Self {
        Self {
            train,
            new_class: String::new(),
            rename_from: None,
            rename_to: String::new(),
            merge: BTreeSet::new(),
            inspector_new_class: String::new(),
            cluster_method: ClusterMethod::Kmeans,
            cluster_k: 7,
            interpolation_steps: 8,
        }
    }
}

pub struct AppState {
    pub session: Session,
    /// The open dataset (`None` while opening, or when it could not be opened).
    pub ws: Option<Workspace>,
    pub jobs: JobTable,
    pub forms: Forms,
    pub notifications: Notifications,
    /// The compute backend training would get ("checking…" until the probe answers).
    pub compute_backend: String,
    pub bottom_tab: BottomTab,
    pub scatter: ScatterPlot,
    pub scatter_backend: ScatterBackend,
    /// Where the map was drawn last frame (tests brush inside it).
    pub map_rect: Option<egui::Rect>,
    /// The clean full-window map for a projector instead of the working layout (F5).
    pub presentation: bool,
    pub waker: Waker,
}

impl AppState {
    pub fn new(session: Session, scatter_backend: ScatterBackend, waker: Waker) -> Self {
        Self {
            forms: Forms::new(session.file.train_config.clone()),
            session,
            ws: None,
            jobs: JobTable::new(waker.clone()),
            notifications: Notifications::default(),
            compute_backend: "checking…".into(),
            bottom_tab: BottomTab::default(),
            scatter: ScatterPlot::new(egui::Id::unique("latent-map")),
            scatter_backend,
            map_rect: None,
            presentation: false,
            waker,
        }
    }

    /// Whether anything runs or waits: one-shot jobs, training, the pseudo-labeller, a map
    /// layout, label edits being saved, or the first labels and map still to come.
    pub fn busy(&self) -> bool {
        self.jobs.busy()
            || self.ws.as_ref().is_some_and(|ws| {
                ws.busy() || ws.labels.is_none() || ws.map.is_empty() || ws.colours_dirty
            })
    }

    /// Writes the session file (the form's training settings included). A small JSON file,
    /// written atomically: fast enough for the UI thread.
    pub fn save_session(&mut self) {
        self.session.file.train_config = self.forms.train.clone();
        if let Err(e) = self.session.save() {
            self.notifications
                .error(format!("Session not saved: {e:#}"));
        }
    }
}
