//! The sweep grid file: a base run configuration, the axes varied over it and the loss columns
//! every row is trained with (the layout of Table 1 of the SENSE paper).
//!
//! ```toml
//! mode = "one-at-a-time"          # or "product"
//! [base]                          # any keys of a run's config.toml
//! epochs = 20
//!
//! [[axis]]
//! name = "latent size"
//! key = "model.latent_dim"        # dotted path into the run configuration
//! values = [32, 64, 128, 256]
//!
//! [columns]
//! baseline = { "loss.lambda_cluster" = 0.0, "loss.lambda_contrastive" = 0.0 }
//! clustering = { "loss.lambda_cluster" = 0.2 }
//! ```
//!
//! An optional `[slurm]` table sets what `sense sweep --engine slurm` asks the cluster for
//! (`partition`, `time`, `gpus`, `cpus_per_task`, `mem`, `account`, `max_parallel`, `setup`,
//! `extra`; see [`SlurmSettings`]).
//!
//! Settings are applied to the TOML of the base configuration and the result is parsed as a
//! `TrainConfig`, so a mistyped key or a value of the wrong type is an error naming it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

use super::slurm::SlurmSettings;
use crate::error::{DataError, DataResult};
use crate::train::TrainConfig;

/// How the axes combine into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GridMode {
    /// The base configuration, then one row per value of each axis with every other axis at the
    /// base: the paper's table (Σ values + 1 rows).
    #[default]
    OneAtATime,
    /// Every combination of axis values (Π values rows).
    Product,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// Row label in the table, e.g. "latent size".
    pub name: String,
    /// Dotted path into the run configuration, e.g. `model.latent_dim`. Without a key, each
    /// value is a table of dotted keys set together (e.g. `{ "model.kind" = "vae",
    /// "model.beta" = 4.0 }`).
    #[serde(default)]
    pub key: Option<String>,
    pub values: Vec<toml::Value>,
    /// How each value is shown in the table (default: the value itself).
    #[serde(default)]
    pub labels: Vec<String>,
}

impl Axis {
    /// The settings one value of this axis makes, and its row label.
    fn settings(&self, index: usize) -> Result<(String, RowSettings), String> {
        let value = &self.values[index];
        let shown = self
            .labels
            .get(index)
            .cloned()
            .unwrap_or_else(|| show_value(value));
        let label = format!("{} = {shown}", self.name);
        let settings = match (&self.key, value) {
            (Some(key), value) => vec![(key.clone(), value.clone())],
            (None, toml::Value::Table(table)) => {
                table.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            (None, _) => {
                return Err(format!(
                    "axis `{}` has no key, so its values must be tables of settings",
                    self.name
                ));
            }
        };
        Ok((label, settings))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    #[serde(default)]
    mode: GridMode,
    #[serde(default)]
    base: toml::Table,
    #[serde(default, rename = "axis")]
    axes: Vec<Axis>,
    columns: BTreeMap<String, toml::Table>,
    /// Column order in the table; default: baseline, clustering, contrastive, then the rest
    /// alphabetically.
    #[serde(default)]
    column_order: Vec<String>,
    /// How `sense sweep --engine slurm` asks for resources (flags override it).
    #[serde(default)]
    slurm: SlurmSettings,
}

/// One run of the sweep: a row setting crossed with a column.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub row: usize,
    /// Human-readable row setting, e.g. `latent size = 64` (`base` for the base row).
    pub row_label: String,
    pub column: String,
    /// Directory name inside the sweep directory, stable across re-runs of the same grid.
    pub dir_name: String,
    pub config: TrainConfig,
}

/// A parsed grid, expanded into runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub runs: Vec<PlannedRun>,
    /// The grid's `[slurm]` table.
    pub slurm: SlurmSettings,
}

