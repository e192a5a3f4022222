//! Interpolation: two members' latents, N points on the line between them, decoded into a
//! strip of images (does the model's latent space move smoothly between two states?).

use crate::app::commands::{AppCommand, CommandQueue};
use crate::app::jobs::JobKind;
use crate::app::panels;
use crate::app::state::AppState;

pub fn show(ui: &mut egui::Ui, state: &mut AppState, queue: &mut CommandQueue) {
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    let ends = &ws.interpolation;
    let name = |m: Option<usize>| m.map_or("—".to_string(), |m| ws.ensemble.member_id(m));
    let steps = &mut state.forms.interpolation_steps;
    let running = state.jobs.is_running(JobKind::Interpolate);
    ui.horizontal(|ui| {
        ui.label(format!("A: {}   B: {}", name(ends.a), name(ends.b)));
        ui.add(egui::DragValue::new(steps).range(3..=32).suffix(" steps"));
        let ready = ends.a.is_some() && ends.b.is_some() && ws.has_checkpoint;
        let go = ui
            .add_enabled(ready && !running, egui::Button::new("Interpolate"))
            .on_disabled_hover_text(
                "Select two members, press 'A / B for interpolation' in the inspector; needs a trained model",
            );
        if go.clicked() {
            queue.push(AppCommand::Interpolate { steps: *steps });
        }
        if running {
            ui.spinner();
        }
    });
    let strip = &ends.strip;
    if strip.is_empty() {
        ui.weak("The decoded strip from A to B appears here.");
        return;
    }
    let side = (ui.available_width() / strip.len() as f32 - 4.0).clamp(32.0, 160.0);
    ui.horizontal(|ui| {
        for (i, texture) in strip.iter().enumerate() {
            ui.add(panels::image_of(texture, side))
                .on_hover_text(format!("t = {:.2}", i as f32 / (strip.len() - 1) as f32));
        }
    });
}
