//! The training loop: a stratified held-out part of the hand-labelled members, normalisation
//! fitted on the rest, AdamW with warm-up and cosine decay, and early stopping on held-out
//! accuracy that keeps the best epoch's weights.

use burn::module::{Module, Param};
use burn::nn::LinearConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ndarray::{Array1, Array2, ArrayView2};
use std::sync::Arc;
use std::time::Instant;

use super::config::ClassifierConfig;
use super::error::{ClassifyError, ClassifyResult};
use super::input::{CachedSource, random_shift, working_source};
use super::labelled::LabelledSet;
use super::metrics::{ConfusionMatrix, HeldoutReport};
use super::network::EfficientNet;
use super::predict::TrainedClassifier;
use crate::data::{AugmentConfig, Augmentation, BatchLoader, Ensemble, Normalization, Split};
use crate::data::{MemberSource, SplitFractions};
use crate::task::TaskControl;
use crate::train::SelectedBackend;

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpochProgress {
    /// Zero-based.
    pub epoch: usize,
    pub epochs: usize,
    /// Mean training cross-entropy (nats).
    pub train_loss: f64,
    pub heldout_loss: f64,
    pub heldout_accuracy: f64,
    /// Whether this epoch's weights are the best so far (and kept).
    pub best: bool,
    pub elapsed_secs: f64,
}

/// Fewest labelled members of which a held-out part can still say something.
pub const MIN_LABELLED: usize = 4;

/// Trains a classifier on the hand-labelled members `labelled` of `ensemble`.
///
/// `control` cancels between batches; `on_epoch` hears every finished epoch. The returned
/// classifier holds the weights of the epoch with the best held-out accuracy (ties: lower
/// held-out loss).
pub fn train(
    ensemble: &Ensemble,
    labelled: &LabelledSet,
    config: &ClassifierConfig,
    backend: &SelectedBackend,
    control: &TaskControl,
    on_epoch: &mut dyn FnMut(&EpochProgress),
) -> ClassifyResult<TrainedClassifier> {
    config
        .validate()
        .map_err(|e| ClassifyError::Invalid(e.to_string()))?;
    let origin = ensemble.origin();
    if labelled.classes.len() < 2 || labelled.len() < MIN_LABELLED {
        return Err(ClassifyError::Invalid(format!(
            "{origin}: a classifier needs hand labels of at least 2 classes and \
             {MIN_LABELLED} members, got {} classes and {} members",
            labelled.classes.len(),
            labelled.len()
        )));
    }
    let started = Instant::now();

    // Stratified held-out part, in positions of the labelled list.
    let fractions = SplitFractions {
        val: config.heldout_fraction,
        test: 0.0,
    };
    let split = Split::new(
        labelled.len(),
        fractions,
        Some(&labelled.targets),
        config.seed,
    )
    .map_err(|e| ClassifyError::Invalid(format!("{origin}: {e}")))?;
    if split.val.is_empty() || split.train.is_empty() {
        return Err(ClassifyError::Invalid(format!(
            "{origin}: {} labelled members leave no held-out or no training part at \
             heldout_fraction {}",
            labelled.len(),
            config.heldout_fraction
        )));
    }
    let train_members: Vec<usize> = split.train.iter().map(|&i| labelled.members[i]).collect();
    let heldout_members: Vec<usize> = split.val.iter().map(|&i| labelled.members[i]).collect();
    let targets = labelled.dense_targets(ensemble.len());

    let working = working_source(ensemble.source.clone(), config.input_size);
    let shape = working.shape();
    let source = CachedSource::wrap(working, &labelled.members, config.cache_limit_bytes)?;
    control.check()?;
    let norm = Arc::new(Normalization::fit(
        source.as_ref(),
        &train_members,
        config.normalization,
    )?);
    let augmentation = (config.augmentation != AugmentConfig::default())
        .then(|| Augmentation::new(config.augmentation, shape, &origin))
        .transpose()?;
    if augmentation
        .as_ref()
        .is_some_and(|a| a.output_shape() != shape)
    {
        return Err(ClassifyError::Invalid(format!(
            "{origin}: the classifier's augmentation must not crop (it predicts whole members)"
        )));
    }

    let device = backend.device.clone().autodiff();
    device.seed(config.seed);
    let mut model = EfficientNet::new(config, shape, labelled.classes.len(), &device);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_epsilon(1e-8)
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);

    let batch_size = config.batch_size;
    // A last batch of one gives batch norm nothing to normalise with.
    let drop_last = train_members.len() % batch_size == 1 && train_members.len() > batch_size;
    let steps_per_epoch = match drop_last {
        true => train_members.len() / batch_size,
        false => train_members.len().div_ceil(batch_size),
    };
    let total_steps = steps_per_epoch * config.epochs;
    let mut best: Option<(EfficientNet, Evaluation, usize)> = None;
    let mut epochs_run = 0;

    for epoch in 0..config.epochs {
        let epoch_start = Instant::now();
        let mut builder = BatchLoader::builder(source.clone(), train_members.clone(), batch_size)
            .shuffle(config.seed)
            .epoch(epoch as u64)
            .drop_last(drop_last)
            .normalize(norm.clone());
        if let Some(aug) = &augmentation {
            builder = builder.augment(aug.clone());
        }
        let loader = builder.start()?;
        let mut loss_sum = 0.0f64;
        let mut seen = 0usize;
        for (step, batch) in loader.enumerate() {
            control.check()?;
            let mut batch = batch?;
            random_shift(&mut batch, config.max_shift_fraction, config.seed, epoch);
            let lr = learning_rate(
                config,
                epoch * steps_per_epoch + step,
                total_steps,
                steps_per_epoch,
            );
            let x = Tensor::<4>::from_data(TensorData::new(batch.data, batch.shape), &device);
            let y = class_tensor(&batch.members, &targets, &device);
            let loss = loss_fn.forward(model.forward(x), y);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(ClassifyError::Failed(format!(
                    "the loss became non-finite at epoch {epoch}, step {step}; lower the \
                     learning rate or check the data for extreme values"
                )));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += value * batch.members.len() as f64;
            seen += batch.members.len();
        }
        control.check()?;
        epochs_run = epoch + 1;

        let plain = model.valid();
        let eval = evaluate(
            &plain,
            &source,
            &norm,
            &heldout_members,
            &targets,
            &labelled.classes,
            config.predict_batch_size,
            &backend.device,
            control,
        )?;
        let improved = best.as_ref().is_none_or(|(_, b, _)| {
            eval.accuracy > b.accuracy || (eval.accuracy == b.accuracy && eval.loss < b.loss)
        });
        on_epoch(&EpochProgress {
            epoch,
            epochs: config.epochs,
            train_loss: loss_sum / seen.max(1) as f64,
            heldout_loss: eval.loss,
            heldout_accuracy: eval.accuracy,
            best: improved,
            elapsed_secs: epoch_start.elapsed().as_secs_f64(),
        });
        if improved {
            best = Some((plain, eval, epoch));
        }
        let best_epoch = best.as_ref().map_or(epoch, |(_, _, e)| *e);
        if config.patience_epochs > 0 && epoch - best_epoch >= config.patience_epochs {
            break;
        }
    }

    let Some((model, eval, best_epoch)) = best else {
        return Err(ClassifyError::Failed("no epoch completed".into()));
    };
    let report = HeldoutReport {
        accuracy: eval.accuracy,
        loss: eval.loss,
        per_class: eval.confusion.class_scores(),
        confusion: eval.confusion,
        best_epoch,
        epochs_run,
        train_members: train_members.len(),
        heldout_members: heldout_members.len(),
        train_secs: started.elapsed().as_secs_f64(),
    };
    Ok(TrainedClassifier::new(
        model,
        backend.device.clone(),
        labelled.classes.clone(),
        Arc::try_unwrap(norm).unwrap_or_else(|shared| (*shared).clone()),
        shape,
        ensemble.shape(),
        config.clone(),
        report,
    ))
}

