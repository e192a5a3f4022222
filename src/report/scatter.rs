//! 2-D embedding scatter coloured by class, with a legend beside the plot.

use std::cell::Cell;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::style::{self, DrawResult, Figure, FigureFiles, RasterTile, Target};
use crate::error::{DataError, DataResult};
use crate::labels::{Colour, palette_colour};

/// A class as the legend shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassStyle {
    pub name: String,
    pub colour: Colour,
}

impl ClassStyle {
    pub fn new(name: impl Into<String>, colour: Colour) -> Self {
        Self {
            name: name.into(),
            colour,
        }
    }

    /// Class `index` in the project's categorical palette (tab10 first).
    pub fn from_palette(name: impl Into<String>, index: usize) -> Self {
        Self::new(name, palette_colour(index))
    }
}

/// A scatter of `points` (one per member), coloured by `labels[i]`, an index into `classes`
/// (`None`: unlabelled, drawn small and grey underneath the labelled points).
#[derive(Clone, Debug)]
pub struct ScatterPlot<'a> {
    pub title: &'a str,
    /// A second line under the title, e.g. "silhouette 0.41 · neighbourhood hit 0.87".
    pub subtitle: Option<&'a str>,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub points: &'a [[f32; 2]],
    pub labels: &'a [Option<usize>],
    pub classes: &'a [ClassStyle],
    pub size_px: (u32, u32),
    /// The SVG draws at most this many points (every point is a vector element); the PNG
    /// draws all of them.
    pub svg_max_points: usize,
    /// Seed for the SVG subsample and the drawing order of labelled points.
    pub seed: u64,
}

/// What a written scatter shows.
#[derive(Clone, Debug)]
pub struct ScatterOutcome {
    pub files: FigureFiles,
    pub png_points: usize,
    pub svg_points: usize,
    /// Points with a NaN or infinite coordinate, left out of both files.
    pub skipped_non_finite: usize,
    /// Maps data coordinates to PNG pixels (as plotters placed them).
    pub png_pixels: PixelMap,
}

/// A linear map from data coordinates to figure pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PixelMap {
    origin_data: [f64; 2],
    origin_px: [f64; 2],
    px_per_unit: [f64; 2],
}

impl PixelMap {
    /// The pixel (x right, y down) at which the data point `point` is drawn.
    pub fn pixel(&self, point: [f32; 2]) -> (i32, i32) {
        let axis = |i: usize| {
            let px = self.origin_px[i]
                + (f64::from(point[i]) - self.origin_data[i]) * self.px_per_unit[i];
            px.round() as i32
        };
        (axis(0), axis(1))
    }
}

impl<'a> ScatterPlot<'a> {
    pub fn new(
        title: &'a str,
        points: &'a [[f32; 2]],
        labels: &'a [Option<usize>],
        classes: &'a [ClassStyle],
    ) -> Self {
        Self {
            title,
            subtitle: None,
            x_label: "UMAP 1",
            y_label: "UMAP 2",
            points,
            labels,
            classes,
            size_px: (1600, 1200),
            svg_max_points: 30_000,
            seed: 0,
        }
    }

