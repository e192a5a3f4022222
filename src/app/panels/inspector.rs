//! Inspector: the selected members as a virtualised thumbnail grid, reconstructions and error
//! maps on demand, labels with provenance, parameters; relabelling the selection (one key per
//! class), undo / redo, and exporting the selection.

use std::collections::HashMap;

use crate::app::SenseApp;
use crate::app::images::{error_image, finite_range, to_color_image};
use crate::app::jobs::background::{Job, take_finished};
use crate::app::label_keeper::LabelEdit;
use crate::app::notifications::Notifications;
use crate::app::panels::{self, dataset::key_hint};
use crate::app::sense_app::Workspace;
use crate::data::Shape;
use crate::train::{CheckpointChoice, Reconstruction, TrainedModel};

/// Reconstructions on demand cover at most this many selected members.
const MAX_RECONSTRUCTED: usize = 64;
const THUMB_PX: f32 = 72.0;

#[derive(Default)]
pub struct InspectorState {
    recon: HashMap<usize, [egui::TextureHandle; 2]>,
    recon_job: Option<Job<Vec<Reconstruction>>>,
    export_job: Option<Job<String>>,
    pub new_class: String,
}

impl InspectorState {
    pub fn busy(&self) -> bool {
        self.recon_job.is_some() || self.export_job.is_some()
    }

    /// Members whose reconstruction is on show.
    pub fn reconstructed(&self) -> usize {
        self.recon.len()
    }
}

pub fn pump_jobs(ws: &mut Workspace, ctx: &egui::Context, notifications: &mut Notifications) {
    if let Some(result) = take_finished(&mut ws.inspector.recon_job) {
        match result {
            Ok(reconstructions) => {
                for r in reconstructions {
                    let shape = Shape {
                        channels: r.shape[0],
                        height: r.shape[1],
                        width: r.shape[2],
                    };
                    let range = finite_range(&r.original);
                    let load = |name: &str, image| {
                        ctx.load_texture(
                            format!("inspect-{}-{name}", r.member),
                            image,
                            egui::TextureOptions::NEAREST,
                        )
                    };
                    let rec = load("rec", to_color_image(&r.reconstruction, shape, Some(range)));
                    let err = load(
                        "err",
                        error_image(
                            &r.original,
                            &r.reconstruction,
                            shape,
                            (range.1 - range.0) * 0.5,
                        ),
                    );
                    ws.inspector.recon.insert(r.member, [rec, err]);
                }
            }
            Err(e) => notifications.error(format!("Reconstructions: {e}")),
        }
    }
    if let Some(result) = take_finished(&mut ws.inspector.export_job) {
        match result {
            Ok(text) => notifications.info(text),
            Err(e) => notifications.error(format!("Export: {e}")),
        }
    }
}

/// Keys: 1–9 and 0 relabel the selection as that class, Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y)
/// undo and redo, Esc clears the selection. Ignored while a text field has focus.
pub fn handle_keys(app: &mut SenseApp, ctx: &egui::Context) {
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    let Some(ws) = app.ws.as_mut() else {
        return;
    };
    let Some(labels) = ws.labels.clone() else {
        return;
    };
    let digits = [
        egui::Key::Num1,
        egui::Key::Num2,
        egui::Key::Num3,
        egui::Key::Num4,
        egui::Key::Num5,
        egui::Key::Num6,
        egui::Key::Num7,
        egui::Key::Num8,
        egui::Key::Num9,
        egui::Key::Num0,
    ];
    let (class_key, undo, redo, escape) = ctx.input(|i| {
        let command = i.modifiers.command;
        (
            digits.iter().position(|&k| i.key_pressed(k) && !command),
            command && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
            command
                && ((i.modifiers.shift && i.key_pressed(egui::Key::Z))
                    || i.key_pressed(egui::Key::Y)),
            i.key_pressed(egui::Key::Escape),
        )
    });
    if let Some(index) = class_key
        && let Some(class) = labels.classes.get(index)
        && !ws.map.selection.is_empty()
    {
        relabel(ws, &class.name);
    }
    if undo {
        ws.keeper.send(LabelEdit::Undo);
    }
    if redo {
        ws.keeper.send(LabelEdit::Redo);
    }
    if escape && !ws.map.selection.is_empty() {
        ws.map.selection.clear();
        ws.colours_dirty = true;
    }
}

fn relabel(ws: &mut Workspace, class: &str) {
    ws.keeper.send(LabelEdit::SetManual {
        members: ws.map.selection.iter().copied().collect(),
        class: class.to_string(),
    });
}

