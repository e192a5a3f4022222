use crate::data::{Ensemble, NanPolicy, OpenOptions, fit::FitMode};
use clap::Args;
use std::path::PathBuf;

/// How a command names and opens a dataset; shared by every command that reads one.
#[derive(Args, Debug, Clone)]
pub struct DatasetArgs {
    /// Folder of images, .npy, .npz, IDX file (optionally .gz), or sample:channels|droplets|mnist.
    pub data: String,
    /// Labels: CSV with `id,label` (blank label = unlabelled) or an IDX labels file.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Simulation parameters: CSV with `id,<name>,<name>…`.
    #[arg(long)]
    pub parameters: Option<PathBuf>,
    /// Resize every member to HxW (e.g. 64x64) instead of rejecting other sizes.
    #[arg(long, value_name = "HxW", value_parser = parse_size, conflicts_with = "center_crop")]
    pub resize: Option<(usize, usize)>,
    /// Centre-crop every member to HxW instead of rejecting other sizes.
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    pub center_crop: Option<(usize, usize)>,
    /// NaN/Inf values in float data: reject the dataset, or report and load it.
    #[arg(long = "nan", value_enum, default_value_t = NanPolicy::Reject)]
    pub nan_policy: NanPolicy,
}

impl DatasetArgs {
    pub fn open_options(&self) -> OpenOptions {
        let fit = match (self.resize, self.center_crop) {
            (Some((height, width)), _) => Some(FitMode::Resize { height, width }),
            (None, Some((height, width))) => Some(FitMode::CenterCrop { height, width }),
            (None, None) => None,
        };
        OpenOptions {
            labels: self.labels.clone(),
            parameters: self.parameters.clone(),
            fit,
            nan_policy: self.nan_policy,
        }
    }

    pub fn open(&self) -> anyhow::Result<Ensemble> {
        Ok(crate::data::open(&self.data, &self.open_options())?)
    }
}

fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let (h, w) = text
        .split_once(['x', 'X', '×'])
        .ok_or_else(|| format!("expected HxW, e.g. 64x64, got {text:?}"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("{s:?} is not a positive size"))
    };
    Ok((parse(h)?, parse(w)?))
}
