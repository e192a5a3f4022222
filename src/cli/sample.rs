use crate::samples::{self, writer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// channels, droplets or mnist.
    pub name: String,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of members (default: the sample's full size).
    #[arg(long)]
    pub count: Option<usize>,
    /// Generator seed.
    #[arg(long)]
    pub seed: Option<u64>,
}

pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or(samples::DEFAULT_SEED);
    let ensemble = samples::open_with(&args.name, args.count, seed)?;
    // indicatif draws on stderr and hides itself when stderr is not a terminal.
    let progress = ProgressBar::new(ensemble.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")?
            .progress_chars("=> "),
    );
    progress.set_message(format!("writing sample:{}", args.name));
    let written = writer::write_ensemble(&ensemble, &args.out, &progress)?;
    progress.finish_and_clear();
    eprintln!(
        "wrote {} members ({} hand-labelled) of sample:{} to {}",
        written.members,
        written.labelled,
        args.name,
        args.out.display()
    );
    Ok(())
}