    /// Writes `base.png` (all points) and `base.svg` (at most `svg_max_points`).
    pub fn write(&self, base: &Path) -> DataResult<ScatterOutcome> {
        let png_path = style::with_suffix(base, "png");
        if self.points.len() != self.labels.len() {
            return Err(DataError::new(
                &png_path,
                format!(
                    "{} points but {} labels; need one label (or none) per point",
                    self.points.len(),
                    self.labels.len()
                ),
            ));
        }
        if let Some(bad) = self
            .labels
            .iter()
            .flatten()
            .find(|&&k| k >= self.classes.len())
        {
            return Err(DataError::new(
                &png_path,
                format!(
                    "label {bad} has no class (only {} classes)",
                    self.classes.len()
                ),
            ));
        }

        let finite: Vec<usize> = (0..self.points.len())
            .filter(|&i| self.points[i].iter().all(|v| v.is_finite()))
            .collect();
        if finite.is_empty() {
            return Err(DataError::new(
                &png_path,
                format!(
                    "nothing to plot: none of the {} points has finite coordinates",
                    self.points.len()
                ),
            ));
        }
        let skipped_non_finite = self.points.len() - finite.len();

        // Unlabelled first (underneath); labelled in a seeded random order, so no class is
        // systematically painted over another.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let (mut labelled, unlabelled): (Vec<usize>, Vec<usize>) =
            finite.iter().partition(|&&i| self.labels[i].is_some());
        labelled.shuffle(&mut rng);
        let png_order: Vec<usize> = unlabelled.iter().chain(&labelled).copied().collect();

        // The SVG keeps every labelled point it can (they carry the story), then fills up with
        // a random sample of the unlabelled ones.
        let cap = self.svg_max_points.max(1);
        let svg_order: Vec<usize> = if png_order.len() <= cap {
            png_order.clone()
        } else if labelled.len() >= cap {
            labelled[..cap].to_vec()
        } else {
            let mut sample = unlabelled.clone();
            sample.shuffle(&mut rng);
            sample.truncate(cap - labelled.len());
            sample.sort_unstable();
            sample.into_iter().chain(labelled.iter().copied()).collect()
        };

        let mut counts = vec![0usize; self.classes.len()];
        for &i in &finite {
            if let Some(k) = self.labels[i] {
                counts[k] += 1;
            }
        }

        let figure = ScatterFigure {
            plot: self,
            png_order,
            svg_order,
            counts,
            n_unlabelled: unlabelled.len(),
            skipped_non_finite,
            pixels: Cell::new(PixelMap::default()),
        };
        let files = style::render(base, &figure)?;
        Ok(ScatterOutcome {
            files,
            png_points: figure.png_order.len(),
            svg_points: figure.svg_order.len(),
            skipped_non_finite,
            png_pixels: figure.pixels.get(),
        })
    }
}

struct ScatterFigure<'p, 'a> {
    plot: &'p ScatterPlot<'a>,
    png_order: Vec<usize>,
    svg_order: Vec<usize>,
    counts: Vec<usize>,
    n_unlabelled: usize,
    skipped_non_finite: usize,
    pixels: Cell<PixelMap>,
}

/// Point radius and opacity for `n` points: big opaque dots for a few hundred members, small
/// translucent ones where density matters more than single points.
fn marker(n: usize) -> (u32, f64) {
    match n {
        0..=2_000 => (6, 1.0),
        2_001..=10_000 => (4, 0.8),
        10_001..=50_000 => (3, 0.6),
        _ => (2, 0.5),
    }
}

impl ScatterFigure<'_, '_> {
    /// Data range with a 4 % margin, so edge points are not cut by the frame.
    fn ranges(&self) -> ([f32; 2], [f32; 2]) {
        let mut lo = [f32::INFINITY; 2];
        let mut hi = [f32::NEG_INFINITY; 2];
        for &i in &self.png_order {
            for axis in 0..2 {
                lo[axis] = lo[axis].min(self.plot.points[i][axis]);
                hi[axis] = hi[axis].max(self.plot.points[i][axis]);
            }
        }
        let padded = |axis: usize| {
            let span = hi[axis] - lo[axis];
            let pad = if span > 0.0 {
                span * 0.04
            } else {
                lo[axis].abs().max(1.0) * 0.1
            };
            [lo[axis] - pad, hi[axis] + pad]
        };
        (padded(0), padded(1))
    }

