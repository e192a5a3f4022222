//! Dataset panel: what the data is, its classes (add, rename, merge) and the pseudo-labeller.

use std::collections::BTreeSet;

use crate::app::SenseApp;
use crate::app::label_keeper::LabelEdit;
use crate::classify::Choice;

#[derive(Default)]
pub struct DatasetForm {
    pub new_class: String,
    pub rename_from: Option<String>,
    pub rename_to: String,
    pub merge: BTreeSet<String>,
}

pub fn show(app: &mut SenseApp, ui: &mut egui::Ui) {
    let Some(ws) = app.ws.as_mut() else {
        return;
    };
    ui.heading("Dataset");
    let shape = ws.ensemble.shape();
    egui::Grid::new("dataset-facts")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("name");
            let spec = &app.session.file.dataset;
            let name = std::path::Path::new(spec)
                .file_name()
                .map_or(spec.clone(), |n| n.to_string_lossy().into_owned());
            ui.label(name).on_hover_text(spec);
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

    egui::CollapsingHeader::new("Classes")
        .default_open(true)
        .show(ui, |ui| {
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
                        let mut merged = ws.dataset_form.merge.contains(&class.name);
                        ui.horizontal(|ui| {
                            if ui
                                .checkbox(&mut merged, "")
                                .on_hover_text("Pick for merging")
                                .changed()
                            {
                                match merged {
                                    true => ws.dataset_form.merge.insert(class.name.clone()),
                                    false => ws.dataset_form.merge.remove(&class.name),
                                };
                            }
                            let (rect, _) =
                                ui.allocate_exact_size([12.0, 12.0].into(), egui::Sense::hover());
                            ui.painter().rect_filled(rect, 2.0, class.colour);
                        });
                        let name = ui.selectable_label(
                            ws.dataset_form.rename_from.as_deref() == Some(class.name.as_str()),
                            format!("{} {}", key_hint(i), class.name),
                        );
                        if name.on_hover_text("Click to rename").clicked() {
                            ws.dataset_form.rename_from = Some(class.name.clone());
                            ws.dataset_form.rename_to = class.name.clone();
                        }
                        ui.label(class.manual.to_string());
                        ui.label(class.pseudo_confident.to_string());
                        ui.end_row();
                    }
                });
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut ws.dataset_form.new_class)
                        .hint_text("new class")
                        .desired_width(140.0),
                );
                if ui.button("Add").clicked() && !ws.dataset_form.new_class.trim().is_empty() {
                    let name = std::mem::take(&mut ws.dataset_form.new_class);
                    ws.keeper.send(LabelEdit::AddClass(name));
                }
            });
            if let Some(old) = ws.dataset_form.rename_from.clone() {
                ui.horizontal(|ui| {
                    ui.label(format!("rename '{old}' to"));
                    ui.add(
                        egui::TextEdit::singleline(&mut ws.dataset_form.rename_to)
                            .desired_width(110.0),
                    );
                    if ui.button("Rename").clicked() {
                        let new = ws.dataset_form.rename_to.trim().to_string();
                        ws.keeper.send(LabelEdit::RenameClass { old, new });
                        ws.dataset_form.rename_from = None;
                    }
                    if ui.button("Cancel").clicked() {
                        ws.dataset_form.rename_from = None;
                    }
                });
            }
            let picked: Vec<String> = ws.dataset_form.merge.iter().cloned().collect();
            if picked.len() >= 2 {
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!("merge {} into", picked.join(", ")));
                    for into in &picked {
                        if ui.button(into).clicked() {
                            let from = picked.iter().filter(|c| *c != into).cloned().collect();
                            ws.keeper.send(LabelEdit::MergeClasses {
                                from,
                                into: into.clone(),
                            });
                            ws.dataset_form.merge.clear();
                        }
                    }
                });
            }
        });

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
                app.session.file.pseudo_threshold = threshold;
                ws.keeper.send(LabelEdit::SetThreshold(threshold));
            }
            let running = ws.pseudo.as_ref().is_some_and(|p| p.running);
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
                    match ws.pseudo_labeller(labels.threshold) {
                        Ok(p) => p.retrain(),
                        Err(e) => app.notifications.error(format!("Pseudo-labeller: {e}")),
                    }
                }
                if running
                    && ui.button("Cancel").clicked()
                    && let Some(p) = &ws.pseudo
                {
                    p.stop();
                }
            });
            let mut follow = app.session.file.spreading_follows_map;
            if ui
                .checkbox(&mut follow, "Spreading follows the map")
                .on_hover_text(
                    "While label spreading is the trusted labeller, rerun it over every \
                     epoch's latents and after every relabel (a second or two)",
                )
                .changed()
            {
                app.session.file.spreading_follows_map = follow;
            }
            if let Some(p) = &ws.pseudo {
                if p.running {
                    ui.add(egui::ProgressBar::new(p.progress).show_percentage());
                }
                ui.label(&p.status);
                if let Some(choice) = &p.choice {
                    choice_report(ui, choice);
                }
            }
        });
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

/// The key that relabels the selection as class `i` (1–9, then 0).
pub fn key_hint(i: usize) -> String {
    match i {
        0..=8 => format!("[{}]", i + 1),
        9 => "[0]".into(),
        _ => String::new(),
    }
}
