//! `sense sweep`: train every run of a grid (e.g. assets/sweep/paper_table1.toml, the SENSE
//! paper's Table 1) and write the table of UMAP silhouettes (`table.md`, `table.csv`).
//! Locally the cells train one after another; `--engine slurm` submits them as one job
//! array, and `--status`, `--resubmit-failed` and `--collect` follow it from the sweep
//! directory alone. Either way a finished cell is kept and an interrupted one continues.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::say;

use crate::data::NanPolicy;
use crate::labels::LabelSnapshot;
use crate::report::latent_map_of_run;
use crate::sweep::slurm::{self, CellCommand, CellState, SlurmRecord, SlurmSettings};
use crate::sweep::{
    RunScore, SweepData, SweepEvent, SweepPlan, collect, keep_grid_copy, run_cell, run_sweep,
};
use crate::task::TaskControl;
use crate::train::run_dir::DatasetRecord;
use crate::train::{BackendChoice, open_training_data};

/// The modes that need only the sweep directory.
const DIR_MODES: [&str; 3] = ["status", "collect", "resubmit_failed"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Engine {
    /// Train the cells here, one after another.
    #[default]
    Local,
    /// Submit the grid to Slurm as one job array (one task per cell) and return.
    Slurm,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Dataset: folder of images, .npy, .npz, IDX file, or sample:channels|droplets|mnist.
    #[arg(long, required_unless_present_any = DIR_MODES)]
    pub data: Option<String>,
    /// Labels for the label losses and the scores (default: those that come with the data).
    /// A session's label store (`SESSION/labels.csv`) is read when each cell starts, so
    /// relabels made in the app reach the cells that start later.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The grid (TOML); see assets/sweep/paper_table1.toml.
    #[arg(long, required_unless_present_any = DIR_MODES)]
    pub grid: Option<PathBuf>,
    /// Sweep directory: one run directory per cell, plus table.md and table.csv.
    #[arg(long, required_unless_present_any = DIR_MODES)]
    pub out: Option<PathBuf>,
    /// Where the cells train.
    #[arg(long, value_enum, default_value_t = Engine::Local)]
    pub engine: Engine,
    /// Overrides every run's backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Overrides every run's epoch count (a quick look at a big grid).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// List the runs and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar (for logs).
    #[arg(long)]
    pub quiet: bool,
    #[command(
        flatten,
        next_help_heading = "Slurm (with --engine slurm; override the grid's [slurm] table)"
    )]
    pub slurm: SlurmArgs,
    /// Show each cell of a Slurm sweep in DIR: pending, running, done or failed.
    #[arg(long, value_name = "DIR", help_heading = "A sweep directory", conflicts_with_all = ["data", "grid", "out", "collect", "resubmit_failed", "cell"])]
    pub status: Option<PathBuf>,
    /// Submit again the cells of the Slurm sweep in DIR that failed or were cancelled.
    #[arg(long, value_name = "DIR", help_heading = "A sweep directory", conflicts_with_all = ["data", "grid", "out", "collect", "cell"])]
    pub resubmit_failed: Option<PathBuf>,
    /// Write DIR/table.md and table.csv from the cells that have finished so far.
    #[arg(long, value_name = "DIR", help_heading = "A sweep directory", conflicts_with_all = ["data", "grid", "out", "cell"])]
    pub collect: Option<PathBuf>,
    /// Train and score only the cell with this index (what each Slurm array task runs).
    #[arg(long, value_name = "INDEX", help_heading = "A sweep directory")]
    pub cell: Option<usize>,
}

#[derive(Args, Debug, Default)]
pub struct SlurmArgs {
    /// Partition (queue) the cells run in.
    #[arg(long)]
    pub partition: Option<String>,
    /// Wall-clock limit per cell (`2:00:00`).
    #[arg(long)]
    pub time: Option<String>,
    /// GPUs per cell.
    #[arg(long)]
    pub gpus: Option<u32>,
    /// CPU cores per cell (also the cell's thread count).
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Memory per cell (`16G`).
    #[arg(long)]
    pub mem: Option<String>,
    /// Account charged for the cells.
    #[arg(long)]
    pub account: Option<String>,
    /// At most this many cells at once.
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Another `#SBATCH` option for the script, e.g. `--sbatch-option=--qos=short` (repeatable).
    #[arg(long, value_name = "OPTION")]
    pub sbatch_option: Vec<String>,
    /// The `sense` binary the cluster runs (default: this one; it must be on a filesystem the
    /// nodes see).
    #[arg(long, value_name = "PATH")]
    pub sense_bin: Option<PathBuf>,
}

