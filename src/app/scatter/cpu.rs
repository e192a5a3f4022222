//! Software rendering of the scatter: every point is splatted as an anti-aliased disc into one
//! RGBA image (premultiplied, like egui's `Color32`), which the widget shows as one texture.
//! Used with the glow renderer on software GL, where one shape per point costs far too much.

use egui::Color32;
use rayon::prelude::*;

/// Sub-pixel positions per axis for which a disc stamp is precomputed.
const SUBPIXEL_STEPS: usize = 4;

/// What to splat and where, in image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplatParams {
    pub size_px: [usize; 2],
    /// Data coordinates at the centre of the image.
    pub center: [f32; 2],
    /// Image pixels per data unit (y up in data, down in the image).
    pub px_per_unit: f32,
    pub radius_px: f32,
    /// Animation position between `from` (0) and `to` (1).
    pub t: f32,
}

/// Renders the points over a transparent background, later points on top.
/// `from`, `to` and `colours` have one entry per point (extra entries are ignored).
pub fn splat(
    params: &SplatParams,
    from: &[[f32; 2]],
    to: &[[f32; 2]],
    colours: &[Color32],
) -> Vec<Color32> {
    let [width, height] = params.size_px;
    let mut pixels = vec![Color32::TRANSPARENT; width * height];
    if width == 0 || height == 0 || params.radius_px.is_nan() || params.radius_px <= 0.0 {
        return pixels;
    }
    let projected = project(params, from, to, colours.len());
    let stamps = Stamps::new(params.radius_px);

    // Rows are split into bands that threads fill independently; each band walks all points
    // in order, so overlapping points blend in the same order as on the GPU.
    let bands = (rayon::current_num_threads() * 4).max(1);
    let band_rows = height.div_ceil(bands).max(1);
    pixels
        .par_chunks_mut(band_rows * width)
        .enumerate()
        .for_each(|(band, rows)| {
            let top = (band * band_rows) as i32;
            let bottom = top + (rows.len() / width) as i32;
            for (&[x, y], colour) in projected.iter().zip(colours) {
                if !(x.is_finite() && y.is_finite()) {
                    continue;
                }
                stamps.draw(rows, width, top, bottom, x, y, colour.to_array());
            }
        });
    pixels
}

/// Point centres in continuous image pixels (pixel `i` spans `[i, i + 1)`).
fn project(
    params: &SplatParams,
    from: &[[f32; 2]],
    to: &[[f32; 2]],
    count: usize,
) -> Vec<[f32; 2]> {
    let half = [
        params.size_px[0] as f32 * 0.5,
        params.size_px[1] as f32 * 0.5,
    ];
    let (c, s, t) = (params.center, params.px_per_unit, params.t);
    let count = count.min(from.len()).min(to.len());
    let moving = t < 1.0 && !std::ptr::eq(from, to);
    (0..count)
        .into_par_iter()
        .with_min_len(4096)
        .map(|i| {
            let p = if moving {
                let (a, b) = (from[i], to[i]);
                [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
            } else {
                to[i]
            };
            [half[0] + (p[0] - c[0]) * s, half[1] - (p[1] - c[1]) * s]
        })
        .collect()
}

/// Disc coverage (0–255) for each sub-pixel offset of the centre, over a square of
/// `side × side` pixels centred on the pixel that holds the point centre.
struct Stamps {
    reach: i32,
    side: usize,
    coverage: Vec<u8>,
}

impl Stamps {
    fn new(radius_px: f32) -> Self {
        let reach = (radius_px + 0.5).ceil() as i32;
        let side = (2 * reach + 1) as usize;
        let mut coverage = Vec::with_capacity(SUBPIXEL_STEPS * SUBPIXEL_STEPS * side * side);
        for sy in 0..SUBPIXEL_STEPS {
            for sx in 0..SUBPIXEL_STEPS {
                let offset = |s: usize| (s as f32 + 0.5) / SUBPIXEL_STEPS as f32;
                let (ox, oy) = (offset(sx), offset(sy));
                for ky in -reach..=reach {
                    for kx in -reach..=reach {
                        let d = ((kx as f32 + 0.5 - ox).powi(2) + (ky as f32 + 0.5 - oy).powi(2))
                            .sqrt();
                        // One pixel wide linear edge: the disc's anti-aliasing.
                        let cover = (radius_px + 0.5 - d).clamp(0.0, 1.0);
                        coverage.push((cover * 255.0).round() as u8);
                    }
                }
            }
        }
        Self {
            reach,
            side,
            coverage,
        }
    }

    /// Blends one point into `rows` (image rows `top..bottom`, `width` pixels each).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn draw(
        &self,
        rows: &mut [Color32],
        width: usize,
        top: i32,
        bottom: i32,
        x: f32,
        y: f32,
        colour: [u8; 4],
    ) {
        let (base_x, base_y) = (x.floor(), y.floor());
        // Far outside the image (also guards the casts below).
        if base_y < (top - self.reach) as f32 || base_y >= (bottom + self.reach) as f32 {
            return;
        }
        if base_x < -(self.reach as f32) || base_x >= (width as i32 + self.reach) as f32 {
            return;
        }
        let (px, py) = (base_x as i32, base_y as i32);
        let sub = |f: f32| ((f * SUBPIXEL_STEPS as f32) as usize).min(SUBPIXEL_STEPS - 1);
        let stamp_index = sub(y - base_y) * SUBPIXEL_STEPS + sub(x - base_x);
        let stamp = &self.coverage[stamp_index * self.side * self.side..][..self.side * self.side];
        let y0 = (py - self.reach).max(top);
        let y1 = (py + self.reach).min(bottom - 1);
        let x0 = (px - self.reach).max(0);
        let x1 = (px + self.reach).min(width as i32 - 1);
        for iy in y0..=y1 {
            let stamp_row = &stamp[((iy - py + self.reach) as usize) * self.side..][..self.side];
            let row = &mut rows[(iy - top) as usize * width..][..width];
            for ix in x0..=x1 {
                let cover = stamp_row[(ix - px + self.reach) as usize];
                if cover != 0 {
                    blend_over(&mut row[ix as usize], colour, cover);
                }
            }
        }
    }
}

