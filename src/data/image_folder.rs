//! A folder of images (PNG, BMP, TIFF), searched recursively; one image is one member.
//!
//! Opening reads only each file's header (in parallel), so a folder of 135,000 images opens in
//! seconds; members are decoded on demand in [`MemberSource::read_f32`]. PNG and BMP go through
//! the `image` crate; TIFF through the `tiff` crate, which also handles grey `f32` and
//! multi-sample images.

use super::fit::{FitMode, fit_image};
use super::{DType, MemberSource, Shape, limits};
use crate::error::{DataError, DataResult};
use image::ImageDecoder;
use rayon::prelude::*;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A folder of same-sized images (or any sizes, fitted on read when `fit` is given).
pub struct ImageFolder {
    root: PathBuf,
    members: Vec<Member>,
    /// Channels, height and width of every member on disk (unless fitted).
    stored: Shape,
    dtype: DType,
    fit: Option<FitMode>,
}

struct Member {
    /// Path relative to the root, with `/` separators.
    id: String,
    path: PathBuf,
    /// Height and width on disk: members differ only when fitting.
    height_px: u32,
    width_px: u32,
}

/// What a file's header says about its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ImageInfo {
    shape: Shape,
    dtype: DType,
}

impl std::fmt::Display for ImageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.shape, self.dtype)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// PNG and BMP, through the `image` crate.
    Image,
    Tiff,
}

impl ImageFolder {
    /// Lists the images under `root` and reads every header. Without `fit`, all images must
    /// share channels × height × width and dtype; with it, only channels and dtype.
    pub fn open(root: &Path, fit: Option<FitMode>) -> DataResult<Self> {
        let mut files = Vec::new();
        collect_images(root, root, &mut files)?;
        files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        check_unique_ids(&files)?;

        let infos: Vec<DataResult<ImageInfo>> =
            files.par_iter().map(|(_, path)| read_info(path)).collect();
        let mut members = Vec::with_capacity(files.len());
        let mut first: Option<(ImageInfo, &str)> = None;
        for ((id, path), info) in files.iter().zip(infos) {
            let info = info?;
            let (reference, reference_id) = *first.get_or_insert((info, id));
            check_consistent(path, info, reference, reference_id, fit)?;
            members.push(Member {
                id: id.clone(),
                path: path.clone(),
                height_px: info.shape.height as u32,
                width_px: info.shape.width as u32,
            });
        }
        let Some((reference, _)) = first else {
            return Err(DataError::new(
                root,
                "no images found (looked for .png, .bmp, .tif, .tiff in this folder and below)",
            ));
        };
        Ok(Self {
            root: root.to_path_buf(),
            members,
            stored: reference.shape,
            dtype: reference.dtype,
            fit,
        })
    }
}

impl MemberSource for ImageFolder {
    fn origin(&self) -> String {
        self.root.display().to_string()
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    fn shape(&self) -> Shape {
        match self.fit {
            Some(fit) => fit.target_shape(self.stored.channels),
            None => self.stored,
        }
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn member_id(&self, index: usize) -> String {
        self.members
            .get(index)
            .map(|m| m.id.clone())
            .unwrap_or_default()
    }

    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()> {
        let member = self.members.get(index).ok_or_else(|| {
            DataError::new(
                &self.root,
                format!("member {index} out of range (ensemble has {})", self.len()),
            )
        })?;
        let (info, pixels) = decode(&member.path)?;
        let expected = ImageInfo {
            shape: Shape::new(
                self.stored.channels,
                member.height_px as usize,
                member.width_px as usize,
            ),
            dtype: self.dtype,
        };
        if info != expected {
            return Err(DataError::new(
                &member.path,
                format!("image is now {info} but was {expected} when the folder was opened"),
            ));
        }
        match self.fit {
            Some(fit) if info.shape != self.shape() => fit_image(&pixels, info.shape, fit, out)
                .map_err(|e| DataError::new(&member.path, e.to_string())),
            _ => {
                out.copy_from_slice(&pixels);
                Ok(())
            }
        }
    }
}

/// All images below `dir`, as (id relative to `root` with `/` separators, path). Hidden files
/// and folders (`.name`) are skipped, as are symbolic links to folders (no cycles).
fn collect_images(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> DataResult<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| DataError::io(&path, e))?;
        if file_type.is_dir() {
            collect_images(root, &path, files)?;
        } else if codec_for(&path).is_some() && path.is_file() {
            let id = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| id_component(c.as_os_str()))
                .collect::<Vec<_>>()
                .join("/");
            files.push((id, path));
        }
    }
    Ok(())
}

