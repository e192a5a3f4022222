//! Reconstruction grid: one row per member — original, reconstruction, absolute error.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{self, DrawResult, Figure, FigureFiles, RasterTile, Target};
use crate::error::{DataError, DataResult};

/// Rows beyond this make the tiles too small to judge; pick a few members instead.
pub const MAX_ROWS: usize = 32;
/// Largest image side accepted (the data layer's images are at most 256×256).
const MAX_SIDE_PX: usize = 4096;

/// One member: its id and two images in CHW order (`shape` of the grid).
#[derive(Clone, Copy, Debug)]
pub struct ReconstructionRow<'a> {
    pub id: &'a str,
    pub original: &'a [f32],
    pub reconstruction: &'a [f32],
}

/// Originals and reconstructions side by side. Original and reconstruction of a member share
/// one min–max display scale (so brightness differences are real); the error column is
/// mean-over-channels |original − reconstruction| in viridis on one scale for all rows, shown
/// by a colour bar. Three channels display as RGB; any other count shows channel 1 in grey.
#[derive(Clone, Copy, Debug)]
pub struct ReconstructionGrid<'a> {
    pub title: &'a str,
    /// `[channels, height, width]` of every image.
    pub shape: [usize; 3],
    pub rows: &'a [ReconstructionRow<'a>],
}

impl<'a> ReconstructionGrid<'a> {
    pub fn new(title: &'a str, shape: [usize; 3], rows: &'a [ReconstructionRow<'a>]) -> Self {
        Self { title, shape, rows }
    }

    /// Writes `base.png` and `base.svg` (the SVG embeds the tiles as PNG images).
    pub fn write(&self, base: &Path) -> DataResult<FigureFiles> {
        let png_path = style::with_suffix(base, "png");
        let [channels, height, width] = self.shape;
        if channels == 0 || height == 0 || width == 0 || height > MAX_SIDE_PX || width > MAX_SIDE_PX
        {
            return Err(DataError::new(
                &png_path,
                format!(
                    "image shape {channels}×{height}×{width} is not a CHW shape with sides \
                     1..={MAX_SIDE_PX}"
                ),
            ));
        }
        if self.rows.is_empty() {
            return Err(DataError::new(
                &png_path,
                "nothing to plot: no members given",
            ));
        }
        if self.rows.len() > MAX_ROWS {
            return Err(DataError::new(
                &png_path,
                format!("{} members given; show at most {MAX_ROWS}", self.rows.len()),
            ));
        }
        let len = channels * height * width;
        for row in self.rows {
            for (what, image) in [
                ("original", row.original),
                ("reconstruction", row.reconstruction),
            ] {
                if image.len() != len {
                    return Err(DataError::new(
                        &png_path,
                        format!(
                            "member {}: {what} has {} values, expected {channels}×{height}×{width} = {len}",
                            row.id,
                            image.len()
                        ),
                    ));
                }
            }
        }

        let errors: Vec<Vec<f32>> = self
            .rows
            .iter()
            .map(|row| error_map(row, self.shape))
            .collect();
        let error_max = errors
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .fold(0.0f32, |a, &b| a.max(b));
        let layout = Layout::new(self.shape, self.rows.len(), self.title);
        let figure = GridFigure {
            grid: self,
            errors,
            error_max,
            layout,
        };
        style::render(base, &figure)
    }
}

/// Per-pixel mean over channels of |original − reconstruction|; NaN where either is not finite.
fn error_map(row: &ReconstructionRow, [channels, height, width]: [usize; 3]) -> Vec<f32> {
    let plane = height * width;
    (0..plane)
        .map(|p| {
            let sum: f32 = (0..channels)
                .map(|c| (row.original[c * plane + p] - row.reconstruction[c * plane + p]).abs())
                .sum();
            let mean = sum / channels as f32;
            if mean.is_finite() { mean } else { f32::NAN }
        })
        .collect()
}

/// Finite min and max of the given images together; `None` if none is finite.
fn finite_range<'v>(values: impl Iterator<Item = &'v f32>) -> Option<(f32, f32)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    (lo <= hi).then_some((lo, hi))
}

/// A CHW image as displayed: RGB for three channels, else channel 0 in grey, scaled from
/// `[lo, hi]` to `[0, 255]`; non-finite pixels in the flag colour.
fn display_tile(
    chw: &[f32],
    [channels, height, width]: [usize; 3],
    range: Option<(f32, f32)>,
) -> image::RgbImage {
    let plane = height * width;
    let (lo, hi) = range.unwrap_or((0.0, 1.0));
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let to_byte = |v: f32| ((v - lo) * scale).round().clamp(0.0, 255.0) as u8;
    let mut tile = image::RgbImage::new(width as u32, height as u32);
    for (p, pixel) in tile.pixels_mut().enumerate() {
        let rgb = if channels == 3 {
            [chw[p], chw[plane + p], chw[2 * plane + p]]
        } else {
            [chw[p]; 3]
        };
        pixel.0 = if rgb.iter().all(|v| v.is_finite()) {
            rgb.map(to_byte)
        } else {
            style::NON_FINITE_PIXEL
        };
    }
    tile
}

