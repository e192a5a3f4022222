//! `droplets`: 160×224 side-view shadowgraphs of a drop impacting a liquid film, in the seven
//! morphologies of the SENSE paper's droplet ensemble.
//!
//! Liquid is dark against a bright, unevenly lit background; the film is a dark band at the
//! bottom that mirrors what stands on it. Each class has its own structure (see
//! [`CLASS_NAMES`]); size, position, impact time, film height, lighting, blur and noise vary in
//! every class. Features that tell classes apart (detached droplets, fingers, shells) are at
//! least a few pixels large, so a small CNN can separate them.

use super::procedural::Generator;
use super::raster::{Bounds, Canvas, V2, sd_capsule, sd_disc, sd_ellipse, sd_polygon, v2};
use crate::data::Shape;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::f32::consts::{PI, TAU};

const WIDTH_PX: usize = 224;
const HEIGHT_PX: usize = 160;

/// - bubble: a thin-shelled dome standing on the film;
/// - bubble-splash: a dome, often ruptured at the top, plus small ejected droplets;
/// - column: a vertical Worthington jet with a rounded tip;
/// - crown: a cylindrical crown wall with fingers along the rim;
/// - crown-splash: a crown plus secondary droplets detached above the fingers;
/// - splash: an irregular spray of droplets and ligaments over a low mound, no crown;
/// - drop: a falling drop above an undisturbed film.
const CLASS_NAMES: [&str; 7] = [
    "bubble",
    "bubble-splash",
    "column",
    "crown",
    "crown-splash",
    "splash",
    "drop",
];

pub struct Droplets;

impl Generator for Droplets {
    fn name(&self) -> &'static str {
        "droplets"
    }

    fn shape(&self) -> Shape {
        Shape::new(1, HEIGHT_PX, WIDTH_PX)
    }

    fn class_names(&self) -> &'static [&'static str] {
        &CLASS_NAMES
    }

    fn render(&self, class: u32, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        // Paint light transmission (1 = clear, low = liquid), then light it.
        let mut canvas = Canvas::new(WIDTH_PX, HEIGHT_PX, out);
        canvas.fill(1.0);
        let mut scene = Scene::random(rng);
        match class {
            0 => bubble(&mut canvas, &mut scene, rng, false),
            1 => bubble(&mut canvas, &mut scene, rng, true),
            2 => column(&mut canvas, &mut scene, rng),
            3 => crown(&mut canvas, &mut scene, rng, false),
            4 => crown(&mut canvas, &mut scene, rng, true),
            5 => splash(&mut canvas, &mut scene, rng),
            _ => drop(&mut canvas, &scene, rng),
        }
        scene.draw_film(&mut canvas, rng);
        canvas.blur(rng.random_range(0.5..1.2));
        light(out, rng);
    }
}

/// What all classes share: where the film is, where the impact is, how big and how dark.
struct Scene {
    /// Mean height of the film surface (the film fills the image below it).
    surface_y_px: f32,
    /// Impact point across the image.
    centre_x_px: f32,
    /// Size factor of the whole event (drop size, impact speed).
    scale: f32,
    /// Transmission of liquid seen edge-on.
    liquid: f32,
    /// Raised meniscus around the foot of a structure.
    foot_height_px: f32,
    foot_width_px: f32,
}

impl Scene {
    fn random(rng: &mut ChaCha8Rng) -> Self {
        Self {
            surface_y_px: rng.random_range(118.0..142.0),
            centre_x_px: WIDTH_PX as f32 / 2.0 + rng.random_range(-14.0..14.0),
            scale: rng.random_range(0.8..1.2),
            liquid: rng.random_range(0.06..0.22),
            foot_height_px: 0.0,
            foot_width_px: 1.0,
        }
    }

    fn surface_point(&self, dx_px: f32) -> V2 {
        v2(self.centre_x_px + dx_px, self.surface_y_px)
    }

