//! `sense pseudo-label`: train the classifier on the hand-labelled members and write a
//! pseudo-label for every other member into a label store.

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::say;
use crate::classify::{
    ClassifierConfig, ConfusionMatrix, EpochProgress, LabelledSet, PseudoLabelOutcome, new_run_id,
    train_and_predict, write_pseudo_labels,
};
use crate::data::{ClassLabels, Ensemble, NanPolicy, OpenOptions};
use crate::error::DataError;
use crate::labels::{LabelStore, Provenance};
use crate::task::TaskControl;
use crate::train::training_data::{LabelSource, open_training_data};
use crate::train::{BackendChoice, select_backend};

#[derive(Args, Debug)]
pub struct PseudoLabelArgs {
    /// Dataset: folder of images, .npy, .npz, IDX file, or sample:channels|droplets|mnist.
    #[arg(long)]
    pub data: String,
    /// Hand labels: CSV `id,label`, IDX labels, or a label store (its manual labels).
    /// Default: the labels that come with the data (a sample's hand-labelled subset).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Keep a stratified N of the given labels as the hand-labelled set.
    #[arg(long, value_name = "N")]
    pub limit_labels: Option<usize>,
    /// Classifier configuration (TOML); the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Label store CSV to write the pseudo-labels into; created, with the hand labels
    /// imported as manual labels, if it does not exist.
    #[arg(long)]
    pub out: PathBuf,
    /// A separate labelled dataset to score the classifier on (needs --eval-labels unless
    /// labels come with it).
    #[arg(long)]
    pub eval_data: Option<String>,
    /// Labels of --eval-data: CSV `id,label` or IDX labels.
    #[arg(long, requires = "eval_data")]
    pub eval_labels: Option<PathBuf>,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Confidence a pseudo-label needs to feed the auxiliary losses.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// NaN/Inf values in float data: reject the dataset, or report and load it.
    #[arg(long = "nan", value_enum, default_value_t = NanPolicy::Reject)]
    pub nan_policy: NanPolicy,
    /// No progress bar (for logs).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: PseudoLabelArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = build_config(&args)?;
    let (ensemble, given, provenance) = open_hand_labelled(&args, &config)?;

    let mut store = LabelStore::open_or_create(&args.out)?;
    store.import_manual(&given, |i| ensemble.member_id(i), provenance)?;
    // NaN admits no pseudo-label: only manual labels train the classifier.
    let snapshot = store.snapshot(f32::NAN);
    let labelled = LabelledSet::from_snapshot(&snapshot, &ensemble, &args.out)?;
    eprintln!(
        "{}: {} members of {}; training on {} hand labels in {} classes",
        ensemble.origin(),
        ensemble.len(),
        ensemble.shape(),
        labelled.len(),
        labelled.classes.len()
    );

    let backend = select_backend(config.backend);
    if let Some(reason) = &backend.fallback_reason {
        eprintln!("note: {reason}");
    }
    eprintln!("backend: {}", backend.name);
    let bar = progress_bar(args.quiet || args.json, config.epochs);
    let mut on_epoch = |e: &EpochProgress| {
        bar.inc(1);
        say(
            &bar,
            format!(
                "epoch {}: train loss {:.4}  held-out loss {:.4}  accuracy {:.4}  {:.1} s{}",
                e.epoch + 1,
                e.train_loss,
                e.heldout_loss,
                e.heldout_accuracy,
                e.elapsed_secs,
                if e.best { "  (best)" } else { "" }
            ),
        );
    };
    let run_id = new_run_id();
    let outcome = train_and_predict(
        &ensemble,
        &labelled,
        &config,
        &backend,
        &run_id,
        &TaskControl::new(),
        &mut on_epoch,
    )?;
    bar.finish_and_clear();
    write_pseudo_labels(
        &mut store,
        &ensemble,
        outcome.classifier.classes(),
        &outcome.predictions,
        &run_id,
    )?;
    let eval = match &args.eval_data {
        Some(spec) => Some(evaluate(
            &outcome,
            spec,
            args.eval_labels.as_deref(),
            args.nan_policy,
        )?),
        None => None,
    };
    let truth = ground_truth_accuracy(&outcome, &ensemble);
    let wall_secs = started.elapsed().as_secs_f64();
    match args.json {
        true => print_json(
            &outcome,
            eval.as_ref(),
            truth,
            &args.out,
            &backend.name,
            wall_secs,
        ),
        false => print_text(&outcome, eval.as_ref(), truth, &args.out, wall_secs),
    }
    Ok(())
}

