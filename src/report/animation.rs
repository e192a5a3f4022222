//! The latent map over the epochs of a run as an animated GIF, which every slide tool plays:
//! one held frame per epoch's layout, a few in-between frames that move each member from
//! one epoch's position to the next, points coloured by label, the epoch and the loss in a
//! caption, a legend, and one fixed view over all epochs so the map does not jump.
//!
//! Frames are drawn with plotters into an RGB buffer and encoded by the `gif` crate (its
//! NeuQuant quantiser picks each frame's 256 colours).

use std::collections::HashMap;
use std::path::Path;

use plotters::prelude::*;

use super::scatter::ClassStyle;
use super::style;
use crate::atomic_file::write_atomic;
use crate::error::{DataError, DataResult};
use crate::task::TaskControl;

/// One epoch's map.
#[derive(Debug, Clone, PartialEq)]
pub struct AnimationFrame {
    /// Zero-based.
    pub epoch: usize,
    pub ids: Vec<String>,
    pub coords: Vec<[f32; 2]>,
    /// The epoch's training loss, for the caption.
    pub loss: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnimationOptions {
    /// Shown above the map (e.g. the dataset and the run).
    pub title: String,
    pub size_px: (u32, u32),
    /// Frames moving the points from one epoch's layout to the next (0: jump).
    pub tween_frames: usize,
    /// How long each epoch's layout stays on screen.
    pub epoch_hold_ms: u32,
    pub tween_ms: u32,
    /// NeuQuant's sampling step, 1 (best, slowest) to 30.
    pub quantiser_speed: i32,
}

impl Default for AnimationOptions {
    fn default() -> Self {
        Self {
            title: String::new(),
            size_px: (960, 720),
            tween_frames: 4,
            epoch_hold_ms: 700,
            tween_ms: 70,
            quantiser_speed: 10,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct AnimationOutcome {
    pub epochs: usize,
    pub frames: usize,
    pub bytes: usize,
}

/// Largest side of an animation: GIF sizes are 16-bit, and a bad size must not ask for
/// gigabytes of frame buffers.
const MAX_SIDE_PX: u32 = 4096;

/// Writes `frames` (in epoch order) as an endlessly looping GIF at `path`. `label_of` gives a
/// member's class (an index into `classes`) from its id. Cancellable between frames.
pub fn write_map_animation(
    path: &Path,
    frames: &[AnimationFrame],
    classes: &[ClassStyle],
    label_of: &dyn Fn(&str) -> Option<usize>,
    options: &AnimationOptions,
    control: &TaskControl,
) -> DataResult<AnimationOutcome> {
    let (width, height) = options.size_px;
    if !(64..=MAX_SIDE_PX).contains(&width) || !(64..=MAX_SIDE_PX).contains(&height) {
        return Err(DataError::new(
            path,
            format!("an animation is 64 to {MAX_SIDE_PX} px a side, not {width} x {height}"),
        ));
    }
    if frames.is_empty() {
        return Err(DataError::new(
            path,
            "no epoch layouts to animate (a run stores one per epoch in RUN_DIR/layouts)",
        ));
    }
    for frame in frames {
        if frame.ids.len() != frame.coords.len() {
            return Err(DataError::new(
                path,
                format!(
                    "epoch {}: {} ids for {} positions",
                    frame.epoch + 1,
                    frame.ids.len(),
                    frame.coords.len()
                ),
            ));
        }
    }
    if !style::fonts_ready() {
        return Err(DataError::new(
            path,
            "the embedded font could not be loaded",
        ));
    }
    let view = View::over(frames);
    let total_steps = frames.len() + frames.len().saturating_sub(1) * options.tween_frames;
    let mut bytes = Vec::new();
    let mut encoder = gif::Encoder::new(&mut bytes, width as u16, height as u16, &[])
        .map_err(|e| DataError::new(path, format!("cannot start the GIF: {e}")))?;
    encoder
        .set_repeat(gif::Repeat::Infinite)
        .map_err(|e| DataError::new(path, format!("cannot write the GIF: {e}")))?;
    let mut written = 0;
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            let previous = &frames[i - 1];
            for t in 1..=options.tween_frames {
                control.check().map_err(|_| cancelled(path))?;
                let share = t as f32 / (options.tween_frames + 1) as f32;
                let moving = Scene::between(previous, frame, share, label_of);
                let rgb = render(&moving, &view, classes, options, frame, true, path)?;
                add_frame(&mut encoder, &rgb, options, options.tween_ms, path)?;
                written += 1;
                control.report("animation", written, total_steps);
            }
        }
        control.check().map_err(|_| cancelled(path))?;
        let still = Scene::of(frame, label_of);
        let rgb = render(&still, &view, classes, options, frame, false, path)?;
        add_frame(&mut encoder, &rgb, options, options.epoch_hold_ms, path)?;
        written += 1;
        control.report("animation", written, total_steps);
    }
    drop(encoder);
    write_atomic(path, &bytes)?;
    Ok(AnimationOutcome {
        epochs: frames.len(),
        frames: written,
        bytes: bytes.len(),
    })
}

fn cancelled(path: &Path) -> DataError {
    DataError::new(path, "cancelled")
}

fn add_frame(
    encoder: &mut gif::Encoder<&mut Vec<u8>>,
    rgb: &[u8],
    options: &AnimationOptions,
    delay_ms: u32,
    path: &Path,
) -> DataResult<()> {
    let (width, height) = options.size_px;
    let mut frame = gif::Frame::from_rgb_speed(
        width as u16,
        height as u16,
        rgb,
        options.quantiser_speed.clamp(1, 30),
    );
    // GIF delays are in hundredths of a second.
    frame.delay = (delay_ms / 10).min(u32::from(u16::MAX)) as u16;
    encoder
        .write_frame(&frame)
        .map_err(|e| DataError::new(path, format!("cannot write a GIF frame: {e}")))
}

/// One fixed data range over every epoch (4 % margin), so the view holds still.
struct View {
    x: [f32; 2],
    y: [f32; 2],
}

impl View {
    fn over(frames: &[AnimationFrame]) -> Self {
        let mut lo = [f32::INFINITY; 2];
        let mut hi = [f32::NEG_INFINITY; 2];
        for p in frames.iter().flat_map(|f| &f.coords) {
            if p.iter().all(|v| v.is_finite()) {
                for axis in 0..2 {
                    lo[axis] = lo[axis].min(p[axis]);
                    hi[axis] = hi[axis].max(p[axis]);
                }
            }
        }
        let padded = |axis: usize| {
            if !lo[axis].is_finite() {
                return [-1.0, 1.0];
            }
            let span = hi[axis] - lo[axis];
            let pad = if span > 0.0 { span * 0.04 } else { 1.0 };
            [lo[axis] - pad, hi[axis] + pad]
        };
        Self {
            x: padded(0),
            y: padded(1),
        }
    }
}

/// The points of one frame with their classes, unlabelled first so labels paint on top.
struct Scene {
    points: Vec<([f32; 2], Option<usize>)>,
}

impl Scene {
    fn of(frame: &AnimationFrame, label_of: &dyn Fn(&str) -> Option<usize>) -> Self {
        Self::ordered(
            frame
                .ids
                .iter()
                .zip(&frame.coords)
                .map(|(id, &p)| (p, label_of(id)))
                .collect(),
        )
    }

