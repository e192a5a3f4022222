//! What tests (and the `--quit-after-first-map` smoke run) ask the app: read-only summaries
//! of its state, and the few actions a test takes without pointer events.

use std::sync::Arc;

use super::commands::{AppCommand, execute};
use super::jobs::JobKind;
use super::jobs::training::RunState;
use super::label_keeper::LabelView;
use super::sense_app::SenseApp;

/// A summary of the app's state for tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppProbe {
    /// Points with a k-means/GMM cluster.
    pub clusters: Option<usize>,
    /// Points with a reconstruction error.
    pub reconstruction_errors: Option<usize>,
    pub reconstructed: usize,
    pub interpolation_frames: usize,
    pub pseudo_labelled: usize,
    /// The pseudo-labeller's last choice (`spreading`, `classifier`, `combined`, or `none`)
    /// and the features spreading used.
    pub labeller_choice: Option<(String, Option<String>)>,
    /// Training members that carried a label in the latest epoch.
    pub labelled_in_last_epoch: Option<usize>,
    /// A toolbar, inspector, interpolation or pseudo-labeller job is running.
    pub busy: bool,
    /// Members in the suggestion queue, and the one being looked at.
    pub suggestions: usize,
    pub current_suggestion: Option<usize>,
    /// How the last pseudo-label proposal changed the pseudo-labels.
    pub last_pseudo_changes: Option<String>,
}

impl SenseApp {
    /// Whether the dataset is open and its labels are loaded.
    pub fn is_ready(&self) -> bool {
        self.state()
            .ws
            .as_ref()
            .is_some_and(|ws| ws.labels.is_some())
    }

    /// Points on the map now.
    pub fn map_points(&self) -> usize {
        self.state()
            .ws
            .as_ref()
            .map_or(0, |ws| ws.map.members.len())
    }

    /// Loss points drawn so far (steps and epochs).
    pub fn loss_points(&self) -> usize {
        self.state()
            .ws
            .as_ref()
            .and_then(|ws| ws.training.as_ref())
            .map_or(0, |t| t.history.steps.len() + t.history.epochs.len())
    }

    /// The epochs the loss curves show.
    pub fn epoch_points(&self) -> usize {
        self.state()
            .ws
            .as_ref()
            .and_then(|ws| ws.training.as_ref())
            .map_or(0, |t| t.history.epochs.len())
    }

    pub fn labels(&self) -> Option<Arc<LabelView>> {
        self.state().ws.as_ref().and_then(|ws| ws.labels.clone())
    }

