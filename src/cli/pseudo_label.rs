//! `sense pseudo-label`: estimate label spreading and the classifier on the hand labels,
//! choose by that evidence, and write the chosen labeller's pseudo-label for every other
//! member into a label store (or none, when no labeller beats the majority class).

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::say;
use crate::classify::{
    ClassifierConfig, ConfusionMatrix, FeatureSet, LabelledSet, Labeller, LabellerOptions,
    LabellerOutcome, LabellerStep, PixelFeatures, PseudoLabelSummary, SpectrumFeatures,
    SpreadingConfig, choose_and_label, summarise, write_pseudo_labels,
};
use crate::data::{ClassLabels, Ensemble, NanPolicy, OpenOptions};
use crate::error::DataError;
use crate::labels::{LabelStore, Provenance};
use crate::task::TaskControl;
use crate::train::inference::{CheckpointChoice, TrainedModel};
use crate::train::training_data::{LabelSource, open_training_data};
use crate::train::{BackendChoice, SelectedBackend, select_backend};

/// Which labellers compete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabellerChoice {
    /// Both, and their mean; the best stratified estimate wins.
    Auto,
    Spreading,
    Classifier,
}

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
    /// Which labellers compete (each is still estimated, and must beat the majority class).
    #[arg(long, value_enum, default_value_t = LabellerChoice::Auto)]
    pub labeller: LabellerChoice,
    /// Also offer spreading the latents of this training run (its best model encodes every
    /// member). Spreading always has raw-pixel PCA-50 and the binned power spectrum to
    /// choose from; it uses the set with the best stratified k-fold estimate.
    #[arg(long, value_name = "RUN_DIR")]
    pub latents: Option<PathBuf>,
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
    // NaN admits no pseudo-label: only manual labels train the labellers.
    let snapshot = store.snapshot(f32::NAN);
    let labelled = LabelledSet::from_snapshot(&snapshot, &ensemble, &args.out)?;
    eprintln!(
        "{}: {} members of {}; {} hand labels in {} classes",
        ensemble.origin(),
        ensemble.len(),
        ensemble.shape(),
        labelled.len(),
        labelled.classes.len()
    );

    let uses_classifier = args.labeller != LabellerChoice::Spreading;
    let uses_spreading = args.labeller != LabellerChoice::Classifier;
    let backend = select_backend(config.backend);
    if let Some(reason) = &backend.fallback_reason {
        eprintln!("note: {reason}");
    }
    eprintln!("backend: {}", backend.name);
    let control = TaskControl::new();
    let features = match uses_spreading {
        true => Some(Features::of(&args, &ensemble, &backend, &control)?),
        false => None,
    };
    let bar = progress_bar(args.quiet || args.json);
    let mut observe = |step: LabellerStep<'_>| match step {
        LabellerStep::Stage(stage) => {
            bar.set_message(stage.to_string());
            bar.tick();
        }
        LabellerStep::Epoch(e) => say(
            &bar,
            format!(
                "classifier epoch {}: train loss {:.4}  held-out loss {:.4}  accuracy {:.4}  \
                 {:.1} s{}",
                e.epoch + 1,
                e.train_loss,
                e.heldout_loss,
                e.heldout_accuracy,
                e.elapsed_secs,
                if e.best { "  (best)" } else { "" }
            ),
        ),
    };
    let options = LabellerOptions {
        spreading: uses_spreading.then(SpreadingConfig::default),
        classifier: uses_classifier.then_some((&config, &backend)),
        keep_both: args.eval_data.is_some(),
        refresh: None,
        seed: config.seed,
    };
    let outcome = choose_and_label(
        &ensemble,
        &labelled,
        features.as_ref().map_or(&[][..], |f| &f.sets[..]),
        &options,
        &control,
        &mut observe,
    )?;
    bar.finish_and_clear();
    let features_name = outcome.choice.features.as_deref().unwrap_or("none");
    let (run_id, provenance) = match outcome.choice.chosen {
        Some(labeller) => labeller.provenance(features_name),
        None => (String::new(), Provenance::classifier("none")),
    };
    write_pseudo_labels(
        &mut store,
        &ensemble,
        &outcome.classes,
        &outcome.predictions,
        provenance,
    )?;
    let summary = summarise(
        &run_id,
        &outcome.classes,
        &outcome.predictions,
        config.confidence_threshold,
    );
    let eval = match &args.eval_data {
        Some(spec) => Some(evaluate(
            &outcome,
            features.as_ref(),
            spec,
            args.eval_labels.as_deref(),
            args.nan_policy,
            &control,
        )?),
        None => None,
    };
    let report = Report {
        outcome: &outcome,
        summary: &summary,
        features: features_name,
        eval: eval.as_ref(),
        truth: ground_truth_score(&outcome, &ensemble, summary.threshold),
        out: &args.out,
        backend: &backend.name,
        wall_secs: started.elapsed().as_secs_f64(),
    };
    match args.json {
        true => report.print_json(),
        false => report.print_text(),
    }
    Ok(())
}

