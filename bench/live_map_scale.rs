//! The live map of a very large ensemble (issue 15, part 4): what one map update costs when
//! the trainer reports a seeded live subsample (≤ 20K members, every hand-labelled one kept)
//! instead of every member, and the peak resident memory of the process doing it.
//!
//! On `--data` (e.g. the 135,000 × 160 × 224 file of `stream_memory`), with every 100th member
//! counted as hand-labelled, it times:
//! 1. the subsample (`live_subsample`, as the trainer's evaluation set);
//! 2. encoding it with the paper AE (64 filters, latent 256) on burn-flex — the trainer's
//!    per-epoch latent pass for the map (weights at initialisation: the cost is the same);
//! 3. the first map (UMAP from scratch) and a warm-started update from it with the next
//!    epoch's latents (the encoder's weights nudged), as the app's projection worker runs it.
//!
//! `cargo run --release --example live_map_scale -- --data FILE [--sample 20000]`;
//! `bench/live_map_scale.sh` writes the 135K file first and deletes it after.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::{Tensor, TensorData};
use clap::Parser;

#[path = "common.rs"]
mod common;
use common::report_memory;

use ndarray::Array2;
use sense::data::OpenOptions;
use sense::nn::{ModelConfig, ModelKind};
use sense::projection::{
    PreviousLayout, ProjectionConfig, UmapConfig, live_subsample, project_with_frames,
};
use sense::task::TaskControl;
use sense::train::backend::{BackendChoice, select_backend};

sense::process_allocator!();

const BUDGET_BYTES: u64 = 2_000_000_000;
const BATCH: usize = 64;

#[derive(Parser)]
#[command(about = "Cost of one live-map update on a very large ensemble")]
struct Args {
    /// Dataset spec (a .npy file, a folder, a sample).
    #[arg(long)]
    data: String,
    /// Members whose latents reach the map each epoch.
    #[arg(long, default_value_t = 20_000)]
    sample: usize,
    /// Every this-many-th member counts as hand-labelled (always in the sample).
    #[arg(long, default_value_t = 100)]
    labelled_every: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ensemble = sense::data::open(&args.data, &OpenOptions::default())?;
    let n = ensemble.len();
    let shape = ensemble.shape();
    println!("ensemble    {n} members of {shape}");
    report_memory("opened");

    let started = Instant::now();
    let hand: Vec<usize> = (0..n).step_by(args.labelled_every.max(1)).collect();
    let members = live_subsample(n, args.sample, &hand, 17)?;
    println!(
        "subsample   {} members ({} hand-labelled) in {:.3} s",
        members.len(),
        hand.len(),
        started.elapsed().as_secs_f64()
    );

    let backend = select_backend(BackendChoice::Cpu);
    let device = backend.device.clone();
    device.seed(7);
    let model = ModelConfig::new(ModelKind::Ae)
        .with_filters(64)
        .with_latent_dim(256)
        .init(shape, &device)?;
    let encode = |nudge: f32| -> Result<(Array2<f32>, f64)> {
        let started = Instant::now();
        let mut values = Vec::with_capacity(members.len() * 256);
        let mut member = vec![0.0f32; shape.len()];
        for chunk in members.chunks(BATCH) {
            let mut batch = Vec::with_capacity(chunk.len() * shape.len());
            for &m in chunk {
                ensemble.source.read_f32(m, &mut member)?;
                // Roughly z-scored u8 data, as the trainer's normalisation leaves it.
                batch.extend(member.iter().map(|v| (v - 127.5) / 73.9 + nudge));
            }
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    batch,
                    [chunk.len(), shape.channels, shape.height, shape.width],
                ),
                &device,
            );
            values.extend(model.encode(x).try_into_vec_as::<f32>().unwrap_or_default());
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok((
            Array2::from_shape_vec((members.len(), 256), values)?,
            seconds,
        ))
    };
    let (first, encode_s) = encode(0.0)?;
    println!(
        "encode      {} members in {encode_s:.1} s ({:.0} img/s, burn-flex, {} threads)",
        members.len(),
        members.len() as f64 / encode_s,
        rayon::current_num_threads()
    );
    report_memory("encoded");

    let config = ProjectionConfig::Umap(UmapConfig {
        deterministic: false,
        ..UmapConfig::default()
    });
    let control = TaskControl::new();
    let started = Instant::now();
    let cold = project_with_frames(first.view(), &config, None, &control, None)?;
    println!(
        "first map   UMAP from scratch in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let ids: Vec<String> = members.iter().map(|&m| ensemble.member_id(m)).collect();
    let previous = PreviousLayout {
        ids: ids.clone(),
        coords: cold.coords.clone(),
        knn: cold.knn.clone(),
    };
    // The next epoch: slightly different latents of the same members.
    let (next, _) = encode(0.05)?;
    let started = Instant::now();
    let anchors = previous.anchors(&ids)?;
    let warm = project_with_frames(next.view(), &config, Some(&anchors), &control, None)?;
    let update_s = started.elapsed().as_secs_f64();
    println!(
        "map update  warm-started UMAP in {update_s:.1} s (warm start used: {})",
        warm.warm_started
    );
    println!(
        "per epoch   {:.1} s for the map's latents + {update_s:.1} s for the layout",
        encode_s
    );
    let _ = Arc::new(warm);
    let peak = report_memory("end");
    match peak {
        Some(peak) if peak <= BUDGET_BYTES => println!("within the 2 GB budget"),
        Some(_) => println!("OVER the 2 GB budget"),
        None => println!("peak memory unknown (no /proc/self/status)"),
    }
    Ok(())
}
