use clap::Args;
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
    let _ = args;
    anyhow::bail!("not implemented yet")
}
