//! The trainer's heartbeat, `RUN_DIR/live/progress.json`: rewritten every [`BEAT_INTERVAL`]
//! while a trainer runs, with who it is (pid, host) and where it is (epoch, step, the latest
//! losses), and once more when the run ends, saying how. A process following the run (the
//! app watching a cluster job) can then tell a trainer that died — killed by the scheduler
//! at its time limit, or by the kernel for memory — from one that is only between epochs:
//! on the same host by its pid, elsewhere by a beat counter that stops changing. A counter
//! and not a timestamp, because the two hosts' clocks need not agree.
//!
//! A trainer can also hang alive — a GPU that stopped answering, a filesystem that blocks a
//! read — and beat on. So each beat also says how long the trainer has gone without making
//! progress (a step, a batch of evaluation, a pass of its setup), timed on the trainer's own
//! clock; past [`STALL_LIMIT`] a follower says it may be hung.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use super::events::StepProgress;
use super::live::LIVE;
use super::run_dir::read_json;
use crate::atomic_file::replace_unflushed;
use crate::error::{DataError, DataResult};

const PROGRESS: &str = "progress.json";

/// How often a running trainer rewrites its heartbeat.
pub const BEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How long a follower on another host waits for a new beat before it calls the trainer
/// gone. Generous: an NFS client may show a replaced file up to a minute late (its attribute
/// cache), and a trainer stalls for seconds while it writes a checkpoint.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(180);

/// How long a beating trainer may go without progress before a follower says it may be hung.
/// Its slowest legitimate pauses are one step or evaluation batch (seconds, a few minutes of
/// GPU autotuning at the first step) and a checkpoint write; ten minutes clears them all.
pub const STALL_LIMIT: Duration = Duration::from_secs(600);

/// When the trainer last made progress: marked by the trainer thread at every step, batch of
/// evaluation and pass of its setup (one atomic store), read by its heartbeat and by the
/// process that runs it (the app watching its own trainer).
#[derive(Debug)]
pub struct ProgressClock {
    origin: Instant,
    /// Milliseconds from `origin` to the last mark.
    last_ms: AtomicU64,
}

impl Default for ProgressClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl ProgressClock {
    pub fn mark(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last mark (since the clock was made, before the first).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Why a trainer that still runs may be hung, once it has gone [`STALL_LIMIT`] without
/// progress; `who` names it ("the trainer (pid 7 on node3)").
pub fn stall_reason(who: &str, idle: Duration, last_step: Option<&StepProgress>) -> Option<String> {
    if idle < STALL_LIMIT {
        return None;
    }
    let at = match last_step {
        Some(step) => format!(" (its last step: {})", where_in_run(step)),
        None => " (no step yet)".into(),
    };
    Some(format!(
        "{who} has made no progress for {} min{at}, though it still runs: a GPU or a \
         filesystem may have stopped answering",
        idle.as_secs() / 60
    ))
}

/// "epoch 3, step 40 of 188", one-based as the app shows it.
fn where_in_run(step: &StepProgress) -> String {
    format!(
        "epoch {}, step {} of {}",
        step.epoch + 1,
        step.step + 1,
        step.steps_per_epoch
    )
}

/// One beat of a trainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub pid: u32,
    pub host: String,
    /// Counts the beats of this process: a follower sees the trainer alive while it changes.
    pub beat: u64,
    /// The last step whose losses were read back, once there is one.
    pub step: Option<StepProgress>,
    /// Seconds since the trainer last made progress, on its own clock (0 in the beats of a
    /// `sense` from before this field).
    #[serde(default)]
    pub idle_secs: u64,
    /// How the run ended; `None` while it trains.
    pub end: Option<RunEnd>,
}

impl Heartbeat {
    /// Why the trainer that wrote this beat may be hung: alive (it beats) but without
    /// progress for [`STALL_LIMIT`] or more. `None` while it moves, and once the run ended.
    pub fn stall(&self) -> Option<String> {
        if self.end.is_some() {
            return None;
        }
        stall_reason(
            &format!("the trainer (pid {} on {})", self.pid, self.host),
            Duration::from_secs(self.idle_secs),
            self.step.as_ref(),
        )
    }
}

/// How a run ended, as its trainer saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum RunEnd {
    /// `summary.json` has the figures.
    Finished,
    /// Asked to stop; a resume continues from the last checkpoint.
    Stopped {
        epoch: usize,
        global_step: u64,
    },
    Failed {
        message: String,
    },
}

fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(LIVE).join(PROGRESS)
}

pub fn write(run_dir: &Path, heartbeat: &Heartbeat) -> DataResult<()> {
    let dir = run_dir.join(LIVE);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let path = path(run_dir);
    let bytes = serde_json::to_vec(heartbeat).map_err(|e| DataError::new(&path, e.to_string()))?;
    // Rewritten every few seconds and worthless after a crash: not flushed to disk.
    replace_unflushed(&path, &bytes)
}

/// The latest beat, or `None` when the run has none (not started, or trained by a `sense`
/// from before heartbeats).
pub fn read(run_dir: &Path) -> DataResult<Option<Heartbeat>> {
    let path = path(run_dir);
    match path.is_file() {
        true => read_json(&path).map(Some),
        false => Ok(None),
    }
}

/// The latest beat and how long ago its file was written (by this machine's clock against
/// the file server's, so only as good as their agreement; `None` when it cannot be told).
pub fn read_with_age(run_dir: &Path) -> DataResult<Option<(Heartbeat, Option<Duration>)>> {
    let Some(heartbeat) = read(run_dir)? else {
        return Ok(None);
    };
    let age = std::fs::metadata(path(run_dir))
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|written| SystemTime::now().duration_since(written).ok());
    Ok(Some((heartbeat, age)))
}

/// A running trainer's beat in a few words, for a status line beside its `epochs_done`: the
/// step it is at (left out when the beat is older than the last epoch summary), and whether it
/// may be hung or its beats stopped. Empty when there is nothing to add.
pub fn describe(heartbeat: &Heartbeat, age: Option<Duration>, epochs_done: usize) -> String {
    let mut words = Vec::new();
    match &heartbeat.step {
        Some(step) if step.epoch >= epochs_done => words.push(where_in_run(step)),
        None if epochs_done == 0 => words.push("setting up".into()),
        _ => {}
    }
    if let Some(age) = age.filter(|age| *age >= SILENCE_LIMIT) {
        words.push(format!(
            "no heartbeat for {} min: the trainer may be dead, or its filesystem not visible \
             from here",
            age.as_secs() / 60
        ));
    } else if heartbeat.stall().is_some() {
        words.push(format!(
            "no progress for {} min: it may be hung",
            heartbeat.idle_secs / 60
        ));
    }
    words.join("; ")
}

/// This machine's host name, as a heartbeat records it.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into a buffer we own.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// Whether no process `pid` exists on this host (one of another user still counts as alive).
pub fn process_is_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let status = unsafe { libc::kill(pid, 0) };
    status != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The follower's reading of a run's heartbeats over time.
#[derive(Debug)]
pub struct HeartbeatWatch {
    local_host: String,
    /// The last beat seen (pid and counter) and when this process first saw it.
    last: Option<(u32, u64, Instant)>,
}

/// What the latest look at the heartbeat says.
#[derive(Debug, Clone, PartialEq)]
pub enum Pulse {
    /// No heartbeat file: nothing can be said.
    Unknown,
    /// A beat not seen before.
    Fresh(Heartbeat),
    /// The same beat as before; the trainer may simply be busy.
    Unchanged,
    /// The trainer ended without saying so: the reason, for the user.
    Gone(String),
}

impl HeartbeatWatch {
    pub fn new() -> Self {
        Self {
            local_host: host_name(),
            last: None,
        }
    }

