//! The latest epoch's latents and reconstructions, kept in the run directory as the trainer
//! makes them, so another process — the app following a run that trains on a cluster — sees
//! what the trainer's own events show.
//!
//! ```text
//! RUN_DIR/live/latents.npy            f32 rows × dim
//! RUN_DIR/live/latents.json           {epoch, dim, members, ids}
//! RUN_DIR/live/reconstructions.npy    f32 rows × 2·C·H·W: original, then reconstruction
//! RUN_DIR/live/reconstructions.json   {epoch, shape, members, ids}
//! RUN_DIR/live/progress.json          the trainer's heartbeat (see `heartbeat`)
//! ```
//!
//! Each file is replaced atomically, the `.npy` before its `.json`. A reader takes the
//! `.json`, the `.npy`, then the `.json` again, and keeps what it read only when both
//! `.json` reads name the same epoch and the row counts agree.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::events::{Latents, Reconstruction};
use super::heartbeat::{self, BEAT_INTERVAL, Heartbeat, ProgressClock, RunEnd, StepProgress};
use super::run_dir::read_json;
use crate::atomic_file::write_atomic;
use crate::data::matrix::{read_npy_matrix, write_npy_matrix};
use crate::error::{DataError, DataResult};

pub const LIVE: &str = "live";
const LATENTS: &str = "latents";
const RECONSTRUCTIONS: &str = "reconstructions";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LatentsHeader {
    epoch: usize,
    dim: usize,
    members: Vec<usize>,
    ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ReconstructionsHeader {
    epoch: usize,
    /// `[channels, height, width]`.
    shape: [usize; 3],
    members: Vec<usize>,
    ids: Vec<String>,
}

fn paths(run_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = run_dir.join(LIVE);
    (
        dir.join(format!("{name}.npy")),
        dir.join(format!("{name}.json")),
    )
}

/// Compact JSON (the id lists are long), replaced atomically.
fn write_json(path: &Path, value: &impl Serialize) -> DataResult<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| DataError::new(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Removes the live files of an earlier run (a fresh run in the same directory).
pub fn clear(run_dir: &Path) -> DataResult<()> {
    let dir = run_dir.join(LIVE);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::io(&dir, e)),
        _ => Ok(()),
    }
}

fn create_dir(run_dir: &Path) -> DataResult<()> {
    let dir = run_dir.join(LIVE);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))
}

pub fn write_latents(run_dir: &Path, latents: &Latents) -> DataResult<()> {
    create_dir(run_dir)?;
    let (npy, json) = paths(run_dir, LATENTS);
    let values = ArrayView2::from_shape((latents.members.len(), latents.dim), &latents.values)
        .map_err(|e| DataError::new(&npy, e.to_string()))?;
    write_npy_matrix(&npy, values)?;
    write_json(
        &json,
        &LatentsHeader {
            epoch: latents.epoch,
            dim: latents.dim,
            members: latents.members.clone(),
            ids: latents.ids.to_vec(),
        },
    )
}

pub fn write_reconstructions(
    run_dir: &Path,
    epoch: usize,
    images: &[Reconstruction],
) -> DataResult<()> {
    let Some(first) = images.first() else {
        return Ok(());
    };
    create_dir(run_dir)?;
    let (npy, json) = paths(run_dir, RECONSTRUCTIONS);
    let pixels = first.original.len();
    let mut values = Vec::with_capacity(images.len() * 2 * pixels);
    for image in images {
        values.extend_from_slice(&image.original);
        values.extend_from_slice(&image.reconstruction);
    }
    let matrix = ArrayView2::from_shape((images.len(), 2 * pixels), &values)
        .map_err(|e| DataError::new(&npy, e.to_string()))?;
    write_npy_matrix(&npy, matrix)?;
    write_json(
        &json,
        &ReconstructionsHeader {
            epoch,
            shape: first.shape,
            members: images.iter().map(|i| i.member).collect(),
            ids: images.iter().map(|i| i.id.clone()).collect(),
        },
    )
}

