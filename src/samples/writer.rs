//! Writes an ensemble as a folder of PNGs plus label CSVs, as `sense sample` does:
//!
//! ```text
//! OUT/images/000000.png …    one 8-bit image per member (gray, or RGB for 3 channels)
//! OUT/labels.csv             id,label — the hand-labelled subset, blank for the rest
//! OUT/ground_truth.csv       id,label — every member's class (when known)
//! ```
//!
//! Ids are the image paths relative to `OUT` (`images/000123.png`), which is what the image
//! folder reader reports for `OUT`. File stems are the member index zero-padded to at least
//! six digits, whatever the ensemble's own member ids are, so they are always valid names.

use crate::data::{ClassLabels, DType, Ensemble};
use crate::error::{DataError, DataResult};
use image::{ExtendedColorType, ImageFormat};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::path::Path;

pub const IMAGES_DIR: &str = "images";
pub const LABELS_FILE: &str = "labels.csv";
pub const GROUND_TRUTH_FILE: &str = "ground_truth.csv";

/// What [`write_ensemble`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub members: usize,
    /// Members with a label in `labels.csv`.
    pub labelled: usize,
}

/// Id (relative image path) of member `index` in an ensemble of `count` members.
pub fn image_id(index: usize, count: usize) -> String {
    let width = count.saturating_sub(1).to_string().len().max(6);
    format!("{IMAGES_DIR}/{index:0width$}.png")
}

/// Writes every member of `ensemble` under `out_dir` (created if missing), in parallel,
/// advancing `progress` by one per member.
pub fn write_ensemble(
    ensemble: &Ensemble,
    out_dir: &Path,
    progress: &ProgressBar,
) -> DataResult<Written> {
    let shape = ensemble.shape();
    let color = match shape.channels {
        1 => ExtendedColorType::L8,
        3 => ExtendedColorType::Rgb8,
        n => {
            return Err(DataError::new(
                ensemble.origin(),
                format!("cannot write {n}-channel members as PNG (only 1 or 3 channels)"),
            ));
        }
    };
    if ensemble.dtype() != DType::U8 {
        return Err(DataError::new(
            ensemble.origin(),
            format!(
                "only u8 ensembles can be written as 8-bit PNGs, not {}",
                ensemble.dtype()
            ),
        ));
    }
    let (width, height) = (
        dimension(ensemble, shape.width)?,
        dimension(ensemble, shape.height)?,
    );
    let images_dir = out_dir.join(IMAGES_DIR);
    std::fs::create_dir_all(&images_dir).map_err(|e| DataError::io(&images_dir, e))?;

    let count = ensemble.len();
    progress.set_length(count as u64);
    (0..count).into_par_iter().try_for_each_init(
        || (vec![0.0f32; shape.len()], vec![0u8; shape.len()]),
        |(values, bytes), index| -> DataResult<()> {
            ensemble.source.read_f32(index, values)?;
            // CHW planes → interleaved pixels (a no-op reordering for one channel).
            let plane = shape.plane_len();
            for (i, v) in values.iter().enumerate() {
                let (channel, pixel) = (i / plane, i % plane);
                bytes[pixel * shape.channels + channel] = v.round().clamp(0.0, 255.0) as u8;
            }
            let path = out_dir.join(image_id(index, count));
            image::save_buffer_with_format(&path, bytes, width, height, color, ImageFormat::Png)
                .map_err(|e| DataError::new(&path, format!("cannot write PNG: {e}")))?;
            progress.inc(1);
            Ok(())
        },
    )?;

    let mut labelled = 0;
    if let Some(labels) = &ensemble.labels {
        write_labels(&out_dir.join(LABELS_FILE), labels, count)?;
        labelled = labels.labelled_count();
    }
    if let Some(truth) = &ensemble.ground_truth {
        write_labels(&out_dir.join(GROUND_TRUTH_FILE), truth, count)?;
    }
    Ok(Written {
        members: count,
        labelled,
    })
}

fn dimension(ensemble: &Ensemble, size: usize) -> DataResult<u32> {
    u32::try_from(size)
        .map_err(|_| DataError::new(ensemble.origin(), format!("image side {size} is too large")))
}

/// `id,label` rows for all `count` members; unlabelled members get an empty label.
fn write_labels(path: &Path, labels: &ClassLabels, count: usize) -> DataResult<()> {
    let csv_error = |e: csv::Error| DataError::new(path, format!("cannot write CSV: {e}"));
    let mut writer = csv::Writer::from_path(path).map_err(csv_error)?;
    writer.write_record(["id", "label"]).map_err(csv_error)?;
    for index in 0..count {
        let label = labels.class_name(index).unwrap_or("");
        writer
            .write_record([image_id(index, count).as_str(), label])
            .map_err(csv_error)?;
    }
    writer.flush().map_err(|e| DataError::io(path, e))
}

/// Writes a gray PNG montage to `path`: one row per class (in class order) of the first
/// `per_class` members of that class, each enlarged `scale` times, on a mid-gray grid.
/// Classes come from the ground truth, else the labels.
pub fn write_class_montage(
    ensemble: &Ensemble,
    per_class: usize,
    scale: usize,
    path: &Path,
) -> DataResult<()> {
    let Some(classes) = ensemble.ground_truth.as_ref().or(ensemble.labels.as_ref()) else {
        return Err(DataError::new(
            ensemble.origin(),
            "no classes to arrange a montage by",
        ));
    };
    let shape = ensemble.shape();
    let (tile_w, tile_h) = (shape.width * scale, shape.height * scale);
    const GAP_PX: usize = 4;
    let rows = classes.classes.len();
    let width = per_class * (tile_w + GAP_PX) + GAP_PX;
    let height = rows * (tile_h + GAP_PX) + GAP_PX;
    let mut canvas = vec![128u8; width * height];
    let mut values = vec![0.0f32; shape.len()];
    for (row, class) in (0..rows as u32).enumerate() {
        let members = (0..ensemble.len()).filter(|&i| classes.per_member[i] == Some(class));
        for (col, index) in members.take(per_class).enumerate() {
            ensemble.source.read_f32(index, &mut values)?;
            let (x0, y0) = (
                GAP_PX + col * (tile_w + GAP_PX),
                GAP_PX + row * (tile_h + GAP_PX),
            );
            for y in 0..tile_h {
                for x in 0..tile_w {
                    // First channel only: montages are for gray samples.
                    let v = values[(y / scale) * shape.width + x / scale];
                    canvas[(y0 + y) * width + x0 + x] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    let (w, h) = (dimension(ensemble, width)?, dimension(ensemble, height)?);
    image::save_buffer_with_format(path, &canvas, w, h, ExtendedColorType::L8, ImageFormat::Png)
        .map_err(|e| DataError::new(path, format!("cannot write PNG: {e}")))
}
