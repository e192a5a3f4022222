//! `channels`: 50×50 facies maps of subsurface channel structures (sand = bright, shale =
//! dark), like the MCMC snapshots of geological scenarios in the SENSE paper.
//!
//! Channels are sine-generated centrelines around a rotated flow axis, swept by a disc of
//! slowly varying width. The scenarios differ in orientation, sinuosity and density; width, count, phase,
//! contrast and noise vary within every scenario so classes overlap in those nuisances.

use super::procedural::Generator;
use super::raster::{Bounds, Canvas, V2, sd_disc, v2};
use crate::data::Shape;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI, TAU};

const SIZE_PX: usize = 50;

const CLASS_NAMES: [&str; 5] = ["east-west", "diagonal", "meandering", "braided", "lobes"];

pub struct Channels;

impl Generator for Channels {
    fn name(&self) -> &'static str {
        "channels"
    }

    fn shape(&self) -> Shape {
        Shape::new(1, SIZE_PX, SIZE_PX)
    }

    fn class_names(&self) -> &'static [&'static str] {
        &CLASS_NAMES
    }

    fn render(&self, class: u32, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        // First a sand mask in 0..=1, then facies contrast and noise.
        let mut canvas = Canvas::new(SIZE_PX, SIZE_PX, out);
        canvas.fill(0.0);
        match class {
            0 => {
                let angle = rng.random_range(-deg(22.0)..deg(22.0));
                parallel_channels(&mut canvas, rng, angle)
            }
            1 => {
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let angle = sign * FRAC_PI_4 + rng.random_range(-deg(14.0)..deg(14.0));
                parallel_channels(&mut canvas, rng, angle)
            }
            2 => meandering_channels(&mut canvas, rng),
            3 => braided_channels(&mut canvas, rng),
            _ => lobes(&mut canvas, rng),
        }
        let shale = rng.random_range(0.06..0.24);
        let sand = rng.random_range(0.70..0.94);
        let noise_sd = rng.random_range(0.01..0.05);
        for v in out.iter_mut() {
            let noise: f32 = rng.sample(StandardNormal);
            *v = shale + (sand - shale) * *v + noise_sd * noise;
        }
    }
}

fn deg(degrees: f32) -> f32 {
    degrees * PI / 180.0
}

/// One channel: a sine-generated centreline (Langbein & Leopold; Kinoshita's skewed form),
/// whose direction angle relative to the flow axis varies with arc length s as
/// `max_angle·(sin ψ + skew·cos 3ψ − flatness·sin 3ψ)`, ψ = 2πs/wavelength + phase.
/// Large angles give the overhanging loops of real meanders, which a sinusoidal offset cannot.
/// The centreline passes through `offset_px` across the flow axis from the image centre and is
/// swept by a disc of slowly varying half-width.
struct Channel {
    axis_rad: f32,
    offset_px: f32,
    max_angle_rad: f32,
    /// Along the channel, not along the flow axis.
    wavelength_px: f32,
    phase: f32,
    skew: f32,
    flatness: f32,
    half_width_px: f32,
    /// Relative width variation along the channel.
    width_wobble: f32,
    wobble_wavelength_px: f32,
    wobble_phase: f32,
}

/// Arc-length step: 0.7 px keeps the swept edge smooth to ~0.07 px.
const STEP_PX: f32 = 0.7;

impl Channel {
    fn random(
        rng: &mut ChaCha8Rng,
        axis_rad: f32,
        offset_px: f32,
        max_angle_rad: f32,
        wavelength_px: f32,
        half_width_px: f32,
    ) -> Self {
        Self {
            axis_rad,
            offset_px,
            max_angle_rad,
            wavelength_px,
            phase: rng.random_range(0.0..TAU),
            skew: rng.random_range(-0.15..0.15),
            flatness: rng.random_range(0.0..0.15),
            half_width_px,
            width_wobble: rng.random_range(0.0..0.25),
            wobble_wavelength_px: rng.random_range(15.0..40.0),
            wobble_phase: rng.random_range(0.0..TAU),
        }
    }

    /// Direction relative to the flow axis at arc length `s_px`.
    fn angle_at(&self, s_px: f32) -> f32 {
        let psi = TAU * s_px / self.wavelength_px + self.phase;
        self.max_angle_rad
            * (psi.sin() + self.skew * (3.0 * psi).cos() - self.flatness * (3.0 * psi).sin())
    }

    /// Sweeps the channel into the sand mask, tracing downstream and upstream from its
    /// point on the cross-axis through the image centre until it leaves the image.
    fn draw(&self, canvas: &mut Canvas) {
        let along = V2::from_angle(self.axis_rad);
        let across = along.perp();
        let centre = v2(SIZE_PX as f32 - 1.0, SIZE_PX as f32 - 1.0) * 0.5;
        let k_wobble = TAU / self.wobble_wavelength_px;
        // Past this distance along the axis the channel cannot reach the image any more.
        let reach_px = SIZE_PX as f32 * 0.72 + self.half_width_px;
        // Loops progress slowly along the axis; this bounds the walk in any case.
        let max_steps = (12.0 * SIZE_PX as f32 / STEP_PX) as usize;
        let margin_px = self.half_width_px * 1.3 + 1.0;
        for direction in [1.0f32, -1.0] {
            let (mut u, mut v, mut s) = (0.0f32, self.offset_px, 0.0f32);
            for _ in 0..max_steps {
                if u.abs() > reach_px {
                    break;
                }
                let p = centre + along * u + across * v;
                let inside = p.x > -margin_px
                    && p.y > -margin_px
                    && p.x < SIZE_PX as f32 + margin_px
                    && p.y < SIZE_PX as f32 + margin_px;
                if inside {
                    let r = self.half_width_px
                        * (1.0 + self.width_wobble * (k_wobble * s + self.wobble_phase).sin());
                    canvas.paint_max(Bounds::around(p, r), |q| sd_disc(q, p, r));
                }
                let (sin, cos) = self.angle_at(s).sin_cos();
                u += direction * STEP_PX * cos;
                v += direction * STEP_PX * sin;
                s += direction * STEP_PX;
            }
        }
    }
}

