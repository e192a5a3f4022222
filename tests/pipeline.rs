//! Normalisation, augmentation, splits and the batch loader, against small in-memory sources.

use sense::data::augment::SamplePlan;
use sense::data::split::{k_fold, label_strata, quantile_bins};
use sense::data::{
    AugmentConfig, Augmentation, BatchLoader, ClassLabels, CropSize, DType, MemberSource,
    Normalization, NormalizationConfig, PreTransform, Scaling, Shape, Split, SplitFractions,
};
use sense::error::{DataError, DataResult};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Members held in memory; reading `fail_at` fails, and every read is counted.
struct VecSource {
    shape: Shape,
    members: Vec<Vec<f32>>,
    fail_at: Option<usize>,
    reads: AtomicUsize,
}

impl VecSource {
    fn new(shape: Shape, members: Vec<Vec<f32>>) -> Self {
        assert!(members.iter().all(|m| m.len() == shape.len()));
        Self {
            shape,
            members,
            fail_at: None,
            reads: AtomicUsize::new(0),
        }
    }

    /// `count` members whose values are `f(member, value index)`.
    fn from_fn(count: usize, shape: Shape, f: impl Fn(usize, usize) -> f32) -> Self {
        let members = (0..count)
            .map(|m| (0..shape.len()).map(|i| f(m, i)).collect())
            .collect();
        Self::new(shape, members)
    }
}

impl MemberSource for VecSource {
    fn origin(&self) -> String {
        "test-source".into()
    }
    fn len(&self) -> usize {
        self.members.len()
    }
    fn shape(&self) -> Shape {
        self.shape
    }
    fn dtype(&self) -> DType {
        DType::F32
    }
    fn member_id(&self, index: usize) -> String {
        index.to_string()
    }
    fn read_f32(&self, index: usize, out: &mut [f32]) -> DataResult<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if Some(index) == self.fail_at {
            return Err(DataError::new(
                "test-source",
                format!("member {index} is corrupt"),
            ));
        }
        out.copy_from_slice(&self.members[index]);
        Ok(())
    }
}

