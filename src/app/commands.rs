//! What the user asks for, as values: views push [`AppCommand`]s onto the [`CommandQueue`]
//! while they draw, and [`execute`] carries them out after the frame — starting workers and
//! jobs, sending label edits to the keeper, steering the trainer. Nothing here waits: every
//! slow thing goes to a worker.

use std::sync::Arc;

use ndarray::Array2;

use super::error::{AppError, AppResult};
use super::jobs::training::{TrainingRun, app_train_config};
use super::jobs::{JobKind, JobOutput};
use super::label_keeper::{LabelEdit, LabelView};
use super::map::ColourMode;
use super::scatter::SelectionOp;
use super::session::Session;
use super::state::{AppState, BottomTab};
use super::workspace::Workspace;
use crate::analysis::clustering::{ClusterMethod, ClusterOptions, cluster};
use crate::classify::{PixelFeatures, SuggestConfig, SuggestInput, suggest};
use crate::data::Ensemble;
use crate::error::DataError;
use crate::train::{CheckpointChoice, LossWeights, TrainedModel};

/// Members encoded between two cancellation checks of the full map.
const ENCODE_CHUNK: usize = 2048;

/// Reconstructions on demand cover at most this many selected members.
pub const MAX_RECONSTRUCTED: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum AppCommand {
    /// A new run (replacing the session's), or the session's run from its checkpoint.
    StartTraining {
        resume: bool,
    },
    PauseTraining,
    ResumeTraining,
    StopTraining,
    /// New label-loss weights for the running trainer (from its next epoch).
    SetLossWeights(LossWeights),
    Label(LabelEdit),
    /// Gives the selected members this hand label (a new class if it does not exist).
    RelabelSelection(String),
    ClearSelectionLabels,
    SetPseudoThreshold(f32),
    /// Estimates the labellers on the hand labels as they are and proposes pseudo-labels.
    RetrainPseudoLabels,
    CancelPseudoLabels,
    SetSpreadingFollowsMap(bool),
    /// Retrain the pseudo-labeller this many seconds after the last hand-label edit.
    SetRetrainAfterEdits(Option<f32>),
    SelectRows {
        rows: Vec<usize>,
        op: SelectionOp,
    },
    SelectMembers(Vec<usize>),
    ClearSelection,
    SetColourMode(ColourMode),
    Cluster {
        method: ClusterMethod,
        k: usize,
    },
    ComputeReconstructionErrors,
    ExportMap,
    /// The run's per-epoch maps as an animated GIF in the session's exports.
    ExportAnimation,
    ExportSelection,
    ReconstructSelection,
    /// The first two selected members become the interpolation's ends.
    InterpolateSelection,
    Interpolate {
        steps: usize,
    },
    /// Ranks the map's unlabelled members by what a hand label would fix most.
    Suggest {
        count: usize,
    },
    /// Selects the suggestion `offset` places from the current one.
    StepSuggestion(isize),
    /// Selects the suggestion at this place in the queue.
    ShowSuggestion(usize),
    DismissSuggestions,
    /// A map of every member from the best checkpoint (when training pauses or ends).
    FullMap,
    CancelJob(JobKind),
    CancelProjection,
    SaveSession,
    /// The full-window map for a projector (on) or the working layout (off).
    SetPresentation(bool),
    /// Asks for a run directory to follow (a folder dialog, off the UI thread).
    PickRunToFollow,
    /// Switches the app to a session that follows `run_dir`, trained by another process
    /// (the session in `session_dir`, or the default place).
    FollowRun {
        run_dir: std::path::PathBuf,
        session_dir: Option<std::path::PathBuf>,
    },
}

/// The commands of one frame, in the order they were asked for.
#[derive(Debug, Default)]
pub struct CommandQueue {
    commands: Vec<AppCommand>,
}

