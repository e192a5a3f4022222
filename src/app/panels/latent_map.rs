//! The latent map: the live UMAP scatter with its toolbar (brush mode, colouring, k-means /
//! GMM, reconstruction errors, exports), hover tooltips with thumbnails, the legend and the
//! live metrics of the hand-labelled members.

use crate::analysis::clustering::ClusterMethod;
use crate::app::commands::{AppCommand, CommandQueue};
use crate::app::jobs::JobKind;
use crate::app::jobs::training::RunState;
use crate::app::map::{ColourMode, Legend};
use crate::app::panels;
use crate::app::state::AppState;
use crate::app::workspace::Workspace;

pub fn show(ui: &mut egui::Ui, state: &mut AppState, queue: &mut CommandQueue) {
    toolbar(ui, state, queue);
    let Some(ws) = state.ws.as_mut() else {
        return;
    };
    let title = map_title(ws);
    ui.horizontal(|ui| {
        ui.label(format!("{title} · {} members", ws.map.members.len()));
        if let Some((secs, warm)) = ws.map.projection {
            let how = if warm { "warm-started" } else { "from scratch" };
            ui.weak(format!("UMAP {secs:.1} s, {how}"));
        }
        let whole = ws.map.members.len() >= ws.ensemble.len();
        // While the trainer computes, the checkpoint moves under the encoder: paused or done.
        let computing = ws.training.as_ref().is_some_and(|t| {
            matches!(
                t.state,
                RunState::Starting | RunState::Running | RunState::Stopping
            )
        });
        if ws.has_checkpoint && !whole && !computing {
            let running = state.jobs.is_running(JobKind::FullMap);
            let full = ui
                .add_enabled(!running, egui::Button::new("Full map"))
                .on_hover_text(format!(
                    "Encode all {} members with the best checkpoint and map them all",
                    ws.ensemble.len()
                ));
            if full.clicked() {
                queue.push(AppCommand::FullMap);
            }
            if running {
                ui.spinner();
                if let Some(p) = state.jobs.progress(JobKind::FullMap) {
                    ui.label(format!("encoding {:.0} %", p.fraction() * 100.0));
                }
            }
        }
        if ws.projection.is_busy() {
            ui.spinner();
            if let Some(p) = ws.projection.progress() {
                ui.label(format!("UMAP {} {:.0} %", p.stage, p.fraction() * 100.0));
            }
            if ui.small_button("cancel").clicked() {
                queue.push(AppCommand::CancelProjection);
            }
        }
    });
    // Room for the legend and metrics below the plot.
    let footer_px = 52.0;
    let plot_height = (ui.available_height() - footer_px).max(120.0);
    let scatter = &mut state.scatter;
    let backend = state.scatter_backend;
    let response = ui
        .allocate_ui(egui::vec2(ui.available_width(), plot_height), |ui| {
            scatter.show(ui, backend)
        })
        .inner;
    state.map_rect = Some(response.response.rect);
    if let Some(row) = response.hovered
        && let Some(&member) = ws.map.members.get(row)
    {
        let texture = ws.thumbnails.get(ui.ctx(), &ws.ensemble, member);
        let provenance = ws.labels.as_ref().and_then(|l| l.provenance.get(&member));
        let id = ws.ensemble.member_id(member);
        response.response.clone().on_hover_ui_at_pointer(|ui| {
            if let Ok(texture) = &texture {
                ui.add(panels::image_of(texture, 96.0));
            }
            ui.label(id);
            if let Some(text) = provenance {
                ui.small(text.as_str());
            }
        });
    }
    if let Some((row, op)) = response.clicked {
        queue.push(AppCommand::SelectRows {
            rows: vec![row],
            op,
        });
    }
    if let Some((rows, op)) = response.brushed {
        queue.push(AppCommand::SelectRows { rows, op });
    }
    legend(ui, ws);
}

/// What the map shows, in a few words.
pub fn map_title(ws: &Workspace) -> String {
    match ws.map.epoch {
        Some(epoch) => format!("latents of epoch {}", epoch + 1),
        None if ws.map.is_empty() => "computing the first map…".into(),
        None if ws.map.restored => "the session's last layout".into(),
        None => "raw pixels (PCA-50, UMAP), before training".into(),
    }
}

