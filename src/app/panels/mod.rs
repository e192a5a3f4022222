//! The app's views. Each is a `show(ui, state, queue)` function: it draws the state, edits
//! only its own form fields, and pushes [`AppCommand`](crate::app::commands::AppCommand)s
//! for everything else; no view starts a thread or touches a worker.

pub mod dataset;
pub mod inspector;
pub mod interpolation;
pub mod keys;
pub mod latent_map;
pub mod loss_curves;
pub mod presentation;
pub mod reconstructions;
pub mod top_bar;
pub mod training;

/// A square image of `side` points for a texture.
pub(crate) fn image_of(texture: &egui::TextureHandle, side: f32) -> egui::Image<'static> {
    egui::Image::new(egui::load::SizedTexture::new(texture.id(), [side, side]))
}

/// A dataset spec's short name: a path's file name, else the spec.
pub(crate) fn dataset_name(spec: &str) -> String {
    std::path::Path::new(spec)
        .file_name()
        .map_or(spec.to_string(), |n| n.to_string_lossy().into_owned())
}
