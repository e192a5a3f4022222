//! Work the app starts and watches: training, the map's projection, the pseudo-labeller, and
//! the table of one-shot jobs. Each runs on its own thread and wakes the UI when it has news.

pub mod projection;
pub mod pseudo_labeller;
pub mod table;
pub mod training;

pub use pseudo_labeller::{PseudoLabeller, PseudoLabellerUpdate};
pub use table::{JobKind, JobOutput, JobTable};
