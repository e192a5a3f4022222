//! The report of one training run (`sense report RUN_DIR`): UMAP scatter of the evaluation
//! latents by label, training curves, a reconstruction grid, the model against a PCA baseline
//! with as many components as the latent size, and `report.md` tying them together.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ndarray::{Array2, Axis};

use super::{
    AnimationFrame, AnimationOptions, AnimationOutcome, BarMetric, ClassStyle, LossSeries,
    MethodBars, MetricsTable, ReconstructionGrid, ReconstructionRow, ReportDocument, ReportFigure,
    ScatterPlot, TrainingCurves, write_map_animation,
};
use crate::analysis::embedding_metrics::{EmbeddingScores, Sampling, embedding_scores};
use crate::analysis::image_metrics::image_scores;
use crate::data::matrix::read_matrix;
use crate::data::{Ensemble, NanPolicy};
use crate::error::{DataError, DataResult};
use crate::labels::LabelSnapshot;
use crate::projection::{Pca, ProjectionConfig, project};
use crate::task::TaskControl;
use crate::train::metrics::channel_ranges;
use crate::train::run_dir::{self, DatasetRecord, SUMMARY};
use crate::train::{
    BackendChoice, CheckpointChoice, EpochSummary, Reconstruction, RunSummary, TrainedModel,
    open_training_data, select_backend,
};

/// Reconstructions shown in the grid.
const GRID_MEMBERS: usize = 8;
/// Validation members the model and PCA are compared on.
const COMPARE_MEMBERS: usize = 1_000;
/// Training members PCA is fitted on.
const PCA_FIT_MEMBERS: usize = 5_000;

#[derive(Debug, Clone)]
pub struct RunReportOptions {
    /// Overrides the run's `dataset.json`.
    pub data: Option<String>,
    pub labels: Option<PathBuf>,
    pub backend: BackendChoice,
    pub out_dir: PathBuf,
    /// Also write `map_animation.gif`: the run's per-epoch layouts (`RUN_DIR/layouts`).
    pub animation: bool,
}

/// What the report found, besides its files.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub markdown: PathBuf,
    /// The map animation, when asked for.
    pub animation: Option<(PathBuf, AnimationOutcome)>,
    pub embedding: Option<EmbeddingScores>,
    pub model: ImageQuality,
    pub pca: ImageQuality,
}

/// Mean reconstruction quality over the compared members, in data units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageQuality {
    pub mse: f64,
    pub psnr_db: f64,
    pub ssim: f64,
}