impl CommandQueue {
    pub fn push(&mut self, command: AppCommand) {
        self.commands.push(command);
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Takes the queued commands out, oldest first.
    pub fn take(&mut self) -> Vec<AppCommand> {
        std::mem::take(&mut self.commands)
    }
}

/// Carries out every queued command, in order.
pub fn execute_all(state: &mut AppState, queue: &mut CommandQueue) {
    for command in queue.take() {
        execute(state, command);
    }
}

/// Carries out one command. Failures become notifications; nothing here blocks.
pub fn execute(state: &mut AppState, command: AppCommand) {
    if let Err(e) = try_execute(state, command) {
        state.notifications.error(e.to_string());
    }
}

fn try_execute(state: &mut AppState, command: AppCommand) -> AppResult<()> {
    if let AppCommand::SetPresentation(on) = command {
        state.presentation = on;
        // The map's area changes size: fit the points to it.
        state.scatter.reset_view();
        return Ok(());
    }
    if let AppCommand::SaveSession = command {
        state.save_session();
        state
            .notifications
            .info(format!("Session saved in {}", state.session.dir.display()));
        return Ok(());
    }
    match command {
        AppCommand::PickRunToFollow => {
            // The portal may never answer: the dialog waits on a job, not on the UI.
            return state.jobs.start(JobKind::PickRun, |_| {
                Ok(JobOutput::RunPicked(
                    rfd::FileDialog::new()
                        .set_title("A run directory to follow (sense train --out, a sweep cell)")
                        .pick_folder(),
                ))
            });
        }
        AppCommand::FollowRun {
            run_dir,
            session_dir,
        } => {
            follow_run(state, &run_dir, session_dir);
            return Ok(());
        }
        _ => {}
    }
    let Some(ws) = state.ws.as_mut() else {
        return Ok(());
    };
    match command {
        AppCommand::StartTraining { resume } => start_training(state, resume)?,
        AppCommand::PauseTraining => {
            if let Some(run) = ws.training.as_mut() {
                run.pause();
            }
        }
        AppCommand::ResumeTraining => {
            if let Some(run) = ws.training.as_mut() {
                run.resume();
            }
        }
        AppCommand::StopTraining => {
            if let Some(run) = ws.training.as_mut() {
                run.stop();
            }
        }
        AppCommand::SetLossWeights(weights) => {
            if let Some(run) = ws.training.as_ref().filter(|r| r.state.is_active()) {
                run.update_loss_weights(weights);
            }
        }
        AppCommand::Label(edit) => ws.keeper.send(edit),
        AppCommand::RelabelSelection(class) => {
            let class = class.trim().to_string();
            if !class.is_empty() && !ws.map.selection.is_empty() {
                ws.keeper.send(LabelEdit::SetManual {
                    members: ws.map.selection.iter().copied().collect(),
                    class,
                });
                // Walking the suggestions: labelling the one shown moves on to the next.
                let walking = ws.suggestions.as_ref().and_then(|q| q.current_member());
                if walking.is_some() && ws.map.selection.iter().eq(walking.iter()) {
                    step_suggestion(ws, 1);
                }
            }
        }
        AppCommand::ClearSelectionLabels => ws.keeper.send(LabelEdit::ClearManual {
            members: ws.map.selection.iter().copied().collect(),
        }),
        AppCommand::SetPseudoThreshold(threshold) => {
            state.session.file.pseudo_threshold = threshold;
            ws.keeper.send(LabelEdit::SetThreshold(threshold));
        }
        AppCommand::RetrainPseudoLabels => {
            let Some(labels) = ws.labels.as_ref().map(|l| l.hand_labels()) else {
                return Ok(());
            };
            ws.pseudo_labeller(state.session.file.pseudo_threshold)?
                .retrain(labels);
        }
        AppCommand::CancelPseudoLabels => {
            if let Some(labeller) = &ws.pseudo {
                labeller.stop();
            }
        }
        AppCommand::SetSpreadingFollowsMap(follow) => {
            state.session.file.spreading_follows_map = follow;
        }
        AppCommand::SetRetrainAfterEdits(delay) => {
            state.session.file.retrain_after_edits_secs = delay;
            if delay.is_none() {
                ws.retrain_due = None;
            }
        }
        AppCommand::SelectRows { rows, op } => {
            ws.map.select_rows(&rows, op);
            ws.colours_dirty = true;
        }
        AppCommand::SelectMembers(members) => {
            ws.map.selection = members.into_iter().collect();
            ws.colours_dirty = true;
        }
        AppCommand::ClearSelection => {
            if !ws.map.selection.is_empty() {
                ws.map.selection.clear();
                ws.colours_dirty = true;
            }
        }
        AppCommand::SetColourMode(mode) => {
            ws.map.colour_mode = mode;
            ws.colours_dirty = true;
        }
        AppCommand::Cluster { method, k } => {
            let Some(latents) = ws.map.latents.clone() else {
                return Ok(());
            };
            let members = ws.map.members.clone();
            state.jobs.start(JobKind::Cluster, move |control| {
                let result = cluster(
                    latents.view(),
                    method,
                    k,
                    &ClusterOptions::default(),
                    control,
                )?;
                Ok(JobOutput::Clusters {
                    members,
                    assignments: result.assignments,
                })
            })?;
        }
        AppCommand::ComputeReconstructionErrors => {
            let (ensemble, members) = (ws.ensemble.clone(), ws.map.members.clone());
            let run_dir = state.session.run_dir();
            state
                .jobs
                .start(JobKind::ReconstructionErrors, move |control| {
                    let model = best_model_on_cpu(&run_dir, &ensemble)?;
                    let errors = model
                        .reconstruction_errors(&ensemble, &members, control)?
                        .ok_or(AppError::Cancelled)?;
                    Ok(JobOutput::ReconstructionErrors { members, errors })
                })?;
        }
        AppCommand::ExportMap => {
            if ws.map.is_empty() {
                return Ok(());
            }
            let export = MapExport {
                coords: ws.map.coords.clone(),
                ids: ws.map.ids.clone(),
                labels: ws.labels.clone(),
                members: ws.map.members.clone(),
                epoch: ws.map.epoch,
                metrics: ws.map.metrics,
            };
            let dir = state.session.exports_dir();
            state.jobs.start(JobKind::ExportMap, move |_| {
                export.write(&dir).map(JobOutput::Exported)
            })?;
        }
        AppCommand::ExportAnimation => {
            let Some(labels) = ws.labels.clone() else {
                return Ok(());
            };
            let (run_dir, dir) = (state.session.run_dir(), state.session.exports_dir());
            state.jobs.start(JobKind::ExportAnimation, move |control| {
                std::fs::create_dir_all(&dir).map_err(|e| crate::error::DataError::io(&dir, e))?;
                let path = dir.join("map_animation.gif");
                let epochs = crate::train::run_dir::read_metrics(&run_dir)?;
                let outcome = crate::report::run_report::write_run_animation(
                    &run_dir,
                    &labels.snapshot,
                    &epochs,
                    &path,
                    control,
                )?;
                Ok(JobOutput::Exported(format!(
                    "The map over {} epochs: {} ({:.1} MB)",
                    outcome.epochs,
                    path.display(),
                    outcome.bytes as f64 / 1e6
                )))
            })?;
        }
        AppCommand::ExportSelection => {
            let labels = ws.labels.clone();
            let rows: Vec<(String, usize)> = ws
                .map
                .selection
                .iter()
                .map(|&m| (ws.ensemble.member_id(m), m))
                .collect();
            let dir = state.session.exports_dir();
            state.jobs.start(JobKind::ExportSelection, move |_| {
                export_selection(&rows, labels.as_deref(), &dir).map(JobOutput::Exported)
            })?;
        }
        AppCommand::ReconstructSelection => {
            let members: Vec<usize> = ws
                .map
                .selection
                .iter()
                .copied()
                .take(MAX_RECONSTRUCTED)
                .collect();
            let (ensemble, run_dir) = (ws.ensemble.clone(), state.session.run_dir());
            state.jobs.start(JobKind::Reconstruct, move |_| {
                let model = best_model_on_cpu(&run_dir, &ensemble)?;
                Ok(JobOutput::Reconstructions(
                    model.reconstruct(&ensemble, &members)?,
                ))
            })?;
        }
        AppCommand::InterpolateSelection => {
            let mut selected = ws.map.selection.iter().copied();
            ws.interpolation.a = selected.next();
            ws.interpolation.b = selected.next();
            ws.interpolation.strip.clear();
            state.bottom_tab = BottomTab::Interpolation;
        }
        AppCommand::Interpolate { steps } => {
            let (Some(a), Some(b)) = (ws.interpolation.a, ws.interpolation.b) else {
                return Ok(());
            };
            let (ensemble, run_dir) = (ws.ensemble.clone(), state.session.run_dir());
            let steps = steps.max(2);
            state.jobs.start(JobKind::Interpolate, move |_| {
                let model = best_model_on_cpu(&run_dir, &ensemble)?;
                let z = model.encode(&ensemble, &[a, b])?;
                let dim = model.latent_dim();
                let (za, zb) = z.split_at(dim);
                let mut path = Vec::with_capacity(steps * dim);
                for i in 0..steps {
                    let t = i as f32 / (steps - 1) as f32;
                    path.extend(za.iter().zip(zb).map(|(x, y)| x + t * (y - x)));
                }
                Ok(JobOutput::Interpolation(model.decode(&path)))
            })?;
        }
        AppCommand::Suggest { count } => {
            let Some(labels) = ws.labels.clone() else {
                return Ok(());
            };
            let members = ws.map.members.clone();
            let latents = ws.map.latents.clone();
            let ensemble = ws.ensemble.clone();
            state.jobs.start(JobKind::Suggest, move |control| {
                let features = match latents {
                    Some(latents) => latents,
                    None => Arc::new(PixelFeatures::fit_transform(&ensemble, &members, control)?.1),
                };
                let hand: Vec<Option<usize>> = members.iter().map(|&m| labels.manual[m]).collect();
                let pseudo: Vec<Option<(usize, f32)>> = members
                    .iter()
                    .map(|&m| labels.pseudo[m].map(|p| (p.class, p.confidence)))
                    .collect();
                let input = SuggestInput {
                    features: features.view(),
                    hand: &hand,
                    pseudo: &pseudo,
                    threshold: labels.threshold,
                };
                let config = SuggestConfig {
                    count,
                    ..SuggestConfig::default()
                };
                let mut suggestions = suggest(&input, &config, control)?;
                // Rows of the map → ensemble members.
                for s in &mut suggestions {
                    s.member = members[s.member];
                }
                Ok(JobOutput::Suggestions(suggestions))
            })?;
        }
        AppCommand::StepSuggestion(offset) => step_suggestion(ws, offset),
        AppCommand::ShowSuggestion(index) => {
            if let Some(queue) = ws.suggestions.as_mut()
                && index < queue.items.len()
            {
                queue.current = index;
                select_current_suggestion(ws);
            }
        }
        AppCommand::DismissSuggestions => {
            ws.suggestions = None;
            ws.map.marked.clear();
            ws.map.selection.clear();
            ws.colours_dirty = true;
        }
        AppCommand::FullMap => {
            let (ensemble, run_dir) = (ws.ensemble.clone(), state.session.run_dir());
            let epoch = ws.map.epoch.unwrap_or(0);
            state.jobs.start(JobKind::FullMap, move |control| {
                let model = best_model_on_cpu(&run_dir, &ensemble)?;
                let members: Vec<usize> = (0..ensemble.len()).collect();
                let mut values = Vec::with_capacity(members.len() * model.latent_dim());
                for chunk in members.chunks(ENCODE_CHUNK) {
                    control.check()?;
                    control.report("encode", values.len() / model.latent_dim(), members.len());
                    values.extend(model.encode(&ensemble, chunk)?);
                }
                let ids = members.iter().map(|&m| ensemble.member_id(m)).collect();
                Ok(JobOutput::AllLatents(crate::train::Latents {
                    epoch,
                    members,
                    ids: Arc::new(ids),
                    dim: model.latent_dim(),
                    values,
                }))
            })?;
        }
        AppCommand::CancelJob(kind) => state.jobs.cancel(kind),
        AppCommand::CancelProjection => ws.projection.cancel(),
        AppCommand::SaveSession
        | AppCommand::SetPresentation(_)
        | AppCommand::PickRunToFollow
        | AppCommand::FollowRun { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// Moves the suggestion walk by `offset` (clamped to the queue) and selects that member.
fn step_suggestion(ws: &mut Workspace, offset: isize) {
    let Some(queue) = ws.suggestions.as_mut() else {
        return;
    };
    let last = queue.items.len().saturating_sub(1);
    queue.current = queue.current.saturating_add_signed(offset).min(last);
    select_current_suggestion(ws);
}

/// The suggestion being looked at becomes the selection (the inspector shows it, the map
/// highlights it, 1–9 label it).
pub fn select_current_suggestion(ws: &mut Workspace) {
    if let Some(member) = ws.suggestions.as_ref().and_then(|q| q.current_member()) {
        ws.map.selection = std::iter::once(member).collect();
        ws.colours_dirty = true;
    }
}

fn start_training(state: &mut AppState, resume: bool) -> AppResult<()> {
    let Some(ws) = state.ws.as_mut() else {
        return Ok(());
    };
    let Some(labels) = ws.labels.clone() else {
        return Ok(());
    };
    if ws.is_training() {
        return Ok(());
    }
    if state.session.is_following() {
        state.notifications.info(
            "This session follows a run another process trains; to train here, open its \
             dataset as a session of its own",
        );
        return Ok(());
    }
    let mut config = app_train_config(&state.forms.train, ws.ensemble.len());
    if resume {
        // More epochs than done so far, or the continuation ends at once.
        let done = ws.training.as_ref().map_or(0, |t| t.epoch);
        config.epochs = config.epochs.max(done + 1);
    }
    if let Err(e) = config.validate() {
        state
            .notifications
            .error(format!("Training settings: {}", e.0));
        return Ok(());
    }
    let mut run = TrainingRun::start(
        ws.ensemble.clone(),
        labels.snapshot.clone(),
        config,
        state.session.run_dir(),
        resume,
        ws.waker().clone(),
    )?;
    if resume && let Some(earlier) = ws.training.take() {
        run.continue_history(earlier.history);
    }
    // From now on the keeper hands each new training snapshot to the trainer itself.
    if let Some(sink) = run.label_sink() {
        ws.keeper.subscribe(sink, labels.revision);
    }
    ws.training = Some(run);
    state.session.file.train_config = state.forms.train.clone();
    Ok(())
}

/// Leaves the current session (saved, its label edits flushed) for one that follows
/// `run_dir`. A run training in this app is not dropped for it.
pub fn follow_run(
    state: &mut AppState,
    run_dir: &std::path::Path,
    session_dir: Option<std::path::PathBuf>,
) {
    if state.ws.as_ref().is_some_and(|ws| ws.is_training()) {
        return state
            .notifications
            .info("Stop training first: following another run closes this session");
    }
    let session = match Session::follow(run_dir, session_dir) {
        Ok(session) => session,
        Err(e) => return state.notifications.error(format!("Cannot follow: {e:#}")),
    };
    state.save_session();
    if let Some(ws) = state.ws.as_mut() {
        ws.keeper.flush(std::time::Duration::from_secs(5));
    }
    *state = AppState::new(session, state.scatter_backend, state.waker.clone());
    crate::app::sense_app::start_up(state);
}

/// The run's best weights on the CPU (the GPU may be busy training).
fn best_model_on_cpu(run_dir: &std::path::Path, ensemble: &Ensemble) -> AppResult<TrainedModel> {
    let backend = crate::train::backend::cpu_backend(None);
    Ok(TrainedModel::load(
        run_dir,
        ensemble.shape(),
        CheckpointChoice::Best,
        &backend,
    )?)
}

/// A UTC time stamp usable in file names.
fn file_stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-")
}

fn create_dir(dir: &std::path::Path) -> AppResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e).into())
}

