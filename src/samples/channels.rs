//! `channels`: 50×50 facies maps of subsurface channel structures (sand = bright, shale =
//! dark), like the MCMC snapshots of geological scenarios in the SENSE paper.
//!
//! Channels are sinusoidal centrelines in a rotated frame, swept by a disc of slowly varying
//! width. The scenarios differ in orientation, sinuosity and density; width, count, phase,
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

/// One channel: a centreline `offset + amplitude·(sin ψ + skew·sin(3ψ + skew_phase))` across
/// the flow direction, ψ = 2πu/wavelength + phase, swept by a disc of varying half-width.
struct Channel {
    angle_rad: f32,
    offset_px: f32,
    amplitude_px: f32,
    wavelength_px: f32,
    phase: f32,
    /// Third-harmonic share that skews meander bends (as real meanders are).
    skew: f32,
    skew_phase: f32,
    half_width_px: f32,
    /// Relative width variation along the channel.
    width_wobble: f32,
    wobble_wavelength_px: f32,
    wobble_phase: f32,
}

impl Channel {
    fn random(
        rng: &mut ChaCha8Rng,
        angle_rad: f32,
        offset_px: f32,
        amplitude_px: f32,
        wavelength_px: f32,
        half_width_px: f32,
    ) -> Self {
        Self {
            angle_rad,
            offset_px,
            amplitude_px,
            wavelength_px,
            phase: rng.random_range(0.0..TAU),
            skew: rng.random_range(-0.2..0.2),
            skew_phase: rng.random_range(0.0..TAU),
            half_width_px,
            width_wobble: rng.random_range(0.0..0.25),
            wobble_wavelength_px: rng.random_range(15.0..40.0),
            wobble_phase: rng.random_range(0.0..TAU),
        }
    }

    /// Sweeps the channel into the sand mask.
    fn draw(&self, canvas: &mut Canvas) {
        let along = V2::from_angle(self.angle_rad);
        let across = along.perp();
        let centre = v2(SIZE_PX as f32 - 1.0, SIZE_PX as f32 - 1.0) * 0.5;
        let k = TAU / self.wavelength_px;
        let k_wobble = TAU / self.wobble_wavelength_px;
        // Far enough along the flow to cross the whole image whatever the offset.
        let reach_px = SIZE_PX as f32 * 0.75 + self.offset_px.abs() + self.amplitude_px;
        let margin_px = self.half_width_px * 1.3 + 1.0;
        let mut u = -reach_px;
        while u <= reach_px {
            let psi = k * u + self.phase;
            let skew_arg = 3.0 * psi + self.skew_phase;
            let v = self.offset_px + self.amplitude_px * (psi.sin() + self.skew * skew_arg.sin());
            let slope = self.amplitude_px * k * (psi.cos() + 3.0 * self.skew * skew_arg.cos());
            let p = centre + along * u + across * v;
            let inside = p.x > -margin_px
                && p.y > -margin_px
                && p.x < SIZE_PX as f32 + margin_px
                && p.y < SIZE_PX as f32 + margin_px;
            if inside {
                let r = self.half_width_px
                    * (1.0 + self.width_wobble * (k_wobble * u + self.wobble_phase).sin());
                canvas.paint_max(Bounds::around(p, r), |q| sd_disc(q, p, r));
            }
            // 0.7-pixel steps along the arc keep the swept edge smooth to ~0.07 px.
            u += 0.7 / (1.0 + slope * slope).sqrt();
        }
    }
}

/// 1–3 gently sinuous channels roughly parallel to `angle_rad`.
fn parallel_channels(canvas: &mut Canvas, rng: &mut ChaCha8Rng, angle_rad: f32) {
    let count = rng.random_range(1..=3);
    for _ in 0..count {
        let angle = angle_rad + rng.random_range(-deg(5.0)..deg(5.0));
        let wavelength = rng.random_range(30.0..70.0);
        let amplitude = rng.random_range(0.5..3.0);
        let offset = rng.random_range(-18.0..18.0);
        let half_width = rng.random_range(1.5..3.6);
        Channel::random(rng, angle, offset, amplitude, wavelength, half_width).draw(canvas);
    }
}

/// 1–2 highly sinuous channels flowing roughly north–south.
fn meandering_channels(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let count = rng.random_range(1..=2);
    let base = FRAC_PI_2 + rng.random_range(-deg(20.0)..deg(20.0));
    for _ in 0..count {
        let wavelength = rng.random_range(16.0..28.0);
        let amplitude = wavelength * rng.random_range(0.24..0.38);
        let offset = rng.random_range(-14.0..14.0);
        let half_width = rng.random_range(1.4..3.0);
        let angle = base + rng.random_range(-deg(6.0)..deg(6.0));
        Channel::random(rng, angle, offset, amplitude, wavelength, half_width).draw(canvas);
    }
}

/// 5–9 narrow threads that split and rejoin around bars, in any flow direction.
fn braided_channels(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let count = rng.random_range(5..=9);
    let base = rng.random_range(0.0..PI);
    for _ in 0..count {
        let angle = base + rng.random_range(-deg(12.0)..deg(12.0));
        let wavelength = rng.random_range(15.0..40.0);
        let amplitude = rng.random_range(1.0..4.0);
        let offset = rng.random_range(-22.0..22.0);
        let half_width = rng.random_range(0.9..2.0);
        Channel::random(rng, angle, offset, amplitude, wavelength, half_width).draw(canvas);
    }
}

/// Sand lobes with no channels: a thresholded Gaussian random field, elongated along a
/// random axis.
fn lobes(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    const MODES: usize = 12;
    let axis = rng.random_range(0.0..PI);
    let stretch = rng.random_range(0.45..1.0);
    let (axis_sin, axis_cos) = axis.sin_cos();
    let mut field = vec![0.0f32; SIZE_PX * SIZE_PX];
    let mut mean_wavenumber = 0.0;
    let (mut cos_x, mut sin_x) = ([0.0f32; SIZE_PX], [0.0f32; SIZE_PX]);
    let (mut cos_y, mut sin_y) = ([0.0f32; SIZE_PX], [0.0f32; SIZE_PX]);
    for _ in 0..MODES {
        // Wave vector in the lobe frame, squeezed along the axis so lobes elongate along it.
        let k = TAU / rng.random_range(13.0..30.0);
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
