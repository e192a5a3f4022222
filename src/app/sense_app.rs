//! [`SenseApp`]: the window's layout and the per-frame pump that moves results from the
//! worker threads into the UI state. Nothing here waits: every slow thing is a job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;

use super::AppOptions;
use super::images::Thumbnails;
use super::jobs::background::{Job, take_finished};
use super::jobs::projection::{MapInput, ProjectionEvent, ProjectionRequest, ProjectionWorker};
use super::jobs::training::{TrainingRun, TrainingUpdate};
use super::jobs::{PseudoLabeller, PseudoLabellerUpdate};
use super::label_keeper::{LabelEvent, LabelKeeper, LabelView};
use super::map::{Legend, MapState};
use super::notifications::Notifications;
use super::panels;
use super::scatter::{ScatterBackend, ScatterPlot};
use super::session::Session;
use crate::classify::ClassifierConfig;
use crate::data::{Ensemble, OpenOptions};
use crate::labels::{LabelStore, Provenance};
use crate::projection::{PreviousLayout, live_subsample};
use crate::train::{EvalSubset, TrainConfig};

/// Pending training events read per frame at most (the rest wait for the next frame).
const EVENTS_PER_FRAME: usize = 512;
/// Ensembles up to this size report every member's latents each epoch (the map subsamples).
const ALL_LATENTS_MAX_MEMBERS: usize = 50_000;
const AUTOSAVE_EVERY: Duration = Duration::from_secs(30);
/// Seed of the map's member subsample (stable, so warm starts match members).
const MAP_SEED: u64 = 17;

/// The opened dataset with its label store.
pub(crate) struct Loaded {
    ensemble: Ensemble,
    store: LabelStore,
    imported: Option<usize>,
    /// The session's last layout (members, ids, positions), if it still fits the data.
    layout: Option<SavedLayout>,
    /// The session's run has a checkpoint (Continue, reconstructions, interpolation).
    has_checkpoint: bool,
}

type SavedLayout = (Vec<usize>, Vec<String>, Vec<[f32; 2]>);

/// Everything about the open dataset.
pub(crate) struct Workspace {
    pub ensemble: Ensemble,
    pub keeper: LabelKeeper,
    pub labels: Option<Arc<LabelView>>,
    pub training: Option<TrainingRun>,
    pub pseudo: Option<PseudoLabeller>,
    pub projection: ProjectionWorker,
    pub map: MapState,
    pub legend: Legend,
    pub colours_dirty: bool,
    pub thumbnails: Thumbnails,
    pub inspector: panels::inspector::InspectorState,
    pub interpolation: panels::interpolation::InterpolationState,
    pub reconstructions: panels::reconstructions::ReconstructionTextures,
    pub map_tools: panels::latent_map::MapTools,
    pub dataset_form: panels::dataset::DatasetForm,
    /// The run directory has a checkpoint (from the open job, then the trainer's events).
    pub has_checkpoint: bool,
}

impl Workspace {
    /// The pseudo-labeller, started on first use.
    pub fn pseudo_labeller(&mut self, threshold: f32) -> std::io::Result<&mut PseudoLabeller> {
        if self.pseudo.is_none() {
            let config = ClassifierConfig {
                confidence_threshold: threshold,
                ..ClassifierConfig::default()
            };
            let labeller =
                PseudoLabeller::start(self.ensemble.clone(), self.keeper.store(), config)?;
            self.pseudo = Some(labeller);
        }
        Ok(self.pseudo.as_mut().expect("started above"))
    }

    /// Whether hand labels of at least two classes exist (spreading has something to do).
    fn has_two_hand_labelled_classes(&self) -> bool {
        let Some(labels) = &self.labels else {
            return false;
        };
        let mut seen = None;
        labels.manual.iter().flatten().any(|&class| match seen {
            None => {
                seen = Some(class);
                false
            }
            Some(first) => first != class,
        })
    }