/// What a map export needs, taken from the map when it was asked for.
struct MapExport {
    coords: Arc<Vec<[f32; 2]>>,
    ids: Arc<Vec<String>>,
    labels: Option<Arc<LabelView>>,
    members: Vec<usize>,
    epoch: Option<usize>,
    metrics: Option<super::jobs::projection::MapMetrics>,
}

impl MapExport {
    /// Writes the map as PNG + SVG (report style, labelled by the current labels), the
    /// layout as `.npy` + ids, and a CSV of id, x, y, label; returns a message saying where.
    fn write(&self, dir: &std::path::Path) -> AppResult<String> {
        create_dir(dir)?;
        let base = dir.join(format!("latent-map-{}", file_stamp()));
        let (classes, per_row): (Vec<crate::report::ClassStyle>, Vec<Option<usize>>) =
            match &self.labels {
                Some(l) => (
                    l.classes
                        .iter()
                        .map(|c| {
                            let rgb = [c.colour.r(), c.colour.g(), c.colour.b()];
                            crate::report::ClassStyle::new(&c.name, crate::labels::Colour(rgb))
                        })
                        .collect(),
                    self.members.iter().map(|&m| l.effective(m)).collect(),
                ),
                None => (Vec::new(), vec![None; self.members.len()]),
            };
        let title = match self.epoch {
            Some(e) => format!("Latent map, epoch {}", e + 1),
            None => "Raw-pixel map".to_string(),
        };
        let subtitle = self.metrics.map(|m| {
            format!(
                "hand-labelled: silhouette {:.3} · neighbourhood hit {:.3}",
                m.silhouette, m.neighbourhood_hit
            )
        });
        let mut plot = crate::report::ScatterPlot::new(&title, &self.coords, &per_row, &classes);
        plot.subtitle = subtitle.as_deref();
        plot.write(&base)?;
        let matrix = Array2::from_shape_fn((self.coords.len(), 2), |(i, j)| self.coords[i][j]);
        crate::data::matrix::write_matrix_with_ids(
            &base.with_extension("npy"),
            matrix.view(),
            &self.ids,
        )?;
        let csv_path = base.with_extension("csv");
        let csv_error = |e: csv::Error| DataError::new(&csv_path, e.to_string());
        let mut writer = csv::Writer::from_path(&csv_path).map_err(csv_error)?;
        writer
            .write_record(["id", "x", "y", "label"])
            .map_err(csv_error)?;
        for ((id, p), label) in self.ids.iter().zip(self.coords.iter()).zip(&per_row) {
            let name = label
                .and_then(|c| classes.get(c))
                .map_or("", |c| c.name.as_str());
            writer
                .write_record([id.as_str(), &p[0].to_string(), &p[1].to_string(), name])
                .map_err(csv_error)?;
        }
        writer.flush().map_err(|e| DataError::io(&csv_path, e))?;
        Ok(format!(
            "Map exported to {}.{{png,svg,npy,csv}}",
            base.display()
        ))
    }
}

