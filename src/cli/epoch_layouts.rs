//! `sense train --layouts`: the 2-D map of every epoch's evaluation latents, written into
//! the run's `layouts/` (what the app writes while it trains), so `sense report RUN
//! --animation` can show the map evolving. Each map is warm-started from the previous one,
//! on its own thread, so training does not wait for UMAP.

use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use crossbeam_channel::Sender;
use ndarray::Array2;

use crate::projection::{KnnGraph, PreviousLayout, ProjectionConfig, live_subsample, project};
use crate::task::TaskControl;
use crate::train::Latents;
use crate::train::run_dir::{EpochLayout, write_epoch_layout};

/// Each epoch's map shows at most this many members (a seeded subsample, the same every
/// epoch), as the app's live map does.
pub const MAX_LAYOUT_MEMBERS: usize = 10_000;

pub struct EpochLayoutWriter {
    latents: Option<Sender<Latents>>,
    thread: Option<JoinHandle<anyhow::Result<usize>>>,
}

impl EpochLayoutWriter {
    pub fn spawn(run_dir: std::path::PathBuf, seed: u64) -> anyhow::Result<Self> {
        let (sender, receiver) = crossbeam_channel::unbounded::<Latents>();
        let thread = std::thread::Builder::new()
            .name("sense-epoch-layouts".into())
            .spawn(move || {
                let mut previous: Option<PreviousLayout> = None;
                let mut written = 0;
                for latents in receiver {
                    let (layout, knn) = lay_out(&latents, previous.as_ref(), seed)?;
                    write_epoch_layout(&run_dir, &layout)?;
                    previous = Some(PreviousLayout {
                        coords: Array2::from_shape_fn((layout.coords.len(), 2), |(i, j)| {
                            layout.coords[i][j]
                        }),
                        ids: layout.ids,
                        knn,
                    });
                    written += 1;
                }
                Ok(written)
            })
            .context("cannot start the layout thread")?;
        Ok(Self {
            latents: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues an epoch's latents (never blocks).
    pub fn push(&self, latents: Latents) {
        if let Some(sender) = &self.latents {
            // The thread only stops early on an error, which `finish` reports.
            let _ = sender.send(latents);
        }
    }

    /// Waits for the queued layouts; returns how many were written.
    pub fn finish(mut self) -> anyhow::Result<usize> {
        self.latents = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the layout thread panicked"),
            None => Ok(0),
        }
    }
}

/// UMAP of (a seeded subsample of) the epoch's latents, warm-started from `previous`; with
/// its kNN graph for the next epoch's search to start from.
fn lay_out(
    latents: &Latents,
    previous: Option<&PreviousLayout>,
    seed: u64,
) -> anyhow::Result<(EpochLayout, Option<Arc<KnnGraph>>)> {
    let n = latents.members.len();
    let rows = live_subsample(n, MAX_LAYOUT_MEMBERS, &[], seed)?;
    let dim = latents.dim;
    let mut values = Vec::with_capacity(rows.len() * dim);
    for &r in &rows {
        values.extend_from_slice(&latents.values[r * dim..(r + 1) * dim]);
    }
    let data = Array2::from_shape_vec((rows.len(), dim), values)?;
    let ids: Vec<String> = rows.iter().map(|&r| latents.ids[r].clone()).collect();
    let anchors = previous.map(|p| p.anchors(&ids)).transpose()?;
    let layout = project(
        data.view(),
        &ProjectionConfig::default(),
        anchors.as_ref(),
        &TaskControl::new(),
    )?;
    let epoch_layout = EpochLayout {
        epoch: latents.epoch,
        coords: layout
            .coords
            .rows()
            .into_iter()
            .map(|r| [r[0], r[1]])
            .collect(),
        ids,
    };
    Ok((epoch_layout, layout.knn))
}