pub fn write_run_report(
    run_dir: &Path,
    options: &RunReportOptions,
    control: &TaskControl,
) -> anyhow::Result<RunReport> {
    let out = &options.out_dir;
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let (ensemble, labels) = open_dataset(run_dir, options)?;
    let backend = select_backend(options.backend);
    let model = TrainedModel::load(run_dir, ensemble.shape(), CheckpointChoice::Best, &backend)?;
    let summary: Option<RunSummary> = run_dir::read_json(&run_dir.join(SUMMARY)).ok();
    let epochs = run_dir::read_metrics(run_dir)?;

    let mut doc = ReportDocument::new(format!(
        "SENSE run report: {}",
        run_dir
            .file_name()
            .map_or("run".into(), |n| n.to_string_lossy())
    ));
    doc.facts = run_facts(&ensemble, &model, summary.as_ref(), &backend.name);

    // 1. The latent map.
    control.check()?;
    let embedding = latent_map(run_dir, &labels, out, &mut doc, control)?;

    // 1b. The map over the epochs.
    let animation = match options.animation {
        true => {
            control.check()?;
            let path = out.join("map_animation.gif");
            let outcome = write_run_animation(run_dir, &labels, &epochs, &path, control)?;
            doc.figures.push(ReportFigure {
                caption: format!(
                    "The latent map over {} epochs (an animated GIF for slides)",
                    outcome.epochs
                ),
                png: path.clone(),
                svg: None,
            });
            Some((path, outcome))
        }
        false => None,
    };

    // 2. Training curves.
    if !epochs.is_empty() {
        let (losses, psnr, ssim) = loss_series(&epochs);
        let mut curves = TrainingCurves::new("Training curves", &losses);
        curves.psnr_db = psnr.as_ref();
        curves.ssim = ssim.as_ref();
        let files = curves.write(&out.join("curves"))?;
        doc.figures.push(ReportFigure::new(
            "Loss per term (train solid, validation dashed) and validation PSNR / SSIM",
            &files,
        ));
    }

    // 3. Reconstructions, 4. model against PCA.
    control.check()?;
    let val = &model.split.val;
    let compared = evenly_spaced(val, COMPARE_MEMBERS);
    let model_recons = model.reconstruct(&ensemble, &compared)?;
    let grid_members = evenly_spaced(&compared, GRID_MEMBERS);
    let shown: Vec<&Reconstruction> = model_recons
        .iter()
        .filter(|r| grid_members.contains(&r.member))
        .collect();
    let rows: Vec<ReconstructionRow> = shown
        .iter()
        .map(|r| ReconstructionRow {
            id: &r.id,
            original: &r.original,
            reconstruction: &r.reconstruction,
        })
        .collect();
    if !rows.is_empty() {
        let shape = ensemble.shape();
        let grid = ReconstructionGrid::new(
            "Validation members: original / reconstruction / |error|",
            [shape.channels, shape.height, shape.width],
            &rows,
        );
        let files = grid.write(&out.join("reconstructions"))?;
        doc.figures.push(ReportFigure::new(
            "Reconstructions of validation members",
            &files,
        ));
    }

    control.check()?;
    let data_range = channel_ranges(&model.normalization)
        .into_iter()
        .fold(0.0_f64, f64::max) as f32;
    let model_quality = mean_quality(&model_recons, &ensemble, data_range)?;
    let (pca_recons, pca_components) = pca_reconstructions(&model, &ensemble, &compared, control)?;
    let pca_quality = mean_quality(&pca_recons, &ensemble, data_range)?;
    let methods = vec![
        format!("model ({})", model.config.model.kind.name()),
        format!("PCA ({pca_components} components)"),
    ];
    let metrics = vec![
        BarMetric::new(
            "MSE",
            "data units²",
            false,
            vec![model_quality.mse, pca_quality.mse],
        ),
        BarMetric::new(
            "PSNR",
            "dB",
            true,
            vec![model_quality.psnr_db, pca_quality.psnr_db],
        ),
        BarMetric::new("SSIM", "", true, vec![model_quality.ssim, pca_quality.ssim]),
    ];
    let bars_title = format!(
        "Reconstruction of {} validation members: model vs PCA",
        compared.len()
    );
    let files =
        MethodBars::new(&bars_title, &methods, &metrics).write(&out.join("model_vs_pca"))?;
    doc.figures.push(ReportFigure::new(
        "Model against a PCA baseline with as many components as latent dimensions",
        &files,
    ));
    doc.tables.push(MetricsTable {
        title: format!(
            "Reconstruction quality ({} validation members, data range {data_range:.4})",
            compared.len()
        ),
        row_header: "method".into(),
        columns: vec!["MSE".into(), "PSNR (dB)".into(), "SSIM".into()],
        rows: methods
            .iter()
            .zip([model_quality, pca_quality])
            .map(|(m, q)| (m.clone(), vec![q.mse, q.psnr_db, q.ssim]))
            .collect(),
    });

    let markdown = out.join("report.md");
    doc.write(&markdown)?;
    Ok(RunReport {
        markdown,
        animation,
        embedding,
        model: model_quality,
        pca: pca_quality,
    })
}

fn open_dataset(
    run_dir: &Path,
    options: &RunReportOptions,
) -> anyhow::Result<(Ensemble, LabelSnapshot)> {
    let record: Option<DatasetRecord> = run_dir::read_json(&run_dir.join(run_dir::DATASET)).ok();
    let data = match (&options.data, &record) {
        (Some(data), _) => data.clone(),
        (None, Some(record)) => record.data.clone(),
        (None, None) => anyhow::bail!(
            "{}: no {} (runs from before it was written): give --data",
            run_dir.display(),
            run_dir::DATASET
        ),
    };
    let labels_path = options
        .labels
        .clone()
        .or_else(|| record.and_then(|r| r.labels));
    let (ensemble, source) = open_training_data(&data, labels_path.as_deref(), NanPolicy::Report)?;
    // The map is coloured by hand labels only.
    let labels = source.snapshot(&ensemble, f32::INFINITY)?;
    Ok((ensemble, labels))
}

