//! Seeded train/validation/test splits and k-fold partitions, optionally stratified.
//!
//! A stratum is any `u32` per member: a class (see [`label_strata`]) or a quantile bin of a
//! continuous parameter (see [`quantile_bins`]). Stratifying keeps every stratum's share of
//! each part within one member of its exact proportion.

use super::ClassLabels;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// An invalid split request (a configuration mistake, not bad data).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("split fractions must be >= 0 and leave a training share: val {val}, test {test}")]
    Fractions { val: f64, test: f64 },
    #[error("{strata} strata given for {members} members")]
    StrataLength { strata: usize, members: usize },
    #[error("k-fold needs 2 <= k <= members, got k = {k} for {members} members")]
    Folds { k: usize, members: usize },
    #[error("quantile binning needs at least one bin")]
    NoBins,
}

/// Shares of the validation and test parts; training gets the rest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    pub val: f64,
    pub test: f64,
}

impl SplitFractions {
    /// 80 % train, 20 % validation.
    pub const TRAIN_VAL: Self = Self {
        val: 0.2,
        test: 0.0,
    };
    /// 80 % train, 10 % validation, 10 % test.
    pub const TRAIN_VAL_TEST: Self = Self {
        val: 0.1,
        test: 0.1,
    };

    fn validate(self) -> Result<Self, SplitError> {
        let ok = self.val >= 0.0 && self.test >= 0.0 && self.val + self.test < 1.0;
        match ok {
            true => Ok(self),
            false => Err(SplitError::Fractions {
                val: self.val,
                test: self.test,
            }),
        }
    }
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self::TRAIN_VAL
    }
}

/// Member indices of each part, ascending; every member is in exactly one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub seed: u64,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    /// Splits members `0..n`.
    ///
    /// Sizes: validation gets `round(n·val)` members and validation + test together
    /// `round(n·(val + test))` (halves round up); training gets the rest. With strata, these
    /// totals are shared out by largest remainder, so each stratum of `m` members puts
    /// `⌊m·val⌋` or `⌈m·val⌉` members in validation and `⌊m·(val+test)⌋` or
    /// `⌈m·(val+test)⌉` in validation + test (hence training is within one member of
    /// `m·train` too; the test share alone can be off by up to two in tiny strata). Totals
    /// are exact except when strata of one or two members make that impossible.
    pub fn new(
        n: usize,
        fractions: SplitFractions,
        strata: Option<&[u32]>,
        seed: u64,
    ) -> Result<Self, SplitError> {
        let fractions = fractions.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let groups = shuffled_strata(n, strata, &mut rng)?;
        let sizes: Vec<f64> = groups.iter().map(|g| g.len() as f64).collect();
        let caps: Vec<usize> = groups.iter().map(Vec::len).collect();

        let val_total = (n as f64 * fractions.val).round() as usize;
        let held_total = (n as f64 * (fractions.val + fractions.test)).round() as usize;
        let val_targets: Vec<f64> = sizes.iter().map(|m| m * fractions.val).collect();
        let val = apportion(
            &val_targets,
            &vec![0; groups.len()],
            &caps,
            val_total,
            &mut rng,
        );
        let held_targets: Vec<f64> = sizes
            .iter()
            .map(|m| m * (fractions.val + fractions.test))
            .collect();
        // Validation + test must hold this stratum's validation members.
        let held = apportion(&held_targets, &val, &caps, held_total, &mut rng);

        let mut split = Split {
            seed,
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
        };
        for ((group, &n_val), &n_held) in groups.iter().zip(&val).zip(&held) {
            split.val.extend_from_slice(&group[..n_val]);
            split.test.extend_from_slice(&group[n_val..n_held]);
            split.train.extend_from_slice(&group[n_held..]);
        }
        split.train.sort_unstable();
        split.val.sort_unstable();
        split.test.sort_unstable();
        Ok(split)
    }
}