/// A file name as id text without loss: bytes that are not UTF-8 become `\xNN`, so
/// `bad\xff.png` and `bad\xfe.png` stay two members (a lossy conversion made both `bad�.png`).
fn id_component(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut id = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        id.push_str(chunk.valid());
        for byte in chunk.invalid() {
            id.push_str(&format!("\\x{byte:02x}"));
        }
    }
    id
}

/// Two files with one id (a name spelled with a literal `\xNN` beside one with that byte)
/// would share labels; refused before anything else is read.
fn check_unique_ids(files: &[(String, PathBuf)]) -> DataResult<()> {
    match files.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        Some(pair) => Err(DataError::new(
            &pair[1].1,
            format!(
                "has the same member id '{}' as {}; rename one of them",
                pair[0].0,
                pair[0].1.display()
            ),
        )),
        None => Ok(()),
    }
}

fn codec_for(path: &Path) -> Option<Codec> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "png" | "bmp" => Some(Codec::Image),
        "tif" | "tiff" => Some(Codec::Tiff),
        _ => None,
    }
}

fn check_consistent(
    path: &Path,
    info: ImageInfo,
    reference: ImageInfo,
    reference_id: &str,
    fit: Option<FitMode>,
) -> DataResult<()> {
    let same_pixels =
        info.shape.channels == reference.shape.channels && info.dtype == reference.dtype;
    if !same_pixels || (fit.is_none() && info.shape != reference.shape) {
        let hint = if same_pixels {
            "; pass --resize HxW or --center-crop HxW to bring all images to one size"
        } else {
            ""
        };
        return Err(DataError::new(
            path,
            format!(
                "image is {info} but {reference_id} is {reference} (C×H×W); \
                 all images of a folder must match{hint}"
            ),
        ));
    }
    if let Some(mode @ FitMode::CenterCrop { height, width }) = fit
        && (info.shape.height < height || info.shape.width < width)
    {
        return Err(DataError::new(
            path,
            format!(
                "cannot {mode}: the image is only {}×{} px",
                info.shape.height, info.shape.width
            ),
        ));
    }
    Ok(())
}

/// Reads only the header of an image file.
fn read_info(path: &Path) -> DataResult<ImageInfo> {
    let info = match codec_for(path) {
        Some(Codec::Tiff) => {
            let mut decoder = open_tiff(path)?;
            tiff_info(path, &mut decoder)?
        }
        _ => {
            let decoder = open_image(path)?;
            image_info(path, &decoder)?
        }
    };
    check_size(path, info)?;
    Ok(info)
}

/// Decodes a whole image to CHW `f32`.
fn decode(path: &Path) -> DataResult<(ImageInfo, Vec<f32>)> {
    match codec_for(path) {
        Some(Codec::Tiff) => decode_tiff(path),
        _ => decode_image(path),
    }
}

/// A small, highly compressed file can declare gigapixels: the decoded `f32` size is checked
/// against the shared member limit before anything is decoded.
fn check_size(path: &Path, info: ImageInfo) -> DataResult<()> {
    if info.shape.is_empty() {
        return Err(DataError::new(
            path,
            format!("image size {info} is not usable (empty)"),
        ));
    }
    limits::check_member(path, info.shape)
}

fn corrupt(path: &Path, err: impl std::fmt::Display) -> DataError {
    DataError::new(
        path,
        format!("cannot decode image (corrupt or truncated?): {err}"),
    )
}

// ---- PNG and BMP, through the `image` crate ----

fn open_image(path: &Path) -> DataResult<impl ImageDecoder> {
    image::ImageReader::open(path)
        .and_then(|reader| reader.with_guessed_format())
        .map_err(|e| DataError::io(path, e))?
        .into_decoder()
        .map_err(|e| corrupt(path, e))
}

fn image_info(path: &Path, decoder: &impl ImageDecoder) -> DataResult<ImageInfo> {
    use image::ColorType;
    let color = decoder.color_type();
    let channels = color.channel_count() as usize;
    let sample_bytes = color.bytes_per_pixel() as usize / channels;
    let dtype = match (
        sample_bytes,
        matches!(color, ColorType::Rgb32F | ColorType::Rgba32F),
    ) {
        (1, false) => DType::U8,
        (2, false) => DType::U16,
        (4, true) => DType::F32,
        _ => {
            return Err(DataError::new(
                path,
                format!("unsupported pixel type {color:?}"),
            ));
        }
    };
    let (width, height) = decoder.dimensions();
    Ok(ImageInfo {
        shape: Shape::new(channels, height as usize, width as usize),
        dtype,
    })
}