fn toolbar(ui: &mut egui::Ui, state: &mut AppState, queue: &mut CommandQueue) {
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    let (forms, jobs) = (&mut state.forms, &state.jobs);
    ui.horizontal_wrapped(|ui| {
        state.scatter.toolbar(ui);
        ui.separator();
        let parameters = ws.ensemble.parameters.as_ref();
        let mut mode = ws.map.colour_mode;
        egui::ComboBox::from_id_salt("colour-mode")
            .selected_text(format!("colour: {}", mode.name(parameters)))
            .show_ui(ui, |ui| {
                let mut modes = vec![
                    ColourMode::Label,
                    ColourMode::Manual,
                    ColourMode::Pseudo,
                    ColourMode::Confidence,
                    ColourMode::Cluster,
                    ColourMode::ReconstructionError,
                ];
                modes.extend(
                    (0..parameters.map_or(0, |p| p.names.len())).map(ColourMode::Parameter),
                );
                for m in modes {
                    ui.selectable_value(&mut mode, m, m.name(parameters));
                }
            });
        if mode != ws.map.colour_mode {
            queue.push(AppCommand::SetColourMode(mode));
        }
        ui.separator();
        egui::ComboBox::from_id_salt("cluster-method")
            .selected_text(match forms.cluster_method {
                ClusterMethod::Gmm => "GMM",
                _ => "k-means",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut forms.cluster_method, ClusterMethod::Kmeans, "k-means");
                ui.selectable_value(&mut forms.cluster_method, ClusterMethod::Gmm, "GMM");
            });
        ui.add(
            egui::DragValue::new(&mut forms.cluster_k)
                .range(2..=50)
                .prefix("K = "),
        );
        let clustering = jobs.is_running(JobKind::Cluster);
        let cluster_button = ui
            .add_enabled(
                ws.map.latents.is_some() && !clustering,
                egui::Button::new("Cluster"),
            )
            .on_disabled_hover_text("Needs a map of latents (train first)");
        if cluster_button.clicked() {
            queue.push(AppCommand::Cluster {
                method: forms.cluster_method,
                k: forms.cluster_k,
            });
        }
        if clustering {
            ui.spinner();
            if ui.small_button("cancel").clicked() {
                queue.push(AppCommand::CancelJob(JobKind::Cluster));
            }
        }
        let computing_errors = jobs.is_running(JobKind::ReconstructionErrors);
        let errors_button = ui
            .add_enabled(
                ws.has_checkpoint && !computing_errors,
                egui::Button::new("Reconstruction errors"),
            )
            .on_hover_text("Colour by each member's reconstruction MSE (best checkpoint)");
        if errors_button.clicked() {
            queue.push(AppCommand::ComputeReconstructionErrors);
        }
        if computing_errors {
            job_progress(ui, jobs, JobKind::ReconstructionErrors);
        }
        ui.separator();
        let can_export = !ws.map.is_empty() && !jobs.is_running(JobKind::ExportMap);
        let export = ui
            .add_enabled(can_export, egui::Button::new("Export map"))
            .on_hover_text(
                "PNG + SVG at publication size, the layout as .npy and CSV with ids and labels",
            );
        if export.clicked() {
            queue.push(AppCommand::ExportMap);
        }
        let has_epochs = ws
            .training
            .as_ref()
            .is_some_and(|t| !t.history.epochs.is_empty());
        let animating = jobs.is_running(JobKind::ExportAnimation);
        let animation = ui
            .add_enabled(
                has_epochs && !animating,
                egui::Button::new("Export animation"),
            )
            .on_hover_text(
                "The map over the run's epochs as an animated GIF for slides (coloured by label, \
                 epoch and loss in the caption)",
            );
        if animation.clicked() {
            queue.push(AppCommand::ExportAnimation);
        }
        if animating {
            job_progress(ui, jobs, JobKind::ExportAnimation);
        }
        if ui
            .button("Present [F5]")
            .on_hover_text("The map alone, full window, large legend: for a projector")
            .clicked()
        {
            queue.push(AppCommand::SetPresentation(true));
        }
    });
}

/// A spinner and the running job's share done.
fn job_progress(ui: &mut egui::Ui, jobs: &crate::app::jobs::JobTable, kind: JobKind) {
    ui.spinner();
    if let Some(p) = jobs.progress(kind) {
        ui.label(format!("{:.0} %", p.fraction() * 100.0));
    }
}

/// Text size of the legend and metrics in the working layout.
const LEGEND_TEXT_PX: f32 = 13.0;

fn legend(ui: &mut egui::Ui, ws: &Workspace) {
    legend_sized(ui, ws, LEGEND_TEXT_PX);
}

/// The map's legend (classes with their counts, or a colour scale) and its live metrics, with
/// text of `text_px` (larger for a projector).
pub fn legend_sized(ui: &mut egui::Ui, ws: &Workspace, text_px: f32) {
    let text = |s: String| egui::RichText::new(s).size(text_px);
    let swatch = text_px * 0.8;
    ui.horizontal_wrapped(|ui| match &ws.legend {
        Legend::Classes(classes) => {
            for (name, colour, count) in classes {
                let (rect, _) =
                    ui.allocate_exact_size(egui::vec2(swatch, swatch), egui::Sense::hover());
                ui.painter()
                    .circle_filled(rect.center(), swatch / 2.0, *colour);
                ui.label(text(format!("{name} ({count})")));
            }
        }
        Legend::Continuous { name, min, max } => {
            ui.label(text(format!("{name}: {min:.3}")));
            let (rect, _) =
                ui.allocate_exact_size(egui::vec2(swatch * 12.0, swatch), egui::Sense::hover());
            for i in 0..24 {
                let [r, g, b] = crate::report::viridis(i as f32 / 23.0);
                let x0 = rect.left() + rect.width() * i as f32 / 24.0;
                let cell = egui::Rect::from_min_size(
                    egui::pos2(x0, rect.top()),
                    egui::vec2(rect.width() / 24.0 + 0.5, rect.height()),
                );
                ui.painter()
                    .rect_filled(cell, 0.0, egui::Color32::from_rgb(r, g, b));
            }
            ui.label(text(format!("{max:.3}")));
        }
        Legend::Missing(why) => {
            ui.label(text(why.clone()).weak());
        }
    });
    ui.horizontal(|ui| match &ws.map.metrics {
        Some(m) => {
            ui.label(text(format!(
                "hand-labelled members ({}): silhouette {:.3} · neighbourhood hit (k = 17) {:.3}",
                m.labelled_members, m.silhouette, m.neighbourhood_hit
            )));
        }
        None => {
            ui.label(
                text(
                    "silhouette and neighbourhood hit appear once the map has hand-labelled \
                     members of 2+ classes"
                        .into(),
                )
                .weak(),
            );
        }
    });
}
