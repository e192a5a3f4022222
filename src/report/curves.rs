//! Training curves: one panel per loss term (train solid, validation dashed) and one panel of
//! reconstruction quality (PSNR on the left axis, SSIM on the right).

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::style::{self, DrawResult, Figure, FigureFiles, RasterTile, Target};
use crate::error::{DataError, DataResult};

/// One quantity over training: `(epoch, value)` pairs for the training and (optionally, may be
/// empty) validation set. Non-finite values are skipped and counted in the panel title.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossSeries {
    pub term: String,
    pub train: Vec<(usize, f64)>,
    pub val: Vec<(usize, f64)>,
}

impl LossSeries {
    pub fn new(term: impl Into<String>, train: Vec<(usize, f64)>, val: Vec<(usize, f64)>) -> Self {
        Self {
            term: term.into(),
            train,
            val,
        }
    }
}

/// A grid of training-curve panels: one per entry of `losses`, plus one PSNR / SSIM panel when
/// either is given.
#[derive(Clone, Debug)]
pub struct TrainingCurves<'a> {
    pub title: &'a str,
    pub losses: &'a [LossSeries],
    /// PSNR in dB (left axis of the quality panel).
    pub psnr_db: Option<&'a LossSeries>,
    /// SSIM, unitless (right axis of the quality panel).
    pub ssim: Option<&'a LossSeries>,
    /// Log-scale y for the loss panels (a panel with values ≤ 0 stays linear and says so).
    pub log_y: bool,
    pub width_px: u32,
}

impl<'a> TrainingCurves<'a> {
    pub fn new(title: &'a str, losses: &'a [LossSeries]) -> Self {
        Self {
            title,
            losses,
            psnr_db: None,
            ssim: None,
            log_y: true,
            width_px: 1800,
        }
    }

    /// Writes `base.png` and `base.svg`. Errors if there is no series at all; a series without
    /// any finite value gets a panel that says so (a diverged run is worth seeing).
    pub fn write(&self, base: &Path) -> DataResult<FigureFiles> {
        let mut panels: Vec<Panel> = self
            .losses
            .iter()
            .map(|series| Panel {
                title: series.term.clone(),
                y_desc: "loss".to_string(),
                log_y: self.log_y,
                primary: train_and_val(series, "", style::TRAIN, style::VALIDATION),
                secondary: None,
            })
            .collect();
        const PSNR: RGBColor = RGBColor(0x94, 0x67, 0xbd);
        const SSIM: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
        let psnr = self
            .psnr_db
            .map(|s| ("PSNR (dB)", train_and_val(s, "PSNR ", PSNR, PSNR)));
        let ssim = self
            .ssim
            .map(|s| ("SSIM", train_and_val(s, "SSIM ", SSIM, SSIM)));
        let quality_title = match (&psnr, &ssim) {
            (Some(_), Some(_)) => "PSNR / SSIM",
            (Some(_), None) => "PSNR",
            _ => "SSIM",
        };
        // The quantity with finite values goes on the primary axis.
        let mut quality: Vec<_> = [psnr, ssim].into_iter().flatten().collect();
        quality.sort_by_key(|(_, lines)| lines.iter().all(|l| l.points.is_empty()));
        let mut quality = quality.into_iter();
        if let Some((y_desc, primary)) = quality.next() {
            panels.push(Panel {
                title: quality_title.to_string(),
                y_desc: y_desc.to_string(),
                log_y: false,
                primary,
                secondary: quality.next().map(|(d, lines)| (d.to_string(), lines)),
            });
        }
        if panels.is_empty() {
            return Err(DataError::new(
                style::with_suffix(base, "png"),
                "nothing to plot: no loss or quality series given",
            ));
        }
        let columns = match panels.len() {
            1..=3 => panels.len(),
            4 => 2,
            5..=9 => 3,
            _ => 4,
        };
        let rows = panels.len().div_ceil(columns);
        let figure = CurvesFigure {
            title: self.title,
            panels,
            columns,
            size_px: (self.width_px, 110 + rows as u32 * 560),
        };
        style::render(base, &figure)
    }
}

/// A polyline of finite points; `skipped` counts the non-finite values dropped from it.
struct Line {
    label: String,
    colour: RGBColor,
    dashed: bool,
    points: Vec<(f64, f64)>,
    skipped: usize,
}

fn line(label: &str, colour: RGBColor, dashed: bool, values: &[(usize, f64)]) -> Line {
    let mut points: Vec<(f64, f64)> = values
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|&(epoch, v)| (epoch as f64, v))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    Line {
        label: label.to_string(),
        colour,
        dashed,
        skipped: values.len() - points.len(),
        points,
    }
}

