//! `sense suggest`: which unlabelled members to label next, as a CSV ranked best first, with
//! the reason for each (uncertain pseudo-label, at odds with its latent neighbours, far from
//! every hand label, or, while labels are scarce, typical of a cluster nobody labelled). See [`crate::classify::suggest`].

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ndarray::Array2;

use crate::classify::{PixelFeatures, SuggestConfig, SuggestInput, suggest};
use crate::data::{NanPolicy, OpenOptions};
use crate::labels::LabelStore;
use crate::task::TaskControl;
use crate::train::{CheckpointChoice, TrainedModel};

#[derive(Args, Debug)]
pub struct SuggestArgs {
    /// Dataset: folder of images, .npy, .npz, IDX file, or sample:channels|droplets|mnist.
    #[arg(long)]
    pub data: String,
    /// The label store (hand labels and pseudo-labels) the suggestions complete.
    #[arg(long)]
    pub labels: PathBuf,
    /// Rank in the latents of this training run (its best model encodes every member);
    /// default: the members' pixels (shrunk, PCA-50).
    #[arg(long, value_name = "RUN_DIR")]
    pub latents: Option<PathBuf>,
    /// How many members to suggest.
    #[arg(long, default_value_t = 50)]
    pub count: usize,
    /// Pseudo-labels at or above this confidence count as neighbours' labels.
    #[arg(long, default_value_t = 0.9)]
    pub threshold: f32,
    /// Neighbours per member for the disagreement signal.
    #[arg(long, default_value_t = 15)]
    pub neighbours: usize,
    /// Below this many hand labels per class, first suggest the most typical member of each
    /// k-means cluster nobody labelled (0: always rank by the three signals).
    #[arg(long, default_value_t = 20)]
    pub cover_below_per_class: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CSV to write: rank, id, score, reason, the three signals, the pseudo-label.
    #[arg(long)]
    pub out: PathBuf,
    /// NaN/Inf values in float data: reject the dataset, or report and load it.
    #[arg(long = "nan", value_enum, default_value_t = NanPolicy::Reject)]
    pub nan_policy: NanPolicy,
}

pub fn run(args: SuggestArgs) -> anyhow::Result<()> {
    let options = OpenOptions {
        nan_policy: args.nan_policy,
        ..OpenOptions::default()
    };
    let ensemble = crate::data::open(&args.data, &options)?;
    let store = LabelStore::open_read_only(&args.labels)?;
    let classes: Vec<String> = store.classes().map(|c| c.name.clone()).collect();
    let index_of = |name: &str| classes.iter().position(|c| c == name);
    let ids: Vec<String> = (0..ensemble.len()).map(|i| ensemble.member_id(i)).collect();
    let hand: Vec<Option<usize>> = ids
        .iter()
        .map(|id| store.manual(id).and_then(|l| index_of(l.class)))
        .collect();
    let pseudo: Vec<Option<(usize, f32)>> = ids
        .iter()
        .map(|id| {
            let label = store.pseudo(id)?;
            Some((index_of(label.class)?, label.confidence))
        })
        .collect();
    let control = TaskControl::new();
    let members: Vec<usize> = (0..ensemble.len()).collect();
    let features = match &args.latents {
        Some(run) => {
            let backend = crate::train::backend::cpu_backend(None);
            let model =
                TrainedModel::load(run, ensemble.shape(), CheckpointChoice::Best, &backend)?;
            let values = model.encode(&ensemble, &members)?;
            Array2::from_shape_vec((members.len(), model.latent_dim()), values)?
        }
        None => PixelFeatures::fit_transform(&ensemble, &members, &control)?.1,
    };
    let input = SuggestInput {
        features: features.view(),
        hand: &hand,
        pseudo: &pseudo,
        threshold: args.threshold,
    };
    let config = SuggestConfig {
        count: args.count,
        neighbours: args.neighbours,
        cover_below_per_class: args.cover_below_per_class,
        seed: args.seed,
    };
    let suggestions = suggest(&input, &config, &control)?;
    let mut writer = csv::Writer::from_path(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    writer.write_record([
        "rank",
        "id",
        "score",
        "reason",
        "uncertainty",
        "disagreement",
        "distance",
        "pseudo_label",
        "pseudo_confidence",
    ])?;
    for (rank, s) in suggestions.iter().enumerate() {
        let (pseudo_label, confidence) = match pseudo[s.member] {
            Some((class, confidence)) => (classes[class].clone(), format!("{confidence:.4}")),
            None => (String::new(), String::new()),
        };
        writer.write_record([
            (rank + 1).to_string(),
            ids[s.member].clone(),
            format!("{:.4}", s.score),
            s.reason.name().to_string(),
            format!("{:.4}", s.uncertainty),
            format!("{:.4}", s.disagreement),
            format!("{:.4}", s.distance),
            pseudo_label,
            confidence,
        ])?;
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "{} suggestions of {} unlabelled members written to {}",
        suggestions.len(),
        hand.iter().filter(|h| h.is_none()).count(),
        args.out.display()
    );
    Ok(())
}