    /// The dark film below a slightly rippled surface with a meniscus foot, then a faded
    /// mirror image of the scene in the film's surface.
    fn draw_film(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let ripple_px = rng.random_range(0.0..1.2);
        let ripple_k = TAU / rng.random_range(25.0..80.0);
        let ripple_phase = rng.random_range(0.0..TAU);
        let surface: Vec<f32> = (0..WIDTH_PX)
            .map(|x| {
                let dx = (x as f32 - self.centre_x_px) / self.foot_width_px;
                self.surface_y_px + ripple_px * (ripple_k * x as f32 + ripple_phase).sin()
                    - self.foot_height_px * (-dx * dx).exp()
            })
            .collect();

        // Mirror before the film covers what it reflects.
        let depth_px = rng.random_range(8.0..22.0);
        let strength = rng.random_range(0.12..0.35);
        let mirror_rows = mirrored_rows(canvas, self.surface_y_px, depth_px);

        let top = surface.iter().copied().fold(f32::INFINITY, f32::min);
        let film_shade = self.liquid + rng.random_range(0.0..0.12);
        let bounds = Bounds {
            min: v2(0.0, top - 1.0),
            max: v2(WIDTH_PX as f32, HEIGHT_PX as f32),
        };
        canvas.paint(bounds, film_shade, |p| surface[p.x as usize] - p.y);

        for (y, row, weight) in mirror_rows {
            let target = &mut canvas.pixels[y * WIDTH_PX..(y + 1) * WIDTH_PX];
            for (t, m) in target.iter_mut().zip(&row) {
                *t += (m * film_shade.max(0.3) - *t) * weight * strength;
            }
        }
    }
}

/// Rows just below the surface paired with the rows they mirror, fading with depth.
fn mirrored_rows(canvas: &Canvas, surface_y_px: f32, depth_px: f32) -> Vec<(usize, Vec<f32>, f32)> {
    let first = surface_y_px.ceil() as usize + 1;
    let last = ((surface_y_px + depth_px) as usize).min(HEIGHT_PX - 1);
    (first..=last)
        .filter_map(|y| {
            let mirror = 2.0 * surface_y_px - y as f32;
            let mirror_y = mirror.round();
            if mirror_y < 0.0 {
                return None;
            }
            let start = mirror_y as usize * WIDTH_PX;
            let row = canvas.pixels[start..start + WIDTH_PX].to_vec();
            let weight = 1.0 - (y as f32 - surface_y_px) / depth_px;
            Some((y, row, weight.max(0.0)))
        })
        .collect()
}

fn disc(canvas: &mut Canvas, centre: V2, radius: f32, shade: f32) {
    canvas.paint(Bounds::around(centre, radius), shade, |p| {
        sd_disc(p, centre, radius)
    });
}

fn capsule(canvas: &mut Canvas, a: V2, b: V2, radius_a: f32, radius_b: f32, shade: f32) {
    let bounds = Bounds::of_points(&[a, b], radius_a.max(radius_b));
    canvas.paint(bounds, shade, |p| sd_capsule(p, a, b, radius_a, radius_b));
}

/// Random unit vector pointing up, within `max_deg` of vertical.
fn upward(rng: &mut ChaCha8Rng, max_deg: f32) -> V2 {
    let angle = rng.random_range(-max_deg..max_deg) * PI / 180.0;
    v2(angle.sin(), -angle.cos())
}

/// Small droplets: at least three pixels across even when blurred.
fn droplet_radius(rng: &mut ChaCha8Rng) -> f32 {
    rng.random_range(2.4..4.4)
}