/// Refits `previous`'s linear head on `labelled` (e.g. after a few hand labels changed),
/// starting from its weights, over the pooled features of every member (`features`, one row
/// per member of the ensemble, from [`TrainedClassifier::features`]); the rest of the
/// network stays as trained. Full-batch AdamW for the config's `refresh_steps` on the CPU:
/// seconds where [`train`] takes minutes. The classes must be the ones `previous` knows.
pub fn refit_head(
    labelled: &LabelledSet,
    previous: &TrainedClassifier,
    features: ArrayView2<f32>,
    control: &TaskControl,
) -> ClassifyResult<TrainedClassifier> {
    if labelled.classes != previous.classes() {
        return Err(ClassifyError::Invalid(format!(
            "the classes changed since the classifier was trained ({} now, {} then); it \
             must be trained from scratch",
            labelled.classes.len(),
            previous.classes().len()
        )));
    }
    let (weight, bias) = previous.head();
    let (width, classes) = weight.dim();
    if features.ncols() != width {
        return Err(ClassifyError::Invalid(format!(
            "{} features per member for a head of {width}",
            features.ncols()
        )));
    }
    if let Some(&member) = labelled.members.iter().find(|&&m| m >= features.nrows()) {
        return Err(ClassifyError::Invalid(format!(
            "member {member} has no features ({} rows)",
            features.nrows()
        )));
    }
    // A few thousand rows of a hundred-odd features: the CPU is the right place.
    let device = Device::flex().autodiff();
    let rows: Vec<f32> = labelled
        .members
        .iter()
        .flat_map(|&m| features.row(m).to_vec())
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(rows, [labelled.len(), width]), &device);
    let targets: Vec<i64> = labelled.targets.iter().map(|&t| i64::from(t)).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [labelled.len()]), &device);
    let mut head = LinearConfig::new(width, classes).init(&device);
    let w0 = TensorData::new(weight.iter().copied().collect::<Vec<_>>(), [width, classes]);
    head.weight = Param::from_tensor(Tensor::<2>::from_data(w0, &device));
    head.bias = Some(Param::from_tensor(Tensor::<1>::from_data(
        TensorData::new(bias.to_vec(), [classes]),
        &device,
    )));
    let config = previous.config();
    let mut optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_epsilon(1e-8)
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    for _ in 0..config.refresh_steps {
        control.check()?;
        let loss = loss_fn.forward(head.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &head);
        head = optim.step(REFIT_LEARNING_RATE, head, grads);
    }
    let read = |data: TensorData| {
        data.try_to_vec::<f32>()
            .map_err(|e| ClassifyError::Failed(format!("cannot read the refitted head: {e:?}")))
    };
    let w = read(head.weight.val().into_data())?;
    let b = match &head.bias {
        Some(bias) => read(bias.val().into_data())?,
        None => vec![0.0; classes],
    };
    if w.iter().chain(&b).any(|v| !v.is_finite()) {
        return Err(ClassifyError::Failed(
            "the refitted head has non-finite weights".into(),
        ));
    }
    let weight = Array2::from_shape_vec((width, classes), w)
        .map_err(|e| ClassifyError::Failed(format!("refitted head: {e}")))?;
    Ok(previous.with_head(weight, Array1::from_vec(b)))
}

