//! The app's panels. Each is a `show(app, ui)` function plus the little state it keeps;
//! work they start goes to the jobs, never runs here.

pub mod dataset;
pub mod inspector;
pub mod interpolation;
pub mod latent_map;
pub mod loss_curves;
pub mod reconstructions;
pub mod training;

/// A square image of `side` points for a texture.
pub(crate) fn image_of(texture: &egui::TextureHandle, side: f32) -> egui::Image<'static> {
    egui::Image::new(egui::load::SizedTexture::new(texture.id(), [side, side]))
}