/// `a * b / 255`, rounded.
#[inline]
fn mul_255(a: u8, b: u8) -> u8 {
    let p = u32::from(a) * u32::from(b) + 128;
    ((p + (p >> 8)) >> 8) as u8
}

/// Premultiplied "over": the source colour scaled by its coverage, on top of `dst`.
#[inline]
fn blend_over(dst: &mut Color32, src: [u8; 4], cover: u8) {
    let s = src.map(|c| mul_255(c, cover));
    let keep = 255 - s[3];
    let d = dst.to_array();
    *dst = Color32::from_rgba_premultiplied(
        s[0].saturating_add(mul_255(d[0], keep)),
        s[1].saturating_add(mul_255(d[1], keep)),
        s[2].saturating_add(mul_255(d[2], keep)),
        s[3].saturating_add(mul_255(d[3], keep)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32) -> SplatParams {
        SplatParams {
            size_px: [64, 48],
            center: [0.0, 0.0],
            px_per_unit: 4.0,
            radius_px: 1.5,
            t,
        }
    }

    fn pixel(pixels: &[Color32], [w, _]: [usize; 2], x: usize, y: usize) -> Color32 {
        pixels[y * w + x]
    }

    /// Coverage-weighted centre of the non-transparent pixels, in pixel-centre coordinates.
    fn centroid(pixels: &[Color32], [w, _]: [usize; 2]) -> [f32; 2] {
        let (mut sum, mut weight) = ([0.0, 0.0], 0.0);
        for (i, p) in pixels.iter().enumerate() {
            let a = f32::from(p.a());
            sum[0] += a * ((i % w) as f32 + 0.5);
            sum[1] += a * ((i / w) as f32 + 0.5);
            weight += a;
        }
        [sum[0] / weight, sum[1] / weight]
    }

    #[test]
    fn point_lands_on_the_right_pixel() {
        let p = params(1.0);
        let positions = [[2.0, -3.0]];
        let pixels = splat(&p, &positions, &positions, &[Color32::RED]);
        // 32 + 2 * 4 = 40 right, 24 + 3 * 4 = 36 down (data y up, image y down).
        assert_eq!(pixel(&pixels, p.size_px, 40, 36), Color32::RED);
        let [cx, cy] = centroid(&pixels, p.size_px);
        assert!(
            (cx - 40.0).abs() < 0.2 && (cy - 36.0).abs() < 0.2,
            "{cx} {cy}"
        );
        // A disc of radius 1.5 px: its area, give or take the anti-aliased edge.
        let covered: f32 = pixels.iter().map(|c| f32::from(c.a()) / 255.0).sum();
        assert!(
            (covered - std::f32::consts::PI * 1.5 * 1.5).abs() < 1.5,
            "{covered}"
        );
        assert_eq!(pixel(&pixels, p.size_px, 44, 36), Color32::TRANSPARENT);
    }

    #[test]
    fn points_outside_the_image_draw_nothing_and_edges_clip() {
        let p = params(1.0);
        let outside = [
            [100.0, 0.0],
            [0.0, -100.0],
            [-8.5, 0.0],
            [f32::NAN, 1.0],
            [1e30, -1e30],
        ];
        let pixels = splat(&p, &outside, &outside, &[Color32::WHITE; 5]);
        assert!(pixels.iter().all(|c| *c == Color32::TRANSPARENT));
        // A point on the corner draws only the quarter disc that is inside.
        let corner = [[-8.0, 6.0]];
        let pixels = splat(&p, &corner, &corner, &[Color32::WHITE]);
        let covered: f32 = pixels.iter().map(|c| f32::from(c.a()) / 255.0).sum();
        assert!(
            covered > 0.5 && covered < 0.5 * std::f32::consts::PI * 1.5 * 1.5,
            "{covered}"
        );
        assert_ne!(pixel(&pixels, p.size_px, 0, 0), Color32::TRANSPARENT);
    }

    #[test]
    fn later_points_are_on_top_and_animation_interpolates() {
        let p = params(1.0);
        let same = [[0.0, 0.0], [0.0, 0.0]];
        let pixels = splat(&p, &same, &same, &[Color32::RED, Color32::BLUE]);
        assert_eq!(pixel(&pixels, p.size_px, 32, 24), Color32::BLUE);
        // Half-transparent on top mixes (premultiplied).
        let half_green = Color32::from_rgba_premultiplied(0, 128, 0, 128);
        let pixels = splat(&p, &same, &same, &[Color32::RED, half_green]);
        let mixed = pixel(&pixels, p.size_px, 32, 24);
        assert_eq!((mixed.r(), mixed.g(), mixed.a()), (127, 128, 255));

        let from = [[-4.0, 0.0]];
        let to = [[4.0, 2.0]];
        let pixels = splat(&params(0.5), &from, &to, &[Color32::WHITE]);
        let [cx, cy] = centroid(&pixels, p.size_px);
        assert!(
            (cx - 32.0).abs() < 0.2 && (cy - 20.0).abs() < 0.2,
            "{cx} {cy}"
        );
    }
}