fn decode_image(path: &Path) -> DataResult<(ImageInfo, Vec<f32>)> {
    let decoder = open_image(path)?;
    let info = image_info(path, &decoder)?;
    check_size(path, info)?;
    // Bounded by check_size; the decoder writes samples in native byte order.
    let mut bytes = vec![0u8; info.shape.len() * info.dtype.size_bytes()];
    decoder
        .read_image(&mut bytes)
        .map_err(|e| corrupt(path, e))?;
    let mut pixels = vec![0.0f32; info.shape.len()];
    match info.dtype {
        DType::U8 => deinterleave(bytes.iter().map(|&v| v as f32), info.shape, &mut pixels),
        DType::U16 => deinterleave(
            bytes
                .chunks_exact(2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]) as f32),
            info.shape,
            &mut pixels,
        ),
        DType::F32 => deinterleave(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
            info.shape,
            &mut pixels,
        ),
        DType::F64 => return Err(corrupt(path, "unexpected f64 pixels")),
    }
    Ok((info, pixels))
}

/// Writes interleaved (HWC) samples to `out` in CHW order.
fn deinterleave(samples: impl Iterator<Item = f32>, shape: Shape, out: &mut [f32]) {
    let plane = shape.plane_len();
    for (i, v) in samples.enumerate().take(shape.len()) {
        out[(i % shape.channels) * plane + i / shape.channels] = v;
    }
}

// ---- TIFF, through the `tiff` crate ----

fn open_tiff(path: &Path) -> DataResult<tiff::decoder::Decoder<BufReader<File>>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    tiff::decoder::Decoder::new(BufReader::new(file)).map_err(|e| corrupt(path, e))
}

fn tiff_info(
    path: &Path,
    decoder: &mut tiff::decoder::Decoder<BufReader<File>>,
) -> DataResult<ImageInfo> {
    use tiff::ColorType;
    use tiff::decoder::DecodingSampleType as Sample;
    let color = decoder.colortype().map_err(|e| corrupt(path, e))?;
    let channels = match color {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        ColorType::RGB(_) => 3,
        ColorType::RGBA(_) => 4,
        ColorType::Multiband { num_samples, .. } => num_samples as usize,
        other => {
            return Err(DataError::new(
                path,
                format!(
                    "unsupported TIFF colour type {other:?}; use grey, RGB(A) or \
                     multi-sample images"
                ),
            ));
        }
    };
    let layout = decoder
        .image_buffer_layout()
        .map_err(|e| corrupt(path, e))?;
    let dtype = match (layout.sample_type, color.bit_depth()) {
        (Some(Sample::U8), 8) => DType::U8,
        (Some(Sample::U16), 16) => DType::U16,
        (Some(Sample::F32), 32) => DType::F32,
        (Some(Sample::F64), 64) => DType::F64,
        (sample, bits) => {
            return Err(DataError::new(
                path,
                format!(
                    "unsupported TIFF samples ({bits}-bit {sample:?}); \
                     supported: 8- and 16-bit unsigned, 32- and 64-bit float"
                ),
            ));
        }
    };
    let (width, height) = decoder.dimensions().map_err(|e| corrupt(path, e))?;
    Ok(ImageInfo {
        shape: Shape::new(channels, height as usize, width as usize),
        dtype,
    })
}

fn decode_tiff(path: &Path) -> DataResult<(ImageInfo, Vec<f32>)> {
    use tiff::decoder::DecodingResult;
    let mut decoder = open_tiff(path)?;
    let info = tiff_info(path, &mut decoder)?;
    check_size(path, info)?;
    let mut result = DecodingResult::U8(Vec::new());
    let layout = decoder
        .read_image_to_buffer(&mut result)
        .map_err(|e| corrupt(path, e))?;
    let samples: Vec<f32> = match result {
        DecodingResult::U8(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::U16(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::F32(v) => v,
        DecodingResult::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        _ => return Err(corrupt(path, "unexpected sample type")),
    };
    if samples.len() < info.shape.len() {
        return Err(corrupt(
            path,
            format!(
                "decoded {} samples, expected {}",
                samples.len(),
                info.shape.len()
            ),
        ));
    }
    if layout.planes > 1 {
        // Planar configuration: the planes already follow each other (CHW).
        let mut pixels = samples;
        pixels.truncate(info.shape.len());
        Ok((info, pixels))
    } else {
        let mut pixels = vec![0.0f32; info.shape.len()];
        deinterleave(samples.into_iter(), info.shape, &mut pixels);
        Ok((info, pixels))
    }
}