    /// `to`'s members, each `share` of the way from its position in `from` (where it was
    /// there) to its position in `to`.
    fn between(
        from: &AnimationFrame,
        to: &AnimationFrame,
        share: f32,
        label_of: &dyn Fn(&str) -> Option<usize>,
    ) -> Self {
        let earlier: HashMap<&str, [f32; 2]> = from
            .ids
            .iter()
            .map(String::as_str)
            .zip(from.coords.iter().copied())
            .collect();
        Self::ordered(
            to.ids
                .iter()
                .zip(&to.coords)
                .map(|(id, &end)| {
                    let start = earlier.get(id.as_str()).copied().unwrap_or(end);
                    let p = [
                        start[0] + (end[0] - start[0]) * share,
                        start[1] + (end[1] - start[1]) * share,
                    ];
                    (p, label_of(id))
                })
                .collect(),
        )
    }

    fn ordered(mut points: Vec<([f32; 2], Option<usize>)>) -> Self {
        points.retain(|(p, _)| p.iter().all(|v| v.is_finite()));
        // Stable: within each group the members keep their order, frame after frame.
        points.sort_by_key(|(_, label)| label.is_some());
        Self { points }
    }
}

fn render(
    scene: &Scene,
    view: &View,
    classes: &[ClassStyle],
    options: &AnimationOptions,
    frame: &AnimationFrame,
    moving: bool,
    path: &Path,
) -> DataResult<Vec<u8>> {
    let (width, height) = options.size_px;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    draw(&mut rgb, scene, view, classes, options, frame, moving)
        .map_err(|e| DataError::new(path, format!("cannot draw a frame: {e}")))?;
    Ok(rgb)
}

fn draw(
    rgb: &mut [u8],
    scene: &Scene,
    view: &View,
    classes: &[ClassStyle],
    options: &AnimationOptions,
    frame: &AnimationFrame,
    moving: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(rgb, options.size_px).into_drawing_area();
    root.fill(&WHITE)?;
    let (width, height) = options.size_px;
    // Text scales with the frame; 720 px high is the reference.
    let scale = f64::from(height) / 720.0;
    let (header, body) = root.split_vertically((90.0 * scale) as u32);
    header.draw(&Text::new(
        options.title.clone(),
        ((16.0 * scale) as i32, (12.0 * scale) as i32),
        style::bold(26.0 * scale),
    ))?;
    let mut caption = format!("epoch {}", frame.epoch + 1);
    if moving {
        caption.push_str(" (moving in)");
    } else if let Some(loss) = frame.loss {
        caption.push_str(&format!(" · loss {loss:.4}"));
    }
    header.draw(&Text::new(
        caption,
        ((16.0 * scale) as i32, (52.0 * scale) as i32),
        style::font(22.0 * scale),
    ))?;
    let (plot_area, legend_area) = body.split_horizontally(width * 3 / 4);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin((12.0 * scale) as u32)
        .build_cartesian_2d(view.x[0]..view.x[1], view.y[0]..view.y[1])?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .disable_y_axis()
        .draw()?;
    let radius_px = match scene.points.len() {
        0..=2_000 => 4,
        2_001..=20_000 => 3,
        _ => 2,
    };
    chart.draw_series(scene.points.iter().map(|&(p, label)| {
        let colour = match label.and_then(|k| classes.get(k)) {
            Some(class) => style::rgb(class.colour.0),
            None => style::UNLABELLED,
        };
        Circle::new((p[0], p[1]), radius_px, colour.filled())
    }))?;
    let row_px = (34.0 * scale) as i32;
    let dot_px = (9.0 * scale) as i32;
    let fits = ((height as i32 - (90.0 * scale) as i32) / row_px.max(1)).max(1) as usize;
    let entries = classes
        .iter()
        .map(|c| (c.name.clone(), style::rgb(c.colour.0)))
        .chain([("unlabelled".to_string(), style::UNLABELLED)])
        .take(fits);
    for (row, (name, colour)) in entries.enumerate() {
        let y = row_px / 2 + row as i32 * row_px + (20.0 * scale) as i32;
        legend_area.draw(&Circle::new((dot_px + 4, y), dot_px, colour.filled()))?;
        legend_area.draw(&Text::new(
            name,
            (dot_px * 2 + 14, y),
            style::font(20.0 * scale).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            )),
        ))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::palette_colour;

