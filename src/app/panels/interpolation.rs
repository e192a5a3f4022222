//! Interpolation: two members' latents, N points on the line between them, decoded into a
//! strip of images (does the model's latent space move smoothly between two states?).

use crate::app::SenseApp;
use crate::app::images::to_color_image;
use crate::app::jobs::background::{Job, take_finished};
use crate::app::notifications::Notifications;
use crate::app::panels;
use crate::app::sense_app::Workspace;
use crate::train::{CheckpointChoice, TrainedModel};

pub struct InterpolationState {
    pub a: Option<usize>,
    pub b: Option<usize>,
    pub steps: usize,
    job: Option<Job<Vec<Vec<f32>>>>,
    strip: Vec<egui::TextureHandle>,
}

impl Default for InterpolationState {
    fn default() -> Self {
        Self {
            a: None,
            b: None,
            steps: 8,
            job: None,
            strip: Vec::new(),
        }
    }
}

impl InterpolationState {
    pub fn set_ends(&mut self, a: Option<usize>, b: Option<usize>) {
        self.a = a;
        self.b = b;
        self.strip.clear();
    }

    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// Decoded images in the strip.
    pub fn frames(&self) -> usize {
        self.strip.len()
    }
}

pub fn pump_jobs(ws: &mut Workspace, ctx: &egui::Context, notifications: &mut Notifications) {
    let Some(result) = take_finished(&mut ws.interpolation.job) else {
        return;
    };
    match result {
        Ok(images) => {
            let shape = ws.ensemble.shape();
            // One range for the whole strip, so brightness changes are real.
            let all: Vec<f32> = images.iter().flatten().copied().collect();
            let range = crate::app::images::finite_range(&all);
            ws.interpolation.strip = images
                .iter()
                .enumerate()
                .map(|(i, values)| {
                    ctx.load_texture(
                        format!("interp-{i}"),
                        to_color_image(values, shape, Some(range)),
                        egui::TextureOptions::NEAREST,
                    )
                })
                .collect();
        }
        Err(e) => notifications.error(format!("Interpolation: {e}")),
    }
}

pub fn show(app: &mut SenseApp, ui: &mut egui::Ui) {
    let Some(ws) = app.ws.as_mut() else {
        return;
    };
    let state = &mut ws.interpolation;
    let name = |m: Option<usize>| m.map_or("—".to_string(), |m| ws.ensemble.member_id(m));
    ui.horizontal(|ui| {
        ui.label(format!("A: {}   B: {}", name(state.a), name(state.b)));
        ui.add(egui::DragValue::new(&mut state.steps).range(3..=32).suffix(" steps"));
        let ready = state.a.is_some() && state.b.is_some() && ws.has_checkpoint;
        let go = ui
            .add_enabled(ready && state.job.is_none(), egui::Button::new("Interpolate"))
            .on_disabled_hover_text(
                "Select two members, press 'A / B for interpolation' in the inspector; needs a trained model",
            );
        if go.clicked()
            && let (Some(a), Some(b)) = (state.a, state.b)
        {
            let (ensemble, run_dir, steps) = (ws.ensemble.clone(), app.session.run_dir(), state.steps);
            state.job = Some(Job::spawn("interpolate", move |_| {
                let backend = crate::train::backend::cpu_backend(None);
                let model =
                    TrainedModel::load(&run_dir, ensemble.shape(), CheckpointChoice::Best, &backend)
                        .map_err(|e| e.to_string())?;
                let z = model.encode(&ensemble, &[a, b]).map_err(|e| e.to_string())?;
                let dim = model.latent_dim();
                let (za, zb) = z.split_at(dim);
                let mut path = Vec::with_capacity(steps * dim);
                for i in 0..steps {
                    let t = i as f32 / (steps - 1) as f32;
                    path.extend(za.iter().zip(zb).map(|(x, y)| x + t * (y - x)));
                }
                Ok(model.decode(&path))
            }));
        }
        if state.job.is_some() {
            ui.spinner();
        }
    });
    if state.strip.is_empty() {
        ui.weak("The decoded strip from A to B appears here.");
        return;
    }
    let side = (ui.available_width() / state.strip.len() as f32 - 4.0).clamp(32.0, 160.0);
    ui.horizontal(|ui| {
        for (i, texture) in state.strip.iter().enumerate() {
            ui.add(panels::image_of(texture, side))
                .on_hover_text(format!(
                    "t = {:.2}",
                    i as f32 / (state.strip.len() - 1) as f32
                ));
        }
    });
}
