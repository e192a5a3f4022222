//! Command-line interface: `sense` with a subcommand, or no arguments for the desktop app.

mod cluster;
mod dataset_args;
mod embed;
mod epoch_layouts;
mod eval;
mod info;
mod interrupt;
mod labels;
mod matrix_input;
mod pseudo_label;
mod report;
mod sample;
mod suggest;
mod sweep;
mod train;

pub use dataset_args::DatasetArgs;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "sense",
    version,
    args_conflicts_with_subcommands = true,
    about = "SENSE Explorer: train autoencoders on scientific ensembles and explore their latent space"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    app: AppArgs,
}

/// How the desktop app opens (`sense` with no subcommand, or `sense open`). Only those two
/// take these options: each subcommand's `--help` lists its own options alone.
#[derive(clap::Args, Debug, Clone, Default)]
struct AppArgs {
    /// Session directory (default: one per dataset under ~/.local/share/sense/sessions).
    #[arg(long)]
    session: Option<std::path::PathBuf>,
    /// Window renderer: wgpu on a hardware GPU, else glow.
    #[arg(long, value_enum, default_value = "auto")]
    renderer: crate::app::RendererChoice,
    /// Quit once the first map is drawn (smoke test of the binary).
    #[arg(long, hide = true)]
    quit_after_first_map: bool,
}

#[derive(clap::Args, Debug)]
struct OpenArgs {
    /// A dataset (`sample:channels`, a folder of images, a .npy/.idx file), a session
    /// directory, or with --follow a run directory.
    path: String,
    /// PATH is a run directory another process trains (`sense train --out`, a `sense sweep`
    /// cell, on a filesystem this machine mounts): show its epochs, reconstructions and live
    /// map as they are written. Relabels go to the label store the run was given.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    app: AppArgs,
}

impl AppArgs {
    fn run(self, open: Option<String>, follow: bool) -> anyhow::Result<()> {
        crate::app::run(crate::app::AppOptions {
            open,
            session_dir: self.session,
            follow,
            renderer: self.renderer,
            quit_after_first_map: self.quit_after_first_map,
        })
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open the desktop app on a dataset or a saved session.
    Open(OpenArgs),
    /// Describe a dataset: count, shape, dtype, value range, NaNs, labels.
    Info(info::InfoArgs),
    /// Write a built-in sample ensemble as PNGs plus a labels CSV.
    Sample(sample::SampleArgs),
    /// Per-class counts of manual and pseudo labels in a label store.
    Labels(labels::LabelsArgs),
    /// Estimate label spreading and the classifier on the hand labels, choose, and write the
    /// chosen labeller's pseudo-labels for every other member into a label store.
    PseudoLabel(pseudo_label::PseudoLabelArgs),
    /// Rank unlabelled members by what a hand label would fix most (uncertain pseudo-label,
    /// at odds with its latent neighbours, far from every hand label) and write a CSV.
    Suggest(suggest::SuggestArgs),
    /// Train an autoencoder and write a run directory (config, metrics, checkpoints, latents).
    Train(train::TrainArgs),
    /// Project latents (or any N×D .npy) to 2-D: UMAP (optionally warm-started), PCA or t-SNE.
    Embed(embed::EmbedArgs),
    /// Score an embedding against class labels: silhouette, separability, neighbourhood hit,
    /// trustworthiness, kNN accuracy.
    Eval(eval::EvalArgs),
    /// Cluster latents (k-means, GMM, agglomerative) at K or choosing K over a range.
    Cluster(cluster::ClusterArgs),
    /// Figures and report.md of a training run, for a group meeting.
    Report(report::ReportArgs),
    /// Train the paper's Table 1 grid (or any grid) and tabulate UMAP silhouettes.
    Sweep(sweep::SweepArgs),
}

/// A line above the progress bar, or on stderr when the bar is hidden (quiet, or not a
/// terminal), so logs keep every message.
fn say(bar: &indicatif::ProgressBar, line: impl AsRef<str>) {
    match bar.is_hidden() {
        true => eprintln!("{}", line.as_ref()),
        false => bar.println(line),
    }
}

/// Parses the command line and runs it; errors print as one clear line.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => cli.app.run(None, false),
        Some(Command::Open(args)) => args.app.run(Some(args.path), args.follow),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Sample(args)) => sample::run(args),
        Some(Command::Labels(args)) => labels::run(args),
        Some(Command::PseudoLabel(args)) => pseudo_label::run(args),
        Some(Command::Suggest(args)) => suggest::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Embed(args)) => embed::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Cluster(args)) => cluster::run(args),
        Some(Command::Report(args)) => report::run(args),
        Some(Command::Sweep(args)) => sweep::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
