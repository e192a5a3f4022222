//! Reconstructions: fixed validation members, original / reconstruction / error map, refreshed
//! every epoch.

use crate::app::state::AppState;

pub fn show(ui: &mut egui::Ui, state: &AppState) {
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    let textures = &ws.reconstructions;
    let Some(epoch) = textures.epoch else {
        ui.label("Reconstructions of fixed validation members appear after the first epoch.");
        return;
    };
    ui.label(format!(
        "epoch {} · rows: original, reconstruction, |error| (viridis, 0 to half the range)",
        epoch + 1
    ));
    let side = ((ui.available_height() - 30.0) / 3.0).clamp(32.0, 128.0);
    egui::ScrollArea::horizontal().show(ui, |ui| {
        egui::Grid::new("recon-grid")
            .spacing([4.0, 4.0])
            .show(ui, |ui| {
                for row in 0..3 {
                    for (id, images) in &textures.rows {
                        ui.add(super::image_of(&images[row], side))
                            .on_hover_text(id);
                    }
                    ui.end_row();
                }
            });
    });
}