fn build_config(args: &PseudoLabelArgs) -> anyhow::Result<ClassifierConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            ClassifierConfig::from_toml(&text).with_context(|| format!("{}", path.display()))?
        }
        None => ClassifierConfig::default(),
    };
    if let Some(v) = args.backend {
        config.backend = v;
    }
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.threshold {
        config.confidence_threshold = v;
    }
    config.validate()?;
    Ok(config)
}

/// The ensemble, its hand labels (limited to a stratified N if asked) and their provenance.
fn open_hand_labelled(
    args: &PseudoLabelArgs,
    config: &ClassifierConfig,
) -> anyhow::Result<(Ensemble, ClassLabels, Provenance)> {
    let (ensemble, source) =
        open_training_data(&args.data, args.labels.as_deref(), args.nan_policy)?;
    let given = match &source {
        LabelSource::Store(path) => manual_labels_of_store(path, &ensemble)?,
        LabelSource::Attached => match &ensemble.labels {
            Some(labels) => labels.clone(),
            None => bail!(
                "{}: no hand labels (pass --labels CSV|IDX|LABEL-STORE)",
                args.data
            ),
        },
    };
    let given = match args.limit_labels {
        Some(n) => limit_stratified(&given, n, config.seed),
        None => given,
    };
    let provenance = match (args.data.strip_prefix("sample:"), &args.labels) {
        (_, Some(path)) => Provenance::import(path),
        (Some(name), None) => Provenance::sample(name),
        (None, None) => Provenance::import(&args.data),
    };
    Ok((ensemble, given, provenance))
}

/// The manual labels of another label store, as per-member classes of `ensemble`.
fn manual_labels_of_store(path: &Path, ensemble: &Ensemble) -> anyhow::Result<ClassLabels> {
    let snapshot = LabelStore::open_read_only(path)?.snapshot(f32::NAN);
    let set = LabelledSet::from_snapshot(&snapshot, ensemble, path)?;
    let mut per_member = vec![None; ensemble.len()];
    for (&member, &class) in set.members.iter().zip(&set.targets) {
        per_member[member] = Some(class);
    }
    Ok(ClassLabels {
        classes: set.classes,
        per_member,
    })
}

/// A stratified `n` of the labelled members (each class its proportional share).
fn limit_stratified(labels: &ClassLabels, n: usize, seed: u64) -> ClassLabels {
    let k = labels.classes.len();
    // Unlabelled members get a class beyond the last, which the subset never picks.
    let classes: Vec<u32> = labels
        .per_member
        .iter()
        .map(|c| c.unwrap_or(k as u32))
        .collect();
    let keep = crate::samples::hand_labelled_subset(&classes, k, n, seed);
    ClassLabels {
        classes: labels.classes.clone(),
        per_member: labels
            .per_member
            .iter()
            .zip(keep)
            .map(|(&c, kept)| c.filter(|_| kept))
            .collect(),
    }
}

/// The classifier's confusion on a separate labelled dataset; every class there must be one
/// the classifier knows.
fn evaluate(
    outcome: &PseudoLabelOutcome,
    spec: &str,
    labels: Option<&Path>,
    nan_policy: NanPolicy,
) -> anyhow::Result<ConfusionMatrix> {
    let options = OpenOptions {
        labels: labels.map(Path::to_path_buf),
        nan_policy,
        ..OpenOptions::default()
    };
    let ensemble = crate::data::open(spec, &options)?;
    let Some(truth) = &ensemble.labels else {
        bail!("{spec}: no labels to evaluate against (pass --eval-labels CSV|IDX)");
    };
    let known = outcome.classifier.classes();
    let labels_origin = labels.map_or_else(|| PathBuf::from(spec), Path::to_path_buf);
    let mut map = Vec::with_capacity(truth.classes.len());
    for name in &truth.classes {
        let index = known.iter().position(|k| k == name).ok_or_else(|| {
            DataError::new(
                &labels_origin,
                format!(
                    "class '{name}' is not one the classifier was trained on ({})",
                    known.join(", ")
                ),
            )
        })?;
        map.push(index as u32);
    }
    let (members, classes): (Vec<usize>, Vec<u32>) = truth
        .per_member
        .iter()
        .enumerate()
        .filter_map(|(m, c)| c.map(|c| (m, map[c as usize])))
        .unzip();
    Ok(outcome
        .classifier
        .score(&ensemble, &members, &classes, &TaskControl::new())?)
}

/// Share of pseudo-labels that match the ground truth, where the data carries it (the
/// built-in samples), as `(accuracy, members scored)`.
fn ground_truth_accuracy(
    outcome: &PseudoLabelOutcome,
    ensemble: &Ensemble,
) -> Option<(f64, usize)> {
    let truth = ensemble.ground_truth.as_ref()?;
    let names = outcome.classifier.classes();
    let scored: Vec<bool> = outcome
        .predictions
        .iter()
        .filter_map(|p| {
            let truth = truth.class_name(p.member)?;
            Some(names.get(p.class as usize).is_some_and(|n| n == truth))
        })
        .collect();
    let correct = scored.iter().filter(|&&ok| ok).count();
    (!scored.is_empty()).then(|| (correct as f64 / scored.len() as f64, scored.len()))
}

