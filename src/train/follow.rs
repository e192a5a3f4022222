//! Following a run that another process trains — `sense train` or a Slurm sweep cell writing
//! to a filesystem this machine mounts — by reading its directory as it grows: the epochs in
//! `metrics.jsonl`, the latest latents and reconstructions in `live/`, and `summary.json` at
//! the end, and the trainer's [heartbeat](super::heartbeat): its latest step between epochs,
//! how the run ended, or that the trainer is gone without a word. What it reads arrives as
//! the same [`TrainEvent`]s a trainer in this process sends, so every consumer of a run works
//! on a followed one unchanged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::events::{EventReceiver, EventSender, RunSummary, TrainEvent, event_channel};
use super::heartbeat::{self, HeartbeatWatch, Pulse, RunEnd};
use super::{EpochSummary, StepProgress, live, run_dir};
use crate::error::{DataError, DataResult};

/// How often the directory is read while following.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Maps a member id of the run to the member index of the ensemble the reader serves.
pub type MemberOf = Box<dyn Fn(&str) -> Option<usize> + Send>;

/// What has been read of a run directory so far; [`poll`](Self::poll) reads what is new.
pub struct RunReader {
    run_dir: PathBuf,
    member_of: MemberOf,
    started: bool,
    epochs_seen: usize,
    finished: bool,
    /// The trainer stopped, failed or went silent, and has not beaten since.
    halted: bool,
    /// The trainer's beats say it has made no progress for a long while.
    stalled: bool,
    heartbeat: HeartbeatWatch,
    last_step: Option<StepProgress>,
    latents_stamp: Option<FileStamp>,
    reconstructions_stamp: Option<FileStamp>,
}

/// A file's modification time and length: changed when the trainer replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp(SystemTime, u64);

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp(meta.modified().ok()?, meta.len()))
}

