//! The top bar: the dataset, the compute backend, the map renderer, and saving the session.

use crate::app::commands::{AppCommand, CommandQueue};
use crate::app::scatter::ScatterBackend;
use crate::app::state::AppState;

pub fn show(ui: &mut egui::Ui, state: &AppState, queue: &mut CommandQueue) {
    ui.horizontal(|ui| {
        ui.strong("SENSE Explorer");
        ui.separator();
        let spec = &state.session.file.dataset;
        ui.label(format!("dataset: {}", super::dataset_name(spec)))
            .on_hover_text(spec);
        ui.separator();
        let training_backend = state
            .ws
            .as_ref()
            .and_then(|ws| ws.training.as_ref())
            .and_then(|t| t.backend.clone());
        ui.label(format!(
            "compute: {}",
            training_backend
                .as_deref()
                .unwrap_or(&state.compute_backend)
        ));
        ui.separator();
        ui.label(match state.scatter_backend {
            ScatterBackend::Gpu => "map: GPU (wgpu)",
            ScatterBackend::Cpu => "map: software",
        });
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui
                .button("Follow a run…")
                .on_hover_text(
                    "Watch a run another process trains (sense train, a Slurm sweep cell) \
                     on a filesystem this machine mounts",
                )
                .clicked()
            {
                queue.push(AppCommand::PickRunToFollow);
            }
            if ui
                .button("Save session")
                .on_hover_text(state.session.dir.display().to_string())
                .clicked()
            {
                queue.push(AppCommand::SaveSession);
            }
        });
    });
}