/// The feature sets spreading chooses from, and how to compute each for other data.
struct Features {
    sets: Vec<FeatureSet>,
    kinds: Vec<FeatureKind>,
}

enum FeatureKind {
    Pixels(PixelFeatures),
    Spectrum(SpectrumFeatures),
    Latents(Box<TrainedModel>),
}

impl Features {
    /// A run's latents when given, then pixel PCA and the binned spectrum.
    fn of(
        args: &PseudoLabelArgs,
        ensemble: &Ensemble,
        backend: &SelectedBackend,
        control: &TaskControl,
    ) -> anyhow::Result<Self> {
        let members: Vec<usize> = (0..ensemble.len()).collect();
        let mut features = Self {
            sets: Vec::new(),
            kinds: Vec::new(),
        };
        let mut add = |name, rows, kind| {
            features.sets.push(FeatureSet {
                name,
                rows: Arc::new(rows),
                start: None,
                start_is_current: false,
            });
            features.kinds.push(kind);
        };
        if let Some(run) = &args.latents {
            let model = TrainedModel::load(run, ensemble.shape(), CheckpointChoice::Best, backend)?;
            eprintln!(
                "features: latents of {} (dim {})",
                run.display(),
                model.latent_dim()
            );
            let rows = encode(&model, ensemble, &members)?;
            add("latent", rows, FeatureKind::Latents(Box::new(model)));
        }
        let (pixels, rows) = PixelFeatures::fit_transform(ensemble, &members, control)?;
        add("pixels", rows, FeatureKind::Pixels(pixels));
        let (spectrum, rows) = SpectrumFeatures::fit_transform(ensemble, &members, control)?;
        add("spectrum", rows, FeatureKind::Spectrum(spectrum));
        Ok(features)
    }

    /// The features named `name` of another dataset's members.
    fn of_other(
        &self,
        name: &str,
        ensemble: &Ensemble,
        control: &TaskControl,
    ) -> anyhow::Result<Array2<f32>> {
        let members: Vec<usize> = (0..ensemble.len()).collect();
        let index = self
            .sets
            .iter()
            .position(|s| s.name == name)
            .context("no such features")?;
        Ok(match &self.kinds[index] {
            FeatureKind::Pixels(pixels) => pixels.transform(ensemble, &members, control)?,
            FeatureKind::Spectrum(spectrum) => spectrum.transform(ensemble, &members, control)?,
            FeatureKind::Latents(model) => encode(model, ensemble, &members)?,
        })
    }
}

