//! `sense cluster`: k-means, Gaussian mixture or agglomerative clustering of latents, at a
//! given K or choosing K over a range (silhouette; BIC for GMM), with an elbow/BIC figure and,
//! given labels, agreement with them (ARI, NMI, Hungarian accuracy).

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use super::matrix_input::{labels_for, read_rows};
use crate::analysis::clustering::{self, ClusterMethod, ClusterOptions, KSweep};
use crate::analysis::partition_metrics::{
    adjusted_rand_index, clustering_accuracy, normalized_mutual_info,
};
use crate::atomic_file::write_atomic;
use crate::data::row_labels::LabelKind;
use crate::report::{LineChart, LineSeries};
use crate::task::TaskControl;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Latents (run directory or N×D `.npy`) or a 2-D layout from `sense embed`.
    #[arg(long)]
    pub latents: PathBuf,
    #[arg(long, value_enum, default_value = "kmeans")]
    pub method: ClusterMethod,
    /// Number of clusters.
    #[arg(long, conflicts_with = "k_range")]
    pub k: Option<usize>,
    /// Choose K in this range, e.g. `2..12` (inclusive): highest silhouette, lowest BIC for
    /// GMM. Also writes OUT's elbow/BIC figure (`.k.png` / `.k.svg`).
    #[arg(long, value_parser = parse_k_range)]
    pub k_range: Option<RangeInclusive<usize>>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output CSV: `id,cluster`.
    #[arg(long)]
    pub out: PathBuf,
    /// Labels to compare the clusters with (`id,label` CSV or a label store's hand labels).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn parse_k_range(text: &str) -> Result<RangeInclusive<usize>, String> {
    let bad = || format!("`{text}` is not a range like 2..12");
    let (lo, hi) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(bad)?;
    let (lo, hi): (usize, usize) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    if lo < 1 || lo > hi {
        return Err(format!("`{text}`: need 1 ≤ low ≤ high"));
    }
    Ok(lo..=hi)
}

/// Agreement of the clusters with the labelled members.
#[derive(Debug, Clone, Copy, Serialize)]
struct Agreement {
    labelled_members: usize,
    ari: f64,
    nmi: f64,
    accuracy: f64,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    method: ClusterMethod,
    k: usize,
    members: usize,
    inertia: f64,
    bic: Option<f64>,
    sweep: Option<&'a KSweep>,
    agreement: Option<Agreement>,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let rows = read_rows(&args.latents)?;
    let points = rows.matrix.values.view();
    let options = ClusterOptions {
        seed: args.seed,
        ..ClusterOptions::default()
    };
    let control = TaskControl::new();
    let (clustering, sweep) = match (args.k, &args.k_range) {
        (Some(k), _) => (
            clustering::cluster(points, args.method, k, &options, &control)?,
            None,
        ),
        (None, Some(range)) => {
            let sweep =
                clustering::sweep_k(points, args.method, range.clone(), &options, &control)?;
            (sweep.chosen.clone(), Some(sweep))
        }
        (None, None) => bail!("give --k K or --k-range LOW..HIGH"),
    };

    write_assignments(&args.out, &rows.matrix.ids, &clustering.assignments)?;
    if let Some(sweep) = &sweep {
        write_k_figure(&args.out, sweep)?;
    }
    let agreement = match &args.labels {
        Some(path) => {
            let labels = labels_for(&rows, path, LabelKind::Manual)?;
            let predicted: Vec<usize> = labels
                .rows
                .iter()
                .map(|&r| clustering.assignments[r])
                .collect();
            Some(Agreement {
                labelled_members: labels.rows.len(),
                ari: adjusted_rand_index(&labels.classes, &predicted)?,
                nmi: normalized_mutual_info(&labels.classes, &predicted)?,
                accuracy: clustering_accuracy(&labels.classes, &predicted)?,
            })
        }
        None => None,
    };

    // Constant or duplicated points can leave clusters empty: report what was written.
    let used = clustering
        .assignments
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if used < clustering.k {
        eprintln!(
            "note: {} of the {} clusters asked for are empty (too few distinct points)",
            clustering.k - used,
            clustering.k
        );
    }
    let report = Report {
        method: clustering.method,
        k: used,
        members: clustering.assignments.len(),
        inertia: clustering.inertia,
        bic: clustering.bic,
        sweep: sweep.as_ref(),
        agreement,
    };
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print_report(&report, &args.out),
    }
    Ok(())
}