/// Writes the live files on a thread of its own, so the trainer does not wait for the disk
/// (0.27 s an epoch for 50,000 × 256 latents on our 2-core machine). Only the newest of each
/// kind waiting is written: a slow disk skips epochs, it never queues them up. The same
/// thread beats the run's [heartbeat](super::heartbeat) every [`BEAT_INTERVAL`], with the
/// latest step it was told of, and writes the last beat, saying how the run ended, when the
/// trainer is done.
pub struct LiveWriter {
    updates: Option<crossbeam_channel::Sender<LiveUpdate>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum LiveUpdate {
    Latents(Latents),
    Reconstructions(usize, Vec<Reconstruction>),
    Step(StepProgress),
    End(RunEnd),
}

/// What the writer thread has been told and not yet written.
#[derive(Default)]
struct Waiting {
    latents: Option<Latents>,
    reconstructions: Option<(usize, Vec<Reconstruction>)>,
}

impl LiveWriter {
    /// `on_error` is told of a failed write (the run goes on; the next epoch writes again).
    /// The beats say how long ago `progress` was last marked.
    pub fn spawn(
        run_dir: PathBuf,
        progress: Arc<ProgressClock>,
        on_error: impl Fn(String) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (updates, receiver) = crossbeam_channel::unbounded::<LiveUpdate>();
        let thread = std::thread::Builder::new()
            .name("sense-live-files".into())
            .spawn({
                let progress = progress.clone();
                move || write_until_done(&run_dir, &receiver, &progress, &on_error)
            })?;
        Ok(Self {
            updates: Some(updates),
            thread: Some(thread),
        })
    }

    pub fn latents(&self, latents: Latents) {
        self.send(LiveUpdate::Latents(latents));
    }

    pub fn reconstructions(&self, epoch: usize, images: Vec<Reconstruction>) {
        self.send(LiveUpdate::Reconstructions(epoch, images));
    }

    /// The latest step whose losses were read back (goes out with the next beat).
    pub fn step(&self, progress: StepProgress) {
        self.send(LiveUpdate::Step(progress));
    }

    fn send(&self, update: LiveUpdate) {
        if let Some(updates) = &self.updates {
            // The writer thread only ends when this sender is dropped.
            let _ = updates.send(update);
        }
    }

    /// Writes the last beat with `end` and waits until everything sent is on disk (before the
    /// run reports its end, so a follower that sees `summary.json` also finds the last
    /// epoch's files).
    pub fn finish(&mut self, end: RunEnd) {
        self.send(LiveUpdate::End(end));
        self.close();
    }