/// One fold of a k-fold partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Partitions members `0..n` into `k` folds; every member is validation in exactly one fold.
///
/// Members of each stratum are dealt round-robin, continuing where the previous stratum
/// stopped, so validation parts differ in size by at most one and each holds `⌊m/k⌋` or
/// `⌈m/k⌉` members of a stratum of `m`.
pub fn k_fold(
    n: usize,
    k: usize,
    strata: Option<&[u32]>,
    seed: u64,
) -> Result<Vec<Fold>, SplitError> {
    if k < 2 || k > n {
        return Err(SplitError::Folds { k, members: n });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let groups = shuffled_strata(n, strata, &mut rng)?;
    let mut fold_of = vec![0usize; n];
    for (position, &member) in groups.iter().flatten().enumerate() {
        fold_of[member] = position % k;
    }
    Ok((0..k)
        .map(|fold| {
            let (val, train) = (0..n).partition(|&m| fold_of[m] == fold);
            Fold { train, val }
        })
        .collect())
}

/// One stratum per class; unlabelled members form their own stratum (`classes.len()`).
pub fn label_strata(labels: &ClassLabels) -> Vec<u32> {
    let unlabelled = labels.classes.len() as u32;
    labels
        .per_member
        .iter()
        .map(|label| label.unwrap_or(unlabelled))
        .collect()
}

/// Bins a continuous parameter into `bins` equal-count quantile bins (`0..bins`, ascending
/// values; ties broken by member index, so bin sizes differ by at most one). Non-finite
/// values (missing parameters) get their own bin, `bins`.
pub fn quantile_bins(values: &[f64], bins: usize) -> Result<Vec<u32>, SplitError> {
    if bins == 0 {
        return Err(SplitError::NoBins);
    }
    let mut finite: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_finite())
        .collect();
    finite.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
    let mut out = vec![bins as u32; values.len()];
    let count = finite.len();
    for (rank, &member) in finite.iter().enumerate() {
        out[member] = (rank * bins / count) as u32;
    }
    Ok(out)
}

/// Members grouped by stratum (ascending stratum id), each group shuffled.
fn shuffled_strata(
    n: usize,
    strata: Option<&[u32]>,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<usize>>, SplitError> {
    let mut groups = match strata {
        None => vec![(0..n).collect::<Vec<_>>()],
        Some(strata) if strata.len() != n => {
            return Err(SplitError::StrataLength {
                strata: strata.len(),
                members: n,
            });
        }
        Some(strata) => {
            let mut by_stratum = std::collections::BTreeMap::<u32, Vec<usize>>::new();
            for (member, &stratum) in strata.iter().enumerate() {
                by_stratum.entry(stratum).or_default().push(member);
            }
            by_stratum.into_values().collect()
        }
    };
    for group in &mut groups {
        group.shuffle(rng);
    }
    Ok(groups)
}

/// Integer shares of `total` close to `targets`: each share is ⌊target⌋ or ⌈target⌉ (clamped
/// to `lower..=upper`), the largest remainders getting the ceiling, ties in random order.
fn apportion(
    targets: &[f64],
    lower: &[usize],
    upper: &[usize],
    total: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut shares: Vec<usize> = targets
        .iter()
        .zip(lower.iter().zip(upper))
        .map(|(&t, (&lo, &hi))| (t.floor() as usize).clamp(lo, hi))
        .collect();
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.shuffle(rng);
    // Stable sort: equal remainders keep the shuffled order.
    order.sort_by(|&a, &b| {
        (targets[b] - targets[b].floor()).total_cmp(&(targets[a] - targets[a].floor()))
    });
    let mut missing = total.saturating_sub(shares.iter().sum());
    for &i in &order {
        if missing == 0 {
            break;
        }
        if shares[i] < upper[i] && (shares[i] as f64) < targets[i].ceil() {
            shares[i] += 1;
            missing -= 1;
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_hits_total_with_floor_or_ceil_shares() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let targets = [0.5, 0.5, 0.5, 0.5, 2.25];
        let shares = apportion(&targets, &[0; 5], &[1, 1, 1, 1, 9], 4, &mut rng);
        assert_eq!(shares.iter().sum::<usize>(), 4);
        for (s, t) in shares.iter().zip(targets) {
            assert!(
                *s as f64 >= t.floor() && *s as f64 <= t.ceil(),
                "{shares:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_fractions() {
        let bad = SplitFractions {
            val: 0.6,
            test: 0.4,
        };
        assert!(Split::new(10, bad, None, 0).is_err());
        let negative = SplitFractions {
            val: -0.1,
            test: 0.0,
        };
        assert!(Split::new(10, negative, None, 0).is_err());
    }
}