    /// Reads `heartbeat` (the file's contents now) at time `now`.
    pub fn observe(&mut self, heartbeat: Option<Heartbeat>, now: Instant) -> Pulse {
        let Some(heartbeat) = heartbeat else {
            self.last = None;
            return Pulse::Unknown;
        };
        let key = (heartbeat.pid, heartbeat.beat);
        let seen_at = match self.last {
            Some((pid, beat, at)) if (pid, beat) == key => at,
            _ => {
                self.last = Some((key.0, key.1, now));
                return Pulse::Fresh(heartbeat);
            }
        };
        if heartbeat.end.is_some() {
            return Pulse::Unchanged;
        }
        let silent = now.saturating_duration_since(seen_at);
        // Two beats missed first: a trainer in a container may share the host name but not
        // the pid namespace, and it would look gone between its beats.
        if silent >= 2 * BEAT_INTERVAL
            && !self.local_host.is_empty()
            && heartbeat.host == self.local_host
            && process_is_gone(heartbeat.pid)
        {
            return Pulse::Gone(format!(
                "the trainer (pid {} on this machine) ended without finishing: it was killed, \
                 or ran out of memory",
                heartbeat.pid
            ));
        }
        match silent >= SILENCE_LIMIT {
            true => Pulse::Gone(format!(
                "no heartbeat from the trainer (pid {} on {}) for {} s: the job may have been \
                 killed (a time or memory limit), or its filesystem is not visible from here",
                heartbeat.pid,
                heartbeat.host,
                silent.as_secs()
            )),
            false => Pulse::Unchanged,
        }
    }
}

impl Default for HeartbeatWatch {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::train::Losses;

    fn beat(pid: u32, host: &str, beat: u64) -> Heartbeat {
        Heartbeat {
            pid,
            host: host.into(),
            beat,
            step: None,
            idle_secs: 0,
            end: None,
        }
    }