impl SlurmArgs {
    /// The Slurm flags on the command line, as the user typed them.
    fn given(&self) -> Vec<&'static str> {
        [
            ("--partition", self.partition.is_some()),
            ("--time", self.time.is_some()),
            ("--gpus", self.gpus.is_some()),
            ("--cpus-per-task", self.cpus_per_task.is_some()),
            ("--mem", self.mem.is_some()),
            ("--account", self.account.is_some()),
            ("--max-parallel", self.max_parallel.is_some()),
            ("--sbatch-option", !self.sbatch_option.is_empty()),
            ("--sense-bin", self.sense_bin.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    fn settings(&self) -> SlurmSettings {
        SlurmSettings {
            partition: self.partition.clone(),
            time: self.time.clone(),
            gpus: self.gpus,
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            account: self.account.clone(),
            max_parallel: self.max_parallel,
            setup: Vec::new(),
            extra: self.sbatch_option.clone(),
        }
    }
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.status {
        return show_status(dir);
    }
    if let Some(dir) = &args.resubmit_failed {
        let plan = SweepPlan::load(&dir.join(crate::sweep::GRID_COPY))?;
        let submitted = slurm::resubmit_failed(&plan, dir)?;
        report_submission(&submitted, plan.runs.len(), dir);
        return Ok(());
    }
    if let Some(dir) = &args.collect {
        return collect_table(dir);
    }
    // clap requires these three outside the directory modes.
    let (Some(data), Some(grid), Some(out)) = (&args.data, &args.grid, &args.out) else {
        anyhow::bail!("--data, --grid and --out are required");
    };
    let slurm_flags = args.slurm.given();
    if args.engine == Engine::Local && args.cell.is_none() && !slurm_flags.is_empty() {
        // Silently training here what the user meant to queue on the cluster would be worse.
        anyhow::bail!(
            "{} only apply with --engine slurm: add it to submit the grid to Slurm, or leave \
             them out to train here",
            slurm_flags.join(", ")
        );
    }
    let plan = load_plan(&args, grid)?;
    if args.dry_run {
        describe(&plan, out);
        for (index, run) in plan.runs.iter().enumerate() {
            println!(
                "{index:>3}  {}  ({} epochs)",
                run.dir_name, run.config.epochs
            );
        }
        return Ok(());
    }
    let grid_copy = keep_grid_copy(grid, out)?;
    let record = DatasetRecord::new(data, args.labels.as_deref());
    match (args.cell, args.engine) {
        (Some(index), _) => train_one_cell(&args, &plan, index, &record, out),
        (None, Engine::Local) => train_locally(&args, &plan, &record, out),
        (None, Engine::Slurm) => submit_to_slurm(&args, &plan, &record, &grid_copy, out),
    }
}

fn describe(plan: &SweepPlan, out: &Path) {
    eprintln!(
        "{} rows × {} columns = {} runs in {}",
        plan.rows.len(),
        plan.columns.len(),
        plan.runs.len(),
        out.display()
    );
}

/// The grid with the command line's overrides.
fn load_plan(args: &SweepArgs, grid: &Path) -> anyhow::Result<SweepPlan> {
    let mut plan = SweepPlan::load(grid)?;
    for run in &mut plan.runs {
        if let Some(backend) = args.backend {
            run.config.backend = backend;
        }
        if let Some(epochs) = args.epochs {
            run.config.epochs = epochs;
        }
    }
    Ok(plan)
}

/// Scores a run by its hand-labelled latents only, whatever trained it.
fn scorer(manual: LabelSnapshot) -> impl Fn(&Path) -> anyhow::Result<RunScore> {
    move |run_dir: &Path| {
        let map = latent_map_of_run(run_dir, &manual, &TaskControl::new())?;
        let scores = map.scores.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: fewer than 2 labelled classes among the latents",
                run_dir.display()
            )
        })?;
        Ok(RunScore {
            silhouette: scores.silhouette,
            neighbourhood_hit: Some(scores.neighbourhood_hit),
        })
    }
}

