//! One-shot work off the UI thread (opening data, exports, reconstructions on demand,
//! clustering): a thread, a cancel flag, progress, and a result the UI polls for.

use std::sync::{Arc, Mutex};

use crossbeam_channel::Receiver;

use crate::task::{TaskControl, TaskProgress};

/// A running one-shot job whose result is `T`.
pub struct Job<T> {
    pub name: String,
    control: TaskControl,
    progress: Arc<Mutex<Option<TaskProgress>>>,
    result: Receiver<Result<T, String>>,
}

impl<T: Send + 'static> Job<T> {
    /// Runs `work` on a new thread. A panic inside becomes an error result, not a crash.
    pub fn spawn(
        name: impl Into<String>,
        work: impl FnOnce(&TaskControl) -> Result<T, String> + Send + 'static,
    ) -> Self {
        let name = name.into();
        let progress = Arc::new(Mutex::new(None));
        let sink = progress.clone();
        let control = TaskControl::new().with_progress(move |p| {
            if let Ok(mut slot) = sink.lock() {
                *slot = Some(p);
            }
        });
        let (tx, result) = crossbeam_channel::bounded(1);
        let worker_control = control.clone();
        let thread_name = format!("sense-job-{name}");
        let spawned = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    work(&worker_control)
                }))
                .unwrap_or_else(|panic| {
                    Err(format!(
                        "internal error: {}",
                        crate::train::backend::panic_message(&*panic)
                    ))
                });
                let _ = tx.send(outcome);
            });
        if let Err(e) = spawned {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = tx.send(Err(format!("cannot start a thread: {e}")));
            return Self::with(name, control, progress, rx);
        }
        Self::with(name, control, progress, result)
    }

    fn with(
        name: String,
        control: TaskControl,
        progress: Arc<Mutex<Option<TaskProgress>>>,
        result: Receiver<Result<T, String>>,
    ) -> Self {
        Self {
            name,
            control,
            progress,
            result,
        }
    }

    /// The result, once, when the work is done.
    pub fn poll(&self) -> Option<Result<T, String>> {
        self.result.try_recv().ok()
    }

    pub fn cancel(&self) {
        self.control.cancel();
    }

    pub fn progress(&self) -> Option<TaskProgress> {
        self.progress.lock().ok().and_then(|p| p.clone())
    }
}

/// Polls an optional job: takes its result out (and the job with it) when it is done.
pub fn take_finished<T: Send + 'static>(slot: &mut Option<Job<T>>) -> Option<Result<T, String>> {
    let result = slot.as_ref()?.poll()?;
    *slot = None;
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wait<T: Send + 'static>(job: &mut Option<Job<T>>) -> Result<T, String> {
        for _ in 0..500 {
            if let Some(result) = take_finished(job) {
                return result;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("job did not finish");
    }

    #[test]
    fn results_errors_and_panics_come_back() {
        let mut ok = Some(Job::spawn("ok", |_| Ok(41 + 1)));
        assert_eq!(wait(&mut ok), Ok(42));
        assert!(ok.is_none());
        let mut failed: Option<Job<()>> = Some(Job::spawn("err", |_| Err("bad file".into())));
        assert_eq!(wait(&mut failed), Err("bad file".to_string()));
        let mut panicked: Option<Job<()>> = Some(Job::spawn("panic", |_| panic!("boom")));
        assert!(wait(&mut panicked).unwrap_err().contains("boom"));
    }

    #[test]
    fn cancelling_reaches_the_work() {
        let job = Job::spawn("loop", |control: &TaskControl| {
            for i in 0..1000 {
                control.report("loop", i, 1000);
                if control.is_cancelled() {
                    return Err("cancelled".to_string());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        });
        std::thread::sleep(Duration::from_millis(30));
        assert!(job.progress().is_some());
        job.cancel();
        let mut slot = Some(job);
        assert_eq!(wait(&mut slot), Err("cancelled".to_string()));
    }
}
