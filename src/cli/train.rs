//! `sense train`: train an autoencoder on a dataset and write a run directory.

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::epoch_layouts::EpochLayoutWriter;
use super::say;
use std::path::PathBuf;

use crate::data::{Ensemble, NanPolicy};
use crate::labels::LabelSnapshot;
use crate::nn::ModelKind;
use crate::train::run_dir::{self, DatasetRecord};
use crate::train::{
    BackendChoice, EvalSubset, StepProgress, TrainConfig, TrainEvent, Trainer, open_training_data,
};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Dataset: folder of images, .npy, .npz, IDX file, or sample:channels|droplets|mnist.
    #[arg(long)]
    pub data: String,
    /// Labels for the label losses: a label-store CSV (manual and pseudo labels) or a plain
    /// `id,label` CSV / IDX labels file. Default: the labels that come with the data.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Run configuration (TOML); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run directory: config, metrics, checkpoints, latents.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its config.toml, with the flags
    /// below applied).
    #[arg(long)]
    pub resume: bool,
    /// Replace a run already in --out (its files and checkpoints; nothing else there).
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub latent_dim: Option<usize>,
    #[arg(long, value_parser = parse_model_kind)]
    pub model: Option<ModelKind>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub val_fraction: Option<f64>,
    #[arg(long)]
    pub lambda_cluster: Option<f64>,
    #[arg(long)]
    pub lambda_contrastive: Option<f64>,
    /// Pseudo-labels below this confidence do not train.
    #[arg(long)]
    pub pseudo_threshold: Option<f32>,
    /// Members whose latents go to latents.npy.
    #[arg(long, value_enum, default_value = "eval")]
    pub export_latents: ExportLatents,
    /// Also map every epoch's evaluation latents to 2-D (UMAP, warm-started, at most 10,000
    /// members) into RUN/layouts, for `sense report RUN --animation`.
    #[arg(long)]
    pub layouts: bool,
    /// NaN/Inf values in float data: reject the dataset, or report and load it.
    #[arg(long = "nan", value_enum, default_value_t = NanPolicy::Reject)]
    pub nan_policy: NanPolicy,
    /// No progress bar (for logs).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportLatents {
    /// The evaluation subset (hand-labelled members).
    Eval,
    All,
}

fn parse_model_kind(text: &str) -> Result<ModelKind, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("unknown model {text:?}; use ae, vae, unet-vae or cnn-ae"))
}