impl RunReader {
    pub fn new(run_dir: PathBuf, member_of: MemberOf) -> Self {
        Self {
            run_dir,
            member_of,
            started: false,
            epochs_seen: 0,
            finished: false,
            halted: false,
            stalled: false,
            heartbeat: HeartbeatWatch::new(),
            last_step: None,
            latents_stamp: None,
            reconstructions_stamp: None,
        }
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The events for what the directory gained since the last poll. A run that has not
    /// written its configuration yet gives none.
    pub fn poll(&mut self) -> DataResult<Vec<TrainEvent>> {
        self.poll_at(Instant::now())
    }

    /// [`poll`](Self::poll) as at `now`, which times the trainer's silence.
    pub fn poll_at(&mut self, now: Instant) -> DataResult<Vec<TrainEvent>> {
        let mut events = Vec::new();
        let config_path = self.run_dir.join(run_dir::CONFIG);
        if !config_path.is_file() {
            return Ok(events);
        }
        let epochs = complete_epochs(&self.run_dir)?;
        if epochs.len() < self.epochs_seen {
            // Truncated: the run was resumed from an earlier checkpoint or started afresh.
            self.epochs_seen = epochs.len();
        }
        let new_epochs = epochs.len() > self.epochs_seen;
        // The heartbeat only adds to what the run's files say: one that cannot be read (from
        // another version of sense, say) leaves the rest of the run followed as before.
        let beat = heartbeat::read(&self.run_dir).unwrap_or(None);
        let pulse = self.heartbeat.observe(beat, now);
        let beating = matches!(&pulse, Pulse::Fresh(beat) if beat.end.is_none());
        let over = self.finished || self.halted;
        if !self.started || (over && (new_epochs || beating)) {
            let planned = super::Trainer::load_config(&self.run_dir)?.epochs;
            events.push(TrainEvent::Started {
                train_members: 0,
                val_members: 0,
                eval_members: 0,
                steps_per_epoch: 0,
                first_epoch: self.epochs_seen,
                epochs: planned.max(epochs.len()),
            });
            self.started = true;
            self.finished = false;
            self.halted = false;
        }
        events.extend(
            epochs[self.epochs_seen..]
                .iter()
                .cloned()
                .map(TrainEvent::Epoch),
        );
        self.epochs_seen = epochs.len();
        if let Pulse::Fresh(beat) = &pulse
            && let Some(step) = beat.step
            && self.last_step != Some(step)
            // A step of an epoch already summarised would move the run back.
            && step.epoch >= self.epochs_seen
        {
            events.push(TrainEvent::Step(step));
            self.last_step = Some(step);
        }

        let recon_stamp = stamp(&live::reconstructions_header(&self.run_dir));
        if recon_stamp.is_some()
            && recon_stamp != self.reconstructions_stamp
            && let Some((epoch, mut images)) = live::read_reconstructions(&self.run_dir)?
        {
            images.retain_mut(|image| match (self.member_of)(&image.id) {
                Some(member) => {
                    image.member = member;
                    true
                }
                None => false,
            });
            events.push(TrainEvent::Reconstructions { epoch, images });
            self.reconstructions_stamp = recon_stamp;
        }
        let latents_stamp = stamp(&live::latents_header(&self.run_dir));
        if latents_stamp.is_some()
            && latents_stamp != self.latents_stamp
            && let Some(latents) = live::read_latents(&self.run_dir)?
        {
            events.push(TrainEvent::Latents(self.remap(latents)));
            self.latents_stamp = latents_stamp;
        }

        let summary_path = self.run_dir.join(run_dir::SUMMARY);
        if !self.finished && summary_path.is_file() {
            let summary: RunSummary = run_dir::read_json(&summary_path)?;
            if summary.epochs >= self.epochs_seen {
                events.push(TrainEvent::Backend {
                    kind: summary.backend_kind,
                    name: summary.backend.clone(),
                    fallback_reason: None,
                });
                events.push(TrainEvent::Finished(summary));
                self.finished = true;
            }
        }
        if let Pulse::Fresh(beat) = &pulse {
            let stall = beat.stall();
            if stall.is_some() != self.stalled {
                self.stalled = stall.is_some();
                events.push(TrainEvent::Stalled(stall));
            }
        }
        if !self.finished
            && !self.halted
            && let Some(end) = halt_event(pulse)
        {
            events.push(end);
            self.halted = true;
        }
        Ok(events)
    }

    /// The run's latents with this ensemble's member indices; rows of members it does not
    /// have are left out.
    fn remap(&self, latents: super::Latents) -> super::Latents {
        let dim = latents.dim;
        let mut members = Vec::with_capacity(latents.members.len());
        let mut ids = Vec::with_capacity(latents.members.len());
        let mut values = Vec::with_capacity(latents.values.len());
        for (row, id) in latents.ids.iter().enumerate() {
            if let Some(member) = (self.member_of)(id) {
                members.push(member);
                ids.push(id.clone());
                values.extend_from_slice(&latents.values[row * dim..(row + 1) * dim]);
            }
        }
        super::Latents {
            epoch: latents.epoch,
            members,
            ids: Arc::new(ids),
            dim,
            values,
        }
    }
}

/// The event for a trainer that stopped or failed (as its last beat says), or that is gone
/// without a word.
fn halt_event(pulse: Pulse) -> Option<TrainEvent> {
    match pulse {
        Pulse::Fresh(beat) => match beat.end? {
            RunEnd::Finished => None,
            RunEnd::Stopped { epoch, global_step } => {
                Some(TrainEvent::Stopped { epoch, global_step })
            }
            RunEnd::Failed { message } => Some(TrainEvent::Error(message)),
        },
        Pulse::Gone(reason) => Some(TrainEvent::Error(reason)),
        Pulse::Unknown | Pulse::Unchanged => None,
    }
}

/// The epochs of `metrics.jsonl` whose lines are complete (the writer may be mid-line).
fn complete_epochs(run_dir: &Path) -> DataResult<Vec<EpochSummary>> {
    let path = run_dir.join(run_dir::METRICS);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DataError::io(&path, e)),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => return Ok(Vec::new()),
    };
    complete
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| DataError::new(&path, format!("line {}: {e}", n + 1)))
        })
        .collect()
}

