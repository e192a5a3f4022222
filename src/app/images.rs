//! Member pixels (data units, CHW planes) as egui images: each image stretched to its own
//! value range (scientific data has no fixed range), error maps in viridis, and a cache of
//! thumbnail textures so scrolling thousands of members uploads each one once.

use std::collections::HashMap;

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use crate::data::{Ensemble, Shape};

/// `values` (CHW) → an image: one channel gray, three channels RGB (others: the first
/// channel). Stretched to `range` when given, else to the image's own finite min..max;
/// non-finite pixels are magenta so they are never mistaken for data.
pub fn to_color_image(values: &[f32], shape: Shape, range: Option<(f32, f32)>) -> ColorImage {
    let plane = shape.height * shape.width;
    let (lo, hi) = range.unwrap_or_else(|| finite_range(values));
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let byte = |v: f32| ((v - lo) * scale).clamp(0.0, 255.0) as u8;
    let pixels = (0..plane)
        .map(|i| {
            let at = |c: usize| values.get(c * plane + i).copied().unwrap_or(f32::NAN);
            if shape.channels == 3 {
                let (r, g, b) = (at(0), at(1), at(2));
                if !(r.is_finite() && g.is_finite() && b.is_finite()) {
                    return Color32::from_rgb(255, 0, 255);
                }
                Color32::from_rgb(byte(r), byte(g), byte(b))
            } else {
                let v = at(0);
                match v.is_finite() {
                    true => Color32::from_gray(byte(v)),
                    false => Color32::from_rgb(255, 0, 255),
                }
            }
        })
        .collect();
    ColorImage::new([shape.width, shape.height], pixels)
}

/// |original − reconstruction| averaged over channels, in viridis from 0 to `max`.
pub fn error_image(original: &[f32], reconstruction: &[f32], shape: Shape, max: f32) -> ColorImage {
    let plane = shape.height * shape.width;
    let pixels = (0..plane)
        .map(|i| {
            let error: f32 = (0..shape.channels)
                .map(|c| {
                    let k = c * plane + i;
                    (original.get(k).copied().unwrap_or(0.0)
                        - reconstruction.get(k).copied().unwrap_or(0.0))
                    .abs()
                })
                .sum::<f32>()
                / shape.channels.max(1) as f32;
            let [r, g, b] = crate::report::viridis(if max > 0.0 { error / max } else { 0.0 });
            Color32::from_rgb(r, g, b)
        })
        .collect();
    ColorImage::new([shape.width, shape.height], pixels)
}

pub fn finite_range(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f32, f32)>, &v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
        .unwrap_or((0.0, 1.0))
}

/// Thumbnail textures of ensemble members, uploaded on first use and kept (bounded).
pub struct Thumbnails {
    textures: HashMap<usize, TextureHandle>,
    order: Vec<usize>,
    capacity: usize,
}

impl Thumbnails {
    pub fn new(capacity: usize) -> Self {
        Self {
            textures: HashMap::new(),
            order: Vec::new(),
            capacity,
        }
    }

    /// The member's texture; `None` when its pixels cannot be read (the reason is returned
    /// once as an error for the notifications).
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        ensemble: &Ensemble,
        member: usize,
    ) -> Result<TextureHandle, String> {
        if let Some(texture) = self.textures.get(&member) {
            return Ok(texture.clone());
        }
        let shape = ensemble.shape();
        let mut values = vec![0.0f32; shape.len()];
        ensemble
            .source
            .read_f32(member, &mut values)
            .map_err(|e| e.to_string())?;
        let image = to_color_image(&values, shape, None);
        let texture = ctx.load_texture(format!("member-{member}"), image, TextureOptions::NEAREST);
        if self.order.len() >= self.capacity {
            let oldest = self.order.remove(0);
            self.textures.remove(&oldest);
        }
        self.order.push(member);
        self.textures.insert(member, texture.clone());
        Ok(texture)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_images_stretch_to_their_range_and_flag_nan() {
        let shape = Shape {
            channels: 1,
            height: 1,
            width: 3,
        };
        let image = to_color_image(&[2.0, 4.0, f32::NAN], shape, None);
        assert_eq!(image.pixels[0], Color32::from_gray(0));
        assert_eq!(image.pixels[1], Color32::from_gray(255));
        assert_eq!(image.pixels[2], Color32::from_rgb(255, 0, 255));
    }

    #[test]
    fn error_maps_are_zero_where_reconstruction_is_exact() {
        let shape = Shape {
            channels: 1,
            height: 1,
            width: 2,
        };
        let image = error_image(&[1.0, 1.0], &[1.0, 0.0], shape, 1.0);
        let [r, g, b] = crate::report::viridis(0.0);
        assert_eq!(image.pixels[0], Color32::from_rgb(r, g, b));
        assert_ne!(image.pixels[1], image.pixels[0]);
    }
}