fn run_facts(
    ensemble: &Ensemble,
    model: &TrainedModel,
    summary: Option<&RunSummary>,
    report_backend: &str,
) -> Vec<(String, String)> {
    let config = &model.config;
    let mut facts = vec![
        (
            "data".to_string(),
            format!(
                "{} — {} members of {}",
                ensemble.origin(),
                ensemble.len(),
                ensemble.shape()
            ),
        ),
        (
            "model".into(),
            format!(
                "{}, latent {}, dropout {}, β {}",
                config.model.kind.name(),
                config.model.latent_dim,
                config.model.dropout,
                config.model.beta
            ),
        ),
        (
            "loss".into(),
            format!(
                "λ_cl {}, λ_con {}",
                config.loss.lambda_cluster, config.loss.lambda_contrastive
            ),
        ),
        (
            "optimiser".into(),
            format!(
                "{:?}, lr {}, batch {}",
                config.optimizer.kind, config.optimizer.learning_rate, config.optimizer.batch_size
            ),
        ),
        (
            "split".into(),
            format!(
                "{} train / {} validation",
                model.split.train.len(),
                model.split.val.len()
            ),
        ),
    ];
    if let Some(s) = summary {
        facts.push((
            "trained".into(),
            format!(
                "{} epochs on {}, {:.0} images/s, best epoch {}",
                s.epochs,
                s.backend,
                s.images_per_sec,
                s.best_epoch.map_or("-".into(), |e| (e + 1).to_string())
            ),
        ));
    }
    facts.push(("report computed on".into(), report_backend.to_string()));
    facts
}

/// The run's per-epoch layouts (`RUN_DIR/layouts`, written while the app or `sense train
/// --layouts` trains) as an animated GIF at `path`, coloured by `labels`, each epoch
/// captioned with its training loss.
pub fn write_run_animation(
    run_dir: &Path,
    labels: &LabelSnapshot,
    epochs: &[EpochSummary],
    path: &Path,
    control: &TaskControl,
) -> DataResult<AnimationOutcome> {
    let layouts = run_dir::read_epoch_layouts(run_dir)?;
    if layouts.is_empty() {
        return Err(DataError::new(
            run_dir.join(run_dir::LAYOUTS),
            "no per-epoch layouts to animate; they are written while the app trains, or by \
             `sense train --layouts`",
        ));
    }
    let frames: Vec<AnimationFrame> = layouts
        .into_iter()
        .map(|l| AnimationFrame {
            loss: epochs
                .iter()
                .find(|e| e.epoch == l.epoch)
                .map(|e| e.train.total),
            epoch: l.epoch,
            ids: l.ids,
            coords: l.coords,
        })
        .collect();
    let classes: Vec<ClassStyle> = labels
        .classes()
        .iter()
        .map(|c| ClassStyle::new(c.name.clone(), c.colour))
        .collect();
    let label_of = |id: &str| labels.get(id).map(|l| l.class as usize);
    let title = format!(
        "{} · latent map per epoch",
        run_dir
            .file_name()
            .map_or("run".into(), |n| n.to_string_lossy())
    );
    let options = AnimationOptions {
        title,
        ..AnimationOptions::default()
    };
    write_map_animation(path, &frames, &classes, &label_of, &options, control)
}

/// A run's evaluation latents mapped to 2-D by UMAP, with each point's label.
pub struct LatentMap {
    pub ids: Vec<String>,
    pub points: Vec<[f32; 2]>,
    pub labels: Vec<Option<usize>>,
    /// Scores of the labelled points (`None` with fewer than 2 classes or 21 labelled points).
    pub scores: Option<EmbeddingScores>,
    pub labelled: usize,
}

