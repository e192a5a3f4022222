//! The label store: manual labels and classifier pseudo-labels per ensemble member.
//!
//! Scientists hand-label a few members, a classifier proposes pseudo-labels for the rest, and
//! brushed relabels in the app flow back into training. [`LabelStore`] keeps all of it keyed by
//! member id, with provenance for every label, undo/redo for the session, and classes whose
//! colours never change.
//!
//! On disk a store is two files, written atomically on every change:
//! - `labels.csv` — one row per labelled member, for pandas:
//!   `id,manual_label,manual_source,manual_time,pseudo_label,pseudo_confidence,pseudo_source,pseudo_time`
//! - `labels.classes.json` — the classes: name, colour (`#rrggbb`), former names.
//!
//! The training thread reads a [`LabelSnapshot`] (cheap, immutable, `Send + Sync`).

mod classes;
mod colour;
mod csv_file;
mod history;
mod members;
mod persist;
mod provenance;
mod sidecar;
mod snapshot;
mod store;

pub use classes::{Class, MAX_CLASS_NAME_BYTES};
pub use colour::{Colour, PALETTE_LEN, palette, palette_colour};
pub use csv_file::HEADER as CSV_HEADER;
pub use history::{ChangeId, MAX_CHANGES, MAX_MEMBER_EDITS};
pub use members::{ManualLabel, PseudoLabel};
pub use provenance::{Provenance, Source, current_user_name};
pub use snapshot::{LabelSnapshot, SnapshotClass, TrainingLabel};
pub use store::{ClassCounts, LabelStore};
