use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LabelsArgs {
    /// Label store CSV.
    pub path: PathBuf,
}

pub fn run(args: LabelsArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not implemented yet")
}