    fn frame(epoch: usize, shift: f32) -> AnimationFrame {
        AnimationFrame {
            epoch,
            ids: (0..60).map(|i| i.to_string()).collect(),
            coords: (0..60)
                .map(|i| [(i % 3) as f32 * 5.0 + shift, (i / 3) as f32 * 0.1])
                .collect(),
            loss: Some(1.0 / (epoch + 1) as f64),
        }
    }

    #[test]
    fn a_gif_with_one_held_frame_per_epoch_and_tweens_between() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.gif");
        let frames = [frame(0, 0.0), frame(1, 2.0), frame(2, 4.0)];
        let classes = [
            ClassStyle::new("a", palette_colour(0)),
            ClassStyle::new("b", palette_colour(1)),
        ];
        let label_of = |id: &str| id.parse::<usize>().ok().map(|i| i % 2);
        let options = AnimationOptions {
            title: "test".into(),
            size_px: (320, 240),
            tween_frames: 2,
            ..AnimationOptions::default()
        };
        let outcome = write_map_animation(
            &path,
            &frames,
            &classes,
            &label_of,
            &options,
            &TaskControl::new(),
        )
        .unwrap();
        assert_eq!(outcome.epochs, 3);
        assert_eq!(outcome.frames, 3 + 2 * 2);

        // Read back: the frame count, the size, a loop, and the held frames' delays.
        let file = std::fs::File::open(&path).unwrap();
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(file).unwrap();
        assert_eq!((decoder.width(), decoder.height()), (320, 240));
        assert_eq!(decoder.repeat(), gif::Repeat::Infinite);
        let mut delays = Vec::new();
        let mut coloured = 0;
        while let Some(frame) = decoder.read_next_frame().unwrap() {
            delays.push(frame.delay);
            // Some pixels carry a class colour (tab10 blue), not only grey and white.
            coloured += frame
                .buffer
                .chunks_exact(4)
                .filter(|p| p[2] > 150 && p[0] < 80)
                .count();
        }
        assert_eq!(delays, vec![70, 7, 7, 70, 7, 7, 70]);
        assert!(coloured > 0);
    }

    #[test]
    fn bad_requests_are_errors_naming_the_file() {
        let path = Path::new("/tmp/never-written.gif");
        let refused = |frames: &[AnimationFrame], options: &AnimationOptions| {
            write_map_animation(path, frames, &[], &|_| None, options, &TaskControl::new())
                .unwrap_err()
                .to_string()
        };
        let none = refused(&[], &AnimationOptions::default());
        assert!(none.contains("never-written.gif") && none.contains("no epoch layouts"));
        let huge = AnimationOptions {
            size_px: (100_000, 10),
            ..AnimationOptions::default()
        };
        let error = refused(&[frame(0, 0.0)], &huge);
        assert!(error.contains("64 to 4096"), "{error}");
        let mut broken = frame(0, 0.0);
        broken.ids.pop();
        let error = refused(&[broken], &AnimationOptions::default());
        assert!(error.contains("59 ids for 60 positions"), "{error}");
    }
}