/// How often the event loop looks for a Ctrl-C while no event arrives.
const SIGNAL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    // Held until training ends: a second `sense train` into this directory is refused.
    let _lock = run_dir::RunLock::acquire(&args.out)?;
    let checkpoint = args.out.join(run_dir::CHECKPOINT).join(run_dir::STATE_FILE);
    if args.resume && !checkpoint.is_file() {
        bail!(
            "{}: no checkpoint to resume from (a run writes one at the end of each epoch); \
             `--force` starts the run again",
            args.out.display()
        );
    }
    if !args.resume && !args.force && run_dir::holds_run(&args.out) {
        bail!(
            "{}: already holds a run; pass --resume to continue it or --force to replace it",
            args.out.display()
        );
    }
    let config = build_config(&args)?;
    let (ensemble, labels) = open_data(&args, &config)?;
    // Before any weight is allocated, and naming the file the setting came from.
    let config_file = match (&args.config, args.resume) {
        (_, true) => args.out.join(run_dir::CONFIG),
        (Some(path), false) => path.clone(),
        (None, false) => PathBuf::from("the default configuration"),
    };
    config
        .model
        .validate(ensemble.shape())
        .with_context(|| config_file.display().to_string())?;
    let record = dataset_record(&args)?;
    eprintln!(
        "{}: {} members of {}, {} labelled",
        ensemble.origin(),
        ensemble.len(),
        ensemble.shape(),
        labels.len()
    );
    if ensemble.nan_count > 0 {
        // f64 data beyond ±3.4e38 becomes Inf as f32: it is replaced too, so say so.
        let what = match ensemble.dtype() {
            crate::data::DType::F64 => "NaN/Inf values (or f64 values beyond the f32 range)",
            _ => "NaN/Inf values",
        };
        eprintln!(
            "note: {} {what}; normalisation replaces them by the channel mean",
            ensemble.nan_count
        );
    }
    let epochs = config.epochs;
    let seed = config.seed;
    // Only now that every check has passed is anything in the run directory changed.
    if args.force {
        run_dir::remove_run(&args.out)?;
    }
    let handle = match args.resume {
        true => Trainer::resume(ensemble, labels, config, &args.out)?,
        false => Trainer::spawn(ensemble, labels, config, &args.out)?,
    };
    run_dir::write_json(&args.out.join(run_dir::DATASET), &record)?;
    let layouts = args
        .layouts
        .then(|| EpochLayoutWriter::spawn(args.out.clone(), seed))
        .transpose()?;

    let bar = match args.quiet {
        true => ProgressBar::hidden(),
        false => ProgressBar::new(0),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps {elapsed_precise} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let interrupt = super::interrupt::cancelled_by_signals()?;
    let mut stop_asked = false;
    let mut steps_per_epoch = 0;
    loop {
        if interrupt.is_cancelled() && !stop_asked {
            say(
                &bar,
                "stopping at the next step (a second Ctrl-C ends at once)…",
            );
            handle.stop();
            stop_asked = true;
        }
        let event = match handle.recv_timeout(SIGNAL_POLL) {
            Ok(event) => event,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        match &event {
            TrainEvent::Backend {
                name,
                fallback_reason,
                ..
            } => {
                if let Some(reason) = fallback_reason {
                    say(&bar, format!("note: {reason}"));
                }
                say(&bar, format!("backend: {name}"));
            }
            TrainEvent::Started {
                train_members,
                val_members,
                steps_per_epoch: steps,
                first_epoch,
                ..
            } => {
                steps_per_epoch = *steps;
                say(
                    &bar,
                    format!(
                        "training on {train_members} members, validating on {val_members}; \
                     {steps} steps per epoch"
                    ),
                );
                bar.set_length((steps * epochs.saturating_sub(*first_epoch)) as u64);
            }
            TrainEvent::Step(StepProgress {
                epoch,
                step,
                losses,
                ..
            }) => {
                bar.set_prefix(format!("epoch {}/{epochs}", epoch + 1));
                bar.set_position(
                    bar.length()
                        .unwrap_or(0)
                        .min((steps_per_epoch * epoch + step + 1) as u64),
                );
                bar.set_message(format!("loss {:.4}", losses.total));
            }
            TrainEvent::Epoch(e) => {
                let val = e.val.map_or("-".into(), |v| format!("{:.5}", v.total));
                let psnr = e.val_psnr_db.map_or("-".into(), |p| format!("{p:.2} dB"));
                let ssim = e.val_ssim.map_or("-".into(), |s| format!("{s:.4}"));
                say(
                    &bar,
                    format!(
                        "epoch {}: train {:.5}  val {val}  PSNR {psnr}  SSIM {ssim}  {:.0} img/s{}",
                        e.epoch + 1,
                        e.train.total,
                        e.images_per_sec,
                        if e.best { "  (best)" } else { "" }
                    ),
                );
            }
            TrainEvent::Recovered { message, .. } => say(&bar, format!("warning: {message}")),
            TrainEvent::Latents(latents) => {
                if let Some(layouts) = &layouts {
                    layouts.push(latents.clone());
                }
            }
            TrainEvent::Finished(summary) => {
                bar.finish_and_clear();
                if let Some(layouts) = layouts {
                    eprintln!("mapping the last epochs' latents…");
                    let written = layouts.finish()?;
                    eprintln!(
                        "{written} epoch layouts in {}",
                        args.out.join(run_dir::LAYOUTS).display()
                    );
                }
                let mse = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.5}"));
                eprintln!(
                    "done: {} epochs on {}; val MSE {} vs mean-image baseline {}, PSNR {}, \
                     SSIM {}; {:.0} img/s; run in {}",
                    summary.epochs,
                    summary.backend,
                    mse(summary.val_mse),
                    mse(summary.baseline_val_mse),
                    summary
                        .val_psnr
                        .map_or("-".into(), |p| format!("{p:.2} dB")),
                    summary.val_ssim.map_or("-".into(), |s| format!("{s:.4}")),
                    summary.images_per_sec,
                    args.out.display()
                );
                handle.join();
                return Ok(());
            }
            TrainEvent::Stopped { epoch: 0, .. } => {
                bar.abandon();
                bail!(
                    "training stopped before its first epoch ended, so there is no checkpoint \
                     to resume; `--force` starts the run again"
                );
            }
            TrainEvent::Stopped { epoch, .. } => {
                bar.abandon();
                bail!(
                    "training stopped; {epoch} epochs are in the last checkpoint, and \
                     `sense train --out {} --resume` continues from there",
                    args.out.display()
                );
            }
            TrainEvent::Error(message) => {
                bar.abandon();
                bail!("training failed: {message}");
            }
            _ => {}
        }
    }
    bail!("the training thread ended without a final report")
}