impl SweepPlan {
    pub fn load(path: &Path) -> DataResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text).map_err(|reason| DataError::new(path, reason))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let grid: GridFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if grid.columns.is_empty() {
            return Err("the grid needs at least one [columns] entry".into());
        }
        for axis in &grid.axes {
            if axis.values.is_empty() {
                return Err(format!("axis `{}` has no values", axis.name));
            }
            if !axis.labels.is_empty() && axis.labels.len() != axis.values.len() {
                return Err(format!(
                    "axis `{}` has {} labels for {} values",
                    axis.name,
                    axis.labels.len(),
                    axis.values.len()
                ));
            }
        }
        let columns = column_order(&grid)?;
        let rows = expand_rows(&grid)?;
        let mut runs = Vec::with_capacity(rows.len() * columns.len());
        for (row, (row_label, settings)) in rows.iter().enumerate() {
            for column in &columns {
                let mut table = grid.base.clone();
                for (key, value) in settings {
                    set_dotted(&mut table, key, value.clone())?;
                }
                for (key, value) in &grid.columns[column] {
                    set_dotted(&mut table, key, value.clone())?;
                }
                let config = parse_config(&table)
                    .map_err(|e| format!("row `{row_label}`, column `{column}`: {e}"))?;
                runs.push(PlannedRun {
                    row,
                    row_label: row_label.clone(),
                    column: column.clone(),
                    dir_name: format!("r{row:02}-{}/{}", slug(row_label), slug(column)),
                    config,
                });
            }
        }
        Ok(Self {
            rows: rows.into_iter().map(|(label, _)| label).collect(),
            columns,
            runs,
            slurm: grid.slurm,
        })
    }
}

fn column_order(grid: &GridFile) -> Result<Vec<String>, String> {
    if !grid.column_order.is_empty() {
        for name in &grid.column_order {
            if !grid.columns.contains_key(name) {
                return Err(format!(
                    "column_order names `{name}`, which is not a column"
                ));
            }
        }
        return Ok(grid.column_order.clone());
    }
    let preferred = ["baseline", "clustering", "contrastive"];
    let mut order: Vec<String> = preferred
        .iter()
        .filter(|name| grid.columns.contains_key(**name))
        .map(|name| name.to_string())
        .collect();
    order.extend(
        grid.columns
            .keys()
            .filter(|name| !preferred.contains(&name.as_str()))
            .cloned(),
    );
    Ok(order)
}

type RowSettings = Vec<(String, toml::Value)>;

fn expand_rows(grid: &GridFile) -> Result<Vec<(String, RowSettings)>, String> {
    match grid.mode {
        GridMode::OneAtATime => {
            let mut rows = vec![("base".to_string(), Vec::new())];
            for axis in &grid.axes {
                for index in 0..axis.values.len() {
                    rows.push(axis.settings(index)?);
                }
            }
            Ok(rows)
        }
        GridMode::Product => {
            let mut rows: Vec<(Vec<String>, RowSettings)> = vec![(Vec::new(), Vec::new())];
            for axis in &grid.axes {
                let mut crossed = Vec::with_capacity(rows.len() * axis.values.len());
                for (labels, settings) in &rows {
                    for index in 0..axis.values.len() {
                        let (label, more) = axis.settings(index)?;
                        let mut labels = labels.clone();
                        labels.push(label);
                        let mut settings = settings.clone();
                        settings.extend(more);
                        crossed.push((labels, settings));
                    }
                }
                rows = crossed;
            }
            Ok(rows
                .into_iter()
                .map(|(labels, settings)| match labels.is_empty() {
                    true => ("base".to_string(), settings),
                    false => (labels.join(", "), settings),
                })
                .collect())
        }
    }
}