fn train_locally(
    args: &SweepArgs,
    plan: &SweepPlan,
    record: &DatasetRecord,
    out: &Path,
) -> anyhow::Result<()> {
    describe(plan, out);
    let (ensemble, labels) =
        open_training_data(&record.data, record.labels.as_deref(), NanPolicy::Reject)?;
    let bar = match args.quiet {
        true => ProgressBar::hidden(),
        false => ProgressBar::new(plan.runs.len() as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} runs {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let score = scorer(labels.snapshot(&ensemble, f32::INFINITY)?);
    let data = SweepData {
        ensemble: &ensemble,
        labels: &labels,
        record,
    };
    let mut on_event = |event: SweepEvent| report_event(&bar, plan, out, event);
    let interrupt = super::interrupt::cancelled_by_signals()?;
    let table = run_sweep(plan, &data, out, &score, &interrupt, &mut on_event)
        .map_err(|e| explain_interruption(e, "the same command again"))?;
    bar.finish_and_clear();
    table.write(out)?;
    println!("{}", table.to_markdown());
    println!("written: {}/table.md and table.csv", out.display());
    Ok(())
}

/// One cell, as a Slurm array task runs it: its log is the task's output file.
fn train_one_cell(
    args: &SweepArgs,
    plan: &SweepPlan,
    index: usize,
    record: &DatasetRecord,
    out: &Path,
) -> anyhow::Result<()> {
    let (ensemble, labels) =
        open_training_data(&record.data, record.labels.as_deref(), NanPolicy::Reject)?;
    let score = scorer(labels.snapshot(&ensemble, f32::INFINITY)?);
    let data = SweepData {
        ensemble: &ensemble,
        labels: &labels,
        record,
    };
    let bar = match args.quiet {
        true => ProgressBar::hidden(),
        false => ProgressBar::new(1),
    };
    let mut on_event = |event: SweepEvent| report_event(&bar, plan, out, event);
    // A Slurm task at its time limit gets SIGTERM: the cell stops cleanly, resumable.
    let interrupt = super::interrupt::cancelled_by_signals()?;
    run_cell(plan, index, &data, out, &score, &interrupt, &mut on_event)
        .map_err(|e| explain_interruption(e, "--resubmit-failed"))?;
    bar.finish_and_clear();
    Ok(())
}

/// A sweep stopped by a signal says how to go on; other errors pass unchanged.
fn explain_interruption(error: anyhow::Error, go_on_with: &str) -> anyhow::Error {
    match error.is::<crate::task::Cancelled>() {
        true => anyhow::anyhow!(
            "stopped by a signal; finished cells are kept and an interrupted one resumes from \
             its checkpoint with {go_on_with}"
        ),
        false => error,
    }
}

fn report_event(bar: &ProgressBar, plan: &SweepPlan, out: &Path, event: SweepEvent) {
    match event {
        SweepEvent::RunStarted { dir, resumed, .. } => {
            let shown = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
            if bar.is_hidden() {
                // Logs (and Slurm's output files) say what each process trained.
                eprintln!(
                    "training {shown}{}",
                    if resumed { " (resumed)" } else { "" }
                );
            }
            bar.set_message(format!(
                "{shown}{}",
                if resumed { " (resumed)" } else { "" }
            ));
        }
        SweepEvent::Epoch {
            index,
            epoch,
            epochs,
        } => bar.set_message(format!(
            "{}: epoch {}/{epochs}",
            plan.runs[index].dir_name,
            epoch + 1
        )),
        SweepEvent::RunDone {
            index,
            score,
            already_done,
        } => {
            bar.inc(1);
            say(
                bar,
                format!(
                    "{:<48} silhouette {:.4}{}",
                    plan.runs[index].dir_name,
                    score.silhouette,
                    if already_done { "  (done before)" } else { "" }
                ),
            );
        }
    }
}

fn submit_to_slurm(
    args: &SweepArgs,
    plan: &SweepPlan,
    record: &DatasetRecord,
    grid_copy: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    // Typos are caught here, not in 39 failed jobs.
    if !record.data.starts_with("sample:") && !Path::new(&record.data).exists() {
        anyhow::bail!("{}: no such dataset", record.data);
    }
    if let Some(labels) = &record.labels
        && !labels.is_file()
    {
        anyhow::bail!("{}: no such labels file", labels.display());
    }
    let sense = match &args.slurm.sense_bin {
        Some(path) => std::path::absolute(path)?,
        None => std::env::current_exe()?,
    };
    let out = std::path::absolute(out)?;
    let backend = args
        .backend
        .and_then(|b| b.to_possible_value())
        .map(|v| v.get_name().to_string());
    let command = CellCommand {
        sense: &sense,
        data: &record.data,
        labels: record.labels.as_deref(),
        grid: &std::path::absolute(grid_copy)?,
        out: &out,
        backend: backend.as_deref(),
        epochs: args.epochs,
    };
    let settings = plan.slurm.overridden_by(&args.slurm.settings());
    let submitted = slurm::submit_sweep(plan, &out, &settings, &command)?;
    report_submission(&submitted, plan.runs.len(), &out);
    Ok(())
}

fn report_submission(submitted: &slurm::Submitted, cells: usize, out: &Path) {
    match &submitted.job_id {
        Some(job) => {
            println!(
                "submitted job {job}: {} of {cells} cells (array tasks {})",
                submitted.cells.len(),
                slurm::scheduler::index_list(&submitted.cells)
            );
            println!(
                "follow it with `sense sweep --status {0}`; the table: `sense sweep --collect {0}`",
                out.display()
            );
        }
        None => println!(
            "nothing to submit: every cell of {} is done, queued or running",
            out.display()
        ),
    }
}

fn show_status(dir: &Path) -> anyhow::Result<()> {
    let plan = SweepPlan::load(&dir.join(crate::sweep::GRID_COPY))?;
    let record = SlurmRecord::load(dir)?;
    let statuses = slurm::cell_statuses(&plan, dir, &record)?;
    let width = statuses.iter().map(|s| s.dir_name.len()).max().unwrap_or(0);
    println!(
        "{:>4}  {:<width$}  {:<8}  {:<12}  epochs",
        "cell", "run", "state", "job"
    );
    for status in &statuses {
        let detail = match &status.state {
            CellState::Done { silhouette } => format!("  silhouette {silhouette:.4}"),
            CellState::Failed(why) => format!("  {why}"),
            _ => status
                .trainer
                .as_ref()
                .map_or(String::new(), |trainer| format!("  {trainer}")),
        };
        println!(
            "{:>4}  {:<width$}  {:<8}  {:<12}  {}/{}{detail}",
            status.index,
            status.dir_name,
            status.state.word(),
            status.job.as_deref().unwrap_or("-"),
            status.epochs_done,
            status.epochs,
        );
    }
    let count = |word: &str| statuses.iter().filter(|s| s.state.word() == word).count();
    println!(
        "{} cells: {} done, {} running, {} pending, {} failed{}",
        statuses.len(),
        count("done"),
        count("running"),
        count("pending"),
        count("failed"),
        match count("failed") {
            0 => String::new(),
            _ => format!(" (`sense sweep --resubmit-failed {}`)", dir.display()),
        }
    );
    if let Some(running) = statuses.iter().find(|s| s.state == CellState::Running) {
        println!(
            "watch a cell train: sense open {} --follow",
            dir.join(&running.dir_name).display()
        );
    }
    Ok(())
}

fn collect_table(dir: &Path) -> anyhow::Result<()> {
    let plan = SweepPlan::load(&dir.join(crate::sweep::GRID_COPY))?;
    let (table, unfinished) = collect(&plan, dir)?;
    table.write(dir)?;
    println!("{}", table.to_markdown());
    println!(
        "{} of {} cells finished{}; written: {}/table.md and table.csv",
        table.cells.len(),
        plan.runs.len(),
        match unfinished.is_empty() {
            true => String::new(),
            false => format!(" (not yet: {})", slurm::scheduler::index_list(&unfinished)),
        },
        dir.display()
    );
    Ok(())
}