    /// Latents of every member, in member order, when `latents` cover them all: moved, not
    /// copied, when they already come in member order (this runs on the UI thread).
    fn all_member_latents(&self, latents: crate::train::Latents) -> Option<Arc<Array2<f32>>> {
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
}

/// The tabs of the bottom panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum BottomTab {
    #[default]
    LossCurves,
    Reconstructions,
    Interpolation,
}

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
}

pub struct SenseApp {
    pub(crate) session: Session,
    pub(crate) loading: Option<Job<Loaded>>,
    pub(crate) ws: Option<Workspace>,
    pub(crate) form: panels::training::TrainForm,
    pub(crate) scatter: ScatterPlot,
    pub(crate) scatter_backend: ScatterBackend,
    pub(crate) notifications: Notifications,
    pub(crate) compute_probe: Option<Job<String>>,
    pub(crate) compute_backend: String,
    pub(crate) bottom_tab: BottomTab,
    /// Where the map was drawn last frame (tests brush inside it).
    pub(crate) map_rect: Option<egui::Rect>,
    quit_after_first_map: bool,
    last_autosave: Instant,
    started: Instant,
}

impl SenseApp {
    pub fn new(cc: &eframe::CreationContext<'_>, session: Session, options: &AppOptions) -> Self {
        let scatter_backend = match cc.wgpu_render_state.as_ref() {
            Some(render_state) => {
                super::scatter::register_gpu(render_state);
                ScatterBackend::Gpu
            }
            None => ScatterBackend::Cpu,
        };
        Self::with_backend(session, options, scatter_backend)
    }

    /// The app on an explicit scatter backend (tests use the CPU splat).
    pub fn with_backend(
        session: Session,
        options: &AppOptions,
        scatter_backend: ScatterBackend,
    ) -> Self {
        let loading = Some(open_dataset(&session));
        let choice = session.file.train_config.backend;
        let compute_probe = Some(Job::spawn("backend", move |_| {
            Ok(crate::train::select_backend(choice).name)
        }));
        Self {
            form: panels::training::TrainForm::from_config(&session.file.train_config),
            session,
            loading,
            ws: None,
            scatter: ScatterPlot::new(egui::Id::unique("latent-map")),
            scatter_backend,
            notifications: Notifications::default(),
            compute_probe,
            compute_backend: "checking…".into(),
            bottom_tab: BottomTab::default(),
            map_rect: None,
            quit_after_first_map: options.quit_after_first_map,
            last_autosave: Instant::now(),
            started: Instant::now(),
        }
    }

    /// Whether the dataset is open and its labels are loaded.
    pub fn is_ready(&self) -> bool {
        self.ws.as_ref().is_some_and(|ws| ws.labels.is_some())
    }

    /// Points on the map now.
    pub fn map_points(&self) -> usize {
        self.ws.as_ref().map_or(0, |ws| ws.map.members.len())
    }

    /// Loss points drawn so far (steps and epochs).
    pub fn loss_points(&self) -> usize {
        self.ws
            .as_ref()
            .and_then(|ws| ws.training.as_ref())
            .map_or(0, |t| t.history.steps.len() + t.history.epochs.len())
    }

    pub fn labels(&self) -> Option<Arc<LabelView>> {
        self.ws.as_ref().and_then(|ws| ws.labels.clone())
    }

