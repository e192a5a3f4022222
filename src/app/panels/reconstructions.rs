//! Reconstructions: fixed validation members, original / reconstruction / error map, refreshed
//! every epoch.

use crate::app::SenseApp;
use crate::app::images::{error_image, finite_range, to_color_image};
use crate::app::jobs::training::TrainingRun;
use crate::data::Shape;

#[derive(Default)]
pub struct ReconstructionTextures {
    epoch: Option<usize>,
    rows: Vec<(String, [egui::TextureHandle; 3])>,
}

impl ReconstructionTextures {
    /// Uploads the run's latest reconstructions if they are new.
    pub fn refresh(&mut self, ctx: &egui::Context, run: &TrainingRun) {
        let Some((epoch, images)) = &run.history.reconstructions else {
            return;
        };
        if self.epoch == Some(*epoch) {
            return;
        }
        self.epoch = Some(*epoch);
        self.rows = images
            .iter()
            .map(|r| {
                let shape = Shape {
                    channels: r.shape[0],
                    height: r.shape[1],
                    width: r.shape[2],
                };
                // Original and reconstruction on the original's range, so they compare.
                let range = finite_range(&r.original);
                let max_error = range.1 - range.0;
                let texture = |name: &str, image| {
                    ctx.load_texture(
                        format!("recon-{}-{name}", r.member),
                        image,
                        egui::TextureOptions::NEAREST,
                    )
                };
                (
                    r.id.clone(),
                    [
                        texture("orig", to_color_image(&r.original, shape, Some(range))),
                        texture("rec", to_color_image(&r.reconstruction, shape, Some(range))),
                        texture(
                            "err",
                            error_image(&r.original, &r.reconstruction, shape, max_error * 0.5),
                        ),
                    ],
                )
            })
            .collect();
    }
}

pub fn show(app: &mut SenseApp, ui: &mut egui::Ui) {
    let Some(ws) = app.ws.as_ref() else {
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
