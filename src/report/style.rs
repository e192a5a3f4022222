//! The shared look of every report figure (embedded font, text sizes, colours) and the one
//! rendering path that writes a figure as PNG and SVG side by side.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::atomic_file::write_atomic;
use crate::error::{DataError, DataResult};

/// The family name the embedded font is registered under. Using the generic CSS name means the
/// SVG's `font-family="sans-serif"` also renders sensibly in any viewer.
pub(crate) const FONT_FAMILY: &str = "sans-serif";

// Sizes in pixels, tuned for ~1600×1200 figures shown on a projector.
pub(crate) const TITLE_PX: f64 = 46.0;
pub(crate) const SUBTITLE_PX: f64 = 30.0;
pub(crate) const PANEL_TITLE_PX: f64 = 32.0;
pub(crate) const AXIS_LABEL_PX: f64 = 30.0;
pub(crate) const TICK_PX: f64 = 24.0;
pub(crate) const LEGEND_PX: f64 = 26.0;
pub(crate) const CAPTION_PX: f64 = 22.0;

pub(crate) const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub(crate) const MUTED_TEXT: RGBColor = RGBColor(0x55, 0x55, 0x55);
pub(crate) const GRID_BOLD: RGBColor = RGBColor(0xd9, 0xd9, 0xd9);
pub(crate) const UNLABELLED: RGBColor = RGBColor(0xbb, 0xbb, 0xbb);
/// Training curves: tab10 blue; validation: tab10 orange.
pub(crate) const TRAIN: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub(crate) const VALIDATION: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
/// Pixels that are NaN or infinite in an image tile: a colour no colour map produces.
pub(crate) const NON_FINITE_PIXEL: [u8; 3] = [0xff, 0x00, 0xff];

/// Largest figure side accepted, so a bad size cannot ask for gigabytes of pixels.
const MAX_SIDE_PX: u32 = 8192;

pub(crate) fn font(size_px: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size_px).into_font().color(&TEXT)
}

pub(crate) fn bold(size_px: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size_px, FontStyle::Bold)
        .into_font()
        .color(&TEXT)
}

pub(crate) fn muted(size_px: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size_px).into_font().color(&MUTED_TEXT)
}

/// Registers the embedded DejaVu Sans with plotters once per process. Headless machines often
/// have no system fonts, so figures never depend on them.
pub(crate) fn fonts_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let regular: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        let bold: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, regular).is_ok()
            && plotters::style::register_font(FONT_FAMILY, FontStyle::Bold, bold).is_ok()
    })
}

/// The two files of one written figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FigureFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
    /// Size of the PNG (and the SVG's view box), width × height.
    pub size_px: (u32, u32),
}

/// Which file is being drawn: figures may simplify the SVG (e.g. fewer scatter points).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Png,
    Svg,
}

/// A raster image placed on the figure (image tiles, colour bars). Plotters' SVG backend would
/// draw such images pixel by pixel, so they are composited after plotters is done: blitted into
/// the PNG buffer, embedded as base64 PNG `<image>` elements in the SVG.
pub(crate) struct RasterTile {
    pub x_px: i32,
    pub y_px: i32,
    pub width_px: u32,
    pub height_px: u32,
    pub image: image::RgbImage,
}

/// A drawing failure inside plotters, as text (plotters' errors are generic over the backend).
#[derive(Debug)]
pub(crate) struct DrawError(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(err: DrawingAreaErrorKind<E>) -> Self {
        DrawError(err.to_string())
    }
}

pub(crate) type DrawResult<T> = Result<T, DrawError>;

/// A figure that can draw itself on any plotters backend.
pub(crate) trait Figure {
    fn size_px(&self) -> (u32, u32);

    /// Draws on `root` (already filled white); raster images go to `tiles`.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        target: Target,
        tiles: &mut Vec<RasterTile>,
    ) -> DrawResult<()>;
}

