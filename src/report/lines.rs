//! A plain line chart (elbow curve, BIC over K, sweep results): named series of (x, y) points.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::style::{self, DrawResult, Figure, FigureFiles, RasterTile, Target};
use crate::error::{DataError, DataResult};
use crate::labels::palette_colour;

/// One named line; points with a non-finite coordinate are skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl LineSeries {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LineChart<'a> {
    pub title: &'a str,
    pub subtitle: Option<&'a str>,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [LineSeries],
    /// Log-scale y (ignored, and said so, if a value is ≤ 0).
    pub log_y: bool,
    /// A vertical marker with its label, e.g. the chosen K.
    pub marker: Option<(f64, &'a str)>,
    pub size_px: (u32, u32),
}

impl<'a> LineChart<'a> {
    pub fn new(
        title: &'a str,
        x_label: &'a str,
        y_label: &'a str,
        series: &'a [LineSeries],
    ) -> Self {
        Self {
            title,
            subtitle: None,
            x_label,
            y_label,
            series,
            log_y: false,
            marker: None,
            size_px: (1600, 1000),
        }
    }

    /// Writes `base.png` and `base.svg`; errors if no series has a finite point.
    pub fn write(&self, base: &Path) -> DataResult<FigureFiles> {
        let lines: Vec<(usize, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut points: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                (i, points)
            })
            .collect();
        if lines.iter().all(|(_, p)| p.is_empty()) {
            return Err(DataError::new(
                style::with_suffix(base, "png"),
                format!(
                    "nothing to plot: {} series without a finite point",
                    self.series.len()
                ),
            ));
        }
        let skipped = self.series.iter().map(|s| s.points.len()).sum::<usize>()
            - lines.iter().map(|(_, p)| p.len()).sum::<usize>();
        style::render(
            base,
            &LineFigure {
                chart: self,
                lines,
                skipped,
            },
        )
    }
}

struct LineFigure<'c, 'a> {
    chart: &'c LineChart<'a>,
    lines: Vec<(usize, Vec<(f64, f64)>)>,
    skipped: usize,
}

impl Figure for LineFigure<'_, '_> {
    fn size_px(&self) -> (u32, u32) {
        self.chart.size_px
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _target: Target,
        _tiles: &mut Vec<RasterTile>,
    ) -> DrawResult<()> {
        let body = style::title_band(root, self.chart.title, self.chart.subtitle)?;
        let (_, body_h) = body.dim_in_pixel();
        let (plot, footer) =
            body.split_vertically(body_h.saturating_sub((style::CAPTION_PX * 2.0) as u32));
        if self.skipped > 0 {
            style::centred_text(
                &footer,
                &format!(
                    "{} point{} with non-finite values not shown",
                    self.skipped,
                    if self.skipped == 1 { "" } else { "s" }
                ),
                style::muted(style::CAPTION_PX),
            )?;
        }

        let points = self.lines.iter().flat_map(|(_, p)| p);
        let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in points {
            (x_lo, x_hi, y_lo, y_hi) = (x_lo.min(x), x_hi.max(x), y_lo.min(y), y_hi.max(y));
        }
        if let Some((x, _)) = self.chart.marker.filter(|(x, _)| x.is_finite()) {
            (x_lo, x_hi) = (x_lo.min(x), x_hi.max(x));
        }
        let pad = |lo: f64, hi: f64| {
            let pad = if hi > lo {
                (hi - lo) * 0.05
            } else {
                lo.abs().max(1.0) * 0.1
            };
            (lo - pad)..(hi + pad)
        };
        let x_range = pad(x_lo, x_hi);
        let log = self.chart.log_y && y_lo > 0.0;
        let mut y_label = self.chart.y_label.to_string();
        if log {
            y_label.push_str(" (log scale)");
        }

        let mut builder = ChartBuilder::on(&plot);
        builder
            .margin(20)
            .x_label_area_size(70)
            .y_label_area_size(120);
        let x_span = x_range.end - x_range.start;
        if log {
            let (lo, hi) = (y_lo / 1.2, y_hi * 1.2);
            match style::LogAxis::new(lo, hi) {
                Some(axis) => {
                    let chart = builder.build_cartesian_2d(x_range, axis)?;
                    return self.finish(chart, &y_label, (lo, hi), x_span);
                }
                None => y_label = self.chart.y_label.to_string(),
            }
        }
        let range = pad(y_lo, y_hi);
        let bounds = (range.start, range.end);
        let chart = builder.build_cartesian_2d(x_range, range)?;
        self.finish(chart, &y_label, bounds, x_span)
    }
}

impl LineFigure<'_, '_> {
    fn finish<'c, DB, Y>(
        &self,
        mut chart: ChartContext<'c, DB, Cartesian2d<RangedCoordf64, Y>>,
        y_label: &str,
        (y_lo, y_hi): (f64, f64),
        x_span: f64,
    ) -> DrawResult<()>
    where
        DB: DrawingBackend + 'c,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(self.chart.x_label)
            .y_desc(y_label)
            .axis_desc_style(style::font(style::AXIS_LABEL_PX))
            .label_style(style::font(style::TICK_PX))
            .x_label_formatter(&|v| style::tick_on_axis(*v, x_span))
            .y_label_formatter(&|v| style::tick_on_axis(*v, y_hi - y_lo))
            .bold_line_style(style::GRID_BOLD)
            .light_line_style(TRANSPARENT)
            .draw()?;
        if let Some((x, label)) = self.chart.marker.filter(|(x, _)| x.is_finite()) {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x, y_lo), (x, y_hi)],
                    10,
                    8,
                    style::MUTED_TEXT.stroke_width(2),
                ))?
                .label(label)
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], style::MUTED_TEXT.stroke_width(2))
                });
        }
        for (i, points) in &self.lines {
            let colour = style::rgb(palette_colour(*i).0);
            chart
                .draw_series(plotters::series::LineSeries::new(
                    points.clone(),
                    colour.stroke_width(3),
                ))?
                .label(self.chart.series[*i].name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 6, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .label_font(style::font(style::LEGEND_PX))
            .background_style(WHITE.mix(0.85))
            .border_style(style::GRID_BOLD)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    }
}
