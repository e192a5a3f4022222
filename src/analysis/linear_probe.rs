//! Linear probe: how linearly decodable the labels are from the latents. A multinomial
//! logistic regression (linfa-logistic, L2-penalised) is trained on standardised latents of a
//! train split and scored on held-out members.

use linfa::DatasetBase;
use linfa::prelude::{Fit, Predict};
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisError, AnalysisResult};
use crate::task::TaskControl;

/// Which members train the probe and which score it.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSplit {
    /// Per class, `test_fraction` of its members (rounded, at least one left for training)
    /// go to the test set, drawn with the seeded RNG.
    Stratified { test_fraction: f64, seed: u64 },
    /// Explicit, disjoint row indices.
    Explicit { train: Vec<usize>, test: Vec<usize> },
}

impl Default for ProbeSplit {
    fn default() -> Self {
        Self::Stratified {
            test_fraction: 0.25,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOptions {
    /// L2 penalty on the weights; the loss is a sum over members, so 1.0 matches
    /// scikit-learn's `LogisticRegression(C=1.0)`.
    pub alpha: f64,
    pub max_iterations: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            max_iterations: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub train_accuracy: f64,
    /// Accuracy on the held-out members: the probe's score.
    pub test_accuracy: f64,
    pub n_train: usize,
    pub n_test: usize,
    /// Distinct labels among the training members.
    pub n_classes: usize,
}

/// Trains and scores the probe on `latents` (one row per member) with class `labels`.
pub fn linear_probe(
    latents: ArrayView2<f32>,
    labels: &[usize],
    split: &ProbeSplit,
    options: &ProbeOptions,
    control: &TaskControl,
) -> AnalysisResult<ProbeResult> {
    let n = latents.nrows();
    if labels.len() != n {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: n,
            got: labels.len(),
        });
    }
    if let Some(row) = latents
        .rows()
        .into_iter()
        .position(|r| r.iter().any(|v| !v.is_finite()))
    {
        return Err(AnalysisError::NonFinite {
            what: "latents",
            row,
        });
    }
    let (train, test) = match split {
        ProbeSplit::Stratified {
            test_fraction,
            seed,
        } => stratified_split(labels, *test_fraction, *seed)?,
        ProbeSplit::Explicit { train, test } => {
            check_explicit_split(n, train, test)?;
            (train.clone(), test.clone())
        }
    };
    let n_classes = {
        let mut classes: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
        classes.sort_unstable();
        classes.dedup();
        classes.len()
    };
    if n_classes < 2 {
        return Err(AnalysisError::Invalid(format!(
            "a linear probe needs at least 2 classes among the training members, got {n_classes}"
        )));
    }

    // Standardise with the training members' statistics only (no test leakage).
    let latents = latents.mapv(f64::from);
    let x_train = latents.select(Axis(0), &train);
    let mean = x_train
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(latents.ncols()));
    let std = x_train
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 0.0 { s } else { 1.0 });
    let standardise = |x: Array2<f64>| (x - &mean) / &std;
    let x_train = standardise(x_train);
    let x_test = standardise(latents.select(Axis(0), &test));
    let y_train: Array1<usize> = train.iter().map(|&i| labels[i]).collect();
    let y_test: Vec<usize> = test.iter().map(|&i| labels[i]).collect();

    control.check()?;
    let model = MultiLogisticRegression::default()
        .alpha(options.alpha)
        .max_iterations(options.max_iterations)
        .fit(&DatasetBase::new(x_train.view(), y_train.view()))
        .map_err(|e| AnalysisError::Invalid(format!("linear probe: {e}")))?;
    let train_accuracy = accuracy(&model.predict(&x_train), y_train.as_slice().unwrap_or(&[]));
    let test_accuracy = accuracy(&model.predict(&x_test), &y_test);
    Ok(ProbeResult {
        train_accuracy,
        test_accuracy,
        n_train: train.len(),
        n_test: test.len(),
        n_classes,
    })
}

/// Seeded stratified split: per class, round(`test_fraction` · size) members (but never the
/// whole class) go to the test set. Returns sorted (train, test) row indices.
pub fn stratified_split(
    labels: &[usize],
    test_fraction: f64,
    seed: u64,
) -> AnalysisResult<(Vec<usize>, Vec<usize>)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(AnalysisError::Invalid(format!(
            "test fraction {test_fraction} is outside (0, 1)"
        )));
    }
    let mut by_class: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for members in by_class.values_mut() {
        members.shuffle(&mut rng);
        let n_test =
            ((members.len() as f64 * test_fraction).round() as usize).min(members.len() - 1);
        test.extend_from_slice(&members[..n_test]);
        train.extend_from_slice(&members[n_test..]);
    }
    if test.is_empty() {
        return Err(AnalysisError::Invalid(format!(
            "a test fraction of {test_fraction} leaves no held-out members of {}",
            labels.len()
        )));
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

fn check_explicit_split(n: usize, train: &[usize], test: &[usize]) -> AnalysisResult<()> {
    if train.is_empty() || test.is_empty() {
        return Err(AnalysisError::Invalid(
            "train and test sets must both be non-empty".into(),
        ));
    }
    let mut seen = vec![false; n];
    for &i in train.iter().chain(test) {
        match seen.get_mut(i) {
            None => {
                return Err(AnalysisError::Invalid(format!(
                    "split index {i} is out of range for {n} members"
                )));
            }
            Some(true) => {
                return Err(AnalysisError::Invalid(format!(
                    "member {i} appears twice in the train/test split"
                )));
            }
            Some(slot) => *slot = true,
        }
    }
    Ok(())
}

fn accuracy(predicted: &Array1<usize>, truth: &[usize]) -> f64 {
    let correct = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    correct as f64 / truth.len().max(1) as f64
}