/// `base` + `.ext`, keeping any dots already in the file name (`umap.epoch10` → `umap.epoch10.png`).
pub(crate) fn with_suffix(base: &Path, ext: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Draws `figure` and writes `base.png` and `base.svg`, each atomically.
pub(crate) fn render(base: &Path, figure: &impl Figure) -> DataResult<FigureFiles> {
    let png_path = with_suffix(base, "png");
    let svg_path = with_suffix(base, "svg");
    let (width_px, height_px) = figure.size_px();
    if !(1..=MAX_SIDE_PX).contains(&width_px) || !(1..=MAX_SIDE_PX).contains(&height_px) {
        return Err(DataError::new(
            &png_path,
            format!("figure size {width_px}×{height_px} px is outside 1..={MAX_SIDE_PX} px"),
        ));
    }
    if !fonts_ready() {
        return Err(DataError::new(
            &png_path,
            "the embedded font could not be loaded",
        ));
    }
    let draw_failed = |path: &Path, err: DrawError| {
        DataError::new(path, format!("could not draw the figure: {}", err.0))
    };

    let mut pixels = vec![255u8; width_px as usize * height_px as usize * 3];
    let mut tiles = Vec::new();
    {
        let root =
            BitMapBackend::with_buffer(&mut pixels, (width_px, height_px)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(DrawError::from)
            .and_then(|()| figure.draw(&root, Target::Png, &mut tiles))
            .and_then(|()| root.present().map_err(DrawError::from));
        drawn.map_err(|e| draw_failed(&png_path, e))?;
    }
    let mut canvas = image::RgbImage::from_raw(width_px, height_px, pixels)
        .ok_or_else(|| DataError::new(&png_path, "internal error: pixel buffer size"))?;
    for tile in &tiles {
        blit(&mut canvas, tile);
    }
    let mut png_bytes = Vec::new();
    encode_png(&canvas, &mut png_bytes).map_err(|e| DataError::new(&png_path, e))?;
    write_atomic(&png_path, &png_bytes)?;

    let mut svg = String::new();
    let mut tiles = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width_px, height_px)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(DrawError::from)
            .and_then(|()| figure.draw(&root, Target::Svg, &mut tiles))
            .and_then(|()| root.present().map_err(DrawError::from));
        drawn.map_err(|e| draw_failed(&svg_path, e))?;
    }
    embed_tiles_in_svg(&mut svg, &tiles).map_err(|e| DataError::new(&svg_path, e))?;
    write_atomic(&svg_path, svg.as_bytes())?;

    Ok(FigureFiles {
        png: png_path,
        svg: svg_path,
        size_px: (width_px, height_px),
    })
}

fn encode_png(image: &image::RgbImage, out: &mut Vec<u8>) -> Result<(), String> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    // Fast compression: figures are written once and are small either way.
    PngEncoder::new_with_quality(out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| format!("could not encode PNG: {e}"))
}

/// Copies `tile` into `canvas`, scaled to its display size (nearest neighbour when enlarging,
/// so pixels stay crisp; a triangle filter when shrinking, so it does not alias).
fn blit(canvas: &mut image::RgbImage, tile: &RasterTile) {
    use image::imageops::{FilterType, resize};
    if tile.width_px == 0 || tile.height_px == 0 || tile.image.width() == 0 {
        return;
    }
    let filter = if tile.width_px >= tile.image.width() {
        FilterType::Nearest
    } else {
        FilterType::Triangle
    };
    let scaled = resize(&tile.image, tile.width_px, tile.height_px, filter);
    image::imageops::overlay(canvas, &scaled, i64::from(tile.x_px), i64::from(tile.y_px));
}