fn drop(canvas: &mut Canvas, scene: &Scene, rng: &mut ChaCha8Rng) {
    let radius = rng.random_range(9.0..16.0) * scene.scale;
    let oblate = rng.random_range(-0.06..0.12);
    let radii = v2(radius * (1.0 + oblate), radius * (1.0 - oblate));
    let gap_px = rng.random_range(6.0..55.0);
    let centre = scene.surface_point(rng.random_range(-6.0..6.0)) - v2(0.0, gap_px + radii.y);
    canvas.paint(
        Bounds::around(centre, radii.x.max(radii.y)),
        scene.liquid,
        |p| sd_ellipse(p, centre, radii),
    );
    // A sphere focuses the backlight into a bright spot at its centre.
    let spot = centre - v2(0.0, radius * rng.random_range(0.0..0.15));
    disc(
        canvas,
        spot,
        radius * rng.random_range(0.18..0.32),
        rng.random_range(0.5..0.85),
    );
}

fn bubble(canvas: &mut Canvas, scene: &mut Scene, rng: &mut ChaCha8Rng, splash: bool) {
    let a = rng.random_range(24.0..44.0) * scene.scale;
    let radii = v2(a, a * rng.random_range(0.7..1.0));
    let centre = scene.surface_point(0.0) + v2(0.0, rng.random_range(0.0..3.0));
    let surface_y = scene.surface_y_px;
    let bounds = Bounds::around(centre, a + 3.0);
    // The thin shell is nearly clear face-on and dark where seen edge-on.
    let interior = rng.random_range(0.72..0.92);
    canvas.paint(bounds, interior, |p| {
        sd_ellipse(p, centre, radii).max(p.y - surface_y)
    });
    let half_thickness = rng.random_range(0.9..1.6);
    let shell = scene.liquid + rng.random_range(0.0..0.1);
    canvas.paint(bounds, shell, |p| {
        (sd_ellipse(p, centre, radii).abs() - half_thickness).max(p.y - surface_y)
    });
    let glint = centre + v2(-radii.x * 0.4, -radii.y * 0.6);
    disc(canvas, glint, rng.random_range(1.5..3.5), 0.97);
    scene.foot_height_px = rng.random_range(1.0..4.0);
    scene.foot_width_px = a * 1.1;

    if splash {
        let top = centre - v2(0.0, radii.y);
        if rng.random_bool(0.6) {
            // Ruptured cap: the hole the droplets escaped through.
            disc(
                canvas,
                top + v2(rng.random_range(-4.0..4.0), 0.0),
                rng.random_range(3.0..6.0),
                interior,
            );
        }
        let count = rng.random_range(3..=8);
        for _ in 0..count {
            let dir = upward(rng, 55.0);
            let start = centre + v2(dir.x * radii.x, dir.y * radii.y);
            let r = droplet_radius(rng);
            let p = start + dir * (rng.random_range(6.0..34.0) + r);
            disc(canvas, v2(p.x, p.y.max(r + 2.0)), r, scene.liquid);
        }
    }
}

fn column(canvas: &mut Canvas, scene: &mut Scene, rng: &mut ChaCha8Rng) {
    let base_radius = rng.random_range(8.0..14.0) * scene.scale;
    let neck_radius = rng.random_range(3.5..7.0) * scene.scale;
    let height = (rng.random_range(35.0..95.0) * scene.scale).min(scene.surface_y_px - 16.0);
    let base = scene.surface_point(0.0) + v2(0.0, 2.0);
    let top = scene.surface_point(rng.random_range(-6.0..6.0)) - v2(0.0, height);
    capsule(canvas, base, top, base_radius, neck_radius, scene.liquid);
    let tip_radius = neck_radius * rng.random_range(1.0..1.45);
    disc(
        canvas,
        top - v2(0.0, tip_radius - neck_radius),
        tip_radius,
        scene.liquid,
    );
    if neck_radius > 4.5 {
        // A liquid cylinder focuses the backlight into a bright streak along its axis.
        let start = base + (top - base) * 0.25;
        capsule(
            canvas,
            start,
            top,
            0.9,
            0.6,
            scene.liquid + rng.random_range(0.2..0.45),
        );
    }
    scene.foot_height_px = rng.random_range(4.0..10.0);
    scene.foot_width_px = rng.random_range(14.0..26.0) * scene.scale;
}