fn progress_bar(hidden: bool, epochs: usize) -> ProgressBar {
    let bar = match hidden {
        true => ProgressBar::hidden(),
        false => ProgressBar::new(epochs as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} epochs {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn print_json(
    outcome: &PseudoLabelOutcome,
    eval: Option<&ConfusionMatrix>,
    truth: Option<(f64, usize)>,
    out: &Path,
    backend: &str,
    wall_secs: f64,
) {
    let report = outcome.classifier.report();
    let summary = &outcome.summary;
    let per_class: Vec<_> = report
        .per_class
        .iter()
        .zip(&summary.per_class)
        .map(|(score, pseudo)| {
            json!({
                "class": score.class,
                "precision": score.precision,
                "recall": score.recall,
                "support": score.support,
                "pseudo_labelled": pseudo.pseudo_labelled,
                "above_threshold": pseudo.above_threshold,
            })
        })
        .collect();
    let mut value = json!({
        "heldout_accuracy": report.accuracy,
        "per_class": per_class,
        "pseudo_labelled": summary.pseudo_labelled,
        "above_threshold": summary.above_threshold,
        // Via its shortest text, so 0.9 prints as 0.9, not as the f32's f64 expansion.
        "threshold": summary.threshold.to_string().parse::<f64>().ok(),
        "run_id": summary.run_id,
        "labels_out": out.display().to_string(),
        "confusion": report.confusion,
        "best_epoch": report.best_epoch,
        "epochs_run": report.epochs_run,
        "train_members": report.train_members,
        "heldout_members": report.heldout_members,
        "train_secs": report.train_secs,
        "wall_secs": wall_secs,
        "backend": backend,
    });
    if let (Some(eval), Some(object)) = (eval, value.as_object_mut()) {
        object.insert("eval_accuracy".into(), json!(eval.accuracy()));
        object.insert("eval_members".into(), json!(eval.total()));
        object.insert("eval_per_class".into(), json!(eval.class_scores()));
    }
    if let (Some((accuracy, members)), Some(object)) = (truth, value.as_object_mut()) {
        object.insert("pseudo_label_truth_accuracy".into(), json!(accuracy));
        object.insert("pseudo_label_truth_members".into(), json!(members));
    }
    println!("{value:#}");
}

fn print_text(
    outcome: &PseudoLabelOutcome,
    eval: Option<&ConfusionMatrix>,
    truth: Option<(f64, usize)>,
    out: &Path,
    wall_secs: f64,
) {
    let report = outcome.classifier.report();
    let summary = &outcome.summary;
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "held-out accuracy {:.4} on {} members (best epoch {} of {}; trained in {:.1} s)",
        report.accuracy,
        report.heldout_members,
        report.best_epoch + 1,
        report.epochs_run,
        report.train_secs
    );
    if let Some(eval) = eval {
        println!(
            "eval accuracy {} on {} members",
            eval.accuracy().map_or("-".into(), |a| format!("{a:.4}")),
            eval.total()
        );
    }
    if let Some((accuracy, members)) = truth {
        println!("pseudo-labels match the ground truth for {accuracy:.4} of {members} members");
    }
    let width = report
        .per_class
        .iter()
        .map(|c| c.class.chars().count())
        .chain([5])
        .max()
        .unwrap_or(5);
    let threshold_header = format!("pseudo ≥ {}", summary.threshold);
    println!(
        "{:<width$}  {:>9}  {:>6}  {:>7}  {:>8}  {threshold_header}",
        "class", "precision", "recall", "support", "pseudo"
    );
    for (score, pseudo) in report.per_class.iter().zip(&summary.per_class) {
        println!(
            "{:<width$}  {:>9}  {:>6}  {:>7}  {:>8}  {:>width2$}",
            score.class,
            fmt(score.precision),
            fmt(score.recall),
            score.support,
            pseudo.pseudo_labelled,
            pseudo.above_threshold,
            width2 = threshold_header.chars().count()
        );
    }
    println!("confusion (rows: truth, columns: prediction):");
    print!("{}", report.confusion.to_table());
    println!(
        "{} pseudo-labels written to {} ({} with confidence ≥ {}), run {}; {:.1} s in all",
        summary.pseudo_labelled,
        out.display(),
        summary.above_threshold,
        summary.threshold,
        summary.run_id,
        wall_secs
    );
}