    pub fn selection(&self) -> Vec<usize> {
        self.ws
            .as_ref()
            .map(|ws| ws.map.selection.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The epoch whose latents the map shows (`None`: raw pixels or nothing yet).
    pub fn map_epoch(&self) -> Option<usize> {
        self.ws.as_ref().and_then(|ws| ws.map.epoch)
    }

    pub fn map_rect(&self) -> Option<egui::Rect> {
        self.map_rect
    }

    /// Selects members as a brush would (tests of what acts on a selection).
    pub fn select_members(&mut self, members: &[usize]) {
        if let Some(ws) = self.ws.as_mut() {
            ws.map.selection = members.iter().copied().collect();
            ws.colours_dirty = true;
        }
    }

    /// Where the map draws its point `row` (tests aim brushes with it).
    pub fn map_point_on_screen(&self, row: usize) -> Option<egui::Pos2> {
        let coords = self.ws.as_ref()?.map.coords.get(row).copied()?;
        Some(self.scatter.data_to_screen(self.map_rect?, coords))
    }

    /// Nothing in flight that would change what is drawn (for snapshots).
    pub fn is_settled(&self) -> bool {
        self.compute_probe.is_none()
            && self.is_ready()
            && self.ws.as_ref().is_some_and(|ws| {
                ws.projection.progress().is_none() && !ws.map.is_empty() && !ws.colours_dirty
            })
    }

    pub fn is_paused(&self) -> bool {
        self.ws
            .as_ref()
            .and_then(|ws| ws.training.as_ref())
            .is_some_and(|t| t.state == super::jobs::training::RunState::Paused)
    }

    /// Whether a training run is going (starting, running, paused or stopping).
    pub fn is_training(&self) -> bool {
        self.ws
            .as_ref()
            .and_then(|ws| ws.training.as_ref())
            .is_some_and(|t| t.state.is_active())
    }

    /// What the map, inspector and interpolation show now (for tests).
    pub fn probe(&self) -> AppProbe {
        let Some(ws) = self.ws.as_ref() else {
            return AppProbe::default();
        };
        AppProbe {
            clusters: ws.map.clusters.as_ref().map(Vec::len),
            reconstruction_errors: ws.map.errors.as_ref().map(Vec::len),
            reconstructed: ws.inspector.reconstructed(),
            interpolation_frames: ws.interpolation.frames(),
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
            busy: ws.map_tools.busy()
                || ws.inspector.busy()
                || ws.interpolation.busy()
                || ws.pseudo.as_ref().is_some_and(|p| p.running),
        }
    }

    pub fn errors(&self) -> Vec<String> {
        self.notifications.errors().map(str::to_string).collect()
    }

    /// Moves finished work from the worker threads into the UI state.
    fn pump(&mut self, ctx: &egui::Context) {
        if let Some(result) = take_finished(&mut self.compute_probe) {
            self.compute_backend = result.unwrap_or_else(|e| format!("unknown ({e})"));
        }
        if let Some(result) = take_finished(&mut self.loading) {
            match result {
                Ok(loaded) => self.open_workspace(loaded),
                Err(e) => self.notifications.error(e),
            }
        }
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        while let Some(event) = ws.keeper.try_recv() {
            match event {
                LabelEvent::Changed(view) => {
                    // Only hand labels steer spreading: its own writes must not rerun it.
                    let relabelled = ws
                        .labels
                        .as_ref()
                        .is_some_and(|old| old.manual != view.manual);
                    if relabelled
                        && self.session.file.spreading_follows_map
                        && let Some(labeller) = ws.pseudo.as_mut()
                    {
                        labeller.spread();
                    }
                    if let Some(run) = &ws.training
                        && run.state.is_active()
                        && ws
                            .labels
                            .as_ref()
                            .is_none_or(|old| old.revision != view.revision)
                    {
                        run.update_labels(view.snapshot.clone());
                    }
                    ws.labels = Some(view);
                    ws.colours_dirty = true;
                }
                LabelEvent::Error(e) => self.notifications.error(format!("Labels: {e}")),
            }
        }
        let updates = match ws.training.as_mut() {
            Some(run) => run.pump(EVENTS_PER_FRAME),
            None => Vec::new(),
        };
        for update in updates {
            match update {
                TrainingUpdate::Latents(latents) => {
                    request_latent_map(ws, &self.session, &latents);
                    if self.session.file.spreading_follows_map
                        && ws.has_two_hand_labelled_classes()
                        && let Some(rows) = ws.all_member_latents(latents)
                    {
                        match ws.pseudo_labeller(self.session.file.pseudo_threshold) {
                            Ok(labeller) => {
                                labeller.set_features(rows);
                                labeller.spread();
                            }
                            Err(e) => self.notifications.error(format!("Pseudo-labeller: {e}")),
                        }
                    }
                }
                TrainingUpdate::Notice { text, error: true } => self.notifications.error(text),
                TrainingUpdate::Notice { text, error: false } => self.notifications.info(text),
            }
        }
        if let Some(run) = ws.training.as_ref() {
            ws.reconstructions.refresh(ctx, run);
            ws.has_checkpoint |= run.checkpoint_written;
        }
        if let Some(pseudo) = ws.pseudo.as_mut() {
            for update in pseudo.pump() {
                match update {
                    PseudoLabellerUpdate::Written(text) => {
                        ws.keeper.send(super::label_keeper::LabelEdit::Refresh);
                        self.notifications.info(format!("Pseudo-labeller: {text}"));
                    }
                    PseudoLabellerUpdate::Failed(e) => {
                        self.notifications.error(format!("Pseudo-labeller: {e}"));
                    }
                }
            }
        }
        while let Some(event) = ws.projection.try_recv() {
            match event {
                ProjectionEvent::Frame { members, coords } => {
                    ws.map.members = members;
                    ws.map.coords = Arc::new(coords);
                    let (colours, legend) = ws.map.colours(ws.labels.as_deref(), None);
                    ws.legend = legend;
                    self.scatter
                        .set_points(ws.map.coords.clone(), Arc::new(colours), None);
                    // A cold layout lives in its own coordinate range: keep it in view.
                    self.scatter.reset_view();
                }
                ProjectionEvent::Done(map) => {
                    let animate_from = ws.map.positions_for(&map.members, &map.coords);
                    let cold = !map.warm_started;
                    ws.map.apply(map);
                    if cold {
                        self.scatter.reset_view();
                    } else {
                        self.scatter.follow_data();
                    }
                    let (colours, legend) = ws
                        .map
                        .colours(ws.labels.as_deref(), ws.ensemble.parameters.as_ref());
                    ws.legend = legend;
                    self.scatter.set_points(
                        ws.map.coords.clone(),
                        Arc::new(colours),
                        animate_from.map(Arc::new),
                    );
                    ws.colours_dirty = false;
                    save_layout(&self.session, &ws.map);
                }
                ProjectionEvent::Error(e) => self.notifications.error(format!("Map: {e}")),
            }
        }
        panels::latent_map::pump_jobs(ws, &mut self.notifications);
        panels::inspector::pump_jobs(ws, ctx, &mut self.notifications);
        panels::interpolation::pump_jobs(ws, ctx, &mut self.notifications);
        if ws.colours_dirty && !ws.map.is_empty() {
            let (colours, legend) = ws
                .map
                .colours(ws.labels.as_deref(), ws.ensemble.parameters.as_ref());
            ws.legend = legend;
            self.scatter.set_colours(Arc::new(colours));
            ws.colours_dirty = false;
        }
    }

    fn open_workspace(&mut self, loaded: Loaded) {
        let Loaded {
            ensemble,
            store,
            imported,
            layout,
            has_checkpoint,
        } = loaded;
        if let Some(n) = imported {
            self.notifications.info(format!(
                "Imported {n} hand labels into the session's label store"
            ));
        }
        let keeper =
            match LabelKeeper::start(ensemble.clone(), store, self.session.file.pseudo_threshold) {
                Ok(keeper) => keeper,
                Err(e) => return self.notifications.error(format!("Cannot start: {e}")),
            };
        let projection = match ProjectionWorker::start() {
            Ok(worker) => worker,
            Err(e) => return self.notifications.error(format!("Cannot start: {e}")),
        };
        let mut ws = Workspace {
            ensemble,
            keeper,
            labels: None,
            training: None,
            pseudo: None,
            projection,
            map: MapState::default(),
            legend: Legend::Missing("the map is being computed".into()),
            colours_dirty: false,
            thumbnails: Thumbnails::new(4096),
            inspector: Default::default(),
            interpolation: Default::default(),
            reconstructions: Default::default(),
            map_tools: Default::default(),
            dataset_form: Default::default(),
            has_checkpoint,
        };
        match layout {
            Some((members, ids, coords)) => {
                ws.map.members = members;
                ws.map.ids = Arc::new(ids);
                ws.map.coords = Arc::new(coords);
                ws.map.restored = true;
                ws.colours_dirty = true;
                self.scatter.set_points(
                    ws.map.coords.clone(),
                    Arc::new(vec![super::map::UNLABELLED; ws.map.members.len()]),
                    None,
                );
            }
            None => request_pixel_map(&mut ws, &self.session),
        }
        self.ws = Some(ws);
    }

    fn autosave(&mut self) {
        if self.last_autosave.elapsed() < AUTOSAVE_EVERY {
            return;
        }
        self.last_autosave = Instant::now();
        self.save_session();
    }

    pub(crate) fn save_session(&mut self) {
        self.session.file.train_config = self.form.config.clone();
        // A small JSON file: written atomically, fast enough for the UI thread.
        if let Err(e) = self.session.save() {
            self.notifications
                .error(format!("Session not saved: {e:#}"));
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("SENSE Explorer");
            ui.separator();
            let spec = &self.session.file.dataset;
            let name = std::path::Path::new(spec)
                .file_name()
                .map_or(spec.clone(), |n| n.to_string_lossy().into_owned());
            ui.label(format!("dataset: {name}")).on_hover_text(spec);
            ui.separator();
            let training_backend = self
                .ws
                .as_ref()
                .and_then(|ws| ws.training.as_ref())
                .and_then(|t| t.backend.clone());
            ui.label(format!(
                "compute: {}",
                training_backend.as_deref().unwrap_or(&self.compute_backend)
            ));
            ui.separator();
            ui.label(match self.scatter_backend {
                ScatterBackend::Gpu => "map: GPU (wgpu)",
                ScatterBackend::Cpu => "map: software",
            });
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("Save session")
                    .on_hover_text(self.session.dir.display().to_string())
                    .clicked()
                {
                    self.save_session();
                    self.notifications
                        .info(format!("Session saved in {}", self.session.dir.display()));
                }
            });
        });
    }
}