pub fn show(app: &mut SenseApp, ui: &mut egui::Ui) {
    ui.heading("Inspector");
    let Some(ws) = app.ws.as_mut() else {
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
            ws.keeper.send(LabelEdit::Undo);
        }
        let redo = ui
            .add_enabled(labels.redo.is_some(), egui::Button::new("Redo"))
            .on_hover_text(labels.redo.as_deref().unwrap_or("nothing to redo"));
        if redo.clicked() {
            ws.keeper.send(LabelEdit::Redo);
        }
    });
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
                relabel(ws, &class.name);
            }
        }
    });
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut ws.inspector.new_class)
                .hint_text("new class")
                .desired_width(120.0),
        );
        let name = ws.inspector.new_class.trim().to_string();
        if ui
            .add_enabled(!name.is_empty(), egui::Button::new("Label as new class"))
            .clicked()
        {
            relabel(ws, &name);
            ws.inspector.new_class.clear();
        }
    });
    ui.horizontal(|ui| {
        if ui.button("Clear manual labels").clicked() {
            ws.keeper.send(LabelEdit::ClearManual {
                members: selection.clone(),
            });
        }
        if ui.button("Clear selection").clicked() {
            ws.map.selection.clear();
            ws.colours_dirty = true;
        }
    });
    ui.horizontal(|ui| {
        let reconstruct = ui
            .add_enabled(
                ws.has_checkpoint && ws.inspector.recon_job.is_none(),
                egui::Button::new("Reconstruct"),
            )
            .on_hover_text(format!(
                "Reconstruction and error map of the first {MAX_RECONSTRUCTED} selected members"
            ));
        if reconstruct.clicked() {
            let members: Vec<usize> = selection.iter().copied().take(MAX_RECONSTRUCTED).collect();
            let (ensemble, run_dir) = (ws.ensemble.clone(), app.session.run_dir());
            ws.inspector.recon_job = Some(Job::spawn("reconstruct", move |_| {
                let backend = crate::train::backend::cpu_backend(None);
                let model = TrainedModel::load(
                    &run_dir,
                    ensemble.shape(),
                    CheckpointChoice::Best,
                    &backend,
                )
                .map_err(|e| e.to_string())?;
                model
                    .reconstruct(&ensemble, &members)
                    .map_err(|e| e.to_string())
            }));
        }
        if ws.inspector.recon_job.is_some() {
            ui.spinner();
        }
        let export = ui
            .add_enabled(
                ws.inspector.export_job.is_none(),
                egui::Button::new("Export selection"),
            )
            .on_hover_text(
                "CSV of ids and labels (file dialog, else the session's exports folder)",
            );
        if export.clicked() {
            ws.inspector.export_job = Some(export_selection(ws, &app.session.exports_dir()));
        }
        if ui
            .button("A / B for interpolation")
            .on_hover_text("Use the first two selected members as the interpolation's ends")
            .clicked()
        {
            ws.interpolation
                .set_ends(selection.first().copied(), selection.get(1).copied());
            app.bottom_tab = crate::app::sense_app::BottomTab::Interpolation;
        }
    });
    ui.separator();
    member_grid(ws, &labels, &selection, ui, &mut app.notifications);
}

/// Thumbnails of the selection, only the visible rows drawn (thousands stay cheap).
fn member_grid(
    ws: &mut Workspace,
    labels: &crate::app::label_keeper::LabelView,
    selection: &[usize],
    ui: &mut egui::Ui,
    notifications: &mut Notifications,
) {
    let with_recon = !ws.inspector.recon.is_empty();
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
                    if with_recon && let Some([rec, err]) = ws.inspector.recon.get(&member) {
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

/// CSV of the selection (id, manual label, pseudo-label, confidence). The path comes from a
/// file dialog on this worker thread (a portal that never answers blocks only the worker);
/// without a dialog the file goes to the session's exports folder.
fn export_selection(ws: &Workspace, exports_dir: &std::path::Path) -> Job<String> {
    let labels = ws.labels.clone();
    let rows: Vec<(String, usize)> = ws
        .map
        .selection
        .iter()
        .map(|&m| (ws.ensemble.member_id(m), m))
        .collect();
    let dir = exports_dir.to_path_buf();
    Job::spawn("export-selection", move |_| {
        let default_name = "selection.csv";
        let chosen = rfd::FileDialog::new()
            .set_file_name(default_name)
            .add_filter("CSV", &["csv"])
            .save_file();
        let path = match chosen {
            Some(path) => path,
            None => {
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string()
                    .replace(':', "-");
                dir.join(format!("selection-{stamp}.csv"))
            }
        };
        let error = |e: csv::Error| format!("{}: {e}", path.display());
        let mut writer = csv::Writer::from_path(&path).map_err(error)?;
        writer
            .write_record(["id", "manual_label", "pseudo_label", "pseudo_confidence"])
            .map_err(error)?;
        for (id, member) in &rows {
            let name = |c: Option<usize>| {
                c.and_then(|c| labels.as_ref()?.classes.get(c).map(|k| k.name.clone()))
                    .unwrap_or_default()
            };
            let manual = labels.as_ref().and_then(|l| l.manual[*member]);
            let pseudo = labels.as_ref().and_then(|l| l.pseudo[*member]);
            writer
                .write_record([
                    id.clone(),
                    name(manual),
                    name(pseudo.map(|p| p.class)),
                    pseudo.map_or(String::new(), |p| p.confidence.to_string()),
                ])
                .map_err(error)?;
        }
        writer
            .flush()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(format!(
            "{} members exported to {}",
            rows.len(),
            path.display()
        ))
    })
}