/// Inserts the tiles as `<image>` elements just before the closing `</svg>` tag.
fn embed_tiles_in_svg(svg: &mut String, tiles: &[RasterTile]) -> Result<(), String> {
    if tiles.is_empty() {
        return Ok(());
    }
    let end = svg
        .rfind("</svg>")
        .ok_or("internal error: SVG has no closing tag")?;
    let mut elements = String::new();
    for tile in tiles {
        let mut png = Vec::new();
        encode_png(&tile.image, &mut png)?;
        // Enlarged tiles stay pixelated (the data are pixels); shrunk ones are smoothed.
        let rendering = if tile.width_px >= tile.image.width() {
            "pixelated"
        } else {
            "auto"
        };
        elements.push_str(&format!(
            "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" \
             style=\"image-rendering:{rendering}\" href=\"data:image/png;base64,{}\"/>\n",
            tile.x_px,
            tile.y_px,
            tile.width_px,
            tile.height_px,
            base64(&png)
        ));
    }
    svg.insert_str(end, &elements);
    Ok(())
}

/// Standard base64 with padding (RFC 4648), for data URIs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n].map(|s| ALPHABET[(s & 63) as usize] as char);
        out.push(sextets[0]);
        out.push(sextets[1]);
        out.push(if chunk.len() > 1 { sextets[2] } else { '=' });
        out.push(if chunk.len() > 2 { sextets[3] } else { '=' });
    }
    out
}

/// Draws a centred title (bold) and optional subtitle at the top of `area`; returns the rest.
pub(crate) fn title_band<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: Option<&str>,
) -> DrawResult<DrawingArea<DB, Shift>> {
    let band_px = if subtitle.is_some() {
        (TITLE_PX * 1.5 + SUBTITLE_PX * 1.5) as u32
    } else {
        (TITLE_PX * 1.8) as u32
    };
    let (top, rest) = area.split_vertically(band_px);
    let (width_px, _) = top.dim_in_pixel();
    let centre = (width_px / 2) as i32;
    let centred = |style: TextStyle<'static>| {
        style.pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ))
    };
    top.draw(&Text::new(
        title.to_string(),
        (centre, (TITLE_PX * 0.35) as i32),
        centred(bold(TITLE_PX)),
    ))?;
    if let Some(subtitle) = subtitle {
        top.draw(&Text::new(
            subtitle.to_string(),
            (centre, (TITLE_PX * 1.4) as i32),
            centred(muted(SUBTITLE_PX)),
        ))?;
    }
    Ok(rest)
}

/// Writes one line of small grey text centred in `area` (captions, notes).
pub(crate) fn centred_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: TextStyle<'static>,
) -> DrawResult<()> {
    let (width_px, height_px) = area.dim_in_pixel();
    area.draw(&Text::new(
        text.to_string(),
        ((width_px / 2) as i32, (height_px / 2) as i32),
        style.pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        )),
    ))?;
    Ok(())
}

/// `[r, g, b]` as a plotters colour.
pub(crate) fn rgb(colour: [u8; 3]) -> RGBColor {
    RGBColor(colour[0], colour[1], colour[2])
}

/// Thousands separators for counts in captions: 135000 → "135,000".
pub(crate) fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Axis tick text: at most 4 significant digits, scientific for very large or small
/// magnitudes.
pub(crate) fn tick(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e5).contains(&magnitude) {
        format!("{value:.1e}")
    } else {
        super::markdown::format_number(value)
    }
}

/// [`tick`] for an axis spanning `span`: values that are zero up to rounding (plotters
/// accumulates ticks in floating point, giving 5.6e-17 for 0) print as "0".
pub(crate) fn tick_on_axis(value: f64, span: f64) -> String {
    if value.abs() <= span.abs() * 1e-9 {
        "0".to_string()
    } else {
        tick(value)
    }
}

