//! Cancellation and progress for long computations (projection, clustering, sweeps) that run
//! on worker threads: the caller keeps a clone of the [`TaskControl`], the computation polls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One progress report: `done` of `total` units of the named stage.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskProgress {
    pub stage: &'static str,
    pub done: usize,
    pub total: usize,
}

impl TaskProgress {
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f32 / self.total as f32
        }
    }
}

/// The computation was cancelled through its [`TaskControl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

type ProgressSink = Arc<dyn Fn(TaskProgress) + Send + Sync>;

/// Shared between the thread that asks for work and the thread that does it. Cloning is cheap
/// and every clone sees the same cancel flag.
#[derive(Clone, Default)]
pub struct TaskControl {
    cancelled: Arc<AtomicBool>,
    progress: Option<ProgressSink>,
}

impl std::fmt::Debug for TaskControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskControl")
            .field("cancelled", &self.is_cancelled())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl TaskControl {
    /// A control that is never cancelled and reports nowhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Progress reports go to `sink` (called on the working thread: keep it cheap, e.g. a
    /// channel send or an atomic store).
    pub fn with_progress(mut self, sink: impl Fn(TaskProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(sink));
        self
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// The flag [`cancel`](Self::cancel) sets, for a signal handler to set instead.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once [`cancel`](Self::cancel) was called: use with `?` between units
    /// of work.
    pub fn check(&self) -> Result<(), Cancelled> {
        match self.is_cancelled() {
            true => Err(Cancelled),
            false => Ok(()),
        }
    }

    pub fn report(&self, stage: &'static str, done: usize, total: usize) {
        if let Some(sink) = &self.progress {
            sink(TaskProgress { stage, done, total });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn clones_share_the_cancel_flag() {
        let control = TaskControl::new();
        let worker = control.clone();
        assert_eq!(worker.check(), Ok(()));
        control.cancel();
        assert_eq!(worker.check(), Err(Cancelled));
    }

    #[test]
    fn progress_reaches_the_sink() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let control = TaskControl::new().with_progress(move |p| sink.lock().unwrap().push(p));
        control.report("knn", 3, 4);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].fraction(), 0.75);
    }
}