/// The train line and, if any values are given, the dashed validation line; `prefix` names
/// the quantity in the legend where a panel shows two.
fn train_and_val(series: &LossSeries, prefix: &str, train: RGBColor, val: RGBColor) -> Vec<Line> {
    let mut lines = vec![line(&format!("{prefix}train"), train, false, &series.train)];
    if !series.val.is_empty() {
        lines.push(line(&format!("{prefix}validation"), val, true, &series.val));
    }
    lines
}

struct Panel {
    title: String,
    y_desc: String,
    log_y: bool,
    primary: Vec<Line>,
    secondary: Option<(String, Vec<Line>)>,
}

struct CurvesFigure<'a> {
    title: &'a str,
    panels: Vec<Panel>,
    columns: usize,
    size_px: (u32, u32),
}

impl Figure for CurvesFigure<'_> {
    fn size_px(&self) -> (u32, u32) {
        self.size_px
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _target: Target,
        _tiles: &mut Vec<RasterTile>,
    ) -> DrawResult<()> {
        let body = style::title_band(root, self.title, None)?;
        let rows = self.panels.len().div_ceil(self.columns);
        let areas = body.split_evenly((rows, self.columns));
        for (panel, area) in self.panels.iter().zip(&areas) {
            draw_panel(&area.margin(10, 20, 10, 20), panel)?;
        }
        Ok(())
    }
}

/// Finite value range of `lines`, padded; `None` if they hold no point.
fn y_range(lines: &[Line], log: bool) -> Option<(f64, f64)> {
    let values = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return None;
    }
    Some(if log {
        (lo / 1.25, hi * 1.25)
    } else if hi > lo {
        let pad = (hi - lo) * 0.06;
        (lo - pad, hi + pad)
    } else {
        let pad = lo.abs().max(1e-3) * 0.1;
        (lo - pad, hi + pad)
    })
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> DrawResult<()> {
    let all_lines = panel
        .primary
        .iter()
        .chain(panel.secondary.iter().flat_map(|(_, lines)| lines));
    let (mut x_lo, mut x_hi, mut skipped) = (f64::INFINITY, f64::NEG_INFINITY, 0);
    for line in all_lines {
        skipped += line.skipped;
        for &(x, _) in &line.points {
            x_lo = x_lo.min(x);
            x_hi = x_hi.max(x);
        }
    }
    let mut title = panel.title.clone();
    if skipped > 0 {
        title.push_str(&format!("  ({skipped} non-finite skipped)"));
    }
    if x_lo > x_hi {
        area.draw(&Rectangle::new(
            [(0, 0), {
                let (w, h) = area.dim_in_pixel();
                (w as i32 - 1, h as i32 - 1)
            }],
            style::GRID_BOLD,
        ))?;
        let (top, rest) = area.split_vertically((style::PANEL_TITLE_PX * 1.6) as u32);
        style::centred_text(&top, &title, style::bold(style::PANEL_TITLE_PX))?;
        return style::centred_text(
            &rest,
            "no finite values",
            style::muted(style::AXIS_LABEL_PX),
        );
    }
    // A single epoch still gets a visible x extent.
    let x_range = if x_hi > x_lo {
        x_lo..x_hi
    } else {
        (x_lo - 1.0)..(x_hi + 1.0)
    };

    let positive = panel
        .primary
        .iter()
        .all(|l| l.points.iter().all(|p| p.1 > 0.0));
    let log = panel.log_y && positive;
    let mut y_desc = panel.y_desc.clone();
    if log {
        y_desc.push_str(" (log scale)");
    } else if panel.log_y {
        title.push_str("  (linear: values ≤ 0)");
    }
    let Some((y_lo, y_hi)) = y_range(&panel.primary, log) else {
        return Ok(());
    };

    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&title, style::bold(style::PANEL_TITLE_PX))
        .margin(8)
        .x_label_area_size(64)
        .y_label_area_size(100);
    if panel.secondary.is_some() {
        builder.right_y_label_area_size(100);
    }
    let axes = Axes {
        x_range,
        y_desc: &y_desc,
        y_span: y_hi - y_lo,
    };
    match style::LogAxis::new(y_lo, y_hi).filter(|_| log) {
        Some(y_axis) => finish_panel(
            builder.build_cartesian_2d(axes.x_range.clone(), y_axis)?,
            &axes,
            panel,
        ),
        None => finish_panel(
            builder.build_cartesian_2d(axes.x_range.clone(), y_lo..y_hi)?,
            &axes,
            panel,
        ),
    }
}

struct Axes<'d> {
    x_range: std::ops::Range<f64>,
    y_desc: &'d str,
    y_span: f64,
}

