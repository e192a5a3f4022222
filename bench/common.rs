//! Helpers several bench examples share (each includes this file with `#[path]`; a bench
//! uses what it needs, hence the `dead_code` allowance).
#![allow(dead_code)]

use anyhow::Result;
use ndarray::ArrayView2;
use sense::analysis::embedding_metrics::{Sampling, neighbourhood_hit, silhouette};
use sense::projection::{ProjectionConfig, UmapConfig, project};
use sense::task::TaskControl;

/// Neighbourhood size of the map scores, as `sense eval`.
pub const NEIGHBOURS: usize = 17;

/// Neighbourhood hit (k = 17) and silhouette of `rows` (with `classes`) in a fresh UMAP
/// (umap-learn's defaults, reproducible).
pub fn umap_scores(rows: ArrayView2<f32>, classes: &[usize]) -> Result<(f64, f64)> {
    let control = TaskControl::new();
    let layout = project(
        rows,
        &ProjectionConfig::Umap(UmapConfig::default()),
        None,
        &control,
    )?;
    let sampling = Sampling::default();
    let coords = layout.coords.view();
    let hit = neighbourhood_hit(coords, classes, NEIGHBOURS, &sampling, &control)?.value;
    let sil = silhouette(coords, classes, &sampling, &control)?.value;
    Ok((hit, sil))
}

/// Prints peak (VmHWM) and current (VmRSS) resident memory; returns the peak.
pub fn report_memory(when: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    let (peak, current) = (field("VmHWM:"), field("VmRSS:"));
    println!(
        "memory      {when}: peak resident {}, current {}",
        peak.map_or("unknown".into(), gigabytes),
        current.map_or("unknown".into(), gigabytes)
    );
    peak
}

pub fn gigabytes(bytes: u64) -> String {
    format!("{:.3} GB", bytes as f64 / 1e9)
}