/// CSV of the selection (id, manual label, pseudo-label, confidence). The path comes from a
/// file dialog on this worker thread (a portal that never answers blocks only the worker);
/// without a dialog the file goes to the session's exports folder.
fn export_selection(
    rows: &[(String, usize)],
    labels: Option<&LabelView>,
    exports_dir: &std::path::Path,
) -> AppResult<String> {
    let chosen = rfd::FileDialog::new()
        .set_file_name("selection.csv")
        .add_filter("CSV", &["csv"])
        .save_file();
    let path = match chosen {
        Some(path) => path,
        None => {
            create_dir(exports_dir)?;
            exports_dir.join(format!("selection-{}.csv", file_stamp()))
        }
    };
    let error = |e: csv::Error| DataError::new(&path, e.to_string());
    let mut writer = csv::Writer::from_path(&path).map_err(error)?;
    writer
        .write_record(["id", "manual_label", "pseudo_label", "pseudo_confidence"])
        .map_err(error)?;
    let name = |c: Option<usize>| {
        c.and_then(|c| labels?.classes.get(c).map(|k| k.name.clone()))
            .unwrap_or_default()
    };
    for (id, member) in rows {
        let manual = labels.and_then(|l| l.manual.get(*member).copied().flatten());
        let pseudo = labels.and_then(|l| l.pseudo.get(*member).copied().flatten());
        writer
            .write_record([
                id.clone(),
                name(manual),
                name(pseudo.map(|p| p.class)),
                pseudo.map_or(String::new(), |p| p.confidence.to_string()),
            ])
            .map_err(error)?;
    }
    writer.flush().map_err(|e| DataError::io(&path, e))?;
    Ok(format!(
        "{} members exported to {}",
        rows.len(),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::scatter::ScatterBackend;
    use crate::app::session::Session;
    use crate::app::worker::Waker;
    use crate::app::workspace::Workspace;
    use std::time::{Duration, Instant};

    /// An app state on the `channels` sample with its workspace open (no window).
    fn state_in(dir: &std::path::Path) -> AppState {
        let mut session =
            Session::open_or_create(Some("sample:channels"), Some(dir.join("session"))).unwrap();
        session.file.map_max_members = 300;
        session.file.retrain_after_edits_secs = None;
        let mut state = AppState::new(session, ScatterBackend::Cpu, Waker::none());
        let loaded = state.session.open_data().unwrap();
        state.ws = Some(Workspace::open(loaded, &state.session, Waker::none()).unwrap());
        state
    }

    /// Steps the app's logic until `done` holds.
    fn step_until(state: &mut AppState, mut done: impl FnMut(&AppState) -> bool) {
        let ctx = egui::Context::default();
        let start = Instant::now();
        while !done(state) {
            assert!(start.elapsed() < Duration::from_secs(30), "timed out");
            crate::app::logic::step(state, &ctx);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn manual_count(state: &AppState) -> usize {
        let ws = state.ws.as_ref().unwrap();
        ws.labels.as_ref().map_or(0, |l| l.manual_count())
    }

    #[test]
    fn commands_run_in_order_and_the_queue_empties() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state_in(dir.path());
        step_until(&mut state, |s| s.ws.as_ref().unwrap().labels.is_some());
        let before = manual_count(&state);
        let unlabelled_before = {
            let labels = state.ws.as_ref().unwrap().labels.clone().unwrap();
            (0..3).filter(|&m| labels.manual[m].is_none()).count()
        };
        let mut queue = CommandQueue::default();
        // Selecting, relabelling, then clearing the selection: the relabel sees the selection
        // made before it and not the clearing after it.
        queue.push(AppCommand::SelectMembers(vec![0, 1, 2]));
        queue.push(AppCommand::RelabelSelection(" vortex ".into()));
        queue.push(AppCommand::ClearSelection);
        queue.push(AppCommand::SetColourMode(ColourMode::Manual));
        assert!(!queue.is_empty());
        execute_all(&mut state, &mut queue);
        assert!(queue.is_empty());
        let ws = state.ws.as_ref().unwrap();
        assert!(ws.map.selection.is_empty());
        assert_eq!(ws.map.colour_mode, ColourMode::Manual);
        assert!(ws.colours_dirty);
        step_until(&mut state, |s| {
            s.ws.as_ref()
                .unwrap()
                .labels
                .as_ref()
                .is_some_and(|l| l.class_index("vortex").is_some())
        });
        let labels = state.ws.as_ref().unwrap().labels.clone().unwrap();
        let vortex = labels.class_index("vortex");
        assert!((0..3).all(|m| labels.manual[m] == vortex));
        assert_eq!(manual_count(&state), before + unlabelled_before);
        // Saved before the keeper answered.
        let on_disk =
            crate::labels::LabelStore::open_read_only(state.session.labels_path()).unwrap();
        let id = state.ws.as_ref().unwrap().ensemble.member_id(1);
        assert_eq!(on_disk.manual(&id).unwrap().class, "vortex");
    }

    #[test]
    fn a_failed_edit_becomes_a_notification_and_undo_reverts() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state_in(dir.path());
        step_until(&mut state, |s| s.ws.as_ref().unwrap().labels.is_some());
        execute(
            &mut state,
            AppCommand::Label(LabelEdit::RenameClass {
                old: "no such class".into(),
                new: "x".into(),
            }),
        );
        step_until(&mut state, |s| s.notifications.errors().next().is_some());
        let error = state.notifications.errors().next().unwrap().to_string();
        assert!(error.contains("no such class"), "{error}");

        execute(&mut state, AppCommand::SelectMembers(vec![5]));
        execute(&mut state, AppCommand::RelabelSelection("new-one".into()));
        step_until(&mut state, |s| {
            s.ws.as_ref()
                .unwrap()
                .labels
                .as_ref()
                .is_some_and(|l| l.undo.is_some())
        });
        execute(&mut state, AppCommand::Label(LabelEdit::Undo));
        step_until(&mut state, |s| {
            let labels = s.ws.as_ref().unwrap().labels.clone().unwrap();
            let class = labels.class_index("new-one");
            class.is_none() || labels.manual[5] != class
        });
    }

    #[test]
    fn threshold_and_settings_change_the_session_and_tools_need_their_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = state_in(dir.path());
        step_until(&mut state, |s| s.ws.as_ref().unwrap().labels.is_some());
        execute(&mut state, AppCommand::SetPseudoThreshold(0.75));
        execute(&mut state, AppCommand::SetSpreadingFollowsMap(false));
        assert_eq!(state.session.file.pseudo_threshold, 0.75);
        assert!(!state.session.file.spreading_follows_map);
        step_until(&mut state, |s| {
            s.ws.as_ref()
                .unwrap()
                .labels
                .as_ref()
                .is_some_and(|l| l.threshold == 0.75)
        });
        // No latents yet, no checkpoint: clustering and interpolation start nothing.
        execute(
            &mut state,
            AppCommand::Cluster {
                method: ClusterMethod::Kmeans,
                k: 3,
            },
        );
        execute(&mut state, AppCommand::Interpolate { steps: 5 });
        assert!(!state.jobs.busy());
        // A missing checkpoint is an error message naming the run, not a crash.
        execute(&mut state, AppCommand::SelectMembers(vec![0]));
        execute(&mut state, AppCommand::ReconstructSelection);
        assert!(state.jobs.is_running(JobKind::Reconstruct));
        step_until(&mut state, |s| !s.jobs.busy());
        let error = state.notifications.errors().last().unwrap().to_string();
        assert!(
            error.starts_with("Reconstructions:") && error.contains("run"),
            "{error}"
        );
    }
}
