use crate::labels::LabelStore;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LabelsArgs {
    /// Label store CSV.
    pub path: PathBuf,
    /// Confidence a pseudo-label needs to count as confident.
    #[arg(long, default_value_t = 0.9)]
    pub threshold: f32,
}

pub fn run(args: LabelsArgs) -> anyhow::Result<()> {
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