/// What `dataset.json` will say, so `sense report` can reopen the data (absolute paths, so the
/// record holds from any working directory). A resume must name the data the run was trained
/// on: other data would be refused later, after the record had been rewritten.
fn dataset_record(args: &TrainArgs) -> anyhow::Result<DatasetRecord> {
    let record = DatasetRecord::new(&args.data, args.labels.as_deref());
    let previous = args.out.join(run_dir::DATASET);
    if args.resume
        && let Ok(old) = run_dir::read_json::<DatasetRecord>(&previous)
        && old.data != record.data
    {
        bail!(
            "{}: the run was trained on {}, not {}; --resume needs the same data",
            previous.display(),
            old.data,
            record.data
        );
    }
    Ok(record)
}

fn build_config(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let mut config = if args.resume {
        Trainer::load_config(&args.out).context("--resume needs a run directory in --out")?
    } else if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        TrainConfig::from_toml(&text).with_context(|| format!("{}", path.display()))?
    } else {
        TrainConfig::default()
    };
    if let Some(v) = args.backend {
        config.backend = v;
    }
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.batch_size {
        config.optimizer.batch_size = v;
    }
    if let Some(v) = args.lr {
        config.optimizer.learning_rate = v;
    }
    if let Some(v) = args.latent_dim {
        config.model.latent_dim = v;
    }
    if let Some(v) = args.model {
        config.model.kind = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.val_fraction {
        config.data.val_fraction = v;
    }
    if let Some(v) = args.lambda_cluster {
        config.loss.lambda_cluster = v;
    }
    if let Some(v) = args.lambda_contrastive {
        config.loss.lambda_contrastive = v;
    }
    if let Some(v) = args.pseudo_threshold {
        config.labels.pseudo_threshold = v;
    }
    config.evaluation.export_all_latents = args.export_latents == ExportLatents::All;
    if config.evaluation.subset == EvalSubset::All {
        config.evaluation.export_all_latents = true;
    }
    config.validate()?;
    Ok(config)
}

/// Opens the dataset and the labels the label losses train with.
fn open_data(args: &TrainArgs, config: &TrainConfig) -> anyhow::Result<(Ensemble, LabelSnapshot)> {
    let (ensemble, source) =
        open_training_data(&args.data, args.labels.as_deref(), args.nan_policy)?;
    let labels = source.snapshot(&ensemble, config.labels.pseudo_threshold)?;
    Ok((ensemble, labels))
}