fn viridis_tile(values: &[f32], height: usize, width: usize, max: f32) -> image::RgbImage {
    let mut tile = image::RgbImage::new(width as u32, height as u32);
    for (pixel, &v) in tile.pixels_mut().zip(values) {
        pixel.0 = if v.is_finite() {
            viridis(if max > 0.0 { v / max } else { 0.0 })
        } else {
            style::NON_FINITE_PIXEL
        };
    }
    tile
}

/// Viridis at `t` in 0..=1 (clamped), as 8-bit RGB.
pub fn viridis(t: f32) -> [u8; 3] {
    let RGBColor(r, g, b) = ViridisRGB::get_color_normalized(t.clamp(0.0, 1.0), 0.0, 1.0);
    [r, g, b]
}

/// Pixel positions of everything on the figure.
struct Layout {
    tile_w_px: u32,
    tile_h_px: u32,
    label_w_px: i32,
    gap_px: i32,
    top_px: i32,
    size_px: (u32, u32),
}

impl Layout {
    const TITLE_BAND_PX: i32 = (style::TITLE_PX * 1.8) as i32;
    const HEADER_PX: i32 = 60;
    const FOOTER_PX: i32 = 60;
    const COLOUR_BAR_COLUMN_PX: i32 = 200;

    fn new([_, height, width]: [usize; 3], rows: usize, title: &str) -> Self {
        // Tiles get ~1600 px of height in total, between 96 and 320 px each; small images are
        // enlarged by a whole factor so their pixels stay square and crisp.
        let target_px = (1600 / rows).clamp(96, 320) as f64;
        let mut scale = target_px / height.max(width) as f64;
        if scale >= 1.0 {
            scale = scale.floor();
        }
        let tile_w_px = ((width as f64 * scale).round() as u32).max(1);
        let tile_h_px = ((height as f64 * scale).round() as u32).max(1);
        let label_w_px = 300;
        let gap_px = 18;
        let top_px = Self::TITLE_BAND_PX + Self::HEADER_PX;
        let grid_w = label_w_px + 3 * (tile_w_px as i32 + gap_px) + Self::COLOUR_BAR_COLUMN_PX;
        // Wide enough for the title too.
        let title_w = (title.chars().count() as f64 * style::TITLE_PX * 0.62) as i32 + 80;
        let width_px = grid_w.max(title_w).max(1000);
        let height_px = top_px + rows as i32 * (tile_h_px as i32 + gap_px) + Self::FOOTER_PX;
        Self {
            tile_w_px,
            tile_h_px,
            label_w_px,
            gap_px,
            top_px,
            size_px: (width_px as u32, height_px as u32),
        }
    }

    /// Left edge of the grid, centred in the figure.
    fn left_px(&self) -> i32 {
        let grid_w = self.label_w_px
            + 3 * (self.tile_w_px as i32 + self.gap_px)
            + Self::COLOUR_BAR_COLUMN_PX;
        (self.size_px.0 as i32 - grid_w) / 2
    }

    fn tile_origin(&self, row: usize, column: usize) -> (i32, i32) {
        (
            self.left_px()
                + self.label_w_px
                + column as i32 * (self.tile_w_px as i32 + self.gap_px),
            self.top_px + row as i32 * (self.tile_h_px as i32 + self.gap_px),
        )
    }
}

struct GridFigure<'g, 'a> {
    grid: &'g ReconstructionGrid<'a>,
    errors: Vec<Vec<f32>>,
    error_max: f32,
    layout: Layout,
}

