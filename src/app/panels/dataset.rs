//! Dataset panel: what the data is, its classes (add, rename, merge) and the pseudo-labeller.

use super::keys::key_hint;
use crate::app::commands::{AppCommand, CommandQueue};
use crate::app::label_keeper::{LabelEdit, LabelView};
use crate::app::state::{AppState, Forms};
use crate::classify::Choice;

pub fn show(ui: &mut egui::Ui, state: &mut AppState, queue: &mut CommandQueue) {
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    ui.heading("Dataset");
    let shape = ws.ensemble.shape();
    egui::Grid::new("dataset-facts")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("name");
            let spec = &state.session.file.dataset;
            ui.label(super::dataset_name(spec)).on_hover_text(spec);
            ui.end_row();
            ui.label("members");
            ui.label(ws.ensemble.len().to_string());
            ui.end_row();
            ui.label("shape");
            ui.label(format!(
                "{} × {} px, {} channel{}, {}",
                shape.height,
                shape.width,
                shape.channels,
                if shape.channels == 1 { "" } else { "s" },
                ws.ensemble.dtype()
            ));
            ui.end_row();
        });
    let Some(labels) = ws.labels.clone() else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("loading labels…");
        });
        return;
    };
    let pseudo_total: usize = labels.classes.iter().map(|c| c.pseudo).sum();
    let confident: usize = labels.classes.iter().map(|c| c.pseudo_confident).sum();
    ui.label(format!(
        "{} hand-labelled · {pseudo_total} pseudo-labelled ({confident} ≥ {:.2})",
        labels.manual_count(),
        labels.threshold
    ));
    let forms = &mut state.forms;
    egui::CollapsingHeader::new("Classes")
        .default_open(true)
        .show(ui, |ui| classes(ui, &labels, forms, queue));
    egui::CollapsingHeader::new("Pseudo-labeller")
        .default_open(true)
        .show(ui, |ui| {
            let mut threshold = labels.threshold;
            let slider = ui.add(
                egui::Slider::new(&mut threshold, 0.5..=1.0)
                    .text("confidence threshold")
                    .fixed_decimals(2),
            );
            if slider.drag_stopped() || (slider.changed() && !slider.dragged()) {
                queue.push(AppCommand::SetPseudoThreshold(threshold));
            }
            let pseudo = ws.pseudo.as_ref();
            let running = pseudo.is_some_and(|p| p.running);
            ui.horizontal(|ui| {
                let retrain = ui
                    .add_enabled(!running, egui::Button::new("Retrain on hand labels"))
                    .on_hover_text(
                        "Estimate label spreading (over the latest latents, else raw pixels) and \
                         the EfficientNetV2-style classifier on the manual labels by \
                         stratified k-fold, and write the better one's pseudo-labels for every \
                         other member",
                    );
                if retrain.clicked() {
                    queue.push(AppCommand::RetrainPseudoLabels);
                }
                if running && ui.button("Cancel").clicked() {
                    queue.push(AppCommand::CancelPseudoLabels);
                }
            });
            let mut follow = state.session.file.spreading_follows_map;
            if ui
                .checkbox(&mut follow, "Spreading follows the map")
                .on_hover_text(
                    "While label spreading is the trusted labeller, rerun it over every \
                     epoch's latents and after every relabel (a second or two)",
                )
                .changed()
            {
                queue.push(AppCommand::SetSpreadingFollowsMap(follow));
            }
            let mut retrain = state.session.file.retrain_after_edits_secs.is_some();
            if ui
                .checkbox(&mut retrain, "Retrain after edits (10 s after the last)")
                .on_hover_text(
                    "After hand-label edits, refresh the last run's labeller on the new \
                     labels (spreading reruns; a chosen classifier is fine-tuned from its \
                     weights for a few epochs) and write its pseudo-labels; the running \
                     training uses them from its next batch. The button above estimates \
                     both labellers again from scratch",
                )
                .changed()
            {
                queue.push(AppCommand::SetRetrainAfterEdits(retrain.then_some(10.0)));
            }
            if ws.retrain_due.is_some() && !running {
                ui.weak("retrain scheduled after the latest edits");
            }
            if let Some(p) = pseudo {
                if p.running {
                    ui.add(egui::ProgressBar::new(p.progress).show_percentage());
                }
                ui.label(&p.status);
                if let Some(changes) = &p.last_changes {
                    ui.label(format!("last proposal: {}", changes.describe()));
                }
                if let Some(choice) = &p.choice {
                    choice_report(ui, choice);
                }
            }
        });
}