    pub fn selection(&self) -> Vec<usize> {
        self.state()
            .ws
            .as_ref()
            .map(|ws| ws.map.selection.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The epoch whose latents the map shows (`None`: raw pixels or nothing yet).
    pub fn map_epoch(&self) -> Option<usize> {
        self.state().ws.as_ref().and_then(|ws| ws.map.epoch)
    }

    pub fn map_rect(&self) -> Option<egui::Rect> {
        self.state().map_rect
    }

    /// The map's live metrics: (silhouette, neighbourhood hit, hand-labelled members).
    pub fn map_metrics(&self) -> Option<(f64, f64, usize)> {
        let metrics = self.state().ws.as_ref()?.map.metrics?;
        Some((
            metrics.silhouette,
            metrics.neighbourhood_hit,
            metrics.labelled_members,
        ))
    }

    /// Selects members as a brush would (tests of what acts on a selection).
    pub fn select_members(&mut self, members: &[usize]) {
        execute(
            self.state_mut(),
            AppCommand::SelectMembers(members.to_vec()),
        );
    }

    /// Switches to a session in `session_dir` following `run_dir` (what *Follow a run…*
    /// does once a folder is picked).
    pub fn follow_run(&mut self, run_dir: &std::path::Path, session_dir: &std::path::Path) {
        execute(
            self.state_mut(),
            AppCommand::FollowRun {
                run_dir: run_dir.to_path_buf(),
                session_dir: Some(session_dir.to_path_buf()),
            },
        );
    }

    /// The directory of the run being followed, while it is.
    pub fn followed_run(&self) -> Option<std::path::PathBuf> {
        let run = self.state().ws.as_ref()?.training.as_ref()?;
        run.followed_dir().map(std::path::Path::to_path_buf)
    }

    /// The epoch of the reconstructions the bottom panel shows.
    pub fn reconstructions_epoch(&self) -> Option<usize> {
        let run = self.state().ws.as_ref()?.training.as_ref()?;
        run.history
            .reconstructions
            .as_ref()
            .map(|(epoch, _)| *epoch)
    }

    /// Where the map draws its point `row` (tests aim brushes with it).
    pub fn map_point_on_screen(&self, row: usize) -> Option<egui::Pos2> {
        let state = self.state();
        let coords = state.ws.as_ref()?.map.coords.get(row).copied()?;
        Some(state.scatter.data_to_screen(state.map_rect?, coords))
    }

    /// Nothing in flight that would change what is drawn (for snapshots).
    pub fn is_settled(&self) -> bool {
        let state = self.state();
        !state.jobs.is_running(JobKind::BackendProbe)
            && self.is_ready()
            && state.ws.as_ref().is_some_and(|ws| {
                !ws.projection.is_busy() && !ws.map.is_empty() && !ws.colours_dirty
            })
    }

    pub fn is_paused(&self) -> bool {
        self.state()
            .ws
            .as_ref()
            .and_then(|ws| ws.training.as_ref())
            .is_some_and(|t| t.state == RunState::Paused)
    }

    /// Whether a training run is going (starting, running, paused or stopping).
    pub fn is_training(&self) -> bool {
        self.state().ws.as_ref().is_some_and(|ws| ws.is_training())
    }

    /// Whether anything at all runs or waits (the app repaints only when it has news).
    pub fn is_busy(&self) -> bool {
        self.state().busy()
    }

    /// What the map, inspector and interpolation show now.
    pub fn probe(&self) -> AppProbe {
        let state = self.state();
        let Some(ws) = state.ws.as_ref() else {
            return AppProbe::default();
        };
        AppProbe {
            clusters: ws.map.clusters.as_ref().map(Vec::len),
            reconstruction_errors: ws.map.errors.as_ref().map(Vec::len),
            reconstructed: ws.inspected.len(),
            interpolation_frames: ws.interpolation.strip.len(),
            pseudo_labelled: ws
                .labels
                .as_ref()
                .map_or(0, |l| l.pseudo.iter().flatten().count()),
            labeller_choice: ws.pseudo.as_ref().and_then(|p| p.choice.as_ref()).map(|c| {
                let name = c.chosen.map_or("none", |l| l.name());
                (name.to_string(), c.features.clone())
            }),
            labelled_in_last_epoch: ws
                .training
                .as_ref()
                .and_then(|t| t.history.epochs.last())
                .map(|e| e.labelled_members),
            busy: state.jobs.busy_with_tools() || ws.pseudo.as_ref().is_some_and(|p| p.running),
            suggestions: ws.suggestions.as_ref().map_or(0, |q| q.items.len()),
            current_suggestion: ws.suggestions.as_ref().and_then(|q| q.current_member()),
            last_pseudo_changes: ws
                .pseudo
                .as_ref()
                .and_then(|p| p.last_changes.as_ref())
                .map(|c| c.describe()),
        }
    }

    /// Every message on screen (information included).
    pub fn notices(&self) -> Vec<String> {
        self.state()
            .notifications
            .texts()
            .map(str::to_string)
            .collect()
    }

    pub fn errors(&self) -> Vec<String> {
        self.state()
            .notifications
            .errors()
            .map(str::to_string)
            .collect()
    }
}

/// A region of the window whose last drawn rectangle tests of the layout ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawnRegion {
    BottomPanel,
    LossPlot,
}

impl DrawnRegion {
    fn id(self) -> egui::Id {
        match self {
            Self::BottomPanel => egui::Id::unique("drawn-bottom-panel"),
            Self::LossPlot => egui::Id::unique("drawn-loss-plot"),
        }
    }

    /// Remembers where the region was drawn this frame (egui's temporary data: not saved).
    pub fn record(self, ctx: &egui::Context, rect: egui::Rect) {
        ctx.data_mut(|d| d.insert_temp(self.id(), rect));
    }

    /// Where the region was drawn last.
    pub fn rect(self, ctx: &egui::Context) -> Option<egui::Rect> {
        ctx.data(|d| d.get_temp(self.id()))
    }
}
