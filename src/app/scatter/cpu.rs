//! Software rendering of the scatter: every point is splatted as an anti-aliased disc into one
//! RGBA image (premultiplied, like egui's `Color32`), which the widget shows as one texture.
//! Used with the glow renderer on software GL, where one shape per point costs far too much.

use egui::Color32;
use rayon::prelude::*;

/// Sub-pixel positions per axis for which a disc stamp is precomputed.
const SUBPIXEL_STEPS: usize = 4;
/// Image rows per band: 32 rows of a 1280 px plot are 160 KB, well inside a core's L2.
const BAND_ROWS: usize = 32;

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
    let stamps = Stamps::new(params.radius_px);
    let placed = place(params, from, to, colours.len(), stamps.reach);

    // Rows are split into bands small enough to stay in a core's cache (points land in random
    // order, so one shared 4 MB image would miss the cache at almost every point). Points are
    // binned to the bands they touch, in order, so overlaps blend as on the GPU: later on top.
    let band_rows = BAND_ROWS.min(height);
    let bins = bin_by_band(&placed, stamps.reach, band_rows, height);
    pixels
        .par_chunks_mut(band_rows * width)
        .enumerate()
        .for_each(|(band, rows)| {
            let top = (band * band_rows) as i32;
            let bottom = top + (rows.len() / width) as i32;
            for &i in bins.band(band) {
                let colour = lanes(u32::from_le_bytes(colours[i as usize].to_array()));
                stamps.draw(rows, width, top, bottom, placed[i as usize], colour);
            }
        });
    pixels
}

/// Where a point lands: the pixel holding its centre and the stamp for its sub-pixel offset.
#[derive(Debug, Clone, Copy)]
struct Placed {
    x: i32,
    y: i32,
    stamp: u32,
}

/// Marks a point whose disc misses the image (or whose position is not finite).
const OFF_IMAGE: Placed = Placed {
    x: 0,
    y: i32::MIN,
    stamp: 0,
};

/// Added before truncating so `as i32` floors: cheaper than `f32::floor`, a libm call on
/// baseline x86-64. Coordinates are range-checked to be above `-FLOOR_OFFSET` first.
const FLOOR_OFFSET: f32 = 4096.0;

/// Places every point (interpolated between `from` and `to` while animating) in the image.
fn place(
    params: &SplatParams,
    from: &[[f32; 2]],
    to: &[[f32; 2]],
    count: usize,
    reach: i32,
) -> Vec<Placed> {
    let [width, height] = params.size_px.map(|n| n as f32);
    let half = [width * 0.5, height * 0.5];
    let (c, s, t) = (params.center, params.px_per_unit, params.t);
    let count = count.min(from.len()).min(to.len());
    let moving = t < 1.0 && !std::ptr::eq(from, to);
    let margin = reach as f32 + 1.0;
    let floor = |v: f32| (v + FLOOR_OFFSET) as i32 - FLOOR_OFFSET as i32;
    let sub =
        |fraction: f32| ((fraction * SUBPIXEL_STEPS as f32) as u32).min(SUBPIXEL_STEPS as u32 - 1);
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
            // Continuous image pixels: pixel `i` spans `[i, i + 1)`, image y points down.
            let x = half[0] + (p[0] - c[0]) * s;
            let y = half[1] - (p[1] - c[1]) * s;
            if !(x > -margin && x < width + margin && y > -margin && y < height + margin) {
                return OFF_IMAGE; // also NaN
            }
            let (px, py) = (floor(x), floor(y));
            // A fraction a hair below 0 (rounding in `floor`) truncates to stamp 0 as it should.
            let stamp = sub(y - py as f32) * SUBPIXEL_STEPS as u32 + sub(x - px as f32);
            Placed {
                x: px,
                y: py,
                stamp,
            }
        })
        .collect()
}

/// Point indices grouped by the row bands their disc touches (compressed rows).
struct Bins {
    start: Vec<u32>,
    points: Vec<u32>,
}

impl Bins {
    fn band(&self, band: usize) -> &[u32] {
        &self.points[self.start[band] as usize..self.start[band + 1] as usize]
    }
}

fn bin_by_band(placed: &[Placed], reach: i32, band_rows: usize, height: usize) -> Bins {
    let bands = height.div_ceil(band_rows);
    let span = |p: &Placed| -> Option<std::ops::RangeInclusive<usize>> {
        if p.y == i32::MIN || p.y + reach < 0 || p.y - reach >= height as i32 {
            return None;
        }
        let first_row = (p.y - reach).max(0) as usize;
        let last_row = ((p.y + reach) as usize).min(height - 1);
        Some(first_row / band_rows..=last_row / band_rows)
    };
    let mut start = vec![0u32; bands + 1];
    for bands in placed.iter().filter_map(span) {
        for band in bands {
            start[band + 1] += 1;
        }
    }
    for band in 0..bands {
        start[band + 1] += start[band];
    }
    let mut points = vec![0u32; start[bands] as usize];
    let mut next = start.clone();
    for (i, bands) in placed
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, span(p)?)))
    {
        for band in bands {
            points[next[band] as usize] = i as u32;
            next[band] += 1;
        }
    }
    Bins { start, points }
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

    /// Blends one point (colour in [`lanes`] form) into `rows`, the image rows `top..bottom`.
    #[inline]
    fn draw(
        &self,
        rows: &mut [Color32],
        width: usize,
        top: i32,
        bottom: i32,
        at: Placed,
        colour: u64,
    ) {
        let stamp =
            &self.coverage[at.stamp as usize * self.side * self.side..][..self.side * self.side];
        let y0 = (at.y - self.reach).max(top);
        let y1 = (at.y + self.reach).min(bottom - 1);
        let x0 = (at.x - self.reach).max(0);
        let x1 = (at.x + self.reach).min(width as i32 - 1);
        for iy in y0..=y1 {
            let stamp_row = &stamp[((iy - at.y + self.reach) as usize) * self.side..][..self.side];
            let row = &mut rows[(iy - top) as usize * width..][..width];
            for ix in x0..=x1 {
                let cover = stamp_row[(ix - at.x + self.reach) as usize];
                if cover != 0 {
                    blend_over(&mut row[ix as usize], colour, cover);
                }
            }
        }
    }
}