    /// The pid of a process that has exited and been reaped.
    pub(crate) fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_heartbeat_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let written = Heartbeat {
            step: Some(StepProgress {
                epoch: 2,
                step: 40,
                steps_per_epoch: 90,
                global_step: 220,
                losses: Losses {
                    total: 0.5,
                    reconstruction: 0.4,
                    cluster: Some(0.3),
                    ..Losses::default()
                },
                learning_rate: 5e-4,
            }),
            end: Some(RunEnd::Failed {
                message: "out of memory".into(),
            }),
            ..beat(7, "node17", 3)
        };
        write(dir.path(), &written).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(written));
    }

    #[test]
    fn a_beat_without_progress_for_the_limit_says_the_trainer_may_be_hung() {
        let limit = STALL_LIMIT.as_secs();
        let moving = Heartbeat {
            idle_secs: limit - 1,
            ..beat(41, "node3", 200)
        };
        assert_eq!(moving.stall(), None);
        let stuck = Heartbeat {
            idle_secs: limit + 125,
            step: Some(StepProgress {
                epoch: 2,
                step: 39,
                steps_per_epoch: 188,
                global_step: 415,
                losses: Losses::default(),
                learning_rate: 5e-4,
            }),
            ..moving.clone()
        };
        let why = stuck.stall().expect("idle past the limit");
        assert!(
            why.contains("pid 41 on node3") && why.contains("for 12 min"),
            "{why}"
        );
        assert!(why.contains("epoch 3, step 40 of 188"), "{why}");
        // A run that ended is not hung, however long ago its last step was.
        let ended = Heartbeat {
            end: Some(RunEnd::Finished),
            ..stuck
        };
        assert_eq!(ended.stall(), None);
        // A beat of a `sense` from before the field reads as moving.
        let old: Heartbeat =
            serde_json::from_str(r#"{"pid":1,"host":"h","beat":3,"step":null,"end":null}"#)
                .unwrap();
        assert_eq!((old.idle_secs, old.stall()), (0, None));
    }

    #[test]
    fn a_running_trainer_is_described_by_where_it_is_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_with_age(dir.path()).unwrap(), None);
        let mut beat = beat(5, "node1", 1);
        write(dir.path(), &beat).unwrap();
        let (read_back, age) = read_with_age(dir.path()).unwrap().unwrap();
        assert_eq!(read_back, beat);
        assert!(age.is_some_and(|age| age < SILENCE_LIMIT), "{age:?}");
        assert_eq!(describe(&beat, age, 0), "setting up");

        beat.step = Some(StepProgress {
            epoch: 0,
            step: 9,
            steps_per_epoch: 20,
            global_step: 9,
            losses: Losses::default(),
            learning_rate: 1e-3,
        });
        assert_eq!(describe(&beat, age, 0), "epoch 1, step 10 of 20");
        // A beat older than the last epoch's summary: the epochs say more.
        assert_eq!(describe(&beat, age, 1), "");
        beat.idle_secs = STALL_LIMIT.as_secs() + 60;
        assert_eq!(
            describe(&beat, age, 0),
            "epoch 1, step 10 of 20; no progress for 11 min: it may be hung"
        );
        assert_eq!(
            describe(&beat, age, 1),
            "no progress for 11 min: it may be hung"
        );
        let old = Some(SILENCE_LIMIT + Duration::from_secs(120));
        assert!(
            describe(&beat, old, 0).ends_with("no heartbeat for 5 min: the trainer may be dead, or its filesystem not visible from here"),
            "{}",
            describe(&beat, old, 0)
        );
    }

    #[test]
    fn processes_are_told_alive_or_gone_by_pid() {
        assert!(!process_is_gone(std::process::id()));
        assert!(process_is_gone(dead_pid()));
        assert!(process_is_gone(u32::MAX), "no such pid");
    }

    #[test]
    fn a_trainer_on_this_host_is_gone_when_its_process_is() {
        let host = host_name();
        let t0 = Instant::now();
        let mut watch = HeartbeatWatch::new();
        let alive = beat(std::process::id(), &host, 1);
        assert_eq!(
            watch.observe(Some(alive.clone()), t0),
            Pulse::Fresh(alive.clone())
        );
        assert_eq!(
            watch.observe(Some(alive), t0 + 2 * BEAT_INTERVAL),
            Pulse::Unchanged
        );

        let dead = beat(dead_pid(), &host, 9);
        assert!(matches!(
            watch.observe(Some(dead.clone()), t0),
            Pulse::Fresh(_)
        ));
        let one_beat_missed = t0 + BEAT_INTERVAL;
        assert_eq!(
            watch.observe(Some(dead.clone()), one_beat_missed),
            Pulse::Unchanged
        );
        let Pulse::Gone(reason) = watch.observe(Some(dead.clone()), t0 + 2 * BEAT_INTERVAL) else {
            panic!("a dead pid on this host is a gone trainer");
        };
        assert!(reason.contains(&dead.pid.to_string()), "{reason}");

        // A run that said how it ended is not gone, whatever its process does after.
        let ended = Heartbeat {
            end: Some(RunEnd::Finished),
            ..beat(dead.pid, &host, 10)
        };
        assert!(matches!(
            watch.observe(Some(ended.clone()), t0),
            Pulse::Fresh(_)
        ));
        assert_eq!(watch.observe(Some(ended), t0), Pulse::Unchanged);
    }

    #[test]
    fn a_trainer_elsewhere_is_gone_after_a_silence_and_back_with_a_new_beat() {
        let t0 = Instant::now();
        let mut watch = HeartbeatWatch::new();
        // A pid that is dead here means nothing for a process on another host.
        let first = beat(dead_pid(), "a-cluster-node-that-is-not-this-one", 1);
        assert!(matches!(
            watch.observe(Some(first.clone()), t0),
            Pulse::Fresh(_)
        ));
        let almost = t0 + SILENCE_LIMIT - Duration::from_secs(1);
        assert_eq!(watch.observe(Some(first.clone()), almost), Pulse::Unchanged);
        let Pulse::Gone(reason) = watch.observe(Some(first.clone()), t0 + SILENCE_LIMIT) else {
            panic!("silent for the limit");
        };
        assert!(
            reason.contains("180 s") && reason.contains("a-cluster-node"),
            "{reason}"
        );

        let next = beat(first.pid, &first.host, 2);
        let later = t0 + 2 * SILENCE_LIMIT;
        assert_eq!(
            watch.observe(Some(next.clone()), later),
            Pulse::Fresh(next.clone())
        );
        assert_eq!(watch.observe(Some(next), later), Pulse::Unchanged);
        assert_eq!(watch.observe(None, later), Pulse::Unknown);
    }
}