impl Figure for GridFigure<'_, '_> {
    fn size_px(&self) -> (u32, u32) {
        self.layout.size_px
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        _target: Target,
        tiles: &mut Vec<RasterTile>,
    ) -> DrawResult<()> {
        let layout = &self.layout;
        let [channels, height, width] = self.grid.shape;
        let plane = height * width;
        style::title_band(root, self.grid.title, None)?;

        let centred = |size| style::font(size).pos(Pos::new(HPos::Center, VPos::Center));
        let headers = ["original", "reconstruction", "|error|"];
        for (column, header) in headers.iter().enumerate() {
            let (x, _) = layout.tile_origin(0, column);
            root.draw(&Text::new(
                header.to_string(),
                (
                    x + layout.tile_w_px as i32 / 2,
                    layout.top_px - Layout::HEADER_PX / 2,
                ),
                centred(style::AXIS_LABEL_PX),
            ))?;
        }

        let mut any_non_finite = false;
        for (r, row) in self.grid.rows.iter().enumerate() {
            let range = finite_range(row.original.iter().chain(row.reconstruction));
            let error = &self.errors[r];
            let images = [
                display_tile(row.original, self.grid.shape, range),
                display_tile(row.reconstruction, self.grid.shape, range),
                viridis_tile(error, height, width, self.error_max),
            ];
            any_non_finite |= error.iter().any(|v| !v.is_finite());
            for (column, image) in images.into_iter().enumerate() {
                let (x, y) = layout.tile_origin(r, column);
                tiles.push(RasterTile {
                    x_px: x,
                    y_px: y,
                    width_px: layout.tile_w_px,
                    height_px: layout.tile_h_px,
                    image,
                });
                root.draw(&Rectangle::new(
                    [
                        (x - 1, y - 1),
                        (x + layout.tile_w_px as i32, y + layout.tile_h_px as i32),
                    ],
                    style::GRID_BOLD,
                ))?;
            }

            // Member id and its mean squared error, right-aligned beside the row.
            let (x, y) = layout.tile_origin(r, 0);
            let centre_y = y + layout.tile_h_px as i32 / 2;
            let finite: Vec<f64> = (0..channels * plane)
                .map(|i| f64::from(row.original[i]) - f64::from(row.reconstruction[i]))
                .filter(|d| d.is_finite())
                .collect();
            let mse = finite.iter().map(|d| d * d).sum::<f64>() / finite.len().max(1) as f64;
            let right = |size| style::font(size).pos(Pos::new(HPos::Right, VPos::Bottom));
            root.draw(&Text::new(
                shorten(row.id, 16),
                (x - 16, centre_y),
                right(style::LEGEND_PX),
            ))?;
            let mse_text = if finite.is_empty() {
                "MSE n/a".to_string()
            } else {
                format!("MSE {}", super::markdown::format_number(mse))
            };
            root.draw(&Text::new(
                mse_text,
                (x - 16, centre_y + 8),
                style::muted(style::CAPTION_PX).pos(Pos::new(HPos::Right, VPos::Top)),
            ))?;
        }

        self.draw_colour_bar(root, tiles)?;

        let mut notes =
            vec!["original and reconstruction share a min–max scale per member".to_string()];
        if channels != 1 && channels != 3 {
            notes.push(format!("showing channel 1 of {channels}"));
        }
        if any_non_finite {
            notes.push("magenta: non-finite values".to_string());
        }
        let (width_px, height_px) = layout.size_px;
        root.draw(&Text::new(
            notes.join(" · "),
            (
                (width_px / 2) as i32,
                height_px as i32 - Layout::FOOTER_PX / 2,
            ),
            style::muted(style::CAPTION_PX).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        Ok(())
    }
}

impl GridFigure<'_, '_> {
    /// Viridis bar beside the error column, labelled 0 … max error.
    fn draw_colour_bar<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        tiles: &mut Vec<RasterTile>,
    ) -> DrawResult<()> {
        let layout = &self.layout;
        let (x_err, y_top) = layout.tile_origin(0, 2);
        let x = x_err + layout.tile_w_px as i32 + layout.gap_px + 10;
        let rows_h =
            self.grid.rows.len() as i32 * (layout.tile_h_px as i32 + layout.gap_px) - layout.gap_px;
        let bar_h = rows_h.clamp(120, 600);
        let bar_w = 28;
        let mut gradient = image::RgbImage::new(1, 256);
        for (i, pixel) in gradient.pixels_mut().enumerate() {
            pixel.0 = viridis(1.0 - i as f32 / 255.0);
        }
        tiles.push(RasterTile {
            x_px: x,
            y_px: y_top,
            width_px: bar_w as u32,
            height_px: bar_h as u32,
            image: gradient,
        });
        root.draw(&Rectangle::new(
            [(x - 1, y_top - 1), (x + bar_w, y_top + bar_h)],
            style::GRID_BOLD,
        ))?;
        let left = style::font(style::TICK_PX).pos(Pos::new(HPos::Left, VPos::Center));
        for (fraction, value) in [
            (0.0, self.error_max),
            (0.5, self.error_max / 2.0),
            (1.0, 0.0),
        ] {
            let y = y_top + (fraction * bar_h as f64) as i32;
            root.draw(&PathElement::new(
                vec![(x + bar_w, y), (x + bar_w + 6, y)],
                style::TEXT,
            ))?;
            root.draw(&Text::new(
                style::tick(f64::from(value)),
                (x + bar_w + 10, y),
                left.clone(),
            ))?;
        }
        Ok(())
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        text.chars().take(max_chars - 1).collect::<String>() + "…"
    }
}