/// Deterministic pseudo-random value in [0, 1) (splitmix64).
fn unit(a: usize, b: usize) -> f32 {
    let mut z = (a as u64) << 32 ^ b as u64 ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

/// Mean and population std of channel `c` over `members`, computed directly in f64.
fn direct_stats(source: &VecSource, members: &[usize], c: usize) -> (f64, f64, f64, f64) {
    let plane = source.shape.plane_len();
    let values: Vec<f64> = members
        .iter()
        .flat_map(|&m| &source.members[m][c * plane..(c + 1) * plane])
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

const SHAPE: Shape = Shape::new(2, 4, 6);

/// Channel 0 around 100 ± 10, channel 1 around -3 ± 0.5.
fn two_channel_source(count: usize) -> VecSource {
    VecSource::from_fn(count, SHAPE, |m, i| {
        let u = unit(m, i);
        if i < SHAPE.plane_len() {
            90.0 + 20.0 * u
        } else {
            -3.5 + u
        }
    })
}

// ---------------------------------------------------------------- normalisation

#[test]
fn statistics_come_from_the_training_split_only() {
    let train: Vec<usize> = (0..40).collect();
    let a = two_channel_source(60);
    // Same training members, wildly different validation/test members.
    let mut b = two_channel_source(60);
    for member in &mut b.members[40..] {
        member.iter_mut().for_each(|v| *v = *v * 1000.0 + 5.0e4);
    }
    let config = NormalizationConfig::default();
    let fit_a = Normalization::fit(&a, &train, config).unwrap();
    let fit_b = Normalization::fit(&b, &train, config).unwrap();
    assert_eq!(fit_a, fit_b);
    assert_eq!(fit_a.fitted_members, 40);
    for c in 0..2 {
        let (mean, std, min, max) = direct_stats(&a, &train, c);
        let s = fit_a.channels[c];
        assert!(close(s.mean, mean, 1e-12), "{} vs {mean}", s.mean);
        assert!(close(s.std, std, 1e-12), "{} vs {std}", s.std);
        assert_eq!((s.min, s.max), (min, max));
        assert_eq!(s.count, 40 * SHAPE.plane_len() as u64);
    }
    // Fitting on everything does see the outliers.
    let all: Vec<usize> = (0..60).collect();
    let fit_all = Normalization::fit(&b, &all, config).unwrap();
    assert!(fit_all.channels[0].mean > 1000.0);
}

#[test]
fn z_score_gives_zero_mean_unit_std_per_channel() {
    let source = two_channel_source(30);
    let train: Vec<usize> = (0..30).collect();
    let norm = Normalization::fit(&source, &train, NormalizationConfig::default()).unwrap();
    let mut normalised = VecSource::new(SHAPE, source.members.clone());
    for member in &mut normalised.members {
        norm.apply(member, SHAPE);
    }
    for c in 0..2 {
        let (mean, std, _, _) = direct_stats(&normalised, &train, c);
        assert!(mean.abs() < 1e-5, "channel {c} mean {mean}");
        assert!((std - 1.0).abs() < 1e-5, "channel {c} std {std}");
    }
}

#[test]
fn min_max_maps_the_training_range_to_unit_interval() {
    let source = two_channel_source(20);
    let train: Vec<usize> = (0..20).collect();
    let config = NormalizationConfig {
        scaling: Scaling::MinMax,
        ..Default::default()
    };
    let norm = Normalization::fit(&source, &train, config).unwrap();
    let mut all = Vec::new();
    for member in &source.members {
        let mut m = member.clone();
        norm.apply(&mut m, SHAPE);
        all.extend(m);
    }
    let min = all.iter().copied().fold(f32::INFINITY, f32::min);
    let max = all.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert!(min.abs() < 1e-6 && (max - 1.0).abs() < 1e-6, "{min}..{max}");
}

#[test]
fn log_and_asinh_pre_transforms_are_applied_before_the_statistics() {
    // Values exp(k) − ε have log(x + ε) = k exactly known.
    let epsilon = 0.5f32;
    let shape = Shape::new(1, 2, 3);
    let source = VecSource::from_fn(10, shape, |m, i| ((m + i) as f32 * 0.3).exp() - epsilon);
    let train: Vec<usize> = (0..10).collect();
    let log = NormalizationConfig {
        pre: PreTransform::Log { epsilon },
        scaling: Scaling::ZScore,
    };
    let norm = Normalization::fit(&source, &train, log).unwrap();
    let ks: Vec<f64> = (0..10)
        .flat_map(|m| (0..6).map(move |i| (m + i) as f64 * 0.3))
        .collect();
    let mean = ks.iter().sum::<f64>() / ks.len() as f64;
    assert!(
        close(norm.channels[0].mean, mean, 1e-5),
        "{:?}",
        norm.channels[0]
    );

    let asinh = NormalizationConfig {
        pre: PreTransform::Asinh,
        scaling: Scaling::MinMax,
    };
    let source = VecSource::new(shape, vec![vec![-10.0, -1.0, 0.0, 1.0, 10.0, 100.0]]);
    let norm = Normalization::fit(&source, &[0], asinh).unwrap();
    let mut member = source.members[0].clone();
    norm.apply(&mut member, shape);
    let (lo, hi) = (-10f64.asinh(), 100f64.asinh());
    for (got, x) in member.iter().zip(&source.members[0]) {
        let want = (f64::from(*x).asinh() - lo) / (hi - lo);
        assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
    }
}

#[test]
fn invert_round_trips_every_configuration() {
    let shape = Shape::new(1, 3, 3);
    let source = VecSource::from_fn(8, shape, |m, i| 0.1 + 50.0 * unit(m, i));
    let train: Vec<usize> = (0..8).collect();
    let pres = [
        PreTransform::None,
        PreTransform::Log { epsilon: 1e-3 },
        PreTransform::Asinh,
    ];
    for pre in pres {
        for scaling in [Scaling::ZScore, Scaling::MinMax] {
            let norm =
                Normalization::fit(&source, &train, NormalizationConfig { pre, scaling }).unwrap();
            for original in &source.members {
                let mut m = original.clone();
                norm.apply(&mut m, shape);
                assert_ne!(&m, original);
                norm.invert(&mut m, shape);
                for (a, b) in m.iter().zip(original) {
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{pre:?} {scaling:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn non_finite_values_are_skipped_and_become_zero() {
    let shape = Shape::new(1, 1, 4);
    let source = VecSource::new(
        shape,
        vec![
            vec![1.0, f32::NAN, 3.0, f32::INFINITY],
            vec![5.0, 7.0, f32::NEG_INFINITY, 9.0],
        ],
    );
    for scaling in [Scaling::ZScore, Scaling::MinMax] {
        let config = NormalizationConfig {
            scaling,
            ..Default::default()
        };
        let norm = Normalization::fit(&source, &[0, 1], config).unwrap();
        assert_eq!(norm.skipped_values, 3);
        assert_eq!(norm.channels[0].count, 5);
        // Finite values 1,3,5,7,9: mean 5, min 1.
        assert_eq!(norm.channels[0].mean, 5.0);
        assert_eq!(norm.channels[0].min, 1.0);
        assert_eq!(norm.channels[0].max, 9.0);
        let mut member = source.members[0].clone();
        norm.apply(&mut member, shape);
        assert!(member.iter().all(|v| v.is_finite()));
        assert_eq!(member[1], 0.0);
        assert_eq!(member[3], 0.0);
    }
}

#[test]
fn constant_channel_normalises_to_zero_without_nan() {
    let source = VecSource::from_fn(4, SHAPE, |_, i| if i < 24 { 7.0 } else { i as f32 });
    for scaling in [Scaling::ZScore, Scaling::MinMax] {
        let config = NormalizationConfig {
            scaling,
            ..Default::default()
        };
        let norm = Normalization::fit(&source, &[0, 1, 2, 3], config).unwrap();
        let mut member = source.members[0].clone();
        norm.apply(&mut member, SHAPE);
        assert!(member[..24].iter().all(|&v| v == 0.0), "{member:?}");
        assert!(member.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn log_of_out_of_domain_training_value_is_an_error() {
    let source = VecSource::new(Shape::new(1, 1, 2), vec![vec![1.0, 2.0], vec![-3.0, 1.0]]);
    let config = NormalizationConfig {
        pre: PreTransform::Log { epsilon: 1.0 },
        ..Default::default()
    };
    let err = Normalization::fit(&source, &[0, 1], config).unwrap_err();
    assert!(err.to_string().contains("member 1"), "{err}");
    assert!(Normalization::fit(&source, &[0], config).is_ok());
    // Non-finite values are missing data, not out of the domain: skipped.
    let missing = VecSource::new(
        Shape::new(1, 1, 3),
        vec![vec![1.0, f32::NEG_INFINITY, f32::NAN]],
    );
    let norm = Normalization::fit(&missing, &[0], config).unwrap();
    assert_eq!((norm.channels[0].count, norm.skipped_values), (1, 2));
}

#[test]
fn normalisation_round_trips_through_json() {
    let source = two_channel_source(5);
    let norm = Normalization::fit(&source, &[0, 1, 2], NormalizationConfig::default()).unwrap();
    let json = serde_json::to_string(&norm).unwrap();
    let back: Normalization = serde_json::from_str(&json).unwrap();
    // serde_json parses floats to within 1 ulp unless its `float_roundtrip` feature is on.
    assert_eq!(
        (back.config, back.fitted_members),
        (norm.config, norm.fitted_members)
    );
    for (a, b) in back.channels.iter().zip(&norm.channels) {
        assert_eq!(a.count, b.count);
        for (x, y) in [
            (a.mean, b.mean),
            (a.std, b.std),
            (a.min, b.min),
            (a.max, b.max),
        ] {
            assert!(close(x, y, 1e-15), "{x} vs {y}");
        }
    }
}

// ---------------------------------------------------------------- augmentation

fn iota(shape: Shape) -> Vec<f32> {
    (0..shape.len()).map(|i| i as f32).collect()
}

fn augmentation(config: AugmentConfig, shape: Shape) -> Augmentation {
    Augmentation::new(config, shape, "test").unwrap()
}

#[test]
fn flips_and_rotations_are_exact_permutations() {
    for shape in [Shape::new(2, 5, 5), Shape::new(1, 4, 7)] {
        let aug = augmentation(
            AugmentConfig {
                flips: true,
                rotations: true,
                ..Default::default()
            },
            shape,
        );
        let input = iota(shape);
        let mut seen_turns = HashSet::new();
        for member in 0..64 {
            let plan = aug.plan(0, member, 0);
            seen_turns.insert(plan.quarter_turns);
            let mut out = vec![0.0; shape.len()];
            plan.geometry(&input, &mut out);
            // Each channel plane is a permutation of itself.
            for (c, plane) in out.chunks(shape.plane_len()).enumerate() {
                let mut sorted = plane.to_vec();
                sorted.sort_by(f32::total_cmp);
                let base = c * shape.plane_len();
                assert_eq!(sorted, input[base..base + shape.plane_len()]);
            }
        }
        if shape.height == shape.width {
            assert_eq!(seen_turns.len(), 4, "{seen_turns:?}");
        } else {
            assert_eq!(
                seen_turns,
                HashSet::from([0, 2]),
                "non-square: half turns only"
            );
        }
    }
}

#[test]
fn augmentation_is_reproducible_per_key() {
    let shape = Shape::new(1, 16, 16);
    let config = AugmentConfig {
        seed: 9,
        flips: true,
        rotations: true,
        crop: Some(CropSize {
            height: 8,
            width: 8,
        }),
        patches_per_member: 3,
        brightness: 0.2,
        noise_std: 0.1,
    };
    let a = augmentation(config, shape);
    let b = augmentation(config, shape);
    let run = |aug: &Augmentation, epoch, member, patch| {
        let plan = aug.plan(epoch, member, patch);
        let mut out = vec![0.0; 64];
        plan.geometry(&iota(shape), &mut out);
        plan.brightness(&mut out);
        plan.add_noise(&mut out);
        out
    };
    assert_eq!(run(&a, 3, 17, 2), run(&b, 3, 17, 2));
    assert_ne!(
        run(&a, 3, 17, 2),
        run(&a, 4, 17, 2),
        "epoch changes the draw"
    );
    assert_ne!(
        run(&a, 3, 17, 2),
        run(&a, 3, 17, 1),
        "patch changes the draw"
    );
    let reseeded = augmentation(AugmentConfig { seed: 10, ..config }, shape);
    assert_ne!(run(&a, 3, 17, 2), run(&reseeded, 3, 17, 2));
}

#[test]
fn crops_stay_in_bounds_and_cover_the_image() {
    let shape = Shape::new(1, 20, 30);
    let crop = CropSize {
        height: 6,
        width: 9,
    };
    let aug = augmentation(
        AugmentConfig {
            crop: Some(crop),
            ..Default::default()
        },
        shape,
    );
    assert_eq!(aug.output_shape(), Shape::new(1, 6, 9));
    let input = iota(shape);
    let (mut tops, mut lefts) = (HashSet::new(), HashSet::new());
    for member in 0..500 {
        let plan: SamplePlan = aug.plan(1, member, 0);
        assert!(plan.top + crop.height <= shape.height);
        assert!(plan.left + crop.width <= shape.width);
        tops.insert(plan.top);
        lefts.insert(plan.left);
        let mut out = vec![0.0; 54];
        plan.geometry(&input, &mut out);
        for (i, v) in out.iter().enumerate() {
            let (y, x) = (plan.top + i / 9, plan.left + i % 9);
            assert_eq!(*v, (y * 30 + x) as f32);
        }
    }
    // Every position, including both extremes, is reachable.
    assert_eq!(tops.len(), 15);
    assert_eq!(lefts.len(), 22);
}

#[test]
fn invalid_augmentation_configs_are_rejected() {
    let shape = Shape::new(1, 8, 8);
    let too_big = AugmentConfig {
        crop: Some(CropSize {
            height: 9,
            width: 4,
        }),
        ..Default::default()
    };
    let patches_without_crop = AugmentConfig {
        patches_per_member: 4,
        ..Default::default()
    };
    let negative_noise = AugmentConfig {
        noise_std: -1.0,
        ..Default::default()
    };
    for config in [too_big, patches_without_crop, negative_noise] {
        assert!(
            Augmentation::new(config, shape, "test").is_err(),
            "{config:?}"
        );
    }
}

#[test]
fn brightness_and_noise_have_the_configured_statistics() {
    let shape = Shape::new(1, 64, 64);
    let aug = augmentation(
        AugmentConfig {
            brightness: 0.1,
            noise_std: 0.5,
            ..Default::default()
        },
        shape,
    );
    let gains: Vec<f32> = (0..2000).map(|m| aug.plan(0, m, 0).gain).collect();
    assert!(gains.iter().all(|g| (0.9..=1.1).contains(g)));
    let mean_gain = gains.iter().sum::<f32>() / gains.len() as f32;
    assert!((mean_gain - 1.0).abs() < 0.005, "{mean_gain}");
    // Uniform on ±0.1: both tails are used.
    assert!(gains.iter().any(|&g| g < 0.92) && gains.iter().any(|&g| g > 1.08));

    let mut noise = vec![0.0f32; shape.len()];
    aug.plan(0, 0, 0).add_noise(&mut noise);
    let n = noise.len() as f64;
    let mean = noise.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let std = (noise
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(mean.abs() < 0.05, "noise mean {mean}");
    assert!((std - 0.5).abs() < 0.03, "noise std {std}");
}

// ---------------------------------------------------------------- splits

fn assert_partition(split: &Split, n: usize) {
    let mut all: Vec<usize> = [&split.train, &split.val, &split.test]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..n).collect::<Vec<_>>(),
        "no overlaps, nothing missing"
    );
}

#[test]
fn split_sizes_follow_the_documented_rounding() {
    let s = Split::new(1000, SplitFractions::default(), None, 1).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (800, 200, 0));
    assert_partition(&s, 1000);
    let s = Split::new(1001, SplitFractions::TRAIN_VAL_TEST, None, 1).unwrap();
    // val = round(100.1) = 100, val + test = round(200.2) = 200.
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (801, 100, 100));
    assert_partition(&s, 1001);
    let s = Split::new(7, SplitFractions::default(), None, 1).unwrap();
    assert_eq!(s.val.len(), 1); // round(1.4)
}

#[test]
fn splits_are_seeded() {
    let a = Split::new(500, SplitFractions::TRAIN_VAL_TEST, None, 42).unwrap();
    let b = Split::new(500, SplitFractions::TRAIN_VAL_TEST, None, 42).unwrap();
    let c = Split::new(500, SplitFractions::TRAIN_VAL_TEST, None, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.val, c.val);
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<Split>(&json).unwrap(), a);
}

/// 4 classes of uneven size plus unlabelled members, interleaved.
fn uneven_labels() -> ClassLabels {
    let per_member = (0..1000)
        .map(|i| match i % 20 {
            0 => Some(0),
            1..=3 => Some(1),
            4..=10 => Some(2),
            11 => Some(3),
            _ => None,
        })
        .chain((0..7).map(|_| Some(3)))
        .collect();
    ClassLabels {
        classes: ["a", "b", "c", "d"].map(String::from).to_vec(),
        per_member,
    }
}

#[test]
fn stratified_split_keeps_class_proportions_within_one() {
    let labels = uneven_labels();
    let strata = label_strata(&labels);
    let n = strata.len();
    for fractions in [SplitFractions::TRAIN_VAL, SplitFractions::TRAIN_VAL_TEST] {
        let split = Split::new(n, fractions, Some(&strata), 5).unwrap();
        assert_partition(&split, n);
        assert_eq!(split.val.len(), (n as f64 * fractions.val).round() as usize);
        for stratum in 0..=4u32 {
            let m = strata.iter().filter(|&&s| s == stratum).count() as f64;
            let count = |part: &[usize]| part.iter().filter(|&&i| strata[i] == stratum).count();
            let val = count(&split.val) as f64;
            let train = count(&split.train) as f64;
            let train_share = 1.0 - fractions.val - fractions.test;
            assert!(
                (val - m * fractions.val).abs() < 1.0,
                "stratum {stratum}: {val} of {m}"
            );
            assert!(
                (train - m * train_share).abs() < 1.0,
                "stratum {stratum}: {train} of {m}"
            );
        }
    }
}

#[test]
fn k_fold_validates_every_member_exactly_once() {
    let labels = uneven_labels();
    let strata = label_strata(&labels);
    let n = strata.len();
    let folds = k_fold(n, 5, Some(&strata), 3).unwrap();
    let mut times_validated = vec![0; n];
    for fold in &folds {
        for &i in &fold.val {
            times_validated[i] += 1;
        }
        assert_eq!(fold.train.len() + fold.val.len(), n);
        assert!(fold.train.iter().all(|i| !fold.val.contains(i)));
        assert!(fold.val.len().abs_diff(n / 5) <= 1);
        for stratum in 0..=4u32 {
            let m = strata.iter().filter(|&&s| s == stratum).count();
            let in_fold = fold.val.iter().filter(|&&i| strata[i] == stratum).count();
            assert!(
                in_fold == m / 5 || in_fold == m.div_ceil(5),
                "{in_fold} of {m}"
            );
        }
    }
    assert!(times_validated.iter().all(|&t| t == 1));
    assert!(k_fold(n, 1, None, 0).is_err());
}

#[test]
fn quantile_bins_are_balanced_and_ordered() {
    let mut values: Vec<f64> = (0..1003).map(|i| f64::from(unit(i, 7)) * 1e3).collect();
    for i in [5, 100, 999] {
        values[i] = f64::NAN;
    }
    let bins = quantile_bins(&values, 10).unwrap();
    let mut sizes = [0usize; 11];
    for &b in &bins {
        sizes[b as usize] += 1;
    }
    assert_eq!(sizes[10], 3, "NaN gets its own bin");
    assert!(sizes[..10].iter().all(|&s| s == 100), "{sizes:?}");
    // Bins are value-ordered: every value in bin b is <= every value in bin b + 1.
    for b in 0..9u32 {
        let top = (0..values.len())
            .filter(|&i| bins[i] == b)
            .map(|i| values[i])
            .fold(f64::NEG_INFINITY, f64::max);
        let next = (0..values.len())
            .filter(|&i| bins[i] == b + 1)
            .map(|i| values[i])
            .fold(f64::INFINITY, f64::min);
        assert!(top <= next);
    }
    // Binned parameters stratify a split.
    let split = Split::new(values.len(), SplitFractions::default(), Some(&bins), 0).unwrap();
    for b in 0..10u32 {
        let val = split.val.iter().filter(|&&i| bins[i] == b).count();
        assert_eq!(val, 20);
    }
}

// ---------------------------------------------------------------- batch loader

fn counting_source(count: usize) -> Arc<VecSource> {
    Arc::new(VecSource::from_fn(count, Shape::new(1, 2, 2), |m, i| {
        (m * 4 + i) as f32
    }))
}

fn epoch_members(source: Arc<VecSource>, seed: u64, epoch: u64) -> Vec<usize> {
    BatchLoader::builder(source, (0..103).collect(), 10)
        .shuffle(seed)
        .epoch(epoch)
        .start()
        .unwrap()
        .flat_map(|batch| batch.unwrap().members)
        .collect()
}

#[test]
fn loader_yields_every_member_once_per_epoch() {
    let source = counting_source(103);
    let loader = BatchLoader::builder(source.clone(), (0..103).collect(), 10)
        .shuffle(1)
        .start()
        .unwrap();
    assert_eq!(loader.batch_count(), 11);
    let batches: Vec<_> = loader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 11);
    assert_eq!(
        batches[10].shape,
        [3, 1, 2, 2],
        "last batch keeps the remainder"
    );
    let mut members: Vec<usize> = batches.iter().flat_map(|b| b.members.clone()).collect();
    assert_ne!(members, (0..103).collect::<Vec<_>>(), "shuffled");
    members.sort_unstable();
    assert_eq!(members, (0..103).collect::<Vec<_>>());
    // Data rows belong to the listed members.
    for batch in &batches {
        for (row, &m) in batch.members.iter().enumerate() {
            assert_eq!(batch.sample(row), source.members[m]);
        }
    }
}

#[test]
fn shuffle_order_is_seeded_and_changes_per_epoch() {
    let source = counting_source(103);
    let first = epoch_members(source.clone(), 7, 0);
    assert_eq!(first, epoch_members(source.clone(), 7, 0));
    assert_ne!(first, epoch_members(source.clone(), 7, 1));
    assert_ne!(first, epoch_members(source, 8, 0));
}

#[test]
fn unshuffled_loader_keeps_order_and_drop_last_skips_the_remainder() {
    let source = counting_source(30);
    let indices = vec![5, 3, 9, 1, 0, 2, 4];
    let batches: Vec<_> = BatchLoader::builder(source, indices.clone(), 3)
        .drop_last(true)
        .start()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(batches.len(), 2);
    let members: Vec<usize> = batches.iter().flat_map(|b| b.members.clone()).collect();
    assert_eq!(members, indices[..6]);
}

#[test]
fn loader_normalises_augments_and_multiplies_patches_deterministically() {
    let shape = Shape::new(2, 12, 12);
    let source = Arc::new(VecSource::from_fn(40, shape, |m, i| {
        10.0 * unit(m, i) + 3.0
    }));
    let train: Vec<usize> = (0..40).step_by(2).collect();
    let norm = Arc::new(
        Normalization::fit(source.as_ref(), &train, NormalizationConfig::default()).unwrap(),
    );
    let config = AugmentConfig {
        seed: 1,
        flips: true,
        rotations: true,
        crop: Some(CropSize {
            height: 5,
            width: 5,
        }),
        patches_per_member: 4,
        brightness: 0.1,
        noise_std: 0.05,
    };
    let run = || -> Vec<_> {
        let aug = Augmentation::new(config, shape, "test").unwrap();
        BatchLoader::builder(source.clone(), train.clone(), 16)
            .shuffle(3)
            .epoch(2)
            .normalize(norm.clone())
            .augment(aug)
            .prefetch(3)
            .start()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let batches = run();
    assert_eq!(
        batches,
        run(),
        "identical across runs despite parallel decoding"
    );
    assert_eq!(batches[0].shape, [16, 2, 5, 5]);
    let mut members: Vec<usize> = batches.iter().flat_map(|b| b.members.clone()).collect();
    assert_eq!(members.len(), 80, "4 patches per member");
    members.sort_unstable();
    members.dedup();
    assert_eq!(members, train);

    // Without noise, each sample equals the plan applied by hand.
    let quiet = AugmentConfig {
        noise_std: 0.0,
        ..config
    };
    let aug = Augmentation::new(quiet, shape, "test").unwrap();
    let batch = BatchLoader::builder(source.clone(), train.clone(), 80)
        .normalize(norm.clone())
        .augment(aug.clone())
        .start()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    for (row, &member) in batch.members.iter().enumerate() {
        let plan = aug.plan(0, member, row % 4);
        let mut want = vec![0.0; 50];
        plan.geometry(&source.members[member], &mut want);
        plan.brightness(&mut want);
        norm.apply(&mut want, Shape::new(2, 5, 5));
        assert_eq!(batch.sample(row), want);
    }
}

#[test]
fn loader_propagates_a_source_error_and_stops() {
    let mut source = VecSource::from_fn(50, Shape::new(1, 2, 2), |m, _| m as f32);
    source.fail_at = Some(23);
    let results: Vec<_> = BatchLoader::builder(Arc::new(source), (0..50).collect(), 10)
        .start()
        .unwrap()
        .collect();
    assert_eq!(
        results.len(),
        3,
        "two good batches, then the error, then the end"
    );
    assert!(results[0].is_ok() && results[1].is_ok());
    let err = results[2].as_ref().unwrap_err();
    assert!(err.to_string().contains("member 23 is corrupt"), "{err}");
}

#[test]
fn loader_rejects_bad_configuration() {
    let source = counting_source(10);
    assert!(
        BatchLoader::builder(source.clone(), vec![0, 10], 2)
            .start()
            .is_err()
    );
    assert!(
        BatchLoader::builder(source.clone(), vec![0, 1], 0)
            .start()
            .is_err()
    );
    let three_channels = VecSource::from_fn(2, Shape::new(3, 2, 2), |_, i| i as f32);
    let norm = Normalization::fit(&three_channels, &[0, 1], Default::default()).unwrap();
    let err = BatchLoader::builder(source, vec![0, 1], 2)
        .normalize(Arc::new(norm))
        .start()
        .err()
        .expect("channel mismatch must fail");
    assert!(err.to_string().contains("3 channels"), "{err}");
}

#[test]
fn dropping_or_cancelling_the_loader_stops_the_thread() {
    let source = Arc::new(VecSource::from_fn(100_000, Shape::new(1, 1, 1), |m, _| {
        m as f32
    }));
    let mut loader = BatchLoader::builder(source.clone(), (0..100_000).collect(), 1)
        .prefetch(2)
        .start()
        .unwrap();
    loader.next().unwrap().unwrap();
    let started = Instant::now();
    drop(loader);
    assert!(started.elapsed() < Duration::from_secs(2));
    let reads = source.reads.load(Ordering::Relaxed);
    assert!(reads < 100, "prefetch is bounded: {reads} reads");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        source.reads.load(Ordering::Relaxed),
        reads,
        "no reads after drop"
    );

    let cancel = Arc::new(AtomicBool::new(false));
    let mut loader = BatchLoader::builder(source, (0..100_000).collect(), 1)
        .cancel_flag(cancel.clone())
        .start()
        .unwrap();
    loader.next().unwrap().unwrap();
    cancel.store(true, Ordering::Relaxed);
    assert!(loader.count() < 10, "cancel ends the epoch early");
}

#[test]
fn recycled_buffers_are_reused() {
    let source = counting_source(40);
    let mut loader = BatchLoader::builder(source.clone(), (0..40).collect(), 4)
        .prefetch(1)
        .start()
        .unwrap();
    let mut rows = 0;
    while let Some(batch) = loader.next() {
        let batch = batch.unwrap();
        for (row, &m) in batch.members.iter().enumerate() {
            assert_eq!(
                batch.sample(row),
                source.members[m],
                "stale data in a reused buffer"
            );
        }
        rows += batch.len();
        loader.recycle(batch);
    }
    assert_eq!(rows, 40);
}
