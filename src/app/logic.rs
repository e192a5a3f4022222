//! The app's one per-frame step outside the views: events from the workers (label keeper,
//! trainer, pseudo-labeller, projection) and finished jobs go into the state. It runs in
//! `eframe::App::logic`, before the views, whenever a worker woke the UI or input arrived.

use std::sync::Arc;

use super::commands::select_current_suggestion;
use super::images::{reconstruction_textures, strip_textures};
use super::jobs::projection::ProjectionEvent;
use super::jobs::pseudo_labeller::PseudoChanges;
use super::jobs::training::TrainingUpdate;
use super::jobs::{JobKind, JobOutput, PseudoLabellerUpdate};
use super::label_keeper::{LabelEdit, LabelEvent};
use super::map::ColourMode;
use super::notifications::{Level, Topic};
use super::state::AppState;
use super::workspace::{SuggestionQueue, Workspace};

/// Pending training events read per frame at most (the rest wait for the next frame).
const EVENTS_PER_FRAME: usize = 512;

/// Moves everything the workers finished into the state.
pub fn step(state: &mut AppState, ctx: &egui::Context) {
    finished_jobs(state, ctx);
    if state.ws.is_none() {
        return;
    }
    label_events(state, ctx);
    retrain_when_due(state);
    training_events(state, ctx);
    pseudo_labeller_events(state);
    projection_events(state);
    if let Some(ws) = state.ws.as_mut()
        && ws.colours_dirty
        && !ws.map.is_empty()
    {
        let (colours, legend) = ws
            .map
            .colours(ws.labels.as_deref(), ws.ensemble.parameters.as_ref());
        ws.legend = legend;
        state.scatter.set_colours(Arc::new(colours));
        ws.colours_dirty = false;
    }
    // More training events than one frame reads: come back at once.
    if state
        .ws
        .as_ref()
        .and_then(|ws| ws.training.as_ref())
        .is_some_and(|run| run.has_pending_events())
    {
        ctx.request_repaint();
    }
}

fn finished_jobs(state: &mut AppState, ctx: &egui::Context) {
    for (kind, result) in state.jobs.finished() {
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                state.notifications.error(format!("{}: {e}", kind.title()));
                continue;
            }
        };
        match output {
            JobOutput::Opened(loaded) => open_workspace(state, *loaded),
            JobOutput::Backend(name) => state.compute_backend = name,
            JobOutput::Exported(text) => state.notifications.info(text),
            JobOutput::RunPicked(Some(dir)) => super::commands::follow_run(state, &dir, None),
            JobOutput::RunPicked(None) => {}
            other => {
                let Some(ws) = state.ws.as_mut() else {
                    continue;
                };
                apply_to_workspace(ws, kind, other, ctx, &mut state.notifications);
            }
        }
    }
}

fn apply_to_workspace(
    ws: &mut Workspace,
    kind: JobKind,
    output: JobOutput,
    ctx: &egui::Context,
    notifications: &mut super::notifications::Notifications,
) {
    match output {
        JobOutput::Clusters {
            members,
            assignments,
        } => {
            if members != ws.map.members {
                return notifications.info("The map changed while clustering: run it again");
            }
            ws.map.clusters = Some(assignments);
            ws.map.colour_mode = ColourMode::Cluster;
            ws.colours_dirty = true;
        }
        JobOutput::ReconstructionErrors { members, errors } => {
            if members != ws.map.members {
                return notifications.info("The map changed while computing errors: run it again");
            }
            ws.map.errors = Some(errors);
            ws.map.colour_mode = ColourMode::ReconstructionError;
            ws.colours_dirty = true;
        }
        JobOutput::Reconstructions(reconstructions) => {
            for r in &reconstructions {
                ws.inspected
                    .insert(r.member, reconstruction_textures(ctx, r, "inspect"));
            }
        }
        JobOutput::Interpolation(images) => {
            ws.interpolation.strip = strip_textures(ctx, &images, ws.ensemble.shape());
        }
        JobOutput::AllLatents(latents) => {
            ws.request_full_map(&latents);
        }
        JobOutput::Suggestions(items) => {
            if items.is_empty() {
                return notifications
                    .info("Nothing to suggest: every member on the map is labelled");
            }
            ws.map.marked = items.iter().map(|s| s.member).collect();
            ws.suggestions = Some(SuggestionQueue { items, current: 0 });
            select_current_suggestion(ws);
        }
        JobOutput::Opened(_)
        | JobOutput::Backend(_)
        | JobOutput::Exported(_)
        | JobOutput::RunPicked(_) => {
            unreachable!("{kind:?} is handled by the app, not the workspace")
        }
    }
}

