//! The sweep's result table: rows (grid settings) × columns (loss variants) of UMAP
//! silhouettes, as markdown (the paper's layout, best cell per row in bold) and as CSV (one line
//! per run, for pandas).

use std::path::Path;

use super::RunScore;
use crate::atomic_file::write_atomic;
use crate::error::DataResult;

#[derive(Debug, Clone, PartialEq)]
pub struct SweepCell {
    pub row: usize,
    pub column: String,
    pub dir_name: String,
    pub score: RunScore,
    pub val_mse: Option<f64>,
    pub epochs: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SweepTable {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub cells: Vec<SweepCell>,
}

pub const TABLE_MARKDOWN: &str = "table.md";
pub const TABLE_CSV: &str = "table.csv";

impl SweepTable {
    fn cell(&self, row: usize, column: &str) -> Option<&SweepCell> {
        self.cells
            .iter()
            .find(|c| c.row == row && c.column == column)
    }

    /// Silhouettes of the 2-D embeddings; the best of each row in bold.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| setting |");
        for column in &self.columns {
            out.push_str(&format!(" {column} |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(self.columns.len()));
        out.push('\n');
        for (row, label) in self.rows.iter().enumerate() {
            let best = self
                .columns
                .iter()
                .filter_map(|c| self.cell(row, c))
                .map(|c| c.score.silhouette)
                .fold(f64::NEG_INFINITY, f64::max);
            out.push_str(&format!("| {label} |"));
            for column in &self.columns {
                match self.cell(row, column) {
                    Some(cell) if cell.score.silhouette == best => {
                        out.push_str(&format!(" **{:.3}** |", cell.score.silhouette))
                    }
                    Some(cell) => out.push_str(&format!(" {:.3} |", cell.score.silhouette)),
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out.push_str(
            "\nSilhouette of the 2-D UMAP embedding of the hand-labelled members' latents \
             (higher is better; best per row in bold).\n",
        );
        out
    }

    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "row,setting,column,silhouette,neighbourhood_hit,val_mse,epochs,run_dir\n",
        );
        let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
        let number = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for cell in &self.cells {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                cell.row,
                quote(&self.rows[cell.row]),
                quote(&cell.column),
                cell.score.silhouette,
                number(cell.score.neighbourhood_hit),
                number(cell.val_mse),
                cell.epochs,
                quote(&cell.dir_name),
            ));
        }
        out
    }

    /// Writes `table.md` and `table.csv` into `dir`.
    pub fn write(&self, dir: &Path) -> DataResult<()> {
        write_atomic(&dir.join(TABLE_MARKDOWN), self.to_markdown().as_bytes())?;
        write_atomic(&dir.join(TABLE_CSV), self.to_csv().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(row: usize, column: &str, silhouette: f64) -> SweepCell {
        SweepCell {
            row,
            column: column.into(),
            dir_name: format!("r{row}/{column}"),
            score: RunScore {
                silhouette,
                neighbourhood_hit: Some(0.5),
            },
            val_mse: Some(0.25),
            epochs: 3,
        }
    }

    #[test]
    fn markdown_bolds_the_best_cell_of_each_row() {
        let table = SweepTable {
            rows: vec!["base".into(), "latent size = 32".into()],
            columns: vec!["baseline".into(), "clustering".into()],
            cells: vec![
                cell(0, "baseline", 0.2),
                cell(0, "clustering", 0.45),
                cell(1, "baseline", 0.31),
            ],
        };
        let md = table.to_markdown();
        assert!(md.contains("| base | 0.200 | **0.450** |"), "{md}");
        assert!(md.contains("| latent size = 32 | **0.310** | – |"), "{md}");
        let csv = table.to_csv();
        assert_eq!(csv.lines().count(), 4);
        assert!(
            csv.contains("1,\"latent size = 32\",\"baseline\",0.31,0.5,0.25,3,\"r1/baseline\"")
        );
    }
}
