//! The app's one worker kit. A [`Worker`] is a named thread that takes commands, sends
//! events, can cancel the command in progress, reports its progress, turns a panic into a
//! [`Report::Panicked`] instead of a dead thread, and wakes the UI ([`Waker`]) whenever it
//! has news — the UI never polls on a timer. A [`Job`] is a worker that runs one closure
//! and reports its result. The projection, the label keeper and every one-shot job run on
//! it; the trainer and the pseudo-labeller are library threads that wake the UI through the
//! same [`Waker`] (`on_event`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::error::{AppError, AppResult};
use crate::task::{TaskControl, TaskProgress};

/// Progress alone wakes the UI at most this often (UMAP reports thousands of times).
const PROGRESS_WAKE_EVERY: Duration = Duration::from_millis(100);

/// Tells the UI that a worker has news: egui's `request_repaint` in the app, a counter in
/// tests.
#[derive(Clone)]
pub struct Waker(Arc<dyn Fn() + Send + Sync>);

impl Waker {
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(wake))
    }

    /// Repaints `ctx` (which runs the app's logic step, then its views).
    pub fn for_context(ctx: &egui::Context) -> Self {
        let ctx = ctx.clone();
        Self::new(move || ctx.request_repaint())
    }

    /// Wakes nobody (tests drive the app's step themselves).
    #[cfg(test)]
    pub fn none() -> Self {
        Self::new(|| {})
    }

    pub fn wake(&self) {
        (self.0)();
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// What a worker sends the UI.
#[derive(Debug)]
pub enum Report<E> {
    Event(E),
    /// The handler panicked on a command; the worker goes on with the next one.
    Panicked(String),
}

/// What a worker does with commands that pile up while it is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Handles each, in order (label edits).
    Every,
    /// Skips all but the newest (map layouts: only the latest epoch matters).
    Newest,
}

/// The worker thread's side: sends events (each wakes the UI) and carries the command's
/// cancel flag and progress sink.
pub struct WorkerContext<E> {
    events: Sender<Report<E>>,
    waker: Waker,
    control: TaskControl,
}

impl<E> WorkerContext<E> {
    pub fn send(&self, event: E) {
        // A gone receiver means the UI dropped the worker; the work is moot.
        let _ = self.events.send(Report::Event(event));
        self.waker.wake();
    }

    /// Cancellation and progress of the command in progress.
    pub fn control(&self) -> &TaskControl {
        &self.control
    }
}

/// The UI's end of a worker thread. Dropping it cancels the command in progress and lets the
/// thread end on its own (the UI never waits for it).
pub struct Worker<C, E> {
    commands: Option<Sender<C>>,
    events: Receiver<Report<E>>,
    /// Commands sent and not yet handled (the one in progress included).
    pending: Arc<AtomicUsize>,
    current: Arc<Mutex<TaskControl>>,
    progress: Arc<Mutex<Option<TaskProgress>>>,
}