/// A base-10 logarithmic axis over `lo..hi` (both > 0) with readable ticks: decades, or
/// 1-2-5 or 1…9 multiples of them when the range spans few decades. (Plotters' own log axis
/// only labels values at or above the first power of ten inside the range.)
#[derive(Clone, Debug)]
pub(crate) struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    /// `None` unless `0 < lo < hi` and both are finite.
    pub(crate) fn new(lo: f64, hi: f64) -> Option<Self> {
        (lo > 0.0 && hi > lo && hi.is_finite()).then_some(Self { lo, hi })
    }

    fn ticks(&self, max_ticks: usize) -> Vec<f64> {
        let max_ticks = max_ticks.max(2);
        let first_decade = self.lo.log10().floor() as i32;
        let last_decade = self.hi.log10().ceil() as i32;
        let in_range = |mantissas: &[f64], every: i32| -> Vec<f64> {
            (first_decade..=last_decade)
                .filter(|k| (k - first_decade) % every == 0)
                .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
                .filter(|v| (self.lo..=self.hi).contains(v))
                .collect()
        };
        // Denser and denser mantissa sets; the first giving enough ticks wins. (All nine
        // multiples crowd near the top of each decade, so they come last.)
        let sets: [&[f64]; 4] = [
            &[1.0],
            &[1.0, 2.0, 5.0],
            &[1.0, 2.0, 3.0, 5.0],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        ];
        let candidates: Vec<Vec<f64>> = sets
            .iter()
            .map(|set| in_range(set, 1))
            .take_while(|ticks| ticks.len() <= max_ticks)
            .collect();
        for enough in [4, 3, 2] {
            if let Some(ticks) = candidates.iter().find(|t| t.len() >= enough) {
                return ticks.clone();
            }
        }
        let decades = last_decade - first_decade;
        if decades as usize > max_ticks {
            // Many decades: label every n-th.
            let every = (decades as usize).div_ceil(max_ticks) as i32;
            return in_range(&[1.0], every);
        }
        // Less than a decade with at most one 1…9 multiple inside: plain linear ticks.
        linear_ticks(self.lo, self.hi, 8)
    }
}

/// About `target` ticks at 1-2-5 multiples of a power of ten inside `lo..=hi`.
fn linear_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let raw_step = (hi - lo) / target.max(1) as f64;
    if !(raw_step > 0.0 && raw_step.is_finite()) {
        return vec![lo];
    }
    let power = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw_step)
        .unwrap_or(10.0 * power);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

impl plotters::coord::ranged1d::Ranged for LogAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = (self.lo.log10(), self.hi.log10());
        // Values ≤ 0 have no place on a log axis; put them below it (clipped away).
        let v = if *value > 0.0 {
            value.log10()
        } else {
            a - (b - a)
        };
        let t = (v - a) / (b - a);
        (f64::from(limit.0) + t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        self.ticks(hint.max_num_points())
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn counts_and_ticks_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(135_000), "135,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(12.0), "12");
        assert_eq!(tick(14.9978), "15");
        assert_eq!(tick(2.5e-5), "2.5e-5");
    }

    #[test]
    fn log_axis_ticks_are_round_numbers_inside_the_range() {
        let ticks = |lo, hi| LogAxis::new(lo, hi).unwrap().ticks(10);
        // Inside one decade: enough multiples, including those below the first power of 10.
        assert_eq!(ticks(0.0101, 0.14), vec![0.02, 0.03, 0.05, 0.1]);
        assert_eq!(ticks(0.4, 1.3).len(), 7);
        // Three decades: 1-2-5.
        assert_eq!(
            ticks(0.002, 1.5),
            vec![0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
        );
        // Twelve decades: every second decade.
        assert_eq!(ticks(1.5e-9, 2e3), vec![1e-7, 1e-5, 1e-3, 1e-1, 1e1, 1e3]);
        // A sliver of a decade: linear ticks.
        assert!((4..=8).contains(&ticks(0.52, 0.58).len()));
        assert!(LogAxis::new(0.0, 1.0).is_none());
    }

    #[test]
    fn suffix_keeps_dots_in_the_name() {
        assert_eq!(
            with_suffix(Path::new("out/umap.epoch10"), "png"),
            PathBuf::from("out/umap.epoch10.png")
        );
    }
}