/// UMAP (umap-learn's defaults) of the latents in `run_dir`, scored on the members `labels`
/// labels: silhouette, neighbourhood hit, … in 2-D, trustworthiness against the latents.
pub fn latent_map_of_run(
    run_dir: &Path,
    labels: &LabelSnapshot,
    control: &TaskControl,
) -> anyhow::Result<LatentMap> {
    let latents = read_matrix(run_dir)?;
    let layout = project(
        latents.values.view(),
        &ProjectionConfig::default(),
        None,
        control,
    )?;
    let points: Vec<[f32; 2]> = layout
        .coords
        .rows()
        .into_iter()
        .map(|r| [r[0], r[1]])
        .collect();
    let point_labels: Vec<Option<usize>> = latents
        .ids
        .iter()
        .map(|id| labels.get(id).map(|l| l.class as usize))
        .collect();
    let labelled: Vec<usize> = (0..point_labels.len())
        .filter(|&i| point_labels[i].is_some())
        .collect();
    let class_of: Vec<usize> = labelled.iter().filter_map(|&i| point_labels[i]).collect();
    let distinct = class_of
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let scores = if distinct >= 2 && labelled.len() > 20 {
        let embedded = layout.coords.select(Axis(0), &labelled);
        let high: Array2<f32> = latents.values.select(Axis(0), &labelled);
        Some(embedding_scores(
            embedded.view(),
            &class_of,
            Some(high.view()),
            &Sampling::default(),
            control,
        )?)
    } else {
        None
    };
    Ok(LatentMap {
        ids: latents.ids,
        points,
        labels: point_labels,
        scores,
        labelled: labelled.len(),
    })
}

/// The latent-map figure and table of the report.
fn latent_map(
    run_dir: &Path,
    labels: &LabelSnapshot,
    out: &Path,
    doc: &mut ReportDocument,
    control: &TaskControl,
) -> anyhow::Result<Option<EmbeddingScores>> {
    // UMAP needs more members than neighbours; a tiny evaluation subset gets no map.
    if read_matrix(run_dir)?.values.nrows() <= 20 {
        return Ok(None);
    }
    let map = latent_map_of_run(run_dir, labels, control)?;
    let (points, point_labels, scores) = (&map.points, &map.labels, map.scores);
    let classes: Vec<ClassStyle> = labels
        .classes()
        .iter()
        .map(|c| ClassStyle::new(c.name.clone(), c.colour))
        .collect();
    let subtitle = scores.map(|s| {
        format!(
            "silhouette {:.3} · neighbourhood hit {:.3} · trustworthiness {}",
            s.silhouette,
            s.neighbourhood_hit,
            s.trustworthiness.map_or("-".into(), |t| format!("{t:.3}"))
        )
    });
    let title = format!("UMAP of {} latents", points.len());
    let mut plot = ScatterPlot::new(&title, points, point_labels, &classes);
    plot.subtitle = subtitle.as_deref();
    let outcome = plot.write(&out.join("umap"))?;
    doc.figures.push(ReportFigure::new(
        "UMAP (n_neighbors 15, min_dist 0.1) of the evaluation members' latents, by label",
        &outcome.files,
    ));
    if let Some(s) = scores {
        doc.tables.push(MetricsTable {
            title: format!("Latent map ({} labelled members)", map.labelled),
            row_header: "embedding".into(),
            columns: vec![
                "silhouette".into(),
                "separability".into(),
                "neighbourhood hit".into(),
                "trustworthiness".into(),
                "kNN accuracy".into(),
            ],
            rows: vec![(
                "UMAP 2-D".into(),
                vec![
                    s.silhouette,
                    s.separability,
                    s.neighbourhood_hit,
                    s.trustworthiness.unwrap_or(f64::NAN),
                    s.knn_accuracy,
                ],
            )],
        });
    }
    Ok(scores)
}