/// The class table (pick to merge, click to rename), and adding a class.
fn classes(ui: &mut egui::Ui, labels: &LabelView, forms: &mut Forms, queue: &mut CommandQueue) {
    egui::Grid::new("classes")
        .num_columns(4)
        .striped(true)
        .show(ui, |ui| {
            ui.label("");
            ui.label("class");
            ui.label("manual");
            ui.label("pseudo ≥ t");
            ui.end_row();
            for (i, class) in labels.classes.iter().enumerate() {
                let mut merged = forms.merge.contains(&class.name);
                ui.horizontal(|ui| {
                    if ui
                        .checkbox(&mut merged, "")
                        .on_hover_text("Pick for merging")
                        .changed()
                    {
                        match merged {
                            true => forms.merge.insert(class.name.clone()),
                            false => forms.merge.remove(&class.name),
                        };
                    }
                    let (rect, _) =
                        ui.allocate_exact_size([12.0, 12.0].into(), egui::Sense::hover());
                    ui.painter().rect_filled(rect, 2.0, class.colour);
                });
                let name = ui.selectable_label(
                    forms.rename_from.as_deref() == Some(class.name.as_str()),
                    format!("{} {}", key_hint(i), class.name),
                );
                if name.on_hover_text("Click to rename").clicked() {
                    forms.rename_from = Some(class.name.clone());
                    forms.rename_to = class.name.clone();
                }
                ui.label(class.manual.to_string());
                ui.label(class.pseudo_confident.to_string());
                ui.end_row();
            }
        });
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut forms.new_class)
                .hint_text("new class")
                .desired_width(140.0),
        );
        if ui.button("Add").clicked() && !forms.new_class.trim().is_empty() {
            let name = std::mem::take(&mut forms.new_class);
            queue.push(AppCommand::Label(LabelEdit::AddClass(name)));
        }
    });
    if let Some(old) = forms.rename_from.clone() {
        ui.horizontal(|ui| {
            ui.label(format!("rename '{old}' to"));
            ui.add(egui::TextEdit::singleline(&mut forms.rename_to).desired_width(110.0));
            if ui.button("Rename").clicked() {
                let new = forms.rename_to.trim().to_string();
                queue.push(AppCommand::Label(LabelEdit::RenameClass { old, new }));
                forms.rename_from = None;
            }
            if ui.button("Cancel").clicked() {
                forms.rename_from = None;
            }
        });
    }
    let picked: Vec<String> = forms.merge.iter().cloned().collect();
    if picked.len() >= 2 {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("merge {} into", picked.join(", ")));
            for into in &picked {
                if ui.button(into).clicked() {
                    let from = picked.iter().filter(|c| *c != into).cloned().collect();
                    queue.push(AppCommand::Label(LabelEdit::MergeClasses {
                        from,
                        into: into.clone(),
                    }));
                    forms.merge.clear();
                }
            }
        });
    }
}

/// The estimates behind the pseudo-labels, and why they were chosen.
fn choice_report(ui: &mut egui::Ui, choice: &Choice) {
    ui.label(format!(
        "Estimated by {} over {} hand labels:",
        choice.estimation, choice.scored_members
    ));
    egui::Grid::new("labeller_estimates")
        .num_columns(2)
        .show(ui, |ui| {
            for estimate in &choice.estimates {
                let chosen = choice.chosen == Some(estimate.labeller);
                let name = egui::RichText::new(estimate.labeller.name());
                ui.label(if chosen { name.strong() } else { name });
                ui.label(format!(
                    "{:.3}{}",
                    estimate.accuracy,
                    if chosen { "  (chosen)" } else { "" }
                ));
                ui.end_row();
            }
            ui.label("majority class");
            ui.label(format!("{:.3}", choice.majority_rate));
            ui.end_row();
        });
    ui.label(egui::RichText::new(&choice.reason).small().weak());
}