fn crown(canvas: &mut Canvas, scene: &mut Scene, rng: &mut ChaCha8Rng, splash: bool) {
    let base_radius = rng.random_range(28.0..50.0) * scene.scale;
    let rim_radius = base_radius * rng.random_range(1.05..1.3);
    let height = rng.random_range(22.0..50.0) * scene.scale;
    let rim_tilt = rim_radius * rng.random_range(0.1..0.22);
    let base_y = scene.surface_y_px;
    let rim = v2(scene.centre_x_px, base_y - height);

    // Walls rise steeply and flare out towards the rim: half-width at height share t is
    // base + (rim − base)·t².
    const WALL_SEGMENTS: usize = 5;
    let wall: Vec<(f32, f32)> = (0..=WALL_SEGMENTS)
        .map(|i| {
            let t = i as f32 / WALL_SEGMENTS as f32;
            (
                base_radius + (rim_radius - base_radius) * t * t,
                base_y - height * t,
            )
        })
        .collect();
    // The sheet, crossed twice face-on, is half clear; its walls are seen edge-on.
    let sheet: Vec<V2> = wall
        .iter()
        .map(|&(half, y)| v2(rim.x - half, y))
        .chain(wall.iter().rev().map(|&(half, y)| v2(rim.x + half, y)))
        .collect();
    let sheet_shade = rng.random_range(0.45..0.7);
    canvas.paint(Bounds::of_points(&sheet, 0.0), sheet_shade, |p| {
        sd_polygon(p, &sheet)
    });
    let wall_radius = rng.random_range(1.3..2.3);
    for side in [-1.0, 1.0] {
        for (i, pair) in wall.windows(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            let thicken = if i == 0 { 1.4 } else { 1.0 };
            capsule(
                canvas,
                v2(rim.x + side * a.0, a.1 + if i == 0 { 2.0 } else { 0.0 }),
                v2(rim.x + side * b.0, b.1),
                wall_radius * thicken,
                wall_radius,
                scene.liquid,
            );
        }
    }
    let rim_radii = v2(rim_radius, rim_tilt);
    let rim_half_thickness = wall_radius * 0.8;
    canvas.paint(Bounds::around(rim, rim_radius + 3.0), scene.liquid, |p| {
        sd_ellipse(p, rim, rim_radii).abs() - rim_half_thickness
    });

    let fingers = rng.random_range(7..=13);
    let mut tips = Vec::with_capacity(fingers);
    for j in 0..fingers {
        let phi = TAU * (j as f32 + rng.random_range(-0.25..0.25)) / fingers as f32;
        let root = rim + v2(rim_radius * phi.cos(), rim_tilt * phi.sin());
        let flare = phi.cos() * rng.random_range(0.15..0.5);
        let dir = v2(flare, -1.0) * (1.0 / (1.0 + flare * flare).sqrt());
        let length = rng.random_range(4.0..12.0) * scene.scale;
        let radius = rng.random_range(1.2..2.0);
        let tip = root + dir * length;
        capsule(canvas, root, tip, radius, radius * 0.8, scene.liquid);
        disc(
            canvas,
            tip,
            radius * rng.random_range(1.15..1.5),
            scene.liquid,
        );
        tips.push((tip, dir, phi.sin() <= 0.1));
    }
    scene.foot_height_px = rng.random_range(1.0..4.0);
    scene.foot_width_px = base_radius;

    if splash {
        // Detached secondary droplets above at least three fingers, clearly apart from them.
        // Only fingers on the far half of the rim shed here: above them nothing else stands,
        // so the droplets never merge with another finger.
        let far: Vec<(V2, V2)> = tips
            .iter()
            .filter(|&&(_, _, far_side)| far_side)
            .map(|&(tip, dir, _)| (tip, dir))
            .collect();
        let mut shed = 0;
        for (k, &(tip, dir)) in far.iter().enumerate() {
            let must = shed < 3 && far.len() - k <= 3 - shed;
            if must || rng.random_bool(0.6) {
                let r = droplet_radius(rng);
                let p = tip + dir * (rng.random_range(6.0..20.0) + r);
                disc(canvas, v2(p.x, p.y.max(r + 2.0)), r, scene.liquid);
                shed += 1;
            }
        }
        for _ in 0..rng.random_range(0..=3) {
            let r = droplet_radius(rng);
            let p = rim + upward(rng, 60.0) * (rim_radius + rng.random_range(10.0..30.0));
            disc(canvas, v2(p.x, p.y.max(r + 2.0)), r, scene.liquid);
        }
    }
}

