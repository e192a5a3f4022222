//! The live subsample of a large ensemble: at 135K members the interactive map embeds e.g.
//! 25K of them (the full set on demand), always keeping the hand-labelled members.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::analysis::{AnalysisError, AnalysisResult};

/// `target` distinct row indices out of `0..n_total`, sorted, with every index of `always`
/// included; the rest drawn uniformly with `seed` (ChaCha8: the same on every platform).
///
/// If `always` alone holds `target` or more members, all of them (and nothing else) are
/// returned, so no hand-labelled member is ever dropped. `target ≥ n_total` returns all rows.
pub fn live_subsample(
    n_total: usize,
    target: usize,
    always: &[usize],
    seed: u64,
) -> AnalysisResult<Vec<usize>> {
    if let Some(&bad) = always.iter().find(|&&i| i >= n_total) {
        return Err(AnalysisError::Invalid(format!(
            "member {bad} to keep in the subsample is out of range (ensemble has {n_total})"
        )));
    }
    if target >= n_total {
        return Ok((0..n_total).collect());
    }
    let mut keep = vec![false; n_total];
    for &i in always {
        keep[i] = true;
    }
    let forced = keep.iter().filter(|&&k| k).count();
    if forced < target {
        let rest: Vec<usize> = (0..n_total).filter(|&i| !keep[i]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for pick in rand::seq::index::sample(&mut rng, rest.len(), target - forced) {
            keep[rest[pick]] = true;
        }
    }
    Ok((0..n_total).filter(|&i| keep[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_forced_members_and_hits_the_target() {
        let always = [3, 99_000, 134_999, 3];
        let picked = live_subsample(135_000, 25_000, &always, 7).unwrap();
        assert_eq!(picked.len(), 25_000);
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
        for i in [3, 99_000, 134_999] {
            assert!(picked.binary_search(&i).is_ok());
        }
        assert_eq!(picked, live_subsample(135_000, 25_000, &always, 7).unwrap());
        assert_ne!(picked, live_subsample(135_000, 25_000, &always, 8).unwrap());
    }

    #[test]
    fn more_forced_than_target_keeps_all_forced() {
        let always: Vec<usize> = (0..50).map(|i| i * 2).collect();
        assert_eq!(live_subsample(1000, 10, &always, 1).unwrap(), always);
        assert!(live_subsample(10, 5, &[10], 1).is_err());
        assert_eq!(live_subsample(4, 10, &[], 1).unwrap(), vec![0, 1, 2, 3]);
    }
}