// Colours are blended four channels at once ("SWAR"): each 8-bit channel widened to a
// 16-bit lane of a u64, so one multiply scales all four without carries between lanes.
const LOW_BYTES: u64 = 0x00FF_00FF_00FF_00FF;
const HIGH_BYTES: u64 = 0xFF00_FF00_FF00_FF00;

/// RGBA bytes (little-endian u32) to four 16-bit lanes.
#[inline]
fn lanes(rgba: u32) -> u64 {
    let c = u64::from(rgba);
    (c & 0xFF) | ((c & 0xFF00) << 8) | ((c & 0xFF_0000) << 16) | ((c & 0xFF00_0000) << 24)
}

#[inline]
fn unlanes(l: u64) -> u32 {
    ((l & 0xFF) | ((l >> 8) & 0xFF00) | ((l >> 16) & 0xFF_0000) | ((l >> 24) & 0xFF00_0000)) as u32
}

/// Every lane times `factor` / 255, rounded (exact for all 8-bit inputs).
#[inline]
fn lanes_mul_255(l: u64, factor: u64) -> u64 {
    let t = l * factor + 0x0080_0080_0080_0080;
    ((t + ((t >> 8) & LOW_BYTES)) >> 8) & LOW_BYTES
}

/// Premultiplied "over": the source colour scaled by its coverage, on top of `dst`.
#[inline]
fn blend_over(dst: &mut Color32, src: u64, cover: u8) {
    let s = lanes_mul_255(src, u64::from(cover));
    let keep = 255 - (s >> 48);
    let d = lanes(u32::from_le_bytes(dst.to_array()));
    let mut out = s + lanes_mul_255(d, keep);
    // Only a colour brighter than its alpha (additive, not valid premultiplied) gets here.
    if out & HIGH_BYTES != 0 {
        out = (0..4).fold(0, |acc, lane| {
            acc | ((out >> (16 * lane)) & 0xFFFF).min(255) << (16 * lane)
        });
    }
    let [r, g, b, a] = unlanes(out).to_le_bytes();
    *dst = Color32::from_rgba_premultiplied(r, g, b, a);
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

    #[test]
    fn discs_across_band_borders_are_whole() {
        // 100 rows make bands of 32 rows; put discs right on the borders and inside one band.
        let p = SplatParams {
            size_px: [40, 100],
            center: [0.0, 0.0],
            px_per_unit: 1.0,
            radius_px: 3.0,
            t: 1.0,
        };
        let disc_area = |positions: &[[f32; 2]]| -> f32 {
            let pixels = splat(
                &p,
                positions,
                positions,
                &vec![Color32::WHITE; positions.len()],
            );
            pixels.iter().map(|c| f32::from(c.a()) / 255.0).sum()
        };
        let inside = disc_area(&[[0.0, 34.0]]); // rows 16..=22 of the image: band 0
        assert!(
            (inside - std::f32::consts::PI * 9.0).abs() < 2.0,
            "{inside}"
        );
        for y in [18.0, 18.5, 17.5, -14.0] {
            // Image rows 32, 31.5, 32.5 and 64: each disc straddles a band border.
            let area = disc_area(&[[0.0, y]]);
            assert!((area - inside).abs() < 0.5, "y {y}: {area} vs {inside}");
        }
    }

    #[test]
    fn lane_blend_matches_per_channel_arithmetic() {
        let mul_255 = |a: u8, b: u8| ((f32::from(a) * f32::from(b)) / 255.0).round() as u8;
        let samples = [0u8, 1, 2, 77, 127, 128, 200, 254, 255];
        for cover in 0..=255u8 {
            for &d in &samples {
                for &c in &samples {
                    // Valid premultiplied source (c <= a) and an "additive" one (c > a).
                    for a in [c, 255, c / 2] {
                        let src = [c, c / 3, 255 - c, a];
                        let dst = [d, 255 - d, d / 2, d.max(200)];
                        let s = src.map(|v| mul_255(v, cover));
                        let expected = std::array::from_fn::<u8, 4, _>(|k| {
                            s[k].saturating_add(mul_255(dst[k], 255 - s[3]))
                        });
                        let mut out =
                            Color32::from_rgba_premultiplied(dst[0], dst[1], dst[2], dst[3]);
                        blend_over(&mut out, lanes(u32::from_le_bytes(src)), cover);
                        assert_eq!(
                            out.to_array(),
                            expected,
                            "src {src:?} dst {dst:?} cover {cover}"
                        );
                    }
                }
            }
        }
    }
}