impl<C: Send + 'static, E: Send + 'static> Worker<C, E> {
    /// Starts the thread `sense-<name>`; `handle` runs on it once per command.
    pub fn spawn(
        name: &str,
        queue: Queue,
        waker: Waker,
        mut handle: impl FnMut(C, &WorkerContext<E>) + Send + 'static,
    ) -> AppResult<Self> {
        let (commands, commands_rx) = crossbeam_channel::unbounded::<C>();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let pending = Arc::new(AtomicUsize::new(0));
        let current = Arc::new(Mutex::new(TaskControl::new()));
        let progress = Arc::new(Mutex::new(None));
        let (thread_pending, thread_current, thread_progress) =
            (pending.clone(), current.clone(), progress.clone());
        std::thread::Builder::new()
            .name(format!("sense-{name}"))
            .spawn(move || {
                while let Ok(mut command) = commands_rx.recv() {
                    if queue == Queue::Newest {
                        while let Ok(newer) = commands_rx.try_recv() {
                            command = newer;
                            thread_pending.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    let control = progress_control(thread_progress.clone(), waker.clone());
                    *lock(&thread_current) = control.clone();
                    let context = WorkerContext {
                        events: events_tx.clone(),
                        waker: waker.clone(),
                        control,
                    };
                    let outcome = catch_unwind(AssertUnwindSafe(|| handle(command, &context)));
                    *lock(&thread_progress) = None;
                    if let Err(panic) = outcome {
                        let message = crate::train::backend::panic_message(&*panic);
                        let _ = events_tx.send(Report::Panicked(message));
                    }
                    // Idle is news too: "busy" ends now.
                    thread_pending.fetch_sub(1, Ordering::AcqRel);
                    waker.wake();
                }
            })
            .map_err(|source| AppError::Thread {
                name: name.to_string(),
                source,
            })?;
        Ok(Self {
            commands: Some(commands),
            events,
            pending,
            current,
            progress,
        })
    }

    pub fn send(&self, command: C) {
        if let Some(commands) = &self.commands {
            self.pending.fetch_add(1, Ordering::AcqRel);
            if commands.send(command).is_err() {
                // The thread is gone (it only ends when `commands` closes): nothing pends.
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Lets the thread end once the commands sent so far are handled.
    pub fn close(&mut self) {
        self.commands = None;
    }
}

impl<C, E> Worker<C, E> {
    pub fn try_recv(&self) -> Option<Report<E>> {
        self.events.try_recv().ok()
    }

    /// Cancels the command in progress (the handler sees it through its control).
    pub fn cancel(&self) {
        lock(&self.current).cancel();
    }

    /// Stage and fraction of the command in progress, if it reports any.
    pub fn progress(&self) -> Option<TaskProgress> {
        lock(&self.progress).clone()
    }

    /// Whether a command is being handled or waits.
    pub fn is_busy(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0
    }
}

impl<C, E> Drop for Worker<C, E> {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A control whose progress lands in `slot` and wakes the UI, at most every
/// [`PROGRESS_WAKE_EVERY`].
fn progress_control(slot: Arc<Mutex<Option<TaskProgress>>>, waker: Waker) -> TaskControl {
    let started = Instant::now();
    let last_wake_ms = AtomicU64::new(0);
    TaskControl::new().with_progress(move |progress| {
        *lock(&slot) = Some(progress);
        let now_ms = started.elapsed().as_millis() as u64;
        let last = last_wake_ms.load(Ordering::Relaxed);
        if now_ms >= last + PROGRESS_WAKE_EVERY.as_millis() as u64
            && last_wake_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            waker.wake();
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every guarded value here is replaced whole: a poisoned lock still holds a valid one.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One-shot work off the UI thread (opening data, exports, reconstructions on demand,
/// clustering) on a worker of its own: its result, once.
pub struct Job<T> {
    worker: Worker<(), AppResult<T>>,
}

impl<T: Send + 'static> Job<T> {
    /// Runs `work` on the thread `sense-<name>`. A panic inside becomes an error result.
    pub fn spawn(
        name: &str,
        waker: Waker,
        work: impl FnOnce(&TaskControl) -> AppResult<T> + Send + 'static,
    ) -> AppResult<Self> {
        let mut work = Some(work);
        let mut worker = Worker::spawn(name, Queue::Every, waker, move |(), context| {
            if let Some(work) = work.take() {
                context.send(work(context.control()));
            }
        })?;
        worker.send(());
        worker.close();
        Ok(Self { worker })
    }

    /// The result, once, when the work is done.
    pub fn poll(&self) -> Option<AppResult<T>> {
        match self.worker.try_recv()? {
            Report::Event(result) => Some(result),
            Report::Panicked(message) => Some(Err(AppError::Panicked(message))),
        }
    }

    pub fn cancel(&self) {
        self.worker.cancel();
    }

    pub fn progress(&self) -> Option<TaskProgress> {
        self.worker.progress()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waker that counts, and a way to wait until it was called.
    fn counting_waker() -> (Waker, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let waker = Waker::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        (waker, count)
    }

    fn wait_for<T>(mut poll: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = poll() {
                return value;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn events_arrive_and_each_wakes_the_ui() {
        let (waker, wakes) = counting_waker();
        let worker = Worker::spawn("double", Queue::Every, waker, |n: u32, context| {
            context.send(n * 2);
        })
        .unwrap();
        worker.send(20);
        worker.send(21);
        let first = wait_for(|| worker.try_recv());
        let second = wait_for(|| worker.try_recv());
        assert!(matches!(first, Report::Event(40)), "{first:?}");
        assert!(matches!(second, Report::Event(42)), "{second:?}");
        wait_for(|| (!worker.is_busy()).then_some(()));
        // One wake per event and one per command finished.
        assert!(wakes.load(Ordering::SeqCst) >= 4);
    }

    #[test]
    fn a_panic_becomes_a_report_and_the_worker_goes_on() {
        let worker = Worker::spawn("fragile", Queue::Every, Waker::none(), |n: u32, context| {
            assert!(n != 0, "zero is not allowed");
            context.send(n);
        })
        .unwrap();
        worker.send(0);
        worker.send(7);
        match wait_for(|| worker.try_recv()) {
            Report::Panicked(message) => assert!(message.contains("zero is not allowed")),
            other => panic!("expected a panic report, got {other:?}"),
        }
        assert!(matches!(wait_for(|| worker.try_recv()), Report::Event(7)));
    }

    #[test]
    fn cancel_reaches_the_command_in_progress_and_busy_ends() {
        let (started_tx, started_rx) = crossbeam_channel::bounded(1);
        let worker = Worker::spawn("loop", Queue::Every, Waker::none(), move |(), context| {
            let _ = started_tx.send(());
            for i in 0..10_000 {
                context.control().report("loop", i, 10_000);
                if context.control().is_cancelled() {
                    context.send(Err(i));
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            context.send(Ok(()));
        })
        .unwrap();
        worker.send(());
        assert!(worker.is_busy());
        started_rx.recv().unwrap();
        wait_for(|| worker.progress());
        worker.cancel();
        match wait_for(|| worker.try_recv()) {
            Report::Event(Err(at)) => assert!(at < 10_000),
            other => panic!("expected a cancelled run, got {other:?}"),
        }
        wait_for(|| (!worker.is_busy()).then_some(()));
        assert!(worker.progress().is_none(), "progress clears when idle");
    }

    #[test]
    fn newest_queue_skips_what_piled_up() {
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(1);
        let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
        let worker = Worker::spawn(
            "newest",
            Queue::Newest,
            Waker::none(),
            move |n: u32, ctx| {
                if n == 0 {
                    // Hold the first command until the others are queued.
                    let _ = started_tx.send(());
                    let _ = gate_rx.recv();
                }
                ctx.send(n);
            },
        )
        .unwrap();
        worker.send(0);
        started_rx.recv().unwrap();
        for n in 1..=5 {
            worker.send(n);
        }
        gate_tx.send(()).unwrap();
        assert!(matches!(wait_for(|| worker.try_recv()), Report::Event(0)));
        assert!(matches!(wait_for(|| worker.try_recv()), Report::Event(5)));
        wait_for(|| (!worker.is_busy()).then_some(()));
        assert!(worker.try_recv().is_none());
    }

    #[test]
    fn jobs_return_results_errors_and_panics_and_wake() {
        let (waker, wakes) = counting_waker();
        let ok = Job::spawn("ok", waker, |_| Ok(41 + 1)).unwrap();
        assert_eq!(wait_for(|| ok.poll()).unwrap(), 42);
        assert!(wakes.load(Ordering::SeqCst) >= 1);
        let failed: Job<()> = Job::spawn("err", Waker::none(), |_| {
            Err(crate::error::DataError::new("a.npy", "bad file").into())
        })
        .unwrap();
        let message = wait_for(|| failed.poll()).unwrap_err().to_string();
        assert_eq!(message, "a.npy: bad file");
        let panicked: Job<()> = Job::spawn("panic", Waker::none(), |_| panic!("boom")).unwrap();
        match wait_for(|| panicked.poll()) {
            Err(AppError::Panicked(message)) => assert!(message.contains("boom")),
            other => panic!("expected a panic error, got {other:?}"),
        }
    }

    #[test]
    fn progress_wakes_are_throttled() {
        let (waker, wakes) = counting_waker();
        let job = Job::spawn("chatty", waker, |control| {
            for i in 0..10_000 {
                control.report("chatty", i, 10_000);
            }
            Ok(())
        })
        .unwrap();
        wait_for(|| job.poll()).unwrap();
        // 10,000 reports in far less than a second: a handful of wakes, not thousands.
        assert!(wakes.load(Ordering::SeqCst) < 50, "{wakes:?}");
    }
}
