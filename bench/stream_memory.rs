//! Streams one training epoch of a large synthetic ensemble and checks that the resident
//! memory stays under 2 GB.
//!
//! Writes a deterministic `count × height × width` u8 `.npy` file (in chunks, never whole in
//! memory), opens it with `sense::data::open`, fits z-score statistics on the training split,
//! then pulls every batch of one shuffled, augmented epoch through the `BatchLoader`.
//!
//! Run with `bench/stream_memory.sh` (defaults: 135,000 × 160 × 224, 4.8 GB on disk).

use clap::Parser;

#[path = "common.rs"]
mod common;
use common::{gigabytes, report_memory};

use sense::data::{
    AugmentConfig, Augmentation, BatchLoader, ByteOrder, DType, MemberSource, Normalization,
    NormalizationConfig, OpenOptions, RawArray, Shape, Split, SplitFractions,
};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

sense::process_allocator!();

/// Resident-memory budget the ensemble must stream within.
const BUDGET_BYTES: u64 = 2_000_000_000;

#[derive(Parser)]
#[command(about = "Stream a large synthetic ensemble through the batch loader; check peak memory")]
struct Args {
    #[arg(long, default_value_t = 135_000)]
    count: usize,
    #[arg(long, default_value_t = 160)]
    height: usize,
    #[arg(long, default_value_t = 224)]
    width: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Folder for the generated file [default: $CARGO_TARGET_DIR, else /var/tmp].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the generated file instead of deleting it at the end.
    #[arg(long)]
    keep: bool,
    /// Reuse an existing file of the right size instead of writing it again.
    #[arg(long)]
    reuse: bool,
    /// Read the data with `RawArray` directly, bypassing the NPY reader.
    #[arg(long)]
    raw: bool,
}

/// Deletes the generated file when the bench ends, however it ends.
struct Cleanup {
    path: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            println!("kept        {}", self.path.display());
        } else if std::fs::remove_file(&self.path).is_ok() {
            println!("deleted     {}", self.path.display());
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.count > 0 && args.height > 0 && args.width > 0,
        "empty ensemble"
    );
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
    });
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "sense-stream-memory-{}x{}x{}.npy",
        args.count, args.height, args.width
    ));
    let _cleanup = Cleanup {
        path: path.clone(),
        keep: args.keep,
    };

    let started = Instant::now();
    let data_offset = npy_header(args.count, args.height, args.width).len() as u64;
    let member_bytes = args.height * args.width;
    let expected_bytes = data_offset + (args.count * member_bytes) as u64;
    let reused = args.reuse && std::fs::metadata(&path).is_ok_and(|m| m.len() == expected_bytes);
    if !reused {
        write_npy(&path, args.count, args.height, args.width)?;
    }
    let file_bytes = std::fs::metadata(&path)?.len();
    println!(
        "file        {} ({}, {:.1} s{})",
        path.display(),
        gigabytes(file_bytes),
        started.elapsed().as_secs_f64(),
        if reused { ", reused" } else { "" }
    );

    let source: Arc<dyn MemberSource> = if args.raw {
        Arc::new(RawArray::from_file(
            &path,
            File::open(&path)?,
            data_offset,
            DType::U8,
            ByteOrder::Little,
            args.count,
            Shape::new(1, args.height, args.width),
        )?)
    } else {
        sense::data::open(&path.to_string_lossy(), &OpenOptions::default())?.source
    };
    println!(
        "members     {} of {} {}",
        source.len(),
        source.shape(),
        source.dtype()
    );

    let split = Split::new(source.len(), SplitFractions::default(), None, 0)?;
    let started = Instant::now();
    let normalization = Normalization::fit(
        source.as_ref(),
        &split.train,
        NormalizationConfig::default(),
    )?;
    let fit_secs = started.elapsed().as_secs_f64();
    let normalization = Arc::new(normalization);
    let stats = normalization.channels[0];
    println!(
        "fit         {} train members in {fit_secs:.1} s ({:.0} images/s): mean {:.3}, std {:.3}",
        split.train.len(),
        split.train.len() as f64 / fit_secs,
        stats.mean,
        stats.std
    );
    report_memory("after fit");

    let augmentation = Augmentation::new(
        AugmentConfig {
            flips: true,
            ..Default::default()
        },
        source.shape(),
        &source.origin(),
    )?;
    let started = Instant::now();
    let loader = BatchLoader::builder(source.clone(), split.train.clone(), args.batch_size)
        .shuffle(0)
        .normalize(normalization.clone())
        .augment(augmentation)
        .prefetch(4)
        .start()?;
    let batch_count = loader.batch_count();
    let (batches, images, checksum) = stream(loader)?;
    let epoch_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        batches == batch_count,
        "{batches} of {batch_count} batches arrived"
    );
    println!(
        "epoch       {batches} batches, {images} images in {epoch_secs:.1} s \
         ({:.0} images/s, checksum {checksum:.3})",
        images as f64 / epoch_secs
    );

    // The validation pass reads the remaining members, so every member has streamed once.
    let started = Instant::now();
    let loader = BatchLoader::builder(source.clone(), split.val.clone(), args.batch_size)
        .normalize(normalization.clone())
        .prefetch(4)
        .start()?;
    let (val_batches, val_images, _) = stream(loader)?;
    let val_secs = started.elapsed().as_secs_f64();
    println!(
        "validation  {val_batches} batches, {val_images} images in {val_secs:.1} s ({:.0} images/s); \
         {} of {} members streamed",
        val_images as f64 / val_secs,
        images + val_images,
        source.len()
    );
    let peak = report_memory("after epoch");

    let pass = peak.is_some_and(|p| p <= BUDGET_BYTES);
    println!(
        "{}        peak resident {} vs budget {}",
        if pass { "PASS" } else { "FAIL" },
        peak.map_or("unknown".into(), gigabytes),
        gigabytes(BUDGET_BYTES)
    );
    drop(_cleanup);
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}