/// 1–3 nearly straight channels roughly parallel to `axis_rad`.
fn parallel_channels(canvas: &mut Canvas, rng: &mut ChaCha8Rng, axis_rad: f32) {
    let count = rng.random_range(1..=3);
    for _ in 0..count {
        let axis = axis_rad + rng.random_range(-deg(5.0)..deg(5.0));
        let max_angle = rng.random_range(deg(3.0)..deg(22.0));
        let wavelength = rng.random_range(30.0..70.0);
        let offset = rng.random_range(-15.0..15.0);
        let half_width = rng.random_range(1.5..3.6);
        Channel::random(rng, axis, offset, max_angle, wavelength, half_width).draw(canvas);
    }
}

/// 1–2 highly sinuous, looping channels flowing roughly north–south.
fn meandering_channels(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let count = rng.random_range(1..=2);
    let base = FRAC_PI_2 + rng.random_range(-deg(20.0)..deg(20.0));
    for _ in 0..count {
        let axis = base + rng.random_range(-deg(6.0)..deg(6.0));
        let max_angle = rng.random_range(deg(60.0)..deg(100.0));
        let wavelength = rng.random_range(45.0..80.0);
        let offset = rng.random_range(-13.0..13.0);
        let half_width = rng.random_range(1.4..3.0);
        Channel::random(rng, axis, offset, max_angle, wavelength, half_width).draw(canvas);
    }
}

/// 5–9 narrow threads that split and rejoin around bars, in any flow direction.
fn braided_channels(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let count = rng.random_range(5..=9);
    let base = rng.random_range(0.0..PI);
    for _ in 0..count {
        let axis = base + rng.random_range(-deg(12.0)..deg(12.0));
        let max_angle = rng.random_range(deg(10.0)..deg(35.0));
        let wavelength = rng.random_range(20.0..50.0);
        // Offsets within the image, so every thread shows.
        let offset = rng.random_range(-17.0..17.0);
        let half_width = rng.random_range(0.9..2.0);
        Channel::random(rng, axis, offset, max_angle, wavelength, half_width).draw(canvas);
    }
}

/// Sand lobes with no channels: a thresholded Gaussian random field, elongated along a
/// random axis.
fn lobes(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    const MODES: usize = 16;
    let axis = rng.random_range(0.0..PI);
    let stretch = rng.random_range(0.6..1.0);
    let (axis_sin, axis_cos) = axis.sin_cos();
    let mut field = vec![0.0f32; SIZE_PX * SIZE_PX];
    let mut mean_wavenumber = 0.0;
    let (mut cos_x, mut sin_x) = ([0.0f32; SIZE_PX], [0.0f32; SIZE_PX]);
    let (mut cos_y, mut sin_y) = ([0.0f32; SIZE_PX], [0.0f32; SIZE_PX]);
    for _ in 0..MODES {
        // Wave vector in the lobe frame, squeezed along the axis so lobes elongate along it.
        let k = TAU / rng.random_range(12.0..40.0);
        let dir = rng.random_range(0.0..TAU);
        let (a, b) = (k * dir.cos() * stretch, k * dir.sin());
        let (kx, ky) = (a * axis_cos - b * axis_sin, a * axis_sin + b * axis_cos);
        mean_wavenumber += (kx * kx + ky * ky).sqrt() / MODES as f32;
        let phase = rng.random_range(0.0..TAU);
        // cos(kx·x + ky·y + φ) = cos(kx·x + φ)·cos(ky·y) − sin(kx·x + φ)·sin(ky·y)
        for i in 0..SIZE_PX {
            (sin_x[i], cos_x[i]) = (kx * i as f32 + phase).sin_cos();
            (sin_y[i], cos_y[i]) = (ky * i as f32).sin_cos();
        }
        for (y, row) in field.chunks_exact_mut(SIZE_PX).enumerate() {
            for (x, f) in row.iter_mut().enumerate() {
                *f += cos_x[x] * cos_y[y] - sin_x[x] * sin_y[y];
            }
        }
    }
    let sand_fraction = rng.random_range(0.25..0.5);
    let mut sorted = field.clone();
    let cut = ((1.0 - sand_fraction) * sorted.len() as f32) as usize;
    let (_, &mut threshold, _) = sorted.select_nth_unstable_by(cut, f32::total_cmp);
    // The field changes by about std·k per pixel; use that as the anti-aliasing width.
    let std = (MODES as f32 / 2.0).sqrt();
    let edge_width = (std * mean_wavenumber).max(1e-3);
    for (pixel, f) in canvas.pixels.iter_mut().zip(&field) {
        *pixel = ((f - threshold) / edge_width + 0.5).clamp(0.0, 1.0);
    }
}
