use crate::labels::{LabelStore, Provenance};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LabelsArgs {
    /// Label store CSV.
    pub path: PathBuf,
    /// First import the manual labels given with a dataset (a path or sample:NAME; for a
    /// sample, its hand-labelled subset) into the store, creating it if needed.
    #[arg(long, value_name = "DATA")]
    pub import: Option<String>,
    /// Labels file for --import (CSV `id,label` or IDX labels), if not found beside the data.
    #[arg(long, value_name = "FILE", requires = "import")]
    pub import_labels: Option<PathBuf>,
    /// Confidence a pseudo-label needs to count as confident.
    #[arg(long, default_value_t = 0.9)]
    pub threshold: f32,
}

pub fn run(args: LabelsArgs) -> anyhow::Result<()> {
    if let Some(spec) = &args.import {
        import(&args.path, spec, args.import_labels.clone())?;
    }
    // Read-only: works while the app has the store open.
    let store = LabelStore::open_read_only(&args.path)?;
    let counts = store.class_counts(args.threshold);
    let confident_header = format!("pseudo ≥ {}", args.threshold);

    let class_width = counts
        .iter()
        .map(|c| c.name.chars().count())
        .chain(["class".len(), "total".len()])
        .max()
        .unwrap_or(5);
    let confident_width = confident_header.chars().count().max(8);
    let row = |class: &str, colour: &str, manual: &str, pseudo: &str, confident: &str| {
        let pad = class_width - class.chars().count().min(class_width);
        println!(
            "{class}{:pad$}  {colour:<7}  {manual:>8}  {pseudo:>8}  {confident:>confident_width$}",
            ""
        );
    };
    row("class", "colour", "manual", "pseudo", &confident_header);
    for c in &counts {
        row(
            &c.name,
            &c.colour.hex(),
            &c.manual.to_string(),
            &c.pseudo.to_string(),
            &c.pseudo_confident.to_string(),
        );
    }
    let total = |f: fn(&crate::labels::ClassCounts) -> usize| counts.iter().map(f).sum::<usize>();
    row(
        "total",
        "",
        &total(|c| c.manual).to_string(),
        &total(|c| c.pseudo).to_string(),
        &total(|c| c.pseudo_confident).to_string(),
    );
    println!(
        "{} members labelled, {} classes ({})",
        store.len(),
        counts.len(),
        store.path().display()
    );
    Ok(())
}

/// Imports a dataset's labels as manual labels, with the dataset as their provenance.
fn import(store_path: &std::path::Path, spec: &str, labels: Option<PathBuf>) -> anyhow::Result<()> {
    let options = crate::data::OpenOptions {
        labels: labels.clone(),
        ..Default::default()
    };
    let ensemble = crate::data::open(spec, &options)?;
    let Some(given) = &ensemble.labels else {
        anyhow::bail!("{spec}: no labels to import (pass --import-labels FILE)");
    };
    let provenance = match (spec.strip_prefix("sample:"), labels) {
        (Some(name), _) => Provenance::sample(name),
        (None, Some(file)) => Provenance::import(file),
        (None, None) => Provenance::import(spec),
    };
    let existed = store_path.exists();
    let mut store = LabelStore::open_or_create(store_path)?;
    if let Err(err) = store.import_manual(given, |i| ensemble.member_id(i), provenance) {
        // A failed first import leaves no empty store behind to be mistaken for a real one.
        if !existed {
            let sidecar = store.sidecar_path();
            drop(store);
            let _ = std::fs::remove_file(store_path);
            let _ = std::fs::remove_file(sidecar);
        }
        return Err(err.into());
    }
    eprintln!(
        "imported {} manual labels from {spec}",
        given.labelled_count()
    );
    Ok(())
}