/// Pulls every batch out of `loader`; returns (batches, images, checksum).
fn stream(mut loader: BatchLoader) -> anyhow::Result<(usize, usize, f64)> {
    let (mut batches, mut images, mut checksum) = (0usize, 0usize, 0.0f64);
    while let Some(batch) = loader.next() {
        let batch = batch?;
        images += batch.len();
        batches += 1;
        // Touch the data so the stream cannot be optimised away.
        checksum += batch
            .data
            .iter()
            .step_by(997)
            .map(|&v| f64::from(v))
            .sum::<f64>();
        loader.recycle(batch);
    }
    Ok((batches, images, checksum))
}

/// NPY v1.0 header for a C-ordered u8 array of shape (count, height, width), padded so the
/// data starts on a 64-byte boundary.
fn npy_header(count: usize, height: usize, width: usize) -> Vec<u8> {
    let mut dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({count}, {height}, {width}), }}"
    );
    let unpadded = 10 + dict.len() + 1; // magic + version + length, dict, newline
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    header.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// Writes deterministic members in chunks of about 32 MB.
fn write_npy(path: &Path, count: usize, height: usize, width: usize) -> anyhow::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&npy_header(count, height, width))?;
    let member_bytes = height * width;
    let members_per_chunk = (32 << 20) / member_bytes.max(1) + 1;
    let mut chunk = Vec::with_capacity(members_per_chunk * member_bytes);
    for first in (0..count).step_by(members_per_chunk) {
        chunk.clear();
        for member in first..(first + members_per_chunk).min(count) {
            for y in 0..height {
                chunk.extend((0..width).map(|x| pixel(member, y, x)));
            }
        }
        out.write_all(&chunk)?;
    }
    out.into_inner()?.sync_all()?;
    Ok(())
}

/// A smooth pattern that drifts with the member index.
fn pixel(member: usize, y: usize, x: usize) -> u8 {
    ((x * 3 + y * 5 + member * 7) ^ (member >> 4)) as u8
}
