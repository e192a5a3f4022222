//! Figures and the markdown report for a group meeting (`sense report`): plain data in, PNG +
//! SVG files out; `run_report` gathers a run's data into them (plotters, with an embedded font so headless machines need no system fonts).
//!
//! Every figure writer takes a base path and writes `base.png` and `base.svg`, each atomically
//! (temporary file + rename). Input with nothing to draw is an error naming the file, never a
//! blank figure; non-finite values are skipped and the figure says how many.

mod animation;
mod bars;
mod curves;
mod lines;
mod markdown;
mod recon_grid;
pub mod run_report;
mod scatter;
mod style;

pub use animation::{AnimationFrame, AnimationOptions, AnimationOutcome, write_map_animation};
pub use bars::{BarMetric, MethodBars};
pub use curves::{LossSeries, TrainingCurves};
pub use lines::{LineChart, LineSeries};
pub use markdown::{MetricsTable, ReportDocument, ReportFigure, format_number};
pub use recon_grid::{MAX_ROWS, ReconstructionGrid, ReconstructionRow, viridis};
pub use run_report::{
    ImageQuality, LatentMap, RunReport, RunReportOptions, latent_map_of_run, write_run_report,
};
pub use scatter::{ClassStyle, PixelMap, ScatterOutcome, ScatterPlot};
pub use style::FigureFiles;