    fn caption(&self, target: Target) -> String {
        let total = self.png_order.len();
        let labelled = total - self.n_unlabelled;
        let mut parts = vec![format!(
            "{} points, {} labelled",
            style::count(total),
            style::count(labelled)
        )];
        if target == Target::Svg && self.svg_order.len() < total {
            parts.push(format!(
                "this SVG shows {} of them ({}; the PNG shows all)",
                style::count(self.svg_order.len()),
                if labelled < self.svg_order.len() {
                    "every labelled point and a seeded random sample of the rest"
                } else {
                    "a seeded random sample of the labelled points"
                }
            ));
        }
        if self.skipped_non_finite > 0 {
            parts.push(format!(
                "{} with non-finite coordinates not shown",
                style::count(self.skipped_non_finite)
            ));
        }
        parts.join(" · ")
    }

    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<()> {
        let row_px = (style::LEGEND_PX * 1.5) as i32;
        let (_, height_px) = area.dim_in_pixel();
        let mut entries: Vec<(String, RGBColor)> = self
            .plot
            .classes
            .iter()
            .zip(&self.counts)
            .map(|(class, &n)| {
                let mut name = class.name.clone();
                if name.chars().count() > 22 {
                    name = name.chars().take(21).collect::<String>() + "…";
                }
                (
                    format!("{name} ({})", style::count(n)),
                    style::rgb(class.colour.0),
                )
            })
            .collect();
        if self.n_unlabelled > 0 {
            entries.push((
                format!("unlabelled ({})", style::count(self.n_unlabelled)),
                style::UNLABELLED,
            ));
        }
        let top_px = row_px;
        let fits = ((height_px as i32 - top_px) / row_px).max(1) as usize;
        if entries.len() > fits {
            let hidden = entries.len() - (fits - 1);
            entries.truncate(fits - 1);
            entries.push((format!("… {hidden} more"), RGBColor(255, 255, 255)));
        }
        let radius_px = (style::LEGEND_PX * 0.35) as i32;
        for (row, (text, colour)) in entries.iter().enumerate() {
            let y = top_px + row as i32 * row_px;
            area.draw(&Circle::new((radius_px + 4, y), radius_px, colour.filled()))?;
            area.draw(&Text::new(
                text.clone(),
                (radius_px * 2 + 16, y),
                style::font(style::LEGEND_PX).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            ))?;
        }
        Ok(())
    }
}

impl Figure for ScatterFigure<'_, '_> {
    fn size_px(&self) -> (u32, u32) {
        self.plot.size_px
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        target: Target,
        _tiles: &mut Vec<RasterTile>,
    ) -> DrawResult<()> {
        let body = style::title_band(root, self.plot.title, self.plot.subtitle)?;
        let (_, body_height_px) = body.dim_in_pixel();
        let (main, caption) =
            body.split_vertically(body_height_px.saturating_sub((style::CAPTION_PX * 2.0) as u32));
        style::centred_text(
            &caption,
            &self.caption(target),
            style::muted(style::CAPTION_PX),
        )?;
        let (main_width_px, _) = main.dim_in_pixel();
        let (plot_area, legend_area) = main.split_horizontally(main_width_px * 3 / 4);

        let (x, y) = self.ranges();
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(16)
            .x_label_area_size(70)
            .y_label_area_size(100)
            .build_cartesian_2d(x[0]..x[1], y[0]..y[1])?;
        chart
            .configure_mesh()
            .x_desc(self.plot.x_label)
            .y_desc(self.plot.y_label)
            .axis_desc_style(style::font(style::AXIS_LABEL_PX))
            .label_style(style::font(style::TICK_PX))
            .x_label_formatter(&|v| style::tick_on_axis(f64::from(*v), f64::from(x[1] - x[0])))
            .y_label_formatter(&|v| style::tick_on_axis(f64::from(*v), f64::from(y[1] - y[0])))
            .bold_line_style(style::GRID_BOLD)
            .light_line_style(TRANSPARENT)
            .draw()?;

        let order = match target {
            Target::Png => &self.png_order,
            Target::Svg => &self.svg_order,
        };
        let (radius_px, alpha) = marker(order.len());
        let points = self.plot.points;
        let labels = self.plot.labels;
        let classes = self.plot.classes;
        chart.draw_series(order.iter().map(|&i| {
            let p = points[i];
            let (colour, radius_px) = match labels[i] {
                Some(k) => (style::rgb(classes[k].colour.0), radius_px),
                None => (style::UNLABELLED, radius_px.saturating_sub(1).max(1)),
            };
            Circle::new((p[0], p[1]), radius_px, colour.mix(alpha).filled())
        }))?;

        if target == Target::Png {
            let a = chart.backend_coord(&(x[0], y[0]));
            let b = chart.backend_coord(&(x[1], y[1]));
            let scale =
                |pa: i32, pb: i32, da: f32, db: f32| f64::from(pb - pa) / f64::from(db - da);
            self.pixels.set(PixelMap {
                origin_data: [f64::from(x[0]), f64::from(y[0])],
                origin_px: [f64::from(a.0), f64::from(a.1)],
                px_per_unit: [scale(a.0, b.0, x[0], x[1]), scale(a.1, b.1, y[0], y[1])],
            });
        }

        let legend_area = legend_area.margin(60, 0, 10, 10);
        self.draw_legend(&legend_area)
    }
}