fn write_assignments(path: &Path, ids: &[String], assignments: &[usize]) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["id", "cluster"])?;
    for (id, cluster) in ids.iter().zip(assignments) {
        csv.write_record([id.as_str(), cluster.to_string().as_str()])?;
    }
    let bytes = csv.into_inner().context("CSV buffer")?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Inertia (elbow) and, for GMM, BIC over K, with the chosen K marked.
fn write_k_figure(out: &Path, sweep: &KSweep) -> anyhow::Result<()> {
    let curve = |value: &dyn Fn(&clustering::KScore) -> Option<f64>| -> Vec<(f64, f64)> {
        sweep
            .scores
            .iter()
            .filter_map(|s| value(s).map(|v| (s.k as f64, v)))
            .collect()
    };
    let (name, y_label, points) = match sweep.method {
        ClusterMethod::Gmm => ("BIC", "BIC (lower is better)", curve(&|s| s.bic)),
        _ => (
            "inertia",
            "inertia (sum of squared distances)",
            curve(&|s| Some(s.inertia)),
        ),
    };
    let series = [
        LineSeries::new(name, points),
        LineSeries::new("silhouette × max", scaled_silhouette(sweep)),
    ];
    let title = format!("Choosing K for {:?}", sweep.method);
    let marker = format!("chosen K = {}", sweep.chosen_k);
    let mut chart = LineChart::new(&title, "K (clusters)", y_label, &series);
    chart.marker = Some((sweep.chosen_k as f64, &marker));
    let subtitle = "silhouette drawn scaled to the first curve's maximum";
    chart.subtitle = Some(subtitle);
    chart.write(&out.with_extension("k"))?;
    Ok(())
}

/// Silhouettes scaled so their maximum meets the first curve's maximum (one shared axis).
fn scaled_silhouette(sweep: &KSweep) -> Vec<(f64, f64)> {
    let top = sweep
        .scores
        .iter()
        .map(|s| s.bic.unwrap_or(s.inertia))
        .fold(f64::NEG_INFINITY, f64::max);
    let best = sweep
        .scores
        .iter()
        .filter_map(|s| s.silhouette)
        .fold(f64::NEG_INFINITY, f64::max);
    if !(top.is_finite() && best.is_finite() && best > 0.0) {
        return Vec::new();
    }
    sweep
        .scores
        .iter()
        .filter_map(|s| s.silhouette.map(|v| (s.k as f64, v / best * top)))
        .collect()
}

fn print_report(report: &Report, out: &Path) {
    if let Some(sweep) = report.sweep {
        println!(
            "{:>4} {:>14} {:>11} {:>14}",
            "K", "inertia", "silhouette", "BIC"
        );
        for s in &sweep.scores {
            let show = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
            println!(
                "{:>4} {:>14.2} {:>11} {:>14}",
                s.k,
                s.inertia,
                show(s.silhouette, 4),
                show(s.bic, 1)
            );
        }
        let k_or_none = |k: Option<usize>| k.map_or("none".to_string(), |k| k.to_string());
        println!(
            "chosen K = {} (silhouette on {} members; elbow {}, best silhouette {}, best BIC {})",
            sweep.chosen_k,
            sweep.silhouette_sample_size,
            k_or_none(sweep.elbow_k),
            k_or_none(sweep.silhouette_k),
            k_or_none(sweep.bic_k)
        );
    }
    println!(
        "{:?}: {} members in {} clusters, inertia {:.2}{}; written to {}",
        report.method,
        report.members,
        report.k,
        report.inertia,
        report
            .bic
            .map_or(String::new(), |b| format!(", BIC {b:.1}")),
        out.display()
    );
    if let Some(a) = report.agreement {
        println!(
            "against {} labelled members: ARI {:.4}, NMI {:.4}, accuracy {:.4}",
            a.labelled_members, a.ari, a.nmi, a.accuracy
        );
    }
}

#[cfg(test)]
mod tests {
    use super::parse_k_range;

    #[test]
    fn k_ranges() {
        assert_eq!(parse_k_range("2..12"), Ok(2..=12));
        assert_eq!(parse_k_range("3..=5"), Ok(3..=5));
        assert!(parse_k_range("5..2").is_err());
        assert!(parse_k_range("0..3").is_err());
        assert!(parse_k_range("two").is_err());
    }
}
