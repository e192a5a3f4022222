//! Bar chart comparing methods (e.g. the model against the PCA baseline) on several metrics:
//! one panel per metric, since their units differ.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::markdown::format_number;
use super::style::{self, DrawResult, Figure, FigureFiles, RasterTile, Target};
use crate::error::{DataError, DataResult};
use crate::labels::palette_colour;

/// One metric: a value per method (same order as [`MethodBars::methods`]); a non-finite value
/// is shown as "n/a" instead of a bar.
#[derive(Clone, Debug, PartialEq)]
pub struct BarMetric {
    pub name: String,
    /// Unit for the axis, e.g. "dB"; empty for unitless metrics.
    pub unit: String,
    pub higher_is_better: bool,
    pub values: Vec<f64>,
}

impl BarMetric {
    pub fn new(
        name: impl Into<String>,
        unit: impl Into<String>,
        higher_is_better: bool,
        values: Vec<f64>,
    ) -> Self {
        Self {
            name: name.into(),
            unit: unit.into(),
            higher_is_better,
            values,
        }
    }
}

/// Methods side by side, one panel per metric; each method keeps its colour in every panel.
#[derive(Clone, Debug)]
pub struct MethodBars<'a> {
    pub title: &'a str,
    pub methods: &'a [String],
    pub metrics: &'a [BarMetric],
    pub height_px: u32,
}

impl<'a> MethodBars<'a> {
    pub fn new(title: &'a str, methods: &'a [String], metrics: &'a [BarMetric]) -> Self {
        Self {
            title,
            methods,
            metrics,
            height_px: 900,
        }
    }

    pub fn write(&self, base: &Path) -> DataResult<FigureFiles> {
        let png_path = style::with_suffix(base, "png");
        if self.methods.is_empty() || self.metrics.is_empty() {
            return Err(DataError::new(
                &png_path,
                format!(
                    "nothing to plot: {} methods and {} metrics given",
                    self.methods.len(),
                    self.metrics.len()
                ),
            ));
        }
        if let Some(metric) = self
            .metrics
            .iter()
            .find(|m| m.values.len() != self.methods.len())
        {
            return Err(DataError::new(
                &png_path,
                format!(
                    "metric {} has {} values for {} methods",
                    metric.name,
                    metric.values.len(),
                    self.methods.len()
                ),
            ));
        }
        let panel_w = (160 * self.methods.len() as u32 + 220).clamp(520, 900);
        let figure = BarsFigure {
            bars: self,
            size_px: (
                (panel_w * self.metrics.len() as u32).max(1000),
                self.height_px,
            ),
        };
        style::render(base, &figure)
    }
}

struct BarsFigure<'b, 'a> {
    bars: &'b MethodBars<'a>,
    size_px: (u32, u32),
}

impl Figure for BarsFigure<'_, '_> {
    fn size_px(&self) -> (u32, u32) {
        self.size_px
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _target: Target,
        _tiles: &mut Vec<RasterTile>,
    ) -> DrawResult<()> {
        let body = style::title_band(root, self.bars.title, None)?;
        let panels = body.split_evenly((1, self.bars.metrics.len()));
        for (metric, area) in self.bars.metrics.iter().zip(&panels) {
            self.draw_panel(&area.margin(10, 20, 10, 20), metric)?;
        }
        Ok(())
    }
}

impl BarsFigure<'_, '_> {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        metric: &BarMetric,
    ) -> DrawResult<()> {
        let methods = self.bars.methods;
        let finite = metric.values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // Room above the bars for their value labels.
        let (lo, hi) = if hi > lo {
            (
                if lo < 0.0 { lo * 1.18 } else { 0.0 },
                if hi > 0.0 { hi * 1.18 } else { 0.0 },
            )
        } else {
            (0.0, 1.0)
        };
        let arrow = if metric.higher_is_better {
            "↑ better"
        } else {
            "↓ better"
        };
        let caption = format!("{}  ({arrow})", metric.name);
        let y_desc = if metric.unit.is_empty() {
            metric.name.clone()
        } else {
            format!("{} ({})", metric.name, metric.unit)
        };

        let mut chart = ChartBuilder::on(area)
            .caption(caption, style::bold(style::PANEL_TITLE_PX))
            .margin(8)
            .x_label_area_size(60)
            .y_label_area_size(110)
            .build_cartesian_2d(CategoryAxis(methods.len()), lo..hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .axis_desc_style(style::font(style::AXIS_LABEL_PX))
            .label_style(style::font(style::TICK_PX))
            .x_labels(methods.len())
            .x_label_formatter(&|v| methods.get(v.round() as usize).cloned().unwrap_or_default())
            .y_label_formatter(&|v| style::tick(*v))
            .bold_line_style(style::GRID_BOLD)
            .light_line_style(TRANSPARENT)
            .draw()?;

        let bars = metric
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite());
        chart.draw_series(bars.map(|(i, &v)| {
            let colour = style::rgb(palette_colour(i).0);
            let (left, right) = (i as f64 - BAR_HALF_WIDTH, i as f64 + BAR_HALF_WIDTH);
            Rectangle::new([(left, 0.0), (right, v)], colour.filled())
        }))?;
        let label_font = style::font(style::LEGEND_PX);
        chart.draw_series(metric.values.iter().enumerate().map(|(i, &v)| {
            let (text, y) = if v.is_finite() {
                (format_number(v), v)
            } else {
                ("n/a".to_string(), 0.0)
            };
            // Labels sit above positive bars and below negative ones.
            let (anchor_y, offset_px) = if y >= 0.0 {
                (VPos::Bottom, -6)
            } else {
                (VPos::Top, 6)
            };
            EmptyElement::at((i as f64, y))
                + Text::new(
                    text,
                    (0, offset_px),
                    label_font.clone().pos(Pos::new(HPos::Center, anchor_y)),
                )
        }))?;
        Ok(())
    }
}

/// Half the width of a bar, in slots (each method has a slot of width 1).
const BAR_HALF_WIDTH: f64 = 0.32;

/// The x axis of a bar chart: `n` slots centred on 0, 1, …, n − 1, one tick per slot.
#[derive(Clone, Copy, Debug)]
struct CategoryAxis(usize);

impl plotters::coord::ranged1d::Ranged for CategoryAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value + 0.5) / self.0.max(1) as f64;
        (f64::from(limit.0) + t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.0).map(|i| i as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.0 as f64 - 0.5
    }
}
