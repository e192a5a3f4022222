//! `report.md`: title, run facts, metrics tables and the figures, linked relative to the
//! report so the folder can be moved or zipped as a whole.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use super::style::FigureFiles;
use crate::error::{DataError, DataResult};

/// A table of numbers: one row per method / run, one column per metric. Non-finite values
/// print as "n/a".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsTable {
    pub title: String,
    /// Header of the first column (what the rows are, e.g. "method").
    pub row_header: String,
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<f64>)>,
}

/// A figure in the report: the PNG is shown, the SVG linked.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportFigure {
    pub caption: String,
    pub png: PathBuf,
    pub svg: Option<PathBuf>,
}

impl ReportFigure {
    pub fn new(caption: impl Into<String>, files: &FigureFiles) -> Self {
        Self {
            caption: caption.into(),
            png: files.png.clone(),
            svg: Some(files.svg.clone()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportDocument {
    pub title: String,
    /// Run facts in order, e.g. ("data", "CAMELS 15K × 1×64×64"), ("epochs", "50").
    pub facts: Vec<(String, String)>,
    pub tables: Vec<MetricsTable>,
    pub figures: Vec<ReportFigure>,
}

impl ReportDocument {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// The markdown text, with figure links relative to `report_dir`. Every figure file must
    /// exist and lie inside `report_dir`.
    pub fn to_markdown(&self, report_dir: &Path) -> DataResult<String> {
        let mut md = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(md, "# {}\n", one_line(&self.title));
        if !self.facts.is_empty() {
            for (key, value) in &self.facts {
                let _ = writeln!(md, "- **{}**: {}", one_line(key), one_line(value));
            }
            md.push('\n');
        }
        for table in &self.tables {
            write_table(&mut md, table, report_dir)?;
        }
        if !self.figures.is_empty() {
            md.push_str("## Figures\n\n");
        }
        for figure in &self.figures {
            let png = relative_link(report_dir, &figure.png)?;
            let caption = one_line(&figure.caption);
            let _ = write!(
                md,
                "![{}]({png})\n\n*{caption}*",
                caption.replace(['[', ']'], "")
            );
            if let Some(svg) = &figure.svg {
                let _ = write!(md, " ([SVG]({}))", relative_link(report_dir, svg)?);
            }
            md.push_str("\n\n");
        }
        Ok(md)
    }

    /// Writes the report to `path` atomically; figure links are relative to its folder.
    pub fn write(&self, path: &Path) -> DataResult<()> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let text = self.to_markdown(dir)?;
        crate::atomic_file::write_atomic(path, text.as_bytes())
    }
}

fn write_table(md: &mut String, table: &MetricsTable, report_dir: &Path) -> DataResult<()> {
    if let Some((name, values)) = table
        .rows
        .iter()
        .find(|(_, v)| v.len() != table.columns.len())
    {
        return Err(DataError::new(
            report_dir.join("report.md"),
            format!(
                "table {:?}: row {name:?} has {} values for {} columns",
                table.title,
                values.len(),
                table.columns.len()
            ),
        ));
    }
    if !table.title.is_empty() {
        let _ = writeln!(md, "## {}\n", one_line(&table.title));
    }
    let header: Vec<String> = std::iter::once(&table.row_header)
        .chain(&table.columns)
        .map(|h| cell(h))
        .collect();
    let _ = writeln!(md, "| {} |", header.join(" | "));
    // Text column left-aligned, numbers right-aligned.
    let align: Vec<&str> = std::iter::once(":---")
        .chain(table.columns.iter().map(|_| "---:"))
        .collect();
    let _ = writeln!(md, "|{}|", align.join("|"));
    for (name, values) in &table.rows {
        let cells: Vec<String> = std::iter::once(cell(name))
            .chain(values.iter().map(|&v| format_number(v)))
            .collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push('\n');
    Ok(())
}

/// A number for a table: integers as integers, otherwise 4 significant digits (trailing zeros
/// dropped), scientific notation for magnitudes below 1e-3 or from 1e5; "n/a" for NaN or
/// infinity.
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_string();
    }
    let magnitude = value.abs();
    if value.fract() == 0.0 && magnitude < 1e15 {
        return format!("{value:.0}");
    }
    if !(1e-3..1e5).contains(&magnitude) {
        return format!("{value:.3e}");
    }
    let decimals = (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
    let text = format!("{value:.decimals$}");
    // Trailing zeros after the point say nothing: 0.004100 → 0.0041, 24.00 → 24.
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Text on one line, safe inside a table cell.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// `target` relative to `dir`, with `/` separators and URL-escaped characters that would
/// break a markdown link. The file must exist, and lie inside `dir`.
fn relative_link(dir: &Path, target: &Path) -> DataResult<String> {
    if !target.is_file() {
        return Err(DataError::new(
            target,
            "figure file for the report does not exist",
        ));
    }
    let relative: Option<PathBuf> = target
        .strip_prefix(dir)
        .ok()
        .map(Path::to_path_buf)
        .or_else(|| {
            // `dir` may be given as "." or relative while the figure path is absolute.
            let dir = dir.canonicalize().ok()?;
            let target = target.canonicalize().ok()?;
            target.strip_prefix(&dir).ok().map(Path::to_path_buf)
        });
    let Some(relative) = relative else {
        return Err(DataError::new(
            target,
            format!("figure is outside the report folder {}", dir.display()),
        ));
    };
    let mut link = String::new();
    for component in relative.components() {
        let Component::Normal(part) = component else {
            return Err(DataError::new(target, "figure path must not contain '..'"));
        };
        if !link.is_empty() {
            link.push('/');
        }
        for c in part.to_string_lossy().chars() {
            match c {
                ' ' => link.push_str("%20"),
                '(' => link.push_str("%28"),
                ')' => link.push_str("%29"),
                '<' => link.push_str("%3C"),
                '>' => link.push_str("%3E"),
                '#' => link.push_str("%23"),
                '%' => link.push_str("%25"),
                _ => link.push(c),
            }
        }
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_sensible_precision() {
        assert_eq!(format_number(f64::NAN), "n/a");
        assert_eq!(format_number(f64::INFINITY), "n/a");
        assert_eq!(format_number(10.0), "10");
        assert_eq!(format_number(0.41234), "0.4123");
        assert_eq!(format_number(27.3149), "27.31");
        assert_eq!(format_number(0.002341), "0.002341");
        assert_eq!(format_number(2.5e-5), "2.500e-5");
        assert_eq!(format_number(-0.5), "-0.5");
        assert_eq!(format_number(24.0001), "24");
        assert_eq!(format_number(0.0041), "0.0041");
        assert_eq!(format_number(123456.7), "1.235e5");
    }
}