type Series = (Vec<LossSeries>, Option<LossSeries>, Option<LossSeries>);
/// A loss term's name and how to read it from an epoch's losses.
type Term = (&'static str, fn(&crate::train::Losses) -> Option<f64>);

fn loss_series(epochs: &[EpochSummary]) -> Series {
    let terms: [Term; 6] = [
        ("total", |l| Some(l.total)),
        ("reconstruction", |l| Some(l.reconstruction)),
        ("KL", |l| l.kl),
        ("clustering (1 − S_soft)", |l| l.cluster),
        ("contrastive", |l| l.contrastive),
        ("sparsity", |l| l.sparsity),
    ];
    let losses = terms
        .iter()
        .filter_map(|(name, term)| {
            let train: Vec<(usize, f64)> = epochs
                .iter()
                .filter_map(|e| term(&e.train).map(|v| (e.epoch + 1, v)))
                .collect();
            let val: Vec<(usize, f64)> = epochs
                .iter()
                .filter_map(|e| e.val.as_ref().and_then(term).map(|v| (e.epoch + 1, v)))
                .collect();
            (!train.is_empty()).then(|| LossSeries::new(*name, train, val))
        })
        .collect();
    let per_epoch = |value: fn(&EpochSummary) -> Option<f64>, name: &str| {
        let points: Vec<(usize, f64)> = epochs
            .iter()
            .filter_map(|e| value(e).map(|v| (e.epoch + 1, v)))
            .collect();
        (!points.is_empty()).then(|| LossSeries::new(name, Vec::new(), points))
    };
    (
        losses,
        per_epoch(|e| e.val_psnr_db, "PSNR"),
        per_epoch(|e| e.val_ssim, "SSIM"),
    )
}

/// Up to `max` members spread evenly over `members`.
fn evenly_spaced(members: &[usize], max: usize) -> Vec<usize> {
    let n = members.len().min(max);
    (0..n).map(|i| members[i * members.len() / n]).collect()
}

fn mean_quality(
    recons: &[Reconstruction],
    ensemble: &Ensemble,
    data_range: f32,
) -> anyhow::Result<ImageQuality> {
    let shape = ensemble.shape();
    let (mut mse, mut psnr, mut ssim, mut finite_psnr) = (0.0, 0.0, 0.0, 0usize);
    for r in recons {
        let scores = image_scores(&r.original, &r.reconstruction, shape, data_range)
            .with_context(|| format!("member {}", r.id))?;
        mse += scores.mse;
        ssim += scores.ssim;
        if scores.psnr.is_finite() {
            psnr += scores.psnr;
            finite_psnr += 1;
        }
    }
    let n = recons.len().max(1) as f64;
    Ok(ImageQuality {
        mse: mse / n,
        psnr_db: psnr / finite_psnr.max(1) as f64,
        ssim: ssim / n,
    })
}

/// The PCA baseline: fitted on normalised training members, `latent_dim` components, members
/// reconstructed through the inverse transform and mapped back to data units.
fn pca_reconstructions(
    model: &TrainedModel,
    ensemble: &Ensemble,
    members: &[usize],
    control: &TaskControl,
) -> anyhow::Result<(Vec<Reconstruction>, usize)> {
    let shape = ensemble.shape();
    let len = shape.len();
    let normalised = |list: &[usize]| -> anyhow::Result<Array2<f32>> {
        let mut data = Array2::<f32>::zeros((list.len(), len));
        for (mut row, &member) in data.rows_mut().into_iter().zip(list) {
            let slice = row
                .as_slice_mut()
                .context("a fresh array row is contiguous")?;
            ensemble.source.read_f32(member, slice)?;
            model.normalization.apply(slice, shape);
        }
        Ok(data)
    };
    let fit_members = evenly_spaced(&model.split.train, PCA_FIT_MEMBERS);
    let train = normalised(&fit_members)?;
    let components = pca_components(model.latent_dim(), train.nrows(), len);
    let pca = Pca::fit(train.view(), components, control)?;
    let originals = normalised(members)?;
    let recon = pca.reconstruct(originals.view())?;
    let reconstructions = members
        .iter()
        .zip(originals.rows().into_iter().zip(recon.rows()))
        .map(|(&member, (o, r))| {
            let mut original = o.to_vec();
            let mut reconstruction = r.to_vec();
            model.normalization.invert(&mut original, shape);
            model.normalization.invert(&mut reconstruction, shape);
            Reconstruction {
                member,
                id: ensemble.member_id(member),
                shape: [shape.channels, shape.height, shape.width],
                original,
                reconstruction,
            }
        })
        .collect();
    Ok((reconstructions, components))
}

/// As many PCA components as latent dimensions, where the data allows: centring `rows`
/// members leaves rank at most `rows − 1`.
fn pca_components(latent_dim: usize, rows: usize, values: usize) -> usize {
    latent_dim.min(rows.saturating_sub(1)).min(values).max(1)
}

#[cfg(test)]
mod tests {
    use super::pca_components;

    #[test]
    fn pca_components_fit_the_rank_of_small_runs() {
        // 240 training members, latent 2500: rank after centring is 239.
        assert_eq!(pca_components(2500, 240, 4096), 239);
        assert_eq!(pca_components(8, 5000, 4096), 8);
        assert_eq!(pca_components(8, 5000, 4), 4);
    }
}