fn encode(
    model: &TrainedModel,
    ensemble: &Ensemble,
    members: &[usize],
) -> anyhow::Result<Array2<f32>> {
    let values = model.encode(ensemble, members)?;
    Ok(Array2::from_shape_vec(
        (members.len(), model.latent_dim()),
        values,
    )?)
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

/// Each labeller's accuracy on a separate labelled dataset, and the chosen one's confusion.
struct Evaluation {
    members: usize,
    by_labeller: Vec<(Labeller, f64)>,
    chosen: Option<ConfusionMatrix>,
}

/// Scores every labeller the run kept on `spec`; each of its classes must be one the hand
/// labels have.
fn evaluate(
    outcome: &LabellerOutcome,
    features: Option<&Features>,
    spec: &str,
    labels: Option<&Path>,
    nan_policy: NanPolicy,
    control: &TaskControl,
) -> anyhow::Result<Evaluation> {
    let options = OpenOptions {
        labels: labels.map(Path::to_path_buf),
        nan_policy,
        ..OpenOptions::default()
    };
    let ensemble = crate::data::open(spec, &options)?;
    let Some(truth) = &ensemble.labels else {
        bail!("{spec}: no labels to evaluate against (pass --eval-labels CSV|IDX)");
    };
    let known = &outcome.classes;
    let labels_origin = labels.map_or_else(|| PathBuf::from(spec), Path::to_path_buf);
    let mut map = Vec::with_capacity(truth.classes.len());
    for name in &truth.classes {
        let index = known.iter().position(|k| k == name).ok_or_else(|| {
            DataError::new(
                &labels_origin,
                format!(
                    "class '{name}' is not one the hand labels have ({})",
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
    let spreading = match (&outcome.spreading, features, &outcome.choice.features) {
        (Some(model), Some(features), Some(name)) => {
            let rows = features.of_other(name, &ensemble, control)?;
            let all = model.distributions_of(rows.view(), control)?;
            Some(Array2::from_shape_fn(
                (members.len(), known.len()),
                |(r, c)| all[[members[r], c]] as f32,
            ))
        }
        _ => None,
    };
    let classifier = match &outcome.classifier {
        Some(c) => Some(c.probabilities(&ensemble, &members, control)?),
        None => None,
    };
    let answers = |labeller: Labeller| -> Option<Array2<f32>> {
        match labeller {
            Labeller::Spreading => spreading.clone(),
            Labeller::Classifier => classifier.clone(),
            Labeller::Combined => Some((spreading.as_ref()? + classifier.as_ref()?) * 0.5),
        }
    };
    let confusion = |scores: &Array2<f32>| {
        let mut matrix = ConfusionMatrix::new(known.clone());
        for (row, &t) in scores.rows().into_iter().zip(&classes) {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)));
            // A member no label reached counts as wrong: it gets no pseudo-label.
            let predicted = match best {
                Some((class, &score)) if score > 0.0 => class as u32,
                _ => u32::MAX,
            };
            matrix.add(t, predicted);
        }
        matrix
    };
    let mut by_labeller = Vec::new();
    let mut chosen = None;
    for labeller in [
        Labeller::Spreading,
        Labeller::Classifier,
        Labeller::Combined,
    ] {
        if let Some(scores) = answers(labeller) {
            let matrix = confusion(&scores);
            by_labeller.push((labeller, matrix.accuracy().unwrap_or(0.0)));
            if outcome.choice.chosen == Some(labeller) {
                chosen = Some(matrix);
            }
        }
    }
    Ok(Evaluation {
        members: members.len(),
        by_labeller,
        chosen,
    })
}

/// How the pseudo-labels compare with the ground truth, where the data carries it (the
/// built-in samples).
#[derive(Debug, Clone, Copy, PartialEq)]
struct TruthScore {
    /// Share of the scored pseudo-labels that match.
    accuracy: f64,
    members: usize,
    /// The same over those at or above the confidence threshold (the ones training takes),
    /// if any are.
    confident_accuracy: Option<f64>,
    confident_members: usize,
}

fn ground_truth_score(
    outcome: &LabellerOutcome,
    ensemble: &Ensemble,
    threshold: f32,
) -> Option<TruthScore> {
    let truth = ensemble.ground_truth.as_ref()?;
    // (matches the truth, confident) per scored pseudo-label.
    let scored: Vec<(bool, bool)> = outcome
        .predictions
        .iter()
        .filter_map(|p| {
            let truth = truth.class_name(p.member)?;
            let right = outcome
                .classes
                .get(p.class as usize)
                .is_some_and(|n| n == truth);
            Some((right, p.confidence >= threshold))
        })
        .collect();
    let share = |of: &[(bool, bool)]| {
        (!of.is_empty())
            .then(|| of.iter().filter(|(right, _)| *right).count() as f64 / of.len() as f64)
    };
    let confident: Vec<(bool, bool)> = scored.iter().copied().filter(|&(_, c)| c).collect();
    Some(TruthScore {
        accuracy: share(&scored)?,
        members: scored.len(),
        confident_accuracy: share(&confident),
        confident_members: confident.len(),
    })
}

fn progress_bar(hidden: bool) -> ProgressBar {
    let bar = match hidden {
        true => ProgressBar::hidden(),
        false => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Everything the run prints.
struct Report<'a> {
    outcome: &'a LabellerOutcome,
    summary: &'a PseudoLabelSummary,
    features: &'a str,
    eval: Option<&'a Evaluation>,
    truth: Option<TruthScore>,
    out: &'a Path,
    backend: &'a str,
    wall_secs: f64,
}

impl Report<'_> {
    fn print_json(&self) {
        let choice = &self.outcome.choice;
        let summary = self.summary;
        let cv_accuracy: serde_json::Map<String, serde_json::Value> = choice
            .estimates
            .iter()
            .map(|e| (e.labeller.name().to_string(), json!(e.accuracy)))
            .collect();
        let per_class: Vec<_> = summary
            .per_class
            .iter()
            .map(|c| {
                json!({
                    "class": c.class,
                    "pseudo_labelled": c.pseudo_labelled,
                    "above_threshold": c.above_threshold,
                })
            })
            .collect();
        let mut value = json!({
            "labeller": choice.chosen.map(Labeller::name),
            "cv_accuracy": cv_accuracy,
            "estimation": choice.estimation,
            "scored_members": choice.scored_members,
            "majority_rate": choice.majority_rate,
            "reason": choice.reason,
            "features": self.features,
            "feature_cv_accuracy": choice
                .feature_estimates
                .iter()
                .map(|e| (e.features.clone(), json!(e.accuracy)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            "per_class": per_class,
            "pseudo_labelled": summary.pseudo_labelled,
            "above_threshold": summary.above_threshold,
            // Via its shortest text, so 0.9 prints as 0.9, not as the f32's f64 expansion.
            "threshold": summary.threshold.to_string().parse::<f64>().ok(),
            "run_id": summary.run_id,
            "labels_out": self.out.display().to_string(),
            "wall_secs": self.wall_secs,
            "backend": self.backend,
        });
        let Some(object) = value.as_object_mut() else {
            return;
        };
        if let Some(classifier) = &self.outcome.classifier {
            let report = classifier.report();
            object.insert(
                "classifier".into(),
                json!({
                    "heldout_accuracy": report.accuracy,
                    "per_class": report.per_class,
                    "confusion": report.confusion,
                    "best_epoch": report.best_epoch,
                    "epochs_run": report.epochs_run,
                    "train_members": report.train_members,
                    "heldout_members": report.heldout_members,
                    "train_secs": report.train_secs,
                }),
            );
        }
        if let Some(eval) = self.eval {
            let by: serde_json::Map<String, serde_json::Value> = eval
                .by_labeller
                .iter()
                .map(|(l, a)| (l.name().to_string(), json!(a)))
                .collect();
            object.insert("eval_members".into(), json!(eval.members));
            object.insert("eval_accuracy_by_labeller".into(), json!(by));
            if let Some(chosen) = &eval.chosen {
                object.insert("eval_accuracy".into(), json!(chosen.accuracy()));
                object.insert("eval_per_class".into(), json!(chosen.class_scores()));
            }
        }
        if let Some(truth) = self.truth {
            object.insert("pseudo_label_truth_accuracy".into(), json!(truth.accuracy));
            object.insert("pseudo_label_truth_members".into(), json!(truth.members));
            object.insert(
                "confident_pseudo_label_truth_accuracy".into(),
                json!(truth.confident_accuracy),
            );
            object.insert(
                "confident_pseudo_label_truth_members".into(),
                json!(truth.confident_members),
            );
        }
        println!("{value:#}");
    }

    fn print_text(&self) {
        let choice = &self.outcome.choice;
        println!(
            "{} estimate over {} hand labels (features: {}):",
            choice.estimation, choice.scored_members, self.features
        );
        for e in &choice.estimates {
            let mark = if choice.chosen == Some(e.labeller) {
                "  ← chosen"
            } else {
                ""
            };
            println!("  {:<10}  {:.4}{mark}", e.labeller.name(), e.accuracy);
        }
        println!("  {:<10}  {:.4}", "majority", choice.majority_rate);
        for e in &choice.feature_estimates {
            println!("  spreading over {:<9} {:.4}", e.features, e.accuracy);
        }
        println!("{}", choice.reason);
        if let Some(classifier) = &self.outcome.classifier {
            let report = classifier.report();
            println!(
                "classifier: held-out accuracy {:.4} on {} members (best epoch {} of {}; \
                 trained in {:.1} s)",
                report.accuracy,
                report.heldout_members,
                report.best_epoch + 1,
                report.epochs_run,
                report.train_secs
            );
        }
        if let Some(eval) = self.eval {
            for (labeller, accuracy) in &eval.by_labeller {
                println!(
                    "eval accuracy {accuracy:.4} on {} members ({})",
                    eval.members,
                    labeller.name()
                );
            }
            if let Some(chosen) = &eval.chosen {
                println!("confusion of the chosen labeller (rows: truth, columns: prediction):");
                print!("{}", chosen.to_table());
            }
        }
        if let Some(truth) = self.truth {
            println!(
                "pseudo-labels match the ground truth for {:.4} of {} members",
                truth.accuracy, truth.members
            );
            if let Some(confident) = truth.confident_accuracy {
                println!(
                    "  and for {confident:.4} of the {} with confidence ≥ {}",
                    truth.confident_members, self.summary.threshold
                );
            }
        }
        let summary = self.summary;
        let width = summary
            .per_class
            .iter()
            .map(|c| c.class.chars().count())
            .chain([5])
            .max()
            .unwrap_or(5);
        let threshold_header = format!("pseudo ≥ {}", summary.threshold);
        println!("{:<width$}  {:>8}  {threshold_header}", "class", "pseudo");
        for c in &summary.per_class {
            println!(
                "{:<width$}  {:>8}  {:>width2$}",
                c.class,
                c.pseudo_labelled,
                c.above_threshold,
                width2 = threshold_header.chars().count()
            );
        }
        println!(
            "{} pseudo-labels written to {} ({} with confidence ≥ {}){}; {:.1} s in all",
            summary.pseudo_labelled,
            self.out.display(),
            summary.above_threshold,
            summary.threshold,
            match summary.run_id.is_empty() {
                true => String::new(),
                false => format!(", run {}", summary.run_id),
            },
            self.wall_secs
        );
    }
}