/// A [`RunReader`] on its own thread, polling every [`POLL_INTERVAL`] until dropped.
pub struct RunFollower {
    events: EventReceiver,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    run_dir: PathBuf,
}

impl RunFollower {
    pub fn spawn(run_dir: PathBuf, member_of: MemberOf) -> std::io::Result<Self> {
        let (sender, events) = event_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut reader = RunReader::new(run_dir.clone(), member_of);
        let thread = std::thread::Builder::new()
            .name("sense-follow-run".into())
            .spawn({
                let stop = stop.clone();
                move || follow(&mut reader, &sender, &stop)
            })?;
        Ok(Self {
            events,
            stop,
            thread: Some(thread),
            run_dir,
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// `wake` runs on the follower's thread after each event (see [`EventReceiver::on_event`]).
    pub fn on_event(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.events.on_event(wake);
    }

    pub fn try_recv(&self) -> Result<TrainEvent, crossbeam_channel::TryRecvError> {
        self.events.try_recv()
    }
}

fn follow(reader: &mut RunReader, sender: &EventSender, stop: &AtomicBool) {
    let mut reported_error = None;
    while !stop.load(Ordering::Acquire) {
        match reader.poll() {
            Ok(events) => {
                reported_error = None;
                for event in events {
                    sender.send(event);
                }
            }
            // A file caught mid-replacement reads fine next time; a lasting error is said
            // once (as a notice: the run itself may be fine).
            Err(e) => {
                let message = e.to_string();
                if reported_error.as_ref() != Some(&message) {
                    sender.send(TrainEvent::Notice(format!(
                        "Following {}: {message}",
                        reader.run_dir().display()
                    )));
                    reported_error = Some(message);
                }
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

impl Drop for RunFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::heartbeat::Heartbeat;
    use crate::train::heartbeat::tests::dead_pid;
    use crate::train::{BackendKind, Latents, Losses, TermWeights, TrainConfig};
    use std::io::Write;

    fn epoch(epoch: usize) -> EpochSummary {
        EpochSummary {
            epoch,
            train: Losses::default(),
            val: None,
            val_psnr_db: None,
            val_ssim: None,
            images_per_sec: 100.0,
            learning_rate: 1e-3,
            weights: TermWeights {
                reconstruction: 1.0,
                kl: 0.0,
                label: 1.0,
                lambda_cluster: 0.2,
                lambda_contrastive: 0.0,
            },
            labelled_members: 0,
            best: false,
            elapsed_secs: 1.0,
        }
    }

    fn append(dir: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(run_dir::METRICS))
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    fn kinds(events: &[TrainEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                TrainEvent::Started { epochs, .. } => format!("started/{epochs}"),
                TrainEvent::Epoch(summary) => format!("epoch {}", summary.epoch),
                TrainEvent::Latents(l) => format!("latents {} {:?}", l.epoch, l.members),
                TrainEvent::Backend { .. } => "backend".into(),
                TrainEvent::Finished(_) => "finished".into(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn summary(epochs: usize) -> RunSummary {
        RunSummary {
            backend: "CPU (burn flex)".into(),
            backend_kind: BackendKind::Cpu,
            epochs,
            steps: 30,
            final_train_loss: 0.5,
            final_val_loss: None,
            val_mse: None,
            baseline_val_mse: None,
            val_psnr: None,
            val_ssim: None,
            images_per_sec: 100.0,
            best_epoch: None,
            best_val_loss: None,
            stopped_early: false,
            train_members: 10,
            val_members: 0,
            latent_dim: 2,
        }
    }

    /// A run directory of `epochs` planned epochs with its first `done` in `metrics.jsonl`.
    fn run_with_epochs(run: &Path, epochs: usize, done: usize) {
        let config = TrainConfig {
            epochs,
            ..TrainConfig::default()
        };
        std::fs::write(run.join(run_dir::CONFIG), config.to_toml()).unwrap();
        for e in 0..done {
            append(run, &(serde_json::to_string(&epoch(e)).unwrap() + "\n"));
        }
    }

    fn beat(pid: u32, host: &str, beat: u64, step: Option<(usize, usize)>) -> Heartbeat {
        Heartbeat {
            pid,
            host: host.into(),
            beat,
            step: step.map(|(epoch, step)| StepProgress {
                epoch,
                step,
                steps_per_epoch: 10,
                global_step: (epoch * 10 + step) as u64,
                losses: Losses::default(),
                learning_rate: 1e-3,
            }),
            idle_secs: 0,
            end: None,
        }
    }

    fn steps_and_ends(events: &[TrainEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                TrainEvent::Started { first_epoch, .. } => format!("started at {first_epoch}"),
                TrainEvent::Epoch(summary) => format!("epoch {}", summary.epoch),
                TrainEvent::Step(p) => {
                    format!("step {}/{} of {}", p.epoch, p.step, p.steps_per_epoch)
                }
                TrainEvent::Stopped { epoch, global_step } => {
                    format!("stopped {epoch} {global_step}")
                }
                TrainEvent::Error(message) => format!("error: {message}"),
                TrainEvent::Finished(_) => "finished".into(),
                TrainEvent::Stalled(Some(why)) => format!("stalled: {why}"),
                TrainEvent::Stalled(None) => "moving".into(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_heartbeat_gives_steps_between_epochs_and_how_the_trainer_ended() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        run_with_epochs(run, 4, 1);
        let mut reader = RunReader::new(run.to_path_buf(), Box::new(|_| None));
        let (me, host, t0) = (std::process::id(), heartbeat::host_name(), Instant::now());
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["started at 0", "epoch 0"]
        );

        heartbeat::write(run, &beat(me, &host, 1, Some((1, 3)))).unwrap();
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["step 1/3 of 10"]
        );
        // The same beat again, and a beat that only says the trainer lives: no news.
        assert!(reader.poll_at(t0).unwrap().is_empty());
        heartbeat::write(run, &beat(me, &host, 2, Some((1, 3)))).unwrap();
        assert!(reader.poll_at(t0).unwrap().is_empty());

        let stopped = Heartbeat {
            end: Some(RunEnd::Stopped {
                epoch: 1,
                global_step: 14,
            }),
            ..beat(me, &host, 3, Some((1, 4)))
        };
        heartbeat::write(run, &stopped).unwrap();
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["step 1/4 of 10", "stopped 1 14"]
        );
        assert!(
            reader
                .poll_at(t0 + 2 * heartbeat::SILENCE_LIMIT)
                .unwrap()
                .is_empty()
        );

        // Resumed (`sense train --resume`): a new trainer beats, and the run goes on.
        heartbeat::write(run, &beat(me, &host, 1, Some((1, 0)))).unwrap();
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["started at 1", "step 1/0 of 10"]
        );
        let failed = Heartbeat {
            end: Some(RunEnd::Failed {
                message: "out of memory".into(),
            }),
            ..beat(me, &host, 2, Some((1, 0)))
        };
        heartbeat::write(run, &failed).unwrap();
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["error: out of memory"]
        );
        assert!(reader.poll_at(t0).unwrap().is_empty());
        // A heartbeat that cannot be read does not stop the run being followed.
        std::fs::write(run.join("live/progress.json"), "{not json").unwrap();
        append(run, &(serde_json::to_string(&epoch(1)).unwrap() + "\n"));
        // (A new epoch after the failure: a new trainer took the run up.)
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["started at 1", "epoch 1"]
        );
    }

    #[test]
    fn a_trainer_that_beats_without_progress_is_reported_stalled_until_it_moves() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        run_with_epochs(run, 4, 1);
        let mut reader = RunReader::new(run.to_path_buf(), Box::new(|_| None));
        let (me, host, t0) = (std::process::id(), heartbeat::host_name(), Instant::now());
        let limit = heartbeat::STALL_LIMIT.as_secs();
        let idle = |n: u64, idle_secs: u64| Heartbeat {
            idle_secs,
            ..beat(me, &host, n, Some((1, 3)))
        };
        heartbeat::write(run, &idle(1, limit - 5)).unwrap();
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["started at 0", "epoch 0", "step 1/3 of 10"]
        );
        heartbeat::write(run, &idle(2, limit + 5)).unwrap();
        let stalled = steps_and_ends(&reader.poll_at(t0).unwrap());
        assert!(
            stalled.len() == 1
                && stalled[0].starts_with("stalled: ")
                && stalled[0].contains("no progress for 10 min"),
            "{stalled:?}"
        );
        // Said once while it lasts, not at every beat.
        heartbeat::write(run, &idle(3, limit + 65)).unwrap();
        assert!(reader.poll_at(t0).unwrap().is_empty());
        // It moves again: said too, and so is a second stall.
        heartbeat::write(run, &idle(4, 0)).unwrap();
        assert_eq!(steps_and_ends(&reader.poll_at(t0).unwrap()), ["moving"]);
        heartbeat::write(run, &idle(5, limit)).unwrap();
        assert_eq!(reader.poll_at(t0).unwrap().len(), 1);
        // Stopped while stalled (the user's Ctrl-C got through): moving no more, and ended.
        let stopped = Heartbeat {
            end: Some(RunEnd::Stopped {
                epoch: 1,
                global_step: 13,
            }),
            ..idle(6, limit + 10)
        };
        heartbeat::write(run, &stopped).unwrap();
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["moving", "stopped 1 13"]
        );
    }

    #[test]
    fn a_trainer_that_dies_without_a_word_is_reported_once() {
        let host = heartbeat::host_name();
        let t0 = Instant::now();

        // On this machine: its pid is gone.
        let dir = tempfile::tempdir().unwrap();
        run_with_epochs(dir.path(), 4, 1);
        let mut reader = RunReader::new(dir.path().to_path_buf(), Box::new(|_| None));
        let dead = dead_pid();
        heartbeat::write(dir.path(), &beat(dead, &host, 7, Some((1, 2)))).unwrap();
        assert_eq!(
            steps_and_ends(&reader.poll_at(t0).unwrap()),
            ["started at 0", "epoch 0", "step 1/2 of 10"]
        );
        assert!(reader.poll_at(t0).unwrap().is_empty(), "between two beats");
        let two_beats_later = t0 + 2 * heartbeat::BEAT_INTERVAL;
        let gone = steps_and_ends(&reader.poll_at(two_beats_later).unwrap());
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(
            gone[0].starts_with("error: the trainer (pid ")
                && gone[0].contains(&format!("pid {dead} "))
                && gone[0].contains("ended without finishing"),
            "{gone:?}"
        );
        assert!(
            reader.poll_at(two_beats_later).unwrap().is_empty(),
            "said once"
        );

        // On another machine: no new beat for the silence limit.
        let dir = tempfile::tempdir().unwrap();
        run_with_epochs(dir.path(), 4, 1);
        let mut reader = RunReader::new(dir.path().to_path_buf(), Box::new(|_| None));
        heartbeat::write(dir.path(), &beat(dead, "gpu-node-17", 7, None)).unwrap();
        assert_eq!(reader.poll_at(t0).unwrap().len(), 2);
        let almost = t0 + heartbeat::SILENCE_LIMIT - Duration::from_secs(1);
        assert!(
            reader.poll_at(almost).unwrap().is_empty(),
            "a pid elsewhere means nothing here"
        );
        let gone = steps_and_ends(&reader.poll_at(t0 + heartbeat::SILENCE_LIMIT).unwrap());
        assert!(
            gone.len() == 1 && gone[0].contains("no heartbeat") && gone[0].contains("gpu-node-17"),
            "{gone:?}"
        );

        // A finished run whose trainer has exited is finished, not gone.
        let dir = tempfile::tempdir().unwrap();
        run_with_epochs(dir.path(), 2, 2);
        run_dir::write_json(&dir.path().join(run_dir::SUMMARY), &summary(2)).unwrap();
        heartbeat::write(dir.path(), &beat(dead, &host, 7, Some((1, 9)))).unwrap();
        let mut reader = RunReader::new(dir.path().to_path_buf(), Box::new(|_| None));
        let events = steps_and_ends(&reader.poll_at(t0).unwrap());
        assert_eq!(
            events.last().map(String::as_str),
            Some("finished"),
            "{events:?}"
        );
        assert!(
            reader
                .poll_at(t0 + 2 * heartbeat::SILENCE_LIMIT)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_reader_turns_a_growing_run_directory_into_train_events() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        // The ensemble it serves has the run's members in another order, and not "gone".
        let mut reader = RunReader::new(
            run.to_path_buf(),
            Box::new(|id: &str| match id {
                "a" => Some(1),
                "b" => Some(0),
                _ => None,
            }),
        );
        assert!(
            reader.poll().unwrap().is_empty(),
            "nothing before config.toml"
        );

        let config = TrainConfig {
            epochs: 3,
            ..TrainConfig::default()
        };
        std::fs::write(run.join(run_dir::CONFIG), config.to_toml()).unwrap();
        let line = |e: usize| serde_json::to_string(&epoch(e)).unwrap() + "\n";
        append(run, &line(0));
        // The writer is half-way through the next line.
        let second = line(1);
        append(run, &second[..10]);
        assert_eq!(kinds(&reader.poll().unwrap()), ["started/3", "epoch 0"]);
        assert!(reader.poll().unwrap().is_empty());

        append(run, &second[10..]);
        live::write_latents(
            run,
            &Latents {
                epoch: 1,
                members: vec![0, 1, 2],
                ids: Arc::new(vec!["a".into(), "b".into(), "gone".into()]),
                dim: 2,
                values: vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
            },
        )
        .unwrap();
        let events = reader.poll().unwrap();
        assert_eq!(kinds(&events), ["epoch 1", "latents 1 [1, 0]"]);
        let TrainEvent::Latents(latents) = &events[1] else {
            unreachable!()
        };
        assert_eq!(latents.values, [1.0, 1.0, 2.0, 2.0]);

        append(run, &line(2));
        let summary = summary(3);
        run_dir::write_json(&run.join(run_dir::SUMMARY), &summary).unwrap();
        assert_eq!(
            kinds(&reader.poll().unwrap()),
            ["epoch 2", "backend", "finished"]
        );
        assert!(reader.poll().unwrap().is_empty());
    }

    #[test]
    fn a_follower_thread_delivers_the_events_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let config = TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        };
        std::fs::write(dir.path().join(run_dir::CONFIG), config.to_toml()).unwrap();
        append(
            dir.path(),
            &(serde_json::to_string(&epoch(0)).unwrap() + "\n"),
        );
        let follower = RunFollower::spawn(dir.path().to_path_buf(), Box::new(|_| None)).unwrap();
        let start = std::time::Instant::now();
        let mut seen = Vec::new();
        while seen.len() < 2 && start.elapsed() < Duration::from_secs(10) {
            match follower.try_recv() {
                Ok(event) => seen.push(event),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        assert_eq!(kinds(&seen), ["started/1", "epoch 0"]);
        drop(follower);
    }
}