impl eframe::App for SenseApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.pump(&ctx);
        egui::Panel::top("top-bar").show(ui, |ui| self.top_bar(ui));
        if self.ws.is_none() {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.centered_and_justified(|ui| match &self.loading {
                    Some(job) => {
                        ui.spinner();
                        ui.label(format!("Opening {}…", job.name));
                    }
                    None => {
                        ui.label("The dataset could not be opened (see the message).");
                    }
                });
            });
        } else {
            egui::Panel::left("left-panel")
                .resizable(true)
                .default_size(330.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        panels::dataset::show(self, ui);
                        ui.separator();
                        panels::training::show(self, ui);
                    });
                });
            egui::Panel::right("inspector")
                .resizable(true)
                .default_size(340.0)
                .show(ui, |ui| panels::inspector::show(self, ui));
            egui::Panel::bottom("bottom-panel")
                .resizable(true)
                .default_size(260.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        let tab = &mut self.bottom_tab;
                        ui.selectable_value(tab, BottomTab::LossCurves, "Loss curves");
                        ui.selectable_value(tab, BottomTab::Reconstructions, "Reconstructions");
                        ui.selectable_value(tab, BottomTab::Interpolation, "Interpolation");
                    });
                    ui.separator();
                    match self.bottom_tab {
                        BottomTab::LossCurves => panels::loss_curves::show(self, ui),
                        BottomTab::Reconstructions => panels::reconstructions::show(self, ui),
                        BottomTab::Interpolation => panels::interpolation::show(self, ui),
                    }
                });
            egui::CentralPanel::default().show(ui, |ui| panels::latent_map::show(self, ui));
        }
        self.notifications.show(&ctx);
        self.autosave();
        if self.quit_after_first_map && self.is_settled() {
            eprintln!(
                "first map: {} members, {:.1} s after start",
                self.map_points(),
                self.started.elapsed().as_secs_f32()
            );
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            self.quit_after_first_map = false;
        }
        // Workers report through channels, not the event loop: poll while anything runs.
        let busy = self.loading.is_some()
            || self.compute_probe.is_some()
            || self.ws.as_ref().is_some_and(|ws| {
                ws.training.as_ref().is_some_and(|t| t.state.is_active())
                    || ws.pseudo.as_ref().is_some_and(|p| p.running)
                    || ws.projection.progress().is_some()
                    || ws.labels.is_none()
                    || ws.map.is_empty()
                    || ws.map_tools.busy()
                    || ws.inspector.busy()
                    || ws.interpolation.busy()
            });
        if busy {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.save_session();
        if let Some(ws) = self.ws.as_mut()
            && let Some(run) = ws.training.as_mut()
        {
            run.stop();
        }
    }
}

