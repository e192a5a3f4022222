//! Every one-shot job of the app in one table: what runs, its progress, cancel, and the
//! results as they finish. "Busy" is one question to it.

use crate::app::error::AppResult;
use crate::app::session::Loaded;
use crate::app::worker::{Job, Waker};
use crate::task::{TaskControl, TaskProgress};
use crate::train::Reconstruction;

/// The kinds of one-shot job; at most one of each runs at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Opening the dataset and its label store.
    Open,
    /// Which compute backend training would get.
    BackendProbe,
    Cluster,
    ReconstructionErrors,
    ExportMap,
    ExportAnimation,
    ExportSelection,
    /// Reconstructions of selected members for the inspector.
    Reconstruct,
    Interpolate,
    /// Ranking the map's unlabelled members for labelling.
    Suggest,
    /// Every member's latents (best checkpoint) for a map of the whole ensemble.
    FullMap,
    /// The folder dialog for a run to follow.
    PickRun,
}

impl JobKind {
    /// The job's name in messages ("Clustering: …").
    pub fn title(self) -> &'static str {
        match self {
            Self::Open => "Opening the dataset",
            Self::BackendProbe => "Compute backend",
            Self::Cluster => "Clustering",
            Self::ReconstructionErrors => "Reconstruction errors",
            Self::ExportMap | Self::ExportAnimation | Self::ExportSelection => "Export",
            Self::Reconstruct => "Reconstructions",
            Self::Interpolate => "Interpolation",
            Self::Suggest => "Suggestions",
            Self::FullMap => "Full map",
            Self::PickRun => "Follow a run",
        }
    }

    fn thread_name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::BackendProbe => "backend",
            Self::Cluster => "cluster",
            Self::ReconstructionErrors => "errors",
            Self::ExportMap => "export-map",
            Self::ExportAnimation => "export-animation",
            Self::ExportSelection => "export-selection",
            Self::Reconstruct => "reconstruct",
            Self::Interpolate => "interpolate",
            Self::Suggest => "suggest",
            Self::FullMap => "full-map",
            Self::PickRun => "pick-run",
        }
    }
}

/// What a finished job hands back.
pub enum JobOutput {
    Opened(Box<Loaded>),
    Backend(String),
    /// Cluster of each map row, for the rows of `members`.
    Clusters {
        members: Vec<usize>,
        assignments: Vec<usize>,
    },
    /// Mean squared reconstruction error of each of `members`.
    ReconstructionErrors {
        members: Vec<usize>,
        errors: Vec<f32>,
    },
    /// A message saying where the files went.
    Exported(String),
    Reconstructions(Vec<Reconstruction>),
    /// Decoded images from A to B.
    Interpolation(Vec<Vec<f32>>),
    /// Members to label next (ensemble indices), best first.
    Suggestions(Vec<crate::classify::Suggestion>),
    /// Latents of every member, for the full map.
    AllLatents(crate::train::Latents),
    /// The run directory the user picked to follow (`None`: the dialog was closed).
    RunPicked(Option<std::path::PathBuf>),
}

pub struct JobTable {
    waker: Waker,
    jobs: Vec<(JobKind, Job<JobOutput>)>,
}

impl JobTable {
    pub fn new(waker: Waker) -> Self {
        Self {
            waker,
            jobs: Vec::new(),
        }
    }

    /// Runs `work` as the job of `kind`, cancelling and replacing one of that kind.
    pub fn start(
        &mut self,
        kind: JobKind,
        work: impl FnOnce(&TaskControl) -> AppResult<JobOutput> + Send + 'static,
    ) -> AppResult<()> {
        let job = Job::spawn(kind.thread_name(), self.waker.clone(), work)?;
        self.cancel(kind);
        self.jobs.push((kind, job));
        Ok(())
    }

    pub fn is_running(&self, kind: JobKind) -> bool {
        self.jobs.iter().any(|(k, _)| *k == kind)
    }

    pub fn progress(&self, kind: JobKind) -> Option<TaskProgress> {
        self.jobs
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, job)| job.progress())
    }

    /// Cancels the job of `kind` and forgets it (its result, if any, is dropped).
    pub fn cancel(&mut self, kind: JobKind) {
        self.jobs.retain(|(k, job)| {
            if *k == kind {
                job.cancel();
            }
            *k != kind
        });
    }

    /// Results of the jobs that finished since the last call.
    pub fn finished(&mut self) -> Vec<(JobKind, AppResult<JobOutput>)> {
        let mut done = Vec::new();
        self.jobs.retain(|(kind, job)| match job.poll() {
            Some(result) => {
                done.push((*kind, result));
                false
            }
            None => true,
        });
        done
    }

    pub fn busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Whether a job other than the start-up ones (opening, the backend probe) runs.
    pub fn busy_with_tools(&self) -> bool {
        self.jobs
            .iter()
            .any(|(k, _)| !matches!(k, JobKind::Open | JobKind::BackendProbe | JobKind::PickRun))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait(table: &mut JobTable) -> Vec<(JobKind, AppResult<JobOutput>)> {
        let start = Instant::now();
        loop {
            let done = table.finished();
            if !done.is_empty() {
                return done;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn one_job_per_kind_and_busy_until_its_result_is_taken() {
        let mut table = JobTable::new(Waker::none());
        assert!(!table.busy());
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(1);
        table
            .start(JobKind::ExportMap, move |control| {
                while gate_rx.try_recv().is_err() {
                    control.check()?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(JobOutput::Exported("first".into()))
            })
            .unwrap();
        assert!(table.busy() && table.busy_with_tools());
        // A second export replaces (and cancels) the first.
        table
            .start(JobKind::ExportMap, |_| {
                Ok(JobOutput::Exported("second".into()))
            })
            .unwrap();
        let _ = gate_tx.send(());
        let done = wait(&mut table);
        assert_eq!(done.len(), 1);
        match &done[0] {
            (JobKind::ExportMap, Ok(JobOutput::Exported(text))) => assert_eq!(text, "second"),
            _ => panic!("unexpected result"),
        }
        assert!(!table.busy());
    }
}
