//! `sense sweep`: train every run of a grid (e.g. assets/sweep/paper_table1.toml, the SENSE
//! paper's Table 1) one after another — resumable: finished runs are kept, an interrupted one
//! continues — and write the table of UMAP silhouettes (`table.md`, `table.csv`).

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::say;

use crate::data::NanPolicy;
use crate::report::latent_map_of_run;
use crate::sweep::{RunScore, SweepEvent, SweepPlan, run_sweep};
use crate::task::TaskControl;
use crate::train::{BackendChoice, open_training_data};

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Dataset: folder of images, .npy, .npz, IDX file, or sample:channels|droplets|mnist.
    #[arg(long)]
    pub data: String,
    /// Labels for the label losses and the scores (default: those that come with the data).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The grid (TOML); see assets/sweep/paper_table1.toml.
    #[arg(long)]
    pub grid: PathBuf,
    /// Sweep directory: one run directory per cell, plus table.md and table.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Overrides every run's backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Overrides every run's epoch count (a quick look at a big grid).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// List the runs and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar (for logs).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let mut plan = SweepPlan::load(&args.grid)?;
    for run in &mut plan.runs {
        if let Some(backend) = args.backend {
            run.config.backend = backend;
        }
        if let Some(epochs) = args.epochs {
            run.config.epochs = epochs;
        }
    }
    eprintln!(
        "{} rows × {} columns = {} runs in {}",
        plan.rows.len(),
        plan.columns.len(),
        plan.runs.len(),
        args.out.display()
    );
    if args.dry_run {
        for run in &plan.runs {
            println!("{}  ({} epochs)", run.dir_name, run.config.epochs);
        }
        return Ok(());
    }

    let (ensemble, labels) =
        open_training_data(&args.data, args.labels.as_deref(), NanPolicy::Reject)?;
    let bar = match args.quiet {
        true => ProgressBar::hidden(),
        false => ProgressBar::new(plan.runs.len() as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} runs {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // Scores use the hand labels only, whatever trained the runs.
    let manual = labels.snapshot(&ensemble, f32::INFINITY)?;
    let score = |run_dir: &std::path::Path| -> anyhow::Result<RunScore> {
        let map = latent_map_of_run(run_dir, &manual, &TaskControl::new())?;
        let scores = map.scores.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: fewer than 2 labelled classes among the latents",
                run_dir.display()
            )
        })?;
        Ok(RunScore {
            silhouette: scores.silhouette,
            neighbourhood_hit: Some(scores.neighbourhood_hit),
        })
    };
    let mut on_event = |event: SweepEvent| match event {
        SweepEvent::RunStarted { dir, resumed, .. } => bar.set_message(format!(
            "{}{}",
            dir.strip_prefix(&args.out).unwrap_or(&dir).display(),
            if resumed { " (resumed)" } else { "" }
        )),
        SweepEvent::Epoch {
            index,
            epoch,
            epochs,
        } => bar.set_message(format!(
            "{}: epoch {}/{epochs}",
            plan.runs[index].dir_name,
            epoch + 1
        )),
        SweepEvent::RunDone {
            index,
            score,
            already_done,
        } => {
            bar.inc(1);
            say(&bar, format!(
                "{:<48} silhouette {:.4}{}",
                plan.runs[index].dir_name,
                score.silhouette,
                if already_done { "  (done before)" } else { "" }
            ));
        }
    };
    let table = run_sweep(
        &plan,
        &ensemble,
        &labels,
        &args.out,
        &score,
        &TaskControl::new(),
        &mut on_event,
    )?;
    bar.finish_and_clear();
    table.write(&args.out)?;
    println!("{}", table.to_markdown());
    println!("written: {}/table.md and table.csv", args.out.display());
    Ok(())
}