/// Opens the session's dataset and label store on a worker thread; hand labels that come
/// with the data are imported into a new store once.
fn open_dataset(session: &Session) -> Job<Loaded> {
    let spec = session.file.dataset.clone();
    let labels_file = session.file.dataset_labels.clone();
    let store_path = session.labels_path();
    let layout_path = session.layout_path();
    let session = session.clone();
    Job::spawn(spec.clone(), move |_| {
        let options = OpenOptions {
            labels: labels_file.clone(),
            ..OpenOptions::default()
        };
        let ensemble = crate::data::open(&spec, &options).map_err(|e| e.to_string())?;
        let mut store = LabelStore::open_or_create(&store_path).map_err(|e| e.to_string())?;
        let mut imported = None;
        if store.is_empty()
            && let Some(labels) = &ensemble.labels
        {
            let provenance = match (spec.strip_prefix("sample:"), &labels_file) {
                (_, Some(path)) => Provenance::import(path),
                (Some(name), None) => Provenance::sample(name),
                (None, None) => Provenance::import(&spec),
            };
            store
                .import_manual(labels, |i| ensemble.member_id(i), provenance)
                .map_err(|e| e.to_string())?;
            imported = Some(labels.labelled_count());
        }
        let layout = load_layout(&layout_path, &ensemble);
        Ok(Loaded {
            ensemble,
            store,
            imported,
            layout,
            has_checkpoint: session.has_checkpoint(),
        })
    })
}

