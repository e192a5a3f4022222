//! Inspector: the selected members as a virtualised thumbnail grid, reconstructions and error
//! maps on demand, labels with provenance, parameters; relabelling the selection (one key per
//! class), undo / redo, and exporting the selection.

use super::keys::key_hint;
use crate::app::commands::{AppCommand, CommandQueue, MAX_RECONSTRUCTED};
use crate::app::jobs::JobKind;
use crate::app::label_keeper::{LabelEdit, LabelView};
use crate::app::notifications::Notifications;
use crate::app::panels;
use crate::app::state::AppState;
use crate::app::workspace::Workspace;

const THUMB_PX: f32 = 72.0;

pub fn show(ui: &mut egui::Ui, state: &mut AppState, queue: &mut CommandQueue) {
    ui.heading("Inspector");
    let Some(ws) = state.ws.as_mut() else {
        return;
    };
    let Some(labels) = ws.labels.clone() else {
        return;
    };
    let selection: Vec<usize> = ws.map.selection.iter().copied().collect();
    ui.horizontal(|ui| {
        let undo = ui
            .add_enabled(labels.undo.is_some(), egui::Button::new("Undo"))
            .on_hover_text(labels.undo.as_deref().unwrap_or("nothing to undo"));
        if undo.clicked() {
            queue.push(AppCommand::Label(LabelEdit::Undo));
        }
        let redo = ui
            .add_enabled(labels.redo.is_some(), egui::Button::new("Redo"))
            .on_hover_text(labels.redo.as_deref().unwrap_or("nothing to redo"));
        if redo.clicked() {
            queue.push(AppCommand::Label(LabelEdit::Redo));
        }
    });
    suggestions(ui, ws, state.jobs.is_running(JobKind::Suggest), queue);
    if selection.is_empty() {
        ui.label("Brush the map (drag) or click points to select members.");
        ui.weak("R rectangle · L lasso · Shift add · Ctrl subtract · Esc clear");
        return;
    }
    ui.label(format!("{} selected", selection.len()));
    ui.label("Relabel the selection (key in brackets):");
    ui.horizontal_wrapped(|ui| {
        for (i, class) in labels.classes.iter().enumerate() {
            let text =
                egui::RichText::new(format!("{} {}", key_hint(i), class.name)).color(class.colour);
            if ui.button(text).clicked() {
                queue.push(AppCommand::RelabelSelection(class.name.clone()));
            }
        }
    });
    let new_class = &mut state.forms.inspector_new_class;
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(new_class)
                .hint_text("new class")
                .desired_width(120.0),
        );
        let name = new_class.trim().to_string();
        if ui
            .add_enabled(!name.is_empty(), egui::Button::new("Label as new class"))
            .clicked()
        {
            queue.push(AppCommand::RelabelSelection(name));
            new_class.clear();
        }
    });
    ui.horizontal(|ui| {
        if ui.button("Clear manual labels").clicked() {
            queue.push(AppCommand::ClearSelectionLabels);
        }
        if ui.button("Clear selection").clicked() {
            queue.push(AppCommand::ClearSelection);
        }
    });
    let jobs = &state.jobs;
    ui.horizontal(|ui| {
        let reconstructing = jobs.is_running(JobKind::Reconstruct);
        let reconstruct = ui
            .add_enabled(
                ws.has_checkpoint && !reconstructing,
                egui::Button::new("Reconstruct"),
            )
            .on_hover_text(format!(
                "Reconstruction and error map of the first {MAX_RECONSTRUCTED} selected members"
            ));
        if reconstruct.clicked() {
            queue.push(AppCommand::ReconstructSelection);
        }
        if reconstructing {
            ui.spinner();
        }
        let export = ui
            .add_enabled(
                !jobs.is_running(JobKind::ExportSelection),
                egui::Button::new("Export selection"),
            )
            .on_hover_text(
                "CSV of ids and labels (file dialog, else the session's exports folder)",
            );
        if export.clicked() {
            queue.push(AppCommand::ExportSelection);
        }
        if ui
            .button("A / B for interpolation")
            .on_hover_text("Use the first two selected members as the interpolation's ends")
            .clicked()
        {
            queue.push(AppCommand::InterpolateSelection);
        }
    });
    ui.separator();
    member_grid(ui, ws, &labels, &selection, &mut state.notifications);
}