/// A value as a table cell: strings bare, inline tables as `kind` when they have one.
fn show_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Table(t) => match t.get("kind").and_then(toml::Value::as_str) {
            Some(kind) if t.len() == 1 => kind.to_string(),
            Some(kind) => {
                let rest: Vec<String> = t
                    .iter()
                    .filter(|(k, _)| k.as_str() != "kind")
                    .map(|(k, v)| format!("{k} {}", show_value(v)))
                    .collect();
                format!("{kind} ({})", rest.join(", "))
            }
            None => value.to_string(),
        },
        other => other.to_string(),
    }
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return Err("empty key".into());
    };
    if last.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("bad key `{key}`"));
    }
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{key}`: `{part}` is not a table"))?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

fn parse_config(table: &toml::Table) -> Result<TrainConfig, String> {
    let text = toml::to_string(table).map_err(|e| e.to_string())?;
    let config = TrainConfig::from_toml(&text).map_err(|e| e.0)?;
    config.validate().map_err(|e| e.0)?;
    Ok(config)
}

/// Lower-case letters, digits and `_` (directory names that work everywhere).
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.replace(" = ", "=").chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '.' => out.push(c.to_ascii_lowercase()),
            '=' => out.push('='),
            _ if !out.ends_with('_') => out.push('_'),
            _ => {}
        }
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: &str = r#"
        [base]
        epochs = 3
        [base.model]
        latent_dim = 64

        [[axis]]
        name = "latent size"
        key = "model.latent_dim"
        values = [32, 128]

        [[axis]]
        name = "LR scheduler"
        key = "schedule.lr_scheduler"
        values = [{ kind = "cosine", min_lr = 1e-5 }]

        [[axis]]
        name = "model"
        values = [{ "model.kind" = "vae", "model.beta" = 4.0 }]
        labels = ["β-VAE, β 4"]

        [columns]
        contrastive = { "loss.lambda_cluster" = 0.0, "loss.lambda_contrastive" = 0.2 }
        baseline = { "loss.lambda_cluster" = 0.0, "loss.lambda_contrastive" = 0.0 }
        clustering = { "loss.lambda_cluster" = 0.2, "loss.lambda_contrastive" = 0.0 }
    "#;

    #[test]
    fn one_at_a_time_varies_each_axis_from_the_base() {
        let plan = SweepPlan::parse(GRID).unwrap();
        assert_eq!(
            plan.rows,
            [
                "base",
                "latent size = 32",
                "latent size = 128",
                "LR scheduler = cosine (min_lr 0.00001)",
                "model = β-VAE, β 4",
            ]
        );
        assert_eq!(plan.columns, ["baseline", "clustering", "contrastive"]);
        assert_eq!(plan.runs.len(), 15);
        let run = |row: usize, column: &str| {
            plan.runs
                .iter()
                .find(|r| r.row == row && r.column == column)
                .unwrap()
        };
        assert_eq!(run(4, "baseline").config.model.beta, 4.0);
        assert!(run(4, "baseline").config.model.kind.is_variational());
        assert_eq!(run(0, "baseline").config.model.latent_dim, 64);
        assert_eq!(run(1, "baseline").config.model.latent_dim, 32);
        assert_eq!(run(2, "clustering").config.model.latent_dim, 128);
        assert_eq!(run(2, "clustering").config.loss.lambda_cluster, 0.2);
        assert_eq!(run(2, "clustering").config.loss.lambda_contrastive, 0.0);
        assert_eq!(run(3, "contrastive").config.model.latent_dim, 64);
        assert_eq!(run(3, "contrastive").config.epochs, 3);
        assert!(matches!(
            run(3, "baseline").config.schedule.lr_scheduler,
            crate::train::LrScheduler::Cosine { .. }
        ));
        assert_eq!(
            run(1, "clustering").dir_name,
            "r01-latent_size=32/clustering"
        );
        let names: std::collections::HashSet<_> = plan.runs.iter().map(|r| &r.dir_name).collect();
        assert_eq!(
            names.len(),
            plan.runs.len(),
            "run directories must be distinct"
        );
    }

    #[test]
    fn the_paper_grid_parses() {
        let plan = SweepPlan::parse(include_str!("../../assets/sweep/paper_table1.toml")).unwrap();
        assert_eq!(plan.rows.len(), 13);
        assert_eq!(plan.runs.len(), 39);
        let base_clustering = &plan.runs[1];
        assert_eq!(base_clustering.column, "clustering");
        assert_eq!(base_clustering.config.loss.lambda_cluster, 0.2);
        assert_eq!(base_clustering.config.epochs, 30);
    }

    #[test]
    fn product_mode_crosses_the_axes() {
        let grid = GRID.replace("[base]", "mode = \"product\"\n[base]");
        let plan = SweepPlan::parse(&grid).unwrap();
        assert_eq!(plan.rows.len(), 2);
        assert!(plan.rows[1].ends_with("model = β-VAE, β 4"));
        assert!(plan.rows[0].starts_with("latent size = 32, LR scheduler = cosine"));
    }

    #[test]
    fn a_mistyped_key_is_an_error_naming_it() {
        let grid = GRID.replace("model.latent_dim", "model.latent_dims");
        let err = SweepPlan::parse(&grid).unwrap_err();
        assert!(err.contains("latent_dims"), "{err}");
        let err =
            SweepPlan::parse(&GRID.replace("values = [32, 128]", "values = [\"x\"]")).unwrap_err();
        assert!(err.contains("latent size = x"), "{err}");
        let err = SweepPlan::parse("[columns]\n").unwrap_err();
        assert!(err.contains("at least one"), "{err}");
    }
}