fn epoch_tick(v: &f64) -> String {
    // Ticks fall on fractional epochs when there are few; only whole epochs get a label.
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        String::new()
    }
}

fn finish_panel<'c, DB, Y>(
    chart: ChartContext<'c, DB, Cartesian2d<RangedCoordf64, Y>>,
    axes: &Axes,
    panel: &Panel,
) -> DrawResult<()>
where
    DB: DrawingBackend + 'c,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let Some((desc, lines)) = &panel.secondary else {
        let mut chart = chart;
        configure_mesh(&mut chart, axes)?;
        for line in &panel.primary {
            draw_line(&mut chart, line)?;
        }
        return legend(&mut chart);
    };
    let Some((lo, hi)) = y_range(lines, false) else {
        // Nothing finite on the secondary axis (the title counts the skipped values).
        let mut chart = chart;
        configure_mesh(&mut chart, axes)?;
        for line in &panel.primary {
            draw_line(&mut chart, line)?;
        }
        return legend(&mut chart);
    };
    // The secondary axis must exist before the mesh is drawn, or the primary axis also
    // labels the right side.
    let mut chart = chart.set_secondary_coord(axes.x_range.clone(), lo..hi);
    configure_mesh(&mut chart, axes)?;
    let span = hi - lo;
    chart
        .configure_secondary_axes()
        .y_desc(desc.as_str())
        .axis_desc_style(style::font(style::AXIS_LABEL_PX))
        .label_style(style::font(style::TICK_PX))
        .y_label_formatter(&|v| style::tick_on_axis(*v, span))
        .draw()?;
    for line in &panel.primary {
        draw_line(&mut chart, line)?;
    }
    for line in lines {
        let colour = line.colour;
        let style = colour.stroke_width(3);
        let anno = if line.dashed {
            chart.draw_secondary_series(DashedLineSeries::new(line.points.clone(), 12, 8, style))?
        } else {
            chart.draw_secondary_series(LineSeries::new(line.points.clone(), style))?
        };
        let dashed = line.dashed;
        anno.label(line.label.as_str())
            .legend(move |(x, y)| legend_mark(x, y, colour, dashed));
    }
    chart
        .configure_series_labels()
        .label_font(style::font(style::LEGEND_PX * 0.85))
        .background_style(WHITE.mix(0.85))
        .border_style(style::GRID_BOLD)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

fn configure_mesh<'c, DB, Y>(
    chart: &mut ChartContext<'c, DB, Cartesian2d<RangedCoordf64, Y>>,
    axes: &Axes,
) -> DrawResult<()>
where
    DB: DrawingBackend + 'c,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let span = axes.y_span;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(axes.y_desc)
        .axis_desc_style(style::font(style::AXIS_LABEL_PX))
        .label_style(style::font(style::TICK_PX))
        .x_label_formatter(&epoch_tick)
        .y_label_formatter(&|v| style::tick_on_axis(*v, span))
        .bold_line_style(style::GRID_BOLD)
        .light_line_style(TRANSPARENT)
        .draw()?;
    Ok(())
}

fn legend_mark(x: i32, y: i32, colour: RGBColor, dashed: bool) -> PathElement<(i32, i32)> {
    let end = if dashed { x + 14 } else { x + 28 };
    PathElement::new(vec![(x, y), (end, y)], colour.stroke_width(3))
}

fn draw_line<'c, DB, Y>(
    chart: &mut ChartContext<'c, DB, Cartesian2d<RangedCoordf64, Y>>,
    line: &Line,
) -> DrawResult<()>
where
    DB: DrawingBackend + 'c,
    Y: Ranged<ValueType = f64>,
{
    let colour = line.colour;
    let style = colour.stroke_width(3);
    let anno = if line.dashed {
        chart.draw_series(DashedLineSeries::new(line.points.clone(), 12, 8, style))?
    } else {
        chart.draw_series(LineSeries::new(line.points.clone(), style))?
    };
    let dashed = line.dashed;
    anno.label(line.label.as_str())
        .legend(move |(x, y)| legend_mark(x, y, colour, dashed));
    // Markers show where the epochs are when there are few of them.
    if line.points.len() <= 40 {
        chart.draw_series(
            line.points
                .iter()
                .map(|&p| Circle::new(p, 4, colour.filled())),
        )?;
    }
    Ok(())
}

fn legend<'c, DB, Y>(
    chart: &mut ChartContext<'c, DB, Cartesian2d<RangedCoordf64, Y>>,
) -> DrawResult<()>
where
    DB: DrawingBackend + 'c,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .label_font(style::font(style::LEGEND_PX * 0.85))
        .background_style(WHITE.mix(0.85))
        .border_style(style::GRID_BOLD)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}