fn open_workspace(state: &mut AppState, loaded: super::session::Loaded) {
    if let Some(n) = loaded.imported {
        state.notifications.info(format!(
            "Imported {n} hand labels into the session's label store"
        ));
    }
    match Workspace::open(loaded, &state.session, state.waker.clone()) {
        Ok(ws) => {
            if ws.map.restored {
                state.scatter.set_points(
                    ws.map.coords.clone(),
                    Arc::new(vec![super::map::UNLABELLED; ws.map.members.len()]),
                    None,
                );
            }
            state.ws = Some(ws);
        }
        Err(e) => state.notifications.error(format!("Cannot start: {e}")),
    }
}

fn label_events(state: &mut AppState, ctx: &egui::Context) {
    let Some(ws) = state.ws.as_mut() else {
        return;
    };
    while let Some(event) = ws.keeper.try_recv() {
        match event {
            LabelEvent::Changed(view) => {
                // Only hand labels steer spreading: its own proposals must not rerun it.
                let relabelled = ws
                    .labels
                    .as_ref()
                    .is_some_and(|old| old.manual != view.manual);
                if relabelled
                    && state.session.file.spreading_follows_map
                    && let Some(labeller) = ws.pseudo.as_mut()
                {
                    labeller.spread(view.hand_labels());
                }
                // Debounced: a burst of edits retrains once, after the last.
                if relabelled
                    && view.has_two_hand_labelled_classes()
                    && let Some(delay) = state.session.file.retrain_after_edits_secs
                {
                    let delay = std::time::Duration::from_secs_f32(delay.max(0.0));
                    ws.retrain_due = Some(std::time::Instant::now() + delay);
                    ctx.request_repaint_after(delay);
                }
                ws.labels = Some(view);
                ws.colours_dirty = true;
            }
            LabelEvent::Error(e) => state.notifications.error(format!("Labels: {e}")),
        }
    }
}

/// Starts the debounced retrain (a refresh of the last run) once its time has come.
fn retrain_when_due(state: &mut AppState) {
    let Some(ws) = state.ws.as_mut() else {
        return;
    };
    if ws
        .retrain_due
        .is_none_or(|due| std::time::Instant::now() < due)
    {
        return;
    }
    ws.retrain_due = None;
    let Some(hand) = ws.labels.as_ref().map(|l| l.hand_labels()) else {
        return;
    };
    match ws.pseudo_labeller(state.session.file.pseudo_threshold) {
        Ok(labeller) => labeller.refresh(hand),
        Err(e) => state.notifications.error(format!("Pseudo-labeller: {e}")),
    }
}