fn splash(canvas: &mut Canvas, scene: &mut Scene, rng: &mut ChaCha8Rng) {
    let impact = scene.surface_point(0.0);
    // A low, lumpy mound of displaced liquid.
    for _ in 0..rng.random_range(2..=4) {
        let centre = scene.surface_point(rng.random_range(-25.0..25.0) * scene.scale);
        let radii = v2(
            rng.random_range(15.0..40.0) * scene.scale,
            rng.random_range(4.0..14.0) * scene.scale,
        );
        canvas.paint(Bounds::around(centre, radii.x), scene.liquid, |p| {
            sd_ellipse(p, centre, radii)
        });
    }
    // Torn ligaments flung outwards.
    for _ in 0..rng.random_range(2..=6) {
        let start = impact
            + v2(
                rng.random_range(-30.0..30.0) * scene.scale,
                -rng.random_range(2.0..12.0),
            );
        let dir = upward(rng, 70.0);
        let end = start + dir * rng.random_range(6.0..20.0) * scene.scale;
        capsule(
            canvas,
            start,
            end,
            rng.random_range(1.2..2.2),
            0.7,
            scene.liquid,
        );
    }
    // The spray: many droplets, small ones more common.
    for _ in 0..rng.random_range(18..=45) {
        let dir = upward(rng, 75.0);
        let p = impact + dir * rng.random_range(12.0..95.0) * scene.scale;
        let u: f32 = rng.random();
        let r = 1.5 + 3.5 * u * u;
        if p.y < scene.surface_y_px - r - 2.0 {
            disc(canvas, v2(p.x, p.y.max(r + 2.0)), r, scene.liquid);
        }
    }
    scene.foot_height_px = rng.random_range(0.0..3.0);
    scene.foot_width_px = 30.0 * scene.scale;
}

/// Turns transmission into camera intensity: an unevenly lit backlight, then sensor noise.
fn light(out: &mut [f32], rng: &mut ChaCha8Rng) {
    let brightness = rng.random_range(0.8..0.96);
    let (tilt_x, tilt_y) = (rng.random_range(-0.08..0.08), rng.random_range(-0.08..0.08));
    let vignette = rng.random_range(0.0..0.15);
    let hot_spot = v2(
        WIDTH_PX as f32 * rng.random_range(0.35..0.65),
        HEIGHT_PX as f32 * rng.random_range(0.3..0.7),
    );
    let noise_sd = rng.random_range(0.006..0.03);
    let (half_w, half_h) = (WIDTH_PX as f32 / 2.0, HEIGHT_PX as f32 / 2.0);
    for (y, row) in out.chunks_exact_mut(WIDTH_PX).enumerate() {
        let fy = y as f32;
        let dy = (fy - hot_spot.y) / half_h;
        let row_light = brightness + tilt_y * (fy / HEIGHT_PX as f32 - 0.5);
        for (x, t) in row.iter_mut().enumerate() {
            let fx = x as f32;
            let dx = (fx - hot_spot.x) / half_w;
            let backlight =
                row_light + tilt_x * (fx / WIDTH_PX as f32 - 0.5) - vignette * (dx * dx + dy * dy);
            let noise: f32 = rng.sample(StandardNormal);
            *t = *t * backlight + noise_sd * noise;
        }
    }
}