/// How many members one "Suggest" ranks.
const SUGGESTIONS: usize = 20;

/// The "what to label next" queue: ask for it, walk it (N / P, or click), label the one
/// shown with its class key (the walk moves on).
fn suggestions(ui: &mut egui::Ui, ws: &Workspace, running: bool, queue: &mut CommandQueue) {
    let Some(walk) = &ws.suggestions else {
        ui.horizontal(|ui| {
            let ask = ui
                .add_enabled(!running, egui::Button::new("Suggest what to label"))
                .on_hover_text(format!(
                    "Rank the map's unlabelled members by what a hand label would fix most: \
                     uncertain pseudo-labels, pseudo-labels at odds with their latent \
                     neighbours, and regions far from every hand label ({SUGGESTIONS} at a time)"
                ));
            if ask.clicked() {
                queue.push(AppCommand::Suggest { count: SUGGESTIONS });
            }
            if running {
                ui.spinner();
            }
        });
        return;
    };
    let Some(current) = walk.items.get(walk.current) else {
        return;
    };
    ui.label(format!(
        "Suggestion {} of {}: {} ({}, score {:.2})",
        walk.current + 1,
        walk.items.len(),
        ws.ensemble.member_id(current.member),
        current.reason.name(),
        current.score
    ));
    ui.horizontal(|ui| {
        if ui.button("Previous [P]").clicked() {
            queue.push(AppCommand::StepSuggestion(-1));
        }
        if ui.button("Next [N]").clicked() {
            queue.push(AppCommand::StepSuggestion(1));
        }
        if ui.button("Done").clicked() {
            queue.push(AppCommand::DismissSuggestions);
        }
    });
    egui::ScrollArea::vertical()
        .id_salt("suggestion-queue")
        .max_height(110.0)
        .show(ui, |ui| {
            for (i, item) in walk.items.iter().enumerate() {
                let text = format!(
                    "{}. {} · {}",
                    i + 1,
                    ws.ensemble.member_id(item.member),
                    item.reason.name()
                );
                if ui.selectable_label(i == walk.current, text).clicked() {
                    queue.push(AppCommand::ShowSuggestion(i));
                }
            }
        });
    ui.separator();
}

/// Thumbnails of the selection, only the visible rows drawn (thousands stay cheap).
fn member_grid(
    ui: &mut egui::Ui,
    ws: &mut Workspace,
    labels: &LabelView,
    selection: &[usize],
    notifications: &mut Notifications,
) {
    let with_recon = !ws.inspected.is_empty();
    let row_height = THUMB_PX + 34.0;
    egui::ScrollArea::vertical().auto_shrink(false).show_rows(
        ui,
        row_height,
        selection.len(),
        |ui, rows| {
            for &member in &selection[rows] {
                ui.horizontal(|ui| {
                    match ws.thumbnails.get(ui.ctx(), &ws.ensemble, member) {
                        Ok(texture) => {
                            ui.add(panels::image_of(&texture, THUMB_PX));
                        }
                        Err(e) => {
                            notifications.error(format!("{}: {e}", ws.ensemble.member_id(member)))
                        }
                    }
                    if with_recon && let Some([rec, err]) = ws.inspected.get(&member) {
                        ui.add(panels::image_of(rec, THUMB_PX))
                            .on_hover_text("reconstruction");
                        ui.add(panels::image_of(err, THUMB_PX))
                            .on_hover_text("|error|");
                    }
                    ui.vertical(|ui| {
                        ui.strong(ws.ensemble.member_id(member));
                        match labels.provenance.get(&member) {
                            Some(text) => ui.small(text),
                            None => ui.small("unlabelled"),
                        };
                        if let Some(p) = &ws.ensemble.parameters {
                            let values: Vec<String> = p
                                .names
                                .iter()
                                .enumerate()
                                .take(4)
                                .map(|(i, n)| format!("{n} = {:.4}", p.value(member, i)))
                                .collect();
                            ui.small(values.join(" · "));
                        }
                    });
                });
            }
        },
    );
}