    fn close(&mut self) {
        self.updates = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: the live files as they come, a beat every [`BEAT_INTERVAL`], the last
/// beat when the trainer hangs up.
fn write_until_done(
    run_dir: &Path,
    receiver: &crossbeam_channel::Receiver<LiveUpdate>,
    progress: &ProgressClock,
    on_error: &dyn Fn(String),
) {
    let mut heartbeat = Heartbeat {
        pid: std::process::id(),
        host: heartbeat::host_name(),
        beat: 0,
        step: None,
        idle_secs: 0,
        end: None,
    };
    let mut next_beat = Instant::now() + BEAT_INTERVAL;
    // A disk that refuses the beat is said once, not every few seconds.
    let mut beat_failed = false;
    loop {
        let first = match receiver.recv_deadline(next_beat) {
            Ok(update) => Some(update),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        let mut waiting = Waiting::default();
        for update in first.into_iter().chain(receiver.try_iter()) {
            match update {
                LiveUpdate::Latents(l) => waiting.latents = Some(l),
                LiveUpdate::Reconstructions(e, r) => waiting.reconstructions = Some((e, r)),
                LiveUpdate::Step(progress) => heartbeat.step = Some(progress),
                LiveUpdate::End(end) => heartbeat.end = Some(end),
            }
        }
        let written = waiting
            .reconstructions
            .map_or(Ok(()), |(epoch, images)| {
                write_reconstructions(run_dir, epoch, &images)
            })
            .and(
                waiting
                    .latents
                    .map_or(Ok(()), |l| write_latents(run_dir, &l)),
            );
        if let Err(e) = written {
            on_error(format!("the live files were not written: {e}"));
        }
        if Instant::now() >= next_beat {
            heartbeat.beat += 1;
            heartbeat.idle_secs = progress.idle().as_secs();
            match (heartbeat::write(run_dir, &heartbeat), beat_failed) {
                (Ok(()), _) => beat_failed = false,
                (Err(e), false) => {
                    on_error(format!("the run's heartbeat was not written: {e}"));
                    beat_failed = true;
                }
                (Err(_), true) => {}
            }
            next_beat = Instant::now() + BEAT_INTERVAL;
        }
    }
    // The last beat, when the trainer said how the run ended.
    if heartbeat.end.is_some() {
        heartbeat.beat += 1;
        heartbeat.idle_secs = progress.idle().as_secs();
        if let Err(e) = heartbeat::write(run_dir, &heartbeat) {
            on_error(format!("the run's last heartbeat was not written: {e}"));
        }
    }
}

impl Drop for LiveWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The header of the live latents: it changes whenever the trainer writes new ones.
pub fn latents_header(run_dir: &Path) -> PathBuf {
    paths(run_dir, LATENTS).1
}

/// The header of the live reconstructions.
pub fn reconstructions_header(run_dir: &Path) -> PathBuf {
    paths(run_dir, RECONSTRUCTIONS).1
}

/// The live latents; `Ok(None)` when there are none yet or the trainer replaced them while
/// they were read (read again later).
pub fn read_latents(run_dir: &Path) -> DataResult<Option<Latents>> {
    let (npy, json) = paths(run_dir, LATENTS);
    let Some((header, values)) = read_consistent::<LatentsHeader>(&npy, &json, |h| h.epoch)? else {
        return Ok(None);
    };
    if values.dim() != (header.members.len(), header.dim)
        || header.ids.len() != header.members.len()
    {
        return Err(DataError::new(
            &npy,
            format!(
                "{} × {} latents for {} members of dimension {}",
                values.nrows(),
                values.ncols(),
                header.members.len(),
                header.dim
            ),
        ));
    }
    Ok(Some(Latents {
        epoch: header.epoch,
        members: header.members,
        ids: Arc::new(header.ids),
        dim: header.dim,
        values: values.into_raw_vec_and_offset().0,
    }))
}

pub fn read_reconstructions(run_dir: &Path) -> DataResult<Option<(usize, Vec<Reconstruction>)>> {
    let (npy, json) = paths(run_dir, RECONSTRUCTIONS);
    let Some((header, values)) =
        read_consistent::<ReconstructionsHeader>(&npy, &json, |h| h.epoch)?
    else {
        return Ok(None);
    };
    let pixels = header.shape.iter().product::<usize>();
    if values.dim() != (header.members.len(), 2 * pixels)
        || header.ids.len() != header.members.len()
    {
        return Err(DataError::new(
            &npy,
            format!(
                "{} × {} values for {} reconstructions of {:?}",
                values.nrows(),
                values.ncols(),
                header.members.len(),
                header.shape
            ),
        ));
    }
    let images = values
        .rows()
        .into_iter()
        .zip(header.members.iter().zip(&header.ids))
        .map(|(row, (&member, id))| {
            let row = row.to_vec();
            Reconstruction {
                member,
                id: id.clone(),
                shape: header.shape,
                original: row[..pixels].to_vec(),
                reconstruction: row[pixels..].to_vec(),
            }
        })
        .collect();
    Ok(Some((header.epoch, images)))
}

/// `json`, `npy`, `json` again: the pair when both header reads agree.
fn read_consistent<H: for<'de> Deserialize<'de>>(
    npy: &Path,
    json: &Path,
    epoch: impl Fn(&H) -> usize,
) -> DataResult<Option<(H, ndarray::Array2<f32>)>> {
    if !json.is_file() {
        return Ok(None);
    }
    let before: H = read_json(json)?;
    let values = read_npy_matrix(npy)?;
    let after: H = read_json(json)?;
    Ok((epoch(&before) == epoch(&after)).then_some((after, values)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_latents_and_reconstructions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_latents(dir.path()).unwrap(), None);
        let latents = Latents {
            epoch: 3,
            members: vec![4, 9],
            ids: Arc::new(vec!["a".into(), "b".into()]),
            dim: 3,
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        write_latents(dir.path(), &latents).unwrap();
        assert_eq!(read_latents(dir.path()).unwrap(), Some(latents));

        let images = vec![Reconstruction {
            member: 9,
            id: "b".into(),
            shape: [1, 2, 2],
            original: vec![0.0, 1.0, 2.0, 3.0],
            reconstruction: vec![0.5, 1.5, 2.5, 3.5],
        }];
        write_reconstructions(dir.path(), 3, &images).unwrap();
        assert_eq!(read_reconstructions(dir.path()).unwrap(), Some((3, images)));
    }

    #[test]
    fn the_writer_thread_leaves_the_newest_files_once_finished() {
        let dir = tempfile::tempdir().unwrap();
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut writer = LiveWriter::spawn(dir.path().to_path_buf(), Arc::default(), {
            let errors = errors.clone();
            move |e| errors.lock().unwrap().push(e)
        })
        .unwrap();
        for epoch in 0..5 {
            writer.latents(Latents {
                epoch,
                members: vec![0],
                ids: Arc::new(vec!["a".into()]),
                dim: 1,
                values: vec![epoch as f32],
            });
        }
        let step = StepProgress {
            epoch: 4,
            step: 9,
            steps_per_epoch: 10,
            global_step: 50,
            losses: crate::train::Losses::default(),
            learning_rate: 1e-3,
        };
        writer.step(step);
        writer.finish(RunEnd::Finished);
        let last = read_latents(dir.path()).unwrap().unwrap();
        assert_eq!((last.epoch, last.values.as_slice()), (4, [4.0].as_slice()));
        assert!(errors.lock().unwrap().is_empty());
        // The last beat: this process, the last step, and the end.
        let beat = heartbeat::read(dir.path()).unwrap().unwrap();
        assert_eq!(
            (beat.pid, beat.step, beat.end),
            (std::process::id(), Some(step), Some(RunEnd::Finished))
        );

        // A write that fails is reported, and the writer goes on.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let mut writer = LiveWriter::spawn(file, Arc::default(), {
            let errors = errors.clone();
            move |e| errors.lock().unwrap().push(e)
        })
        .unwrap();
        writer.latents(last.clone());
        writer.latents(last);
        writer.finish(RunEnd::Failed {
            message: "disk full".into(),
        });
        let errors = errors.lock().unwrap();
        assert!(
            !errors.is_empty() && errors[0].contains("not-a-dir"),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("last heartbeat")),
            "{errors:?}"
        );
    }

    #[test]
    fn each_beat_says_how_long_the_trainer_went_without_progress() {
        let quiet = std::time::Duration::from_millis(1_100);
        let beat_after = |mark_before_finish: bool| {
            let dir = tempfile::tempdir().unwrap();
            let progress = Arc::new(ProgressClock::default());
            let mut writer = LiveWriter::spawn(dir.path().to_path_buf(), progress.clone(), |e| {
                panic!("{e}")
            })
            .unwrap();
            progress.mark();
            std::thread::sleep(quiet);
            if mark_before_finish {
                progress.mark();
            }
            writer.finish(RunEnd::Finished);
            heartbeat::read(dir.path()).unwrap().unwrap().idle_secs
        };
        assert_eq!(beat_after(true), 0, "it just moved");
        assert!(beat_after(false) >= 1, "quiet since its last mark");
    }

    #[test]
    fn a_header_that_disagrees_with_its_values_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let latents = Latents {
            epoch: 0,
            members: vec![0, 1],
            ids: Arc::new(vec!["a".into(), "b".into()]),
            dim: 2,
            values: vec![0.0; 4],
        };
        write_latents(dir.path(), &latents).unwrap();
        let (_, json) = paths(dir.path(), LATENTS);
        std::fs::write(
            &json,
            r#"{"epoch":0,"dim":2,"members":[0,1,2],"ids":["a","b","c"]}"#,
        )
        .unwrap();
        let error = read_latents(dir.path()).unwrap_err().to_string();
        assert!(error.contains("latents.npy"), "{error}");
    }
}
