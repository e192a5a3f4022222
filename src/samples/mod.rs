//! Built-in sample ensembles: the app's default data and the tests' real-ish data.
//!
//! - `channels`: 50×50 facies maps of subsurface channel structures in five geological
//!   scenarios, like the MCMC snapshots of the SENSE paper (30,000 members, 2,500 labelled).
//! - `droplets`: 160×224 side-view shadowgraphs of a drop impacting a liquid film in seven
//!   morphologies (26,000 members, 7,200 labelled).
//! - `mnist`: the real MNIST test set (10,000 members, 2,500 labelled).
//!
//! `channels` and `droplets` are rendered on the fly from `(seed, member index)`, so they cost
//! no storage and any member reads the same every time. Every sample carries its full ground
//! truth plus a stratified hand-labelled subset as its labels.

mod channels;
mod droplets;
mod mnist;
mod procedural;
mod raster;
pub mod writer;

pub use procedural::{Generator, ProceduralSource};

use crate::data::{ClassLabels, Ensemble, MemberSource};
use crate::error::{DataError, DataResult};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// The built-in samples, as named in `sample:NAME`.
pub const NAMES: [&str; 3] = ["channels", "droplets", "mnist"];

/// Seed of the default ensembles (`sample:NAME` without a seed).
pub const DEFAULT_SEED: u64 = 2025;

/// Largest member count a procedural sample accepts: far beyond any real ensemble, and small
/// enough that the per-member class table stays a few megabytes.
const MAX_COUNT: usize = 10_000_000;

/// Size and labelled share of a procedural sample's default ensemble.
struct Defaults {
    count: usize,
    labelled: usize,
}

const CHANNELS: Defaults = Defaults {
    count: 30_000,
    labelled: 2_500,
};
const DROPLETS: Defaults = Defaults {
    count: 26_000,
    labelled: 7_200,
};

/// Opens a built-in sample at its default size and seed.
pub fn open(name: &str) -> DataResult<Ensemble> {
    open_with(name, None, DEFAULT_SEED)
}

/// Opens a built-in sample with `count` members (default: its full size) drawn with `seed`.
/// Smaller ensembles keep the default's labelled share.
pub fn open_with(name: &str, count: Option<usize>, seed: u64) -> DataResult<Ensemble> {
    match name {
        "channels" => procedural(channels::Channels, &CHANNELS, count, seed),
        "droplets" => procedural(droplets::Droplets, &DROPLETS, count, seed),
        "mnist" => mnist::open(count, seed),
        _ => Err(DataError::new(
            format!("sample:{name}"),
            format!("unknown sample; valid names are {}", NAMES.join(", ")),
        )),
    }
}

fn procedural<G: Generator>(
    generator: G,
    defaults: &Defaults,
    count: Option<usize>,
    seed: u64,
) -> DataResult<Ensemble> {
    let origin = format!("sample:{}", generator.name());
    let count = count.unwrap_or(defaults.count);
    if count == 0 || count > MAX_COUNT {
        return Err(DataError::new(
            origin,
            format!("member count must be between 1 and {MAX_COUNT}, got {count}"),
        ));
    }
    let n_classes = generator.class_names().len();
    // Keep the default's labelled share, but label every class at least once when possible.
    let labelled = ((defaults.labelled as f64 * count as f64 / defaults.count as f64).round()
        as usize)
        .max(n_classes.min(count));
    let source = ProceduralSource::new(generator, count, seed);
    let classes = source.classes().to_vec();
    let class_names: Vec<String> = source.class_names().iter().map(|s| s.to_string()).collect();
    let chosen = hand_labelled_subset(&classes, n_classes, labelled, seed);

    Ok(labelled_ensemble(
        Arc::new(source),
        class_names,
        classes,
        &chosen,
    ))
}

/// A sample ensemble: full ground truth, and the `hand_labelled` members as its labels.
fn labelled_ensemble(
    source: Arc<dyn MemberSource>,
    class_names: Vec<String>,
    classes: Vec<u32>,
    hand_labelled: &[bool],
) -> Ensemble {
    let mut ensemble = Ensemble::new(source);
    ensemble.labels = Some(ClassLabels {
        classes: class_names.clone(),
        per_member: classes
            .iter()
            .zip(hand_labelled)
            .map(|(&c, &is_labelled)| is_labelled.then_some(c))
            .collect(),
    });
    ensemble.ground_truth = Some(ClassLabels {
        classes: class_names,
        per_member: classes.into_iter().map(Some).collect(),
    });
    ensemble
}

const SUBSET_KEY: u64 = 0x9E37_79B9_7F4A_7C15;

/// Chooses `count` members to carry hand labels, stratified: each class gets its
/// proportional share (largest-remainder rounding, ties to the lower class), and within a
/// class the members are a seeded random choice. Deterministic in all arguments. Members
/// whose class is `>= n_classes` are never chosen.
pub fn hand_labelled_subset(
    classes: &[u32],
    n_classes: usize,
    count: usize,
    seed: u64,
) -> Vec<bool> {
    let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &c) in classes.iter().enumerate() {
        if let Some(members) = members_of.get_mut(c as usize) {
            members.push(i);
        }
    }
    let total: usize = members_of.iter().map(Vec::len).sum();
    let count = count.min(total);
    let mut chosen = vec![false; classes.len()];
    if count == 0 {
        return chosen;
    }

    // Exact share count·n_c/total, split into whole part and remainder (in units of 1/total).
    let mut quotas: Vec<usize> = Vec::with_capacity(n_classes);
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(n_classes);
    for (c, members) in members_of.iter().enumerate() {
        let exact = count as u128 * members.len() as u128;
        quotas.push((exact / total as u128) as usize);
        remainders.push((exact % total as u128, c));
    }
    let missing = count - quotas.iter().sum::<usize>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, c) in remainders.iter().take(missing) {
        quotas[c] += 1;
    }

    for (c, members) in members_of.iter_mut().enumerate() {
        // A key of its own, so the choice is unrelated to the members' render streams.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SUBSET_KEY);
        rng.set_stream(c as u64);
        let (picked, _) = members.partial_shuffle(&mut rng, quotas[c]);
        for &i in picked.iter() {
            chosen[i] = true;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_is_proportional_and_exact() {
        // 3 classes of 50, 30, 20 members; 10 labels → 5, 3, 2.
        let classes: Vec<u32> = (0..100)
            .map(|i| {
                if i < 50 {
                    0
                } else if i < 80 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let chosen = hand_labelled_subset(&classes, 3, 10, 7);
        let per_class = |c: u32| (0..100).filter(|&i| chosen[i] && classes[i] == c).count();
        assert_eq!((per_class(0), per_class(1), per_class(2)), (5, 3, 2));
        // Largest remainder: 7 labels → 3.5, 2.1, 1.4 → 4, 2, 1.
        let chosen = hand_labelled_subset(&classes, 3, 7, 7);
        let per_class = |c: u32| (0..100).filter(|&i| chosen[i] && classes[i] == c).count();
        assert_eq!((per_class(0), per_class(1), per_class(2)), (4, 2, 1));
    }

    #[test]
    fn subset_ignores_out_of_range_classes_and_caps_count() {
        let classes = [0, 1, 5, 1, 0];
        let chosen = hand_labelled_subset(&classes, 2, 100, 1);
        assert_eq!(chosen, vec![true, true, false, true, true]);
    }
}