/// The members a map of `n` rows shows: all up to the limit, else a seeded subsample that
/// keeps every hand-labelled member.
fn map_rows(n: usize, limit: usize, always: &[usize]) -> Vec<usize> {
    live_subsample(n, limit, always, MAP_SEED).unwrap_or_else(|_| (0..n.min(limit)).collect())
}

fn manual_members(ws: &Workspace) -> Vec<usize> {
    if let Some(labels) = &ws.labels {
        return (0..labels.manual.len())
            .filter(|&m| labels.manual[m].is_some())
            .collect();
    }
    ws.ensemble
        .labels
        .as_ref()
        .map(|l| {
            l.per_member
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_some())
                .map(|(i, _)| i)
                .collect()
        })
        .unwrap_or_default()
}

/// Hand label per member for the live metrics.
fn metric_labels(ws: &Workspace, members: &[usize]) -> Vec<Option<usize>> {
    match &ws.labels {
        Some(labels) => members
            .iter()
            .map(|&m| labels.manual.get(m).copied().flatten())
            .collect(),
        // Before the label view arrives: the labels that came with the data.
        None => members
            .iter()
            .map(|&m| {
                let labels = ws.ensemble.labels.as_ref()?;
                labels
                    .per_member
                    .get(m)
                    .copied()
                    .flatten()
                    .map(|c| c as usize)
            })
            .collect(),
    }
}