fn training_events(state: &mut AppState, ctx: &egui::Context) {
    let Some(ws) = state.ws.as_mut() else {
        return;
    };
    let Some(run) = ws.training.as_mut() else {
        return;
    };
    let was_active = run.state.is_active();
    let updates = run.pump(EVENTS_PER_FRAME);
    if run.watches_its_trainer() {
        // A stuck trainer sends no events to wake the UI; look again in a while.
        ctx.request_repaint_after(std::time::Duration::from_secs(5));
    }
    ws.reconstructions
        .refresh(ctx, run.history.reconstructions.as_ref());
    ws.has_checkpoint |= run.checkpoint_written;
    if was_active && !run.state.is_active() {
        ws.keeper.unsubscribe();
    }
    for update in updates {
        match update {
            TrainingUpdate::Latents(latents) => {
                ws.request_latent_map(&state.session, &latents);
                let follow = state.session.file.spreading_follows_map
                    && ws
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.has_two_hand_labelled_classes());
                if !follow {
                    continue;
                }
                let Some(rows) = ws.all_member_latents(latents) else {
                    continue;
                };
                let Some(hand) = ws.labels.as_ref().map(|l| l.hand_labels()) else {
                    continue;
                };
                match ws.pseudo_labeller(state.session.file.pseudo_threshold) {
                    Ok(labeller) => {
                        labeller.set_features(rows);
                        labeller.spread(hand);
                    }
                    Err(e) => state.notifications.error(format!("Pseudo-labeller: {e}")),
                }
            }
            TrainingUpdate::Notice { text, error: true } => state.notifications.error(text),
            TrainingUpdate::Notice { text, error: false } => state.notifications.info(text),
            TrainingUpdate::TrainerHealth(Some(text)) => {
                state.notifications.set(Topic::Trainer, Level::Error, text)
            }
            TrainingUpdate::TrainerHealth(None) => state.notifications.clear(Topic::Trainer),
        }
    }
}

fn pseudo_labeller_events(state: &mut AppState) {
    let Some(ws) = state.ws.as_mut() else {
        return;
    };
    let Some(labeller) = ws.pseudo.as_mut() else {
        return;
    };
    for update in labeller.pump() {
        match update {
            PseudoLabellerUpdate::Proposed { proposal, summary } => {
                let changes = ws
                    .labels
                    .as_ref()
                    .map(|view| PseudoChanges::between(view, &proposal));
                // The keeper writes them (one undoable change) and tells the trainer.
                ws.keeper.send(LabelEdit::SetPseudo(proposal));
                let detail = changes
                    .as_ref()
                    .map_or(String::new(), |c| format!("; {}", c.describe()));
                state
                    .notifications
                    .info(format!("Pseudo-labeller: {summary}{detail}"));
                labeller.last_changes = changes;
            }
            PseudoLabellerUpdate::Failed(e) => {
                state.notifications.error(format!("Pseudo-labeller: {e}"))
            }
        }
    }
}

fn projection_events(state: &mut AppState) {
    let Some(ws) = state.ws.as_mut() else {
        return;
    };
    while let Some(event) = ws.projection.try_recv() {
        match event {
            ProjectionEvent::Frame { members, coords } => {
                ws.map.members = members;
                ws.map.coords = Arc::new(coords);
                let (colours, legend) = ws.map.colours(ws.labels.as_deref(), None);
                ws.legend = legend;
                state
                    .scatter
                    .set_points(ws.map.coords.clone(), Arc::new(colours), None);
                // A cold layout lives in its own coordinate range: keep it in view.
                state.scatter.reset_view();
            }
            ProjectionEvent::Done(map) => {
                // A live map of an epoch goes into the run's layouts (for its animation);
                // a full map after training is larger than any live one and does not.
                let epoch_layout = map
                    .epoch
                    .filter(|_| map.members.len() <= state.session.file.map_max_members);
                let animate_from = ws.map.positions_for(&map.members, &map.coords);
                let cold = !map.warm_started;
                ws.map.apply(map);
                if cold {
                    state.scatter.reset_view();
                } else {
                    state.scatter.follow_data();
                }
                let (colours, legend) = ws
                    .map
                    .colours(ws.labels.as_deref(), ws.ensemble.parameters.as_ref());
                ws.legend = legend;
                state.scatter.set_points(
                    ws.map.coords.clone(),
                    Arc::new(colours),
                    animate_from.map(Arc::new),
                );
                ws.colours_dirty = false;
                state
                    .session
                    .save_layout(ws.map.ids.clone(), &ws.map.coords, epoch_layout);
            }
            ProjectionEvent::Error(e) => state.notifications.error(format!("Map: {e}")),
        }
    }
}
