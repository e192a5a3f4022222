//! `sense report RUN_DIR`: figures (PNG + SVG) and a `report.md` of a training run.

use std::path::PathBuf;

use clap::Args;

use crate::report::{RunReportOptions, write_run_report};
use crate::task::TaskControl;
use crate::train::BackendChoice;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run directory written by `sense train`.
    pub run_dir: PathBuf,
    /// The dataset, when the run's dataset.json is missing or the data moved.
    #[arg(long)]
    pub data: Option<String>,
    /// Labels to colour the latent map by (default: those the run trained with).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Where the figures and report.md go (default: RUN_DIR/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the model runs for the reconstructions.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// Also write map_animation.gif: the latent map over the epochs, from the run's
    /// per-epoch layouts (written while the app trains, or by `sense train --layouts`).
    #[arg(long)]
    pub animation: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let options = RunReportOptions {
        out_dir: args.out.unwrap_or_else(|| args.run_dir.join("report")),
        data: args.data,
        labels: args.labels,
        backend: args.backend,
        animation: args.animation,
    };
    let report = write_run_report(&args.run_dir, &options, &TaskControl::new())?;
    if let Some(s) = report.embedding {
        println!(
            "latent map: silhouette {:.4}, neighbourhood hit {:.4}, separability {:.4}",
            s.silhouette, s.neighbourhood_hit, s.separability
        );
    }
    for (name, q) in [("model", report.model), ("PCA", report.pca)] {
        println!(
            "{name:<6} MSE {:.5}  PSNR {:.2} dB  SSIM {:.4}",
            q.mse, q.psnr_db, q.ssim
        );
    }
    if let Some((path, outcome)) = &report.animation {
        println!(
            "animation: {} ({} epochs, {} frames, {:.1} MB)",
            path.display(),
            outcome.epochs,
            outcome.frames,
            outcome.bytes as f64 / 1e6
        );
    }
    println!("report: {}", report.markdown.display());
    Ok(())
}
