//! One entry point from a user's dataset spec (path or `sample:NAME`) to an [`Ensemble`].

use super::fit::{FitMode, FittedSource};
use super::{
    ClassLabels, DType, Ensemble, MemberSource, ParameterTable, idx, image_folder, limits, npy,
};
use crate::error::{DataError, DataResult};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to do with NaN/Inf values in float data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NanPolicy {
    /// Refuse the ensemble, naming the first offending member.
    #[default]
    Reject,
    /// Load it, report the count, and let normalisation replace them by the channel mean.
    Report,
}

/// Options for [`open`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Labels CSV (`id,label`) or IDX labels file. For IDX images without it, a labels file
    /// beside them (`*-images*` → `*-labels*`) is used if present.
    pub labels: Option<PathBuf>,
    /// Parameters CSV (`id,<name>,<name>…`).
    pub parameters: Option<PathBuf>,
    /// Bring members of other sizes to one size instead of rejecting them.
    pub fit: Option<FitMode>,
    pub nan_policy: NanPolicy,
}

/// Opens a dataset: a folder of images, an IDX file (optionally `.gz`), an `.npy`/`.npz`
/// array, or a built-in sample (`sample:channels`, `sample:droplets`, `sample:mnist`).
pub fn open(spec: &str, options: &OpenOptions) -> DataResult<Ensemble> {
    let mut ensemble = if let Some(name) = spec.strip_prefix("sample:") {
        crate::samples::open(name)?
    } else {
        Ensemble::new(open_source(Path::new(spec), options)?)
    };
    if let Some(fit) = options.fit
        && ensemble.shape() != fit.target_shape(ensemble.shape().channels)
        && !Path::new(spec).is_dir()
    {
        ensemble.source = Arc::new(FittedSource::new(ensemble.source.clone(), fit));
    }
    // After fitting: `--resize` can ask for members far larger than any on disk.
    limits::check_member(Path::new(spec), ensemble.shape())?;
    ensemble.nan_count = check_non_finite(ensemble.source.as_ref(), options.nan_policy)?;

    let labels_path = options
        .labels
        .clone()
        .or_else(|| idx::sibling_labels_file(Path::new(spec)));
    if let Some(path) = labels_path {
        check_regular_file(&path)?;
        ensemble.labels = Some(ClassLabels::load(&path, &ensemble)?);
    }
    if let Some(path) = &options.parameters {
        check_regular_file(path)?;
        ensemble.parameters = Some(ParameterTable::load(path, &ensemble)?);
    }
    Ok(ensemble)
}

fn open_source(path: &Path, options: &OpenOptions) -> DataResult<Arc<dyn MemberSource>> {
    if path.is_dir() {
        return Ok(Arc::new(image_folder::ImageFolder::open(
            path,
            options.fit,
        )?));
    }
    check_regular_file(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let source: Arc<dyn MemberSource> = if name.ends_with(".npy") {
        Arc::new(npy::open_npy(path)?)
    } else if name.ends_with(".npz") {
        Arc::new(npy::open_npz(path, None)?)
    } else if idx::looks_like_idx(&name) {
        Arc::new(idx::open_images(path)?)
    } else {
        return Err(DataError::new(
            path,
            "unknown dataset format: expected a folder of images, .npy, .npz, an IDX file \
             (*-ubyte, *.idx, optionally .gz) or sample:NAME",
        ));
    };
    Ok(source)
}

/// A FIFO or device named like data would block or stream forever; only files are read.
pub(crate) fn check_regular_file(path: &Path) -> DataResult<()> {
    let metadata = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !metadata.is_file() {
        return Err(DataError::new(
            path,
            "not a regular file (a FIFO, socket or device cannot be read as data)",
        ));
    }
    Ok(())
}

/// Counts NaN/Inf values of float ensembles (integer data cannot hold them).
fn check_non_finite(source: &dyn MemberSource, policy: NanPolicy) -> DataResult<u64> {
    if !source.dtype().is_float() {
        return Ok(0);
    }
    let len = source.shape().len();
    let per_member: Vec<u64> = (0..source.len())
        .into_par_iter()
        .map_init(
            || vec![0.0f32; len],
            |buf, i| -> DataResult<u64> {
                source.read_f32(i, buf)?;
                Ok(buf.iter().filter(|v| !v.is_finite()).count() as u64)
            },
        )
        .collect::<DataResult<_>>()?;
    let total: u64 = per_member.iter().sum();
    if total > 0 && policy == NanPolicy::Reject {
        let first = per_member.iter().position(|&n| n > 0).unwrap_or(0);
        // f64 data beyond ±3.4e38 becomes Inf as f32: say so, it is not a missing value.
        let what = match source.dtype() {
            DType::F64 => "NaN/Inf values (or f64 values beyond the f32 range)",
            _ => "NaN/Inf values",
        };
        return Err(DataError::new(
            source.origin(),
            format!(
                "{total} {what} in {} members (first: member {}); \
                 pass --nan report to load anyway",
                per_member.iter().filter(|&&n| n > 0).count(),
                source.member_id(first)
            ),
        ));
    }
    Ok(total)
}
