//! A minimal anti-aliased rasteriser for the procedural samples.
//!
//! Written here rather than taken from a crate: the samples paint a handful of signed-distance
//! shapes into one small `f32` plane per member, thousands of times per training epoch.
//! Drawing crates (tiny-skia, imageproc) work on RGBA `u8` pixmaps with per-path setup that
//! would cost more than the whole member, and none blends shades in `f32`.
//!
//! Coordinates are in pixels with pixel `(x, y)` centred at `(x, y)`, y pointing down.

use std::ops::{Add, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct V2 {
    pub x: f32,
    pub y: f32,
}

pub const fn v2(x: f32, y: f32) -> V2 {
    V2 { x, y }
}

impl V2 {
    pub fn dot(self, other: V2) -> f32 {
        self.x * other.x + self.y * other.y
    }

    pub fn len(self) -> f32 {
        self.dot(self).sqrt()
    }

    /// Unit vector at `angle_rad` from +x (towards +y, i.e. clockwise on screen).
    pub fn from_angle(angle_rad: f32) -> V2 {
        let (sin, cos) = angle_rad.sin_cos();
        v2(cos, sin)
    }

    /// This vector turned a quarter towards +y.
    pub fn perp(self) -> V2 {
        v2(-self.y, self.x)
    }
}

impl Add for V2 {
    type Output = V2;
    fn add(self, o: V2) -> V2 {
        v2(self.x + o.x, self.y + o.y)
    }
}

impl Sub for V2 {
    type Output = V2;
    fn sub(self, o: V2) -> V2 {
        v2(self.x - o.x, self.y - o.y)
    }
}

impl Mul<f32> for V2 {
    type Output = V2;
    fn mul(self, k: f32) -> V2 {
        v2(self.x * k, self.y * k)
    }
}

impl Neg for V2 {
    type Output = V2;
    fn neg(self) -> V2 {
        v2(-self.x, -self.y)
    }
}

/// Signed distance to a disc (negative inside).
pub fn sd_disc(p: V2, centre: V2, radius: f32) -> f32 {
    (p - centre).len() - radius
}

/// Approximate signed distance to an axis-aligned ellipse; exact on the boundary's normal
/// direction to first order, which is all one pixel of anti-aliasing needs.
pub fn sd_ellipse(p: V2, centre: V2, radii: V2) -> f32 {
    let q = p - centre;
    let k0 = v2(q.x / radii.x, q.y / radii.y).len();
    let k1 = v2(q.x / (radii.x * radii.x), q.y / (radii.y * radii.y)).len();
    if k1 < 1e-6 {
        return -radii.x.min(radii.y);
    }
    k0 * (k0 - 1.0) / k1
}

/// Signed distance to a segment `a`–`b` thickened by a radius that goes linearly from
/// `radius_a` to `radius_b` (a tapered capsule; approximate where the taper is steep).
pub fn sd_capsule(p: V2, a: V2, b: V2, radius_a: f32, radius_b: f32) -> f32 {
    let pa = p - a;
    let ba = b - a;
    let h = (pa.dot(ba) / ba.dot(ba).max(1e-6)).clamp(0.0, 1.0);
    (pa - ba * h).len() - (radius_a + (radius_b - radius_a) * h)
}

/// Exact signed distance to a simple polygon (after Inigo Quilez's `sdPolygon`).
pub fn sd_polygon(p: V2, vertices: &[V2]) -> f32 {
    let Some(&first) = vertices.first() else {
        return f32::INFINITY;
    };
    let mut dist_sq = (p - first).dot(p - first);
    let mut sign = 1.0;
    let mut j = vertices.len() - 1;
    for i in 0..vertices.len() {
        let (vi, vj) = (vertices[i], vertices[j]);
        let e = vj - vi;
        let w = p - vi;
        let b = w - e * (w.dot(e) / e.dot(e).max(1e-12)).clamp(0.0, 1.0);
        dist_sq = dist_sq.min(b.dot(b));
        let c = [p.y >= vi.y, p.y < vj.y, e.x * w.y > e.y * w.x];
        if c.iter().all(|&v| v) || c.iter().all(|&v| !v) {
            sign = -sign;
        }
        j = i;
    }
    sign * dist_sq.sqrt()
}

/// Axis-aligned pixel box, inclusive of `min`, exclusive of `max`.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min: V2,
    pub max: V2,
}

impl Bounds {
    /// The box around `centre` reaching `radius` each way.
    pub fn around(centre: V2, radius: f32) -> Self {
        Self {
            min: centre - v2(radius, radius),
            max: centre + v2(radius, radius),
        }
    }

    /// The box spanning a set of points, grown by `margin`.
    pub fn of_points(points: &[V2], margin: f32) -> Self {
        let mut min = v2(f32::INFINITY, f32::INFINITY);
        let mut max = v2(f32::NEG_INFINITY, f32::NEG_INFINITY);
        for p in points {
            min = v2(min.x.min(p.x), min.y.min(p.y));
            max = v2(max.x.max(p.x), max.y.max(p.y));
        }
        Self {
            min: min - v2(margin, margin),
            max: max + v2(margin, margin),
        }
    }
}

/// One `f32` plane being painted; borrows the member's output buffer so rendering allocates
/// nothing but the blur's scratch row.
pub struct Canvas<'a> {
    pub width: usize,
    pub height: usize,
    pub pixels: &'a mut [f32],
}

impl<'a> Canvas<'a> {
    pub fn new(width: usize, height: usize, pixels: &'a mut [f32]) -> Self {
        assert_eq!(pixels.len(), width * height, "canvas buffer size");
        Self {
            width,
            height,
            pixels,
        }
    }

    pub fn fill(&mut self, value: f32) {
        self.pixels.fill(value);
    }

