//! How fast a UMAP layout stops when cancelled, in every stage: the time from
//! `TaskControl::cancel` to `project` returning `Cancelled`, with the cancel sent a set delay
//! after the stage began (so it lands inside the stage, not at its edge), for a cold layout
//! and for a warm update started from the cold layout and its kNN graph.
//!
//! ```text
//! cargo run --release --example umap_cancel -- --latents X.npy [--delay-ms 30] [--repeats 3]
//! ```
//! Prints one row per (layout, stage): the stage's own length when not cancelled and the
//! worst cancel latency over the repeats. The issue's target is 0.2 s at every stage.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sense::analysis::AnalysisError;
use sense::data::matrix::read_npy_matrix;
use sense::projection::warm_start::Anchors;
use sense::projection::{ProjectionConfig, UmapConfig, project};
use sense::task::TaskControl;

sense::process_allocator!();

const STAGES: [&str; 4] = ["knn", "graph", "init", "optimise"];

struct Args {
    latents: std::path::PathBuf,
    delay: Duration,
    repeats: usize,
}

fn parse_args() -> Result<Args> {
    let mut latents = None;
    let (mut delay_ms, mut repeats) = (30u64, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--latents" => latents = Some(value()?.into()),
            "--delay-ms" => delay_ms = value()?.parse()?,
            "--repeats" => repeats = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(Args {
        latents: latents.context("--latents X.npy is required")?,
        delay: Duration::from_millis(delay_ms),
        repeats,
    })
}

/// Stage start times of one uncancelled run, and its layout.
fn stage_lengths(
    data: &ndarray::Array2<f32>,
    config: &ProjectionConfig,
    init: Option<&Anchors>,
) -> Result<(Vec<(&'static str, Duration)>, sense::projection::Layout)> {
    let seen = Arc::new(Mutex::new(Vec::<(&'static str, Instant)>::new()));
    let sink = seen.clone();
    let control = TaskControl::new().with_progress(move |p| {
        let mut seen = sink.lock().expect("stage log");
        if seen.last().map(|s| s.0) != Some(p.stage) {
            seen.push((p.stage, Instant::now()));
        }
    });
    let layout = project(data.view(), config, init, &control)?;
    let end = Instant::now();
    let seen = seen.lock().expect("stage log").clone();
    let lengths = seen
        .iter()
        .enumerate()
        .map(|(i, &(stage, at))| (stage, seen.get(i + 1).map_or(end, |n| n.1) - at))
        .collect();
    Ok((lengths, layout))
}

/// Cancels `delay` after `stage` begins; the time from the cancel to the return.
fn cancel_latency(
    data: &ndarray::Array2<f32>,
    config: &ProjectionConfig,
    init: Option<&Anchors>,
    stage: &'static str,
    delay: Duration,
) -> Result<Duration> {
    let entered = Arc::new(Mutex::new(None::<Instant>));
    let sink = entered.clone();
    let control = TaskControl::new().with_progress(move |p| {
        let mut entered = sink.lock().expect("stage clock");
        if p.stage == stage && entered.is_none() {
            *entered = Some(Instant::now());
        }
    });
    let worker_control = control.clone();
    let (data, config, init) = (data.clone(), config.clone(), init.cloned());
    let worker =
        std::thread::spawn(move || project(data.view(), &config, init.as_ref(), &worker_control));
    let cancelled_at = loop {
        let started = *entered.lock().expect("stage clock");
        if let Some(started) = started
            && started.elapsed() >= delay
        {
            control.cancel();
            break Instant::now();
        }
        if worker.is_finished() {
            bail!("the layout finished before {stage} had run {delay:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let result = worker.join().expect("projection thread");
    let latency = cancelled_at.elapsed();
    match result {
        Err(AnalysisError::Cancelled) => Ok(latency),
        other => bail!(
            "expected a cancelled layout, got {:?}",
            other.map(|l| l.epochs)
        ),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let data = read_npy_matrix(&args.latents)?;
    println!(
        "{} × {}, {} threads, cancel {:?} into each stage, worst of {}",
        data.nrows(),
        data.ncols(),
        rayon::current_num_threads(),
        args.delay,
        args.repeats
    );
    let config = ProjectionConfig::Umap(UmapConfig {
        deterministic: false,
        ..UmapConfig::default()
    });
    let (cold_lengths, cold) = stage_lengths(&data, &config, None)?;
    let mut warm_start = Anchors::from_layout(cold.coords.view())?;
    warm_start.knn_start = cold.knn.as_deref().cloned();
    let (warm_lengths, _) = stage_lengths(&data, &config, Some(&warm_start))?;

    println!("| layout | stage | stage length s | cancel latency s (worst) |");
    println!("|---|---|---|---|");
    for (name, lengths, init) in [
        ("cold", &cold_lengths, None),
        ("warm", &warm_lengths, Some(&warm_start)),
    ] {
        for stage in STAGES {
            let length = lengths
                .iter()
                .find(|s| s.0 == stage)
                .map_or(Duration::ZERO, |s| s.1);
            let latency = if length > args.delay * 2 {
                let mut worst = Duration::ZERO;
                for _ in 0..args.repeats {
                    worst = worst.max(cancel_latency(&data, &config, init, stage, args.delay)?);
                }
                format!("{:.3}", worst.as_secs_f64())
            } else {
                // Shorter than twice the delay: the cancel would land after it.
                "(shorter than the delay: polled at its end)".into()
            };
            println!(
                "| {name} | {stage} | {:.3} | {latency} |",
                length.as_secs_f64()
            );
        }
    }
    Ok(())
}
