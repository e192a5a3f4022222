//! Member pixels (data units, CHW planes) as egui images: each image stretched to its own
//! value range (scientific data has no fixed range), error maps in viridis, and a cache of
//! thumbnail textures so scrolling thousands of members uploads each one once.

use std::collections::HashMap;

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use crate::data::{Ensemble, Shape};
use crate::train::Reconstruction;

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
    ) -> crate::error::DataResult<TextureHandle> {
        if let Some(texture) = self.textures.get(&member) {
            return Ok(texture.clone());
        }
        let shape = ensemble.shape();
        let mut values = vec![0.0f32; shape.len()];
        ensemble.source.read_f32(member, &mut values)?;
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

/// The run's latest reconstructions of fixed validation members as textures: original,
/// reconstruction and error map per member, uploaded once per epoch.
#[derive(Default)]
pub struct ReconstructionTextures {
    pub epoch: Option<usize>,
    /// (member id, [original, reconstruction, |error|]).
    pub rows: Vec<(String, [TextureHandle; 3])>,
}

impl ReconstructionTextures {
    /// Uploads `latest` (epoch, reconstructions) if it is new.
    pub fn refresh(&mut self, ctx: &egui::Context, latest: Option<&(usize, Vec<Reconstruction>)>) {
        let Some((epoch, images)) = latest else {
            return;
        };
        if self.epoch == Some(*epoch) {
            return;
        }
        self.epoch = Some(*epoch);
        self.rows = images
            .iter()
            .map(|r| {
                let [rec, err] = reconstruction_textures(ctx, r, "recon");
                let range = finite_range(&r.original);
                let orig = ctx.load_texture(
                    format!("recon-{}-orig", r.member),
                    to_color_image(&r.original, shape_of(r), Some(range)),
                    TextureOptions::NEAREST,
                );
                (r.id.clone(), [orig, rec, err])
            })
            .collect();
    }
}

fn shape_of(r: &Reconstruction) -> Shape {
    Shape {
        channels: r.shape[0],
        height: r.shape[1],
        width: r.shape[2],
    }
}

/// Reconstruction and |error| map of one member, on the original's range so they compare
/// (the error map runs from 0 to half of it).
pub fn reconstruction_textures(
    ctx: &egui::Context,
    r: &Reconstruction,
    prefix: &str,
) -> [TextureHandle; 2] {
    let shape = shape_of(r);
    let range = finite_range(&r.original);
    let load = |name: &str, image| {
        ctx.load_texture(
            format!("{prefix}-{}-{name}", r.member),
            image,
            TextureOptions::NEAREST,
        )
    };
    let rec = load("rec", to_color_image(&r.reconstruction, shape, Some(range)));
    let err = load(
        "err",
        error_image(
            &r.original,
            &r.reconstruction,
            shape,
            (range.1 - range.0) * 0.5,
        ),
    );
    [rec, err]
}

/// Decoded images as a strip of textures on one range, so brightness changes are real.
pub fn strip_textures(
    ctx: &egui::Context,
    images: &[Vec<f32>],
    shape: Shape,
) -> Vec<TextureHandle> {
    let all: Vec<f32> = images.iter().flatten().copied().collect();
    let range = finite_range(&all);
    images
        .iter()
        .enumerate()
        .map(|(i, values)| {
            ctx.load_texture(
                format!("interp-{i}"),
                to_color_image(values, shape, Some(range)),
                TextureOptions::NEAREST,
            )
        })
        .collect()
}