    /// Calls `f(x, y, pixel)` for every pixel whose centre lies within half a pixel of
    /// `bounds` (clipped to the canvas): the only pixels an anti-aliased shape inside
    /// `bounds` can cover.
    fn for_each_in(&mut self, bounds: Bounds, mut f: impl FnMut(f32, f32, &mut f32)) {
        let x0 = (bounds.min.x - 0.5).ceil().max(0.0) as usize;
        let y0 = (bounds.min.y - 0.5).ceil().max(0.0) as usize;
        let x1 = ((bounds.max.x + 0.5).floor() + 1.0).max(0.0) as usize;
        let y1 = ((bounds.max.y + 0.5).floor() + 1.0).max(0.0) as usize;
        for y in y0..y1.min(self.height) {
            let row = &mut self.pixels[y * self.width..(y + 1) * self.width];
            for (x, pixel) in row.iter_mut().enumerate().take(x1).skip(x0) {
                f(x as f32, y as f32, pixel);
            }
        }
    }

    /// Paints `shade` over the shape with signed distance `sdf` (negative inside): each pixel
    /// moves towards `shade` by its coverage, with one pixel of anti-aliasing.
    pub fn paint(&mut self, bounds: Bounds, shade: f32, sdf: impl Fn(V2) -> f32) {
        self.for_each_in(bounds, |x, y, pixel| {
            let coverage = coverage(sdf(v2(x, y)));
            if coverage > 0.0 {
                *pixel += (shade - *pixel) * coverage;
            }
        });
    }

    /// Raises pixels to the shape's coverage (union of shapes painted into a mask).
    pub fn paint_max(&mut self, bounds: Bounds, sdf: impl Fn(V2) -> f32) {
        self.for_each_in(bounds, |x, y, pixel| {
            *pixel = pixel.max(coverage(sdf(v2(x, y))));
        });
    }

    /// Separable Gaussian blur with standard deviation `sigma_px`; edges are clamped.
    pub fn blur(&mut self, sigma_px: f32) {
        if sigma_px < 0.1 {
            return;
        }
        let radius = (3.0 * sigma_px).ceil() as usize;
        let kernel: Vec<f32> = {
            let raw: Vec<f32> = (0..=2 * radius)
                .map(|i| {
                    let d = i as f32 - radius as f32;
                    (-d * d / (2.0 * sigma_px * sigma_px)).exp()
                })
                .collect();
            let sum: f32 = raw.iter().sum();
            raw.iter().map(|k| k / sum).collect()
        };
        let (w, h) = (self.width, self.height);
        let mut scratch = vec![0.0f32; w.max(h) + 2 * radius];
        // Rows: pad the row into scratch with clamped edges, then convolve back.
        for y in 0..h {
            let row = &mut self.pixels[y * w..(y + 1) * w];
            pad_clamped(row.iter().copied(), w, radius, &mut scratch);
            for (x, out) in row.iter_mut().enumerate() {
                *out = dot(&kernel, &scratch[x..x + kernel.len()]);
            }
        }
        // Columns: same, striding through the plane.
        for x in 0..w {
            let column = (0..h).map(|y| self.pixels[y * w + x]);
            pad_clamped(column, h, radius, &mut scratch);
            for y in 0..h {
                self.pixels[y * w + x] = dot(&kernel, &scratch[y..y + kernel.len()]);
            }
        }
    }
}

/// Fraction of a pixel covered by a shape whose edge is `signed_distance` away.
pub fn coverage(signed_distance: f32) -> f32 {
    (0.5 - signed_distance).clamp(0.0, 1.0)
}

fn pad_clamped(values: impl Iterator<Item = f32>, len: usize, radius: usize, out: &mut [f32]) {
    for (i, v) in values.enumerate() {
        out[radius + i] = v;
    }
    let (first, last) = (out[radius], out[radius + len - 1]);
    out[..radius].fill(first);
    out[radius + len..len + 2 * radius].fill(last);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_sign_and_distance() {
        let square = [v2(0.0, 0.0), v2(10.0, 0.0), v2(10.0, 10.0), v2(0.0, 10.0)];
        assert!((sd_polygon(v2(5.0, 5.0), &square) + 5.0).abs() < 1e-5);
        assert!((sd_polygon(v2(13.0, 5.0), &square) - 3.0).abs() < 1e-5);
    }

    #[test]
    fn ellipse_boundary_is_zero() {
        let d = sd_ellipse(v2(13.0, 2.0), v2(3.0, 2.0), v2(10.0, 4.0));
        assert!(d.abs() < 1e-4, "{d}");
        assert!(sd_ellipse(v2(3.0, 2.0), v2(3.0, 2.0), v2(10.0, 4.0)) < 0.0);
    }

    #[test]
    fn blur_preserves_mass_and_spreads() {
        let mut pixels = vec![0.0f32; 21 * 21];
        pixels[10 * 21 + 10] = 1.0;
        let mut canvas = Canvas::new(21, 21, &mut pixels);
        canvas.blur(1.5);
        let total: f32 = pixels.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        assert!(pixels[10 * 21 + 10] < 0.2 && pixels[10 * 21 + 12] > 0.01);
    }

    #[test]
    fn paint_covers_disc_area() {
        let mut pixels = vec![0.0f32; 40 * 40];
        let mut canvas = Canvas::new(40, 40, &mut pixels);
        let c = v2(20.0, 20.0);
        canvas.paint(Bounds::around(c, 10.0), 1.0, |p| sd_disc(p, c, 10.0));
        let area: f32 = pixels.iter().sum();
        let expected = std::f32::consts::PI * 100.0;
        assert!(
            (area - expected).abs() < 0.02 * expected,
            "{area} vs {expected}"
        );
    }
}