/// AdamW's step size when refitting a trained head (a convex problem, started near its
/// solution; 1e-3 moved too little in 200 steps to follow a merged class in the tests).
const REFIT_LEARNING_RATE: f64 = 1e-2;

/// Linear warm-up over the first epoch, then cosine decay to zero at the last step.
fn learning_rate(
    config: &ClassifierConfig,
    step: usize,
    total_steps: usize,
    warmup_steps: usize,
) -> f64 {
    let peak = config.learning_rate;
    if step < warmup_steps {
        return peak * (step + 1) as f64 / warmup_steps as f64;
    }
    let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
    let progress = ((step - warmup_steps) as f64 / span).min(1.0);
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

fn class_tensor(members: &[usize], targets: &[u32], device: &Device) -> Tensor<1, Int> {
    let classes: Vec<i64> = members.iter().map(|&m| i64::from(targets[m])).collect();
    Tensor::<1, Int>::from_data(TensorData::new(classes, [members.len()]), device)
}

/// Held-out figures of one epoch.
struct Evaluation {
    accuracy: f64,
    loss: f64,
    confusion: ConfusionMatrix,
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    model: &EfficientNet,
    source: &Arc<dyn MemberSource>,
    norm: &Arc<Normalization>,
    members: &[usize],
    targets: &[u32],
    classes: &[String],
    batch_size: usize,
    device: &Device,
    control: &TaskControl,
) -> ClassifyResult<Evaluation> {
    let loader = BatchLoader::builder(source.clone(), members.to_vec(), batch_size)
        .normalize(norm.clone())
        .start()?;
    let k = classes.len();
    let mut confusion = ConfusionMatrix::new(classes.to_vec());
    let mut loss_sum = 0.0f64;
    for batch in loader {
        control.check()?;
        let batch = batch?;
        let x = Tensor::<4>::from_data(TensorData::new(batch.data, batch.shape), device);
        let probs = softmax(model.forward(x), 1)
            .try_into_vec_as::<f32>()
            .map_err(|e| ClassifyError::Failed(format!("cannot read predictions: {e:?}")))?;
        for (row, &member) in probs.chunks_exact(k).zip(&batch.members) {
            let truth = targets[member];
            let (predicted, _) = arg_max(row);
            confusion.add(truth, predicted as u32);
            // Clamped: a probability that underflows to 0 would make the loss infinite.
            let p = row.get(truth as usize).copied().unwrap_or(0.0).max(1e-12);
            loss_sum -= f64::from(p).ln();
        }
    }
    Ok(Evaluation {
        accuracy: confusion.accuracy().unwrap_or(0.0),
        loss: loss_sum / members.len().max(1) as f64,
        confusion,
    })
}

/// Index and value of the largest entry (the first on ties; NaN never wins).
pub(crate) fn arg_max(row: &[f32]) -> (usize, f32) {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_warms_up_then_decays_to_zero() {
        let config = ClassifierConfig {
            learning_rate: 1.0,
            ..ClassifierConfig::default()
        };
        assert_eq!(learning_rate(&config, 0, 100, 10), 0.1);
        assert_eq!(learning_rate(&config, 9, 100, 10), 1.0);
        assert_eq!(learning_rate(&config, 10, 100, 10), 1.0);
        assert!(learning_rate(&config, 55, 100, 10) < 0.6);
        assert!(learning_rate(&config, 100, 100, 10).abs() < 1e-12);
    }

    #[test]
    fn arg_max_ignores_nan() {
        assert_eq!(arg_max(&[0.1, f32::NAN, 0.7, 0.2]), (2, 0.7));
    }
}
