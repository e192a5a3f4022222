//! The presentation view (F5): the map alone in the whole window, with a title, a large
//! legend and the live metrics, for a projector. F5 or Esc goes back to work.

use crate::app::commands::{AppCommand, CommandQueue};
use crate::app::panels::latent_map::{legend_sized, map_title};
use crate::app::state::AppState;

/// Text size of the title; the legend is a little smaller.
const TITLE_TEXT_PX: f32 = 30.0;
const LEGEND_TEXT_PX: f32 = 24.0;
/// Points are drawn this much larger than in the working layout.
const PROJECTOR_POINT_SCALE: f32 = 2.0;
/// Room under the map for the legend and the metrics lines.
const FOOTER_PX: f32 = 110.0;

pub fn show(ui: &mut egui::Ui, state: &mut AppState, queue: &mut CommandQueue) {
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    ui.horizontal(|ui| {
        let spec = &state.session.file.dataset;
        // A file or folder by its name; `sample:channels` as it is.
        let dataset = std::path::Path::new(spec)
            .file_name()
            .map_or(spec.clone(), |n| n.to_string_lossy().into_owned());
        let mut title = format!("{dataset} · {}", map_title(ws));
        if let Some(last) = ws.training.as_ref().and_then(|t| t.history.epochs.last()) {
            title.push_str(&format!(" · loss {:.4}", last.train.total));
        }
        ui.label(egui::RichText::new(title).size(TITLE_TEXT_PX).strong());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("Back [F5 / Esc]").clicked() {
                queue.push(AppCommand::SetPresentation(false));
            }
        });
    });
    let map_height = (ui.available_height() - FOOTER_PX).max(120.0);
    let backend = state.scatter_backend;
    // Points as large as the text, for the back of the room; the working size comes back.
    let working_size = state.scatter.point_size_pts();
    state
        .scatter
        .set_point_size_pts(working_size * PROJECTOR_POINT_SCALE);
    let response = ui
        .allocate_ui(egui::vec2(ui.available_width(), map_height), |ui| {
            state.scatter.show(ui, backend)
        })
        .inner;
    state.scatter.set_point_size_pts(working_size);
    state.map_rect = Some(response.response.rect);
    if let Some(ws) = state.ws.as_ref() {
        legend_sized(ui, ws, LEGEND_TEXT_PX);
    }
}
