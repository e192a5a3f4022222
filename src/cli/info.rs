use super::DatasetArgs;
use crate::data::{Ensemble, summary};
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let ensemble = args.dataset.open()?;
    let values = summary::summarize(ensemble.source.as_ref())?;
    let classes = class_histogram(&ensemble);
    let labelled = ensemble.labels.as_ref().map_or(0, |l| l.labelled_count());
    let shape = ensemble.shape();
    if args.json {
        let classes: serde_json::Map<String, serde_json::Value> = classes
            .into_iter()
            .map(|(name, count)| (name, json!(count)))
            .collect();
        let report = json!({
            "count": ensemble.len(),
            "channels": shape.channels,
            "height": shape.height,
            "width": shape.width,
            "dtype": ensemble.dtype().name(),
            "min": finite_or_null(values.min),
            "max": finite_or_null(values.max),
            "nan_count": values.nan_count,
            "labelled": labelled,
            "classes": classes,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("dataset   {}", ensemble.origin());
    println!("count     {}", ensemble.len());
    println!(
        "shape     {} channel(s) × {} × {} (C×H×W)",
        shape.channels, shape.height, shape.width
    );
    println!("dtype     {}", ensemble.dtype());
    println!("range     {} … {}", values.min, values.max);
    println!("NaN/Inf   {}", values.nan_count);
    println!("labelled  {labelled} of {}", ensemble.len());
    if !classes.is_empty() {
        let width = classes.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        println!("classes");
        for (name, count) in classes {
            println!("  {name:<width$}  {count}");
        }
    }
    Ok(())
}

/// Labelled members per class, in the labels' class order.
fn class_histogram(ensemble: &Ensemble) -> Vec<(String, usize)> {
    ensemble.labels.as_ref().map_or_else(Vec::new, |labels| {
        labels
            .classes
            .iter()
            .cloned()
            .zip(labels.class_counts())
            .collect()
    })
}

fn finite_or_null(value: f64) -> serde_json::Value {
    if value.is_finite() {
        json!(value)
    } else {
        serde_json::Value::Null
    }
}