/// Before any model: a map of the raw pixels.
fn request_pixel_map(ws: &mut Workspace, session: &Session) {
    let members = map_rows(
        ws.ensemble.len(),
        session.file.map_max_members,
        &manual_members(ws),
    );
    let ids = Arc::new(members.iter().map(|&m| ws.ensemble.member_id(m)).collect());
    let metric_labels = metric_labels(ws, &members);
    ws.projection.request(ProjectionRequest {
        members,
        ids,
        input: MapInput::Pixels(ws.ensemble.clone()),
        previous: None,
        metric_labels,
    });
}

/// A training epoch's latents → a warm-started map of (a subsample of) them.
fn request_latent_map(ws: &mut Workspace, session: &Session, latents: &crate::train::Latents) {
    let row_of: std::collections::HashMap<usize, usize> = latents
        .members
        .iter()
        .enumerate()
        .map(|(row, &m)| (m, row))
        .collect();
    let manual: Vec<usize> = manual_members(ws)
        .into_iter()
        .filter_map(|m| row_of.get(&m).copied())
        .collect();
    let rows = map_rows(latents.members.len(), session.file.map_max_members, &manual);
    let members: Vec<usize> = rows.iter().map(|&r| latents.members[r]).collect();
    let ids: Arc<Vec<String>> = Arc::new(rows.iter().map(|&r| latents.ids[r].clone()).collect());
    let mut values = Vec::with_capacity(rows.len() * latents.dim);
    for &r in &rows {
        values.extend_from_slice(&latents.values[r * latents.dim..(r + 1) * latents.dim]);
    }
    let Ok(values) = Array2::from_shape_vec((rows.len(), latents.dim), values) else {
        return;
    };
    // The first latent map starts cold (and animates from scratch): continuing from the
    // raw-pixel layout would bias it towards pixel similarity.
    let previous = ws.map.epoch.is_some().then(|| PreviousLayout {
        ids: ws.map.ids.to_vec(),
        coords: Array2::from_shape_fn((ws.map.coords.len(), 2), |(i, j)| ws.map.coords[i][j]),
        knn: ws.map.knn.clone(),
    });
    let metric_labels = metric_labels(ws, &members);
    ws.projection.request(ProjectionRequest {
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

/// The training configuration the app runs: the form's, with the latents the map needs.
pub(crate) fn app_train_config(form: &TrainConfig, ensemble_len: usize) -> TrainConfig {
    let mut config = form.clone();
    config.evaluation.latents_every_epochs = 1;
    config.evaluation.subset = match ensemble_len <= ALL_LATENTS_MAX_MEMBERS {
        true => EvalSubset::All,
        false => EvalSubset::Labelled,
    };
    config
}

fn save_layout(session: &Session, map: &MapState) {
    let coords = Array2::from_shape_fn((map.coords.len(), 2), |(i, j)| map.coords[i][j]);
    let path = session.layout_path();
    let ids = map.ids.clone();
    // Off the UI thread; a failed write only loses the layout, which the next epoch rewrites,
    // so it is logged rather than shown.
    std::thread::spawn(move || {
        if let Err(e) = crate::data::matrix::write_matrix_with_ids(&path, coords.view(), &ids) {
            eprintln!("sense: the map layout was not saved: {e}");
        }
    });
}

fn load_layout(path: &std::path::Path, ensemble: &Ensemble) -> Option<SavedLayout> {
    if !path.is_file() {
        return None;
    }
    let crate::data::matrix::Matrix {
        values: coords,
        ids,
        ..
    } = crate::data::matrix::read_matrix_with_ids(path).ok()?;
    if coords.ncols() != 2 {
        return None;
    }
    let mut members = Vec::with_capacity(ids.len());
    let mut points = Vec::with_capacity(ids.len());
    let mut kept = Vec::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        if let Some(m) = ensemble.index_of(id) {
            members.push(m);
            points.push([coords[[row, 0]], coords[[row, 1]]]);
            kept.push(id.clone());
        }
    }
    (!members.is_empty()).then_some((members, kept, points))
}
