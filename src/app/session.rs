//! A session: one directory holding everything about exploring one dataset, so closing the
//! app loses nothing and a colleague can open the same state.
//!
//! ```text
//! SESSION/session.json      dataset spec, training form, map settings (serde JSON)
//! SESSION/labels.csv        the label store (saved atomically on every change)
//! SESSION/run/              the training run (config.toml, metrics.jsonl, checkpoints)
//! SESSION/layout.npy        the last map layout (+ layout.ids.csv)
//! SESSION/exports/          figures, embeddings and selections the user exported
//! ```
//!
//! A session that follows a run trained elsewhere ([`Session::follow`]) reads that run's
//! directory instead of `run/`, and keeps its labels in the store the run trains with.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use ndarray::Array2;

use super::error::AppResult;
use super::jobs::projection::{MapMetrics, live_metrics};
use crate::data::{Ensemble, OpenOptions};
use crate::labels::{LabelStore, Provenance};
use crate::task::TaskControl;
use crate::train::run_dir::{DatasetRecord, EpochLayout, write_epoch_layout};
use crate::train::{EpochSummary, TrainConfig, Trainer};

pub const SESSION_FILE: &str = "session.json";
const SESSION_VERSION: u32 = 1;

/// What `session.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionFile {
    pub version: u32,
    /// How to open the data again: `sample:channels`, a folder, a file.
    pub dataset: String,
    /// A labels file given with the data, imported into the label store once.
    pub dataset_labels: Option<PathBuf>,
    pub train_config: TrainConfig,
    /// The map shows at most this many members (the hand-labelled ones always).
    pub map_max_members: usize,
    /// Pseudo-labels at or above this confidence count as labels for training and metrics.
    pub pseudo_threshold: f32,
    /// Rerun label spreading over every epoch's latents and after every relabel (while
    /// spreading is the trusted labeller), so the pseudo-labels follow the map.
    pub spreading_follows_map: bool,
    /// Retrain the pseudo-labeller (both labellers, chosen by held-out evidence) this long
    /// after the last hand-label edit; `None`: only on request.
    pub retrain_after_edits_secs: Option<f32>,
    /// The run directory this session follows (written by another process: `sense train`,
    /// a Slurm sweep cell) instead of training its own `run/`.
    pub followed_run: Option<PathBuf>,
    /// A label store outside the session (the one the followed run trains with), so relabels
    /// reach the cells and runs that start later.
    pub label_store: Option<PathBuf>,
}

impl Default for SessionFile {
    fn default() -> Self {
        Self {
            version: SESSION_VERSION,
            dataset: super::DEFAULT_DATASET.to_string(),
            dataset_labels: None,
            train_config: TrainConfig::default(),
            map_max_members: 10_000,
            pseudo_threshold: 0.9,
            spreading_follows_map: true,
            retrain_after_edits_secs: Some(10.0),
            followed_run: None,
            label_store: None,
        }
    }
}

/// An open session directory.
#[derive(Debug, Clone)]
pub struct Session {
    pub dir: PathBuf,
    pub file: SessionFile,
}

/// Where sessions live unless the user names a directory: `$SENSE_HOME/sessions`, else
/// `$XDG_DATA_HOME/sense/sessions`, else `~/.local/share/sense/sessions`.
pub fn default_sessions_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("SENSE_HOME") {
        return PathBuf::from(home).join("sessions");
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    data_home.join("sense").join("sessions")
}

/// A directory name for a dataset spec: `sample:channels` → `sample-channels`.
fn dir_name_for(spec: &str) -> String {
    let name: String = spec
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(spec)
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                true => c,
                false => '-',
            },
        )
        .collect();
    match name.trim_matches('-').is_empty() {
        true => "dataset".to_string(),
        false => name,
    }
}

/// A session name for following `run_dir`: its last two components (a sweep cell is
/// `row/column`) and a hash of the whole path, so runs of different sweeps do not share one.
fn follow_dir_name(run_dir: &Path) -> String {
    // FNV-1a: the same name for the same path with any toolchain (std's hasher may change).
    let hash = run_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0x811c_9dc5_u32, |h, &b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
    let tail: Vec<String> = run_dir
        .components()
        .rev()
        .take(2)
        .map(|c| dir_name_for(&c.as_os_str().to_string_lossy()))
        .collect();
    let tail: Vec<&str> = tail.iter().rev().map(String::as_str).collect();
    format!("{}-{hash:08x}", tail.join("-"))
}

impl Session {
    /// `open` is a session directory, a dataset spec, or nothing (the default sample). A
    /// dataset reuses its session in `session_dir` (or the default place) when there is one.
    pub fn open_or_create(
        open: Option<&str>,
        session_dir: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        if let Some(path) = open
            && Path::new(path).join(SESSION_FILE).is_file()
        {
            return Self::load(Path::new(path));
        }
        let spec = open.unwrap_or(super::DEFAULT_DATASET);
        let dir = session_dir.unwrap_or_else(|| default_sessions_dir().join(dir_name_for(spec)));
        if dir.join(SESSION_FILE).is_file() {
            let session = Self::load(&dir)?;
            if session.file.dataset == spec {
                return Ok(session);
            }
            anyhow::bail!(
                "{}: this session belongs to {}, not {spec}; choose another --session directory",
                dir.display(),
                session.file.dataset
            );
        }
        let session = Self {
            dir,
            file: SessionFile {
                dataset: spec.to_string(),
                ..SessionFile::default()
            },
        };
        session.save()?;
        Ok(session)
    }

    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(SESSION_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let file: SessionFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a SENSE session file", path.display()))?;
        if file.version > SESSION_VERSION {
            anyhow::bail!(
                "{}: session version {} is newer than this SENSE Explorer understands ({})",
                path.display(),
                file.version,
                SESSION_VERSION
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
        })
    }

    /// Writes `session.json` atomically (creating the directory).
    pub fn save(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let text = serde_json::to_string_pretty(&self.file)?;
        crate::atomic_file::write_atomic(&self.dir.join(SESSION_FILE), text.as_bytes())
            .map_err(anyhow::Error::from)
    }

    pub fn labels_path(&self) -> PathBuf {
        match &self.file.label_store {
            Some(store) => store.clone(),
            None => self.dir.join("labels.csv"),
        }
    }

    /// The session's run: its own `run/`, or the directory it follows.
    pub fn run_dir(&self) -> PathBuf {
        match &self.file.followed_run {
            Some(run) => run.clone(),
            None => self.dir.join("run"),
        }
    }

    /// Whether the session watches a run another process trains (it trains nothing itself).
    pub fn is_following(&self) -> bool {
        self.file.followed_run.is_some()
    }

    /// A session that follows `run_dir`, trained by another process (`sense train`, a
    /// Slurm sweep cell), perhaps still training: the data and labels come from the run's
    /// `dataset.json`. A label store given to the run (`--labels SESSION/labels.csv`) is this
    /// session's store, so relabels made here reach the runs that start later; other labels
    /// files are imported into the session's own store. The session lives in `session_dir`,
    /// or under [`default_sessions_dir`] named after the run.
    pub fn follow(run_dir: &Path, session_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let run_dir = std::path::absolute(run_dir)?;
        let record_path = run_dir.join(crate::train::run_dir::DATASET);
        let record: DatasetRecord =
            crate::train::run_dir::read_json(&record_path).with_context(|| {
                format!(
                    "{} is not a run directory written by `sense train` or `sense sweep` \
                 (or the run has not started yet)",
                    run_dir.display()
                )
            })?;
        let dir = session_dir.unwrap_or_else(|| {
            default_sessions_dir().join(format!("follow-{}", follow_dir_name(&run_dir)))
        });
        if dir.join(SESSION_FILE).is_file() {
            let session = Self::load(&dir)?;
            if session.file.followed_run.as_deref() == Some(run_dir.as_path()) {
                return Ok(session);
            }
            anyhow::bail!(
                "{}: this session is not the one following {}; choose another --session directory",
                dir.display(),
                run_dir.display()
            );
        }
        let store = match &record.labels {
            Some(path) if crate::train::training_data::is_label_store(path)? => Some(path.clone()),
            _ => None,
        };
        let mut file = SessionFile {
            dataset: record.data.clone(),
            dataset_labels: record.labels.clone().filter(|_| store.is_none()),
            followed_run: Some(run_dir.clone()),
            label_store: store,
            ..SessionFile::default()
        };
        if let Ok(config) = Trainer::load_config(&run_dir) {
            file.train_config = config;
        }
        let session = Self { dir, file };
        session.save()?;
        Ok(session)
    }

    pub fn layout_path(&self) -> PathBuf {
        self.dir.join("layout.npy")
    }

    pub fn exports_dir(&self) -> PathBuf {
        self.dir.join("exports")
    }

    /// Whether the run directory holds a checkpoint to continue from.
    pub fn has_checkpoint(&self) -> bool {
        self.run_dir().join("checkpoint").is_dir()
    }

    /// Opens the dataset and the label store (slow: call it on a worker). Hand labels that
    /// come with the data are imported into a new store once.
    pub fn open_data(&self) -> AppResult<Loaded> {
        let spec = &self.file.dataset;
        let labels_file = &self.file.dataset_labels;
        let options = OpenOptions {
            labels: labels_file.clone(),
            ..OpenOptions::default()
        };
        let ensemble = crate::data::open(spec, &options)?;
        let mut store = LabelStore::open_or_create(self.labels_path())?;
        let mut imported = None;
        if store.is_empty()
            && let Some(labels) = &ensemble.labels
        {
            let provenance = match (spec.strip_prefix("sample:"), labels_file) {
                (_, Some(path)) => Provenance::import(path),
                (Some(name), None) => Provenance::sample(name),
                (None, None) => Provenance::import(spec),
            };
            store.import_manual(labels, |i| ensemble.member_id(i), provenance)?;
            imported = Some(labels.labelled_count());
        }
        let layout = self.load_layout(&ensemble);
        let layout_metrics = layout.as_ref().and_then(|l| layout_metrics(l, &store));
        Ok(Loaded {
            ensemble,
            store,
            imported,
            layout,
            layout_metrics,
            past_run: self.load_past_run(),
            has_checkpoint: self.has_checkpoint(),
        })
    }

    /// The session's earlier run from its files: every epoch's figures, and how many epochs
    /// its last start planned. An unreadable record only loses the curves, so it is logged.
    fn load_past_run(&self) -> Option<PastRun> {
        if self.is_following() {
            // The follower reads the run's history as it goes.
            return None;
        }
        let run_dir = self.run_dir();
        let epochs = match crate::train::run_dir::read_metrics(&run_dir) {
            Ok(epochs) if !epochs.is_empty() => epochs,
            Ok(_) => return None,
            Err(e) => {
                eprintln!("sense: the earlier run's history is not shown: {e}");
                return None;
            }
        };
        let planned = Trainer::load_config(&run_dir).map_or(epochs.len(), |c| c.epochs);
        Some(PastRun {
            planned_epochs: planned.max(epochs.len()),
            epochs,
        })
    }

    /// The map layout of the last session, for the members still in `ensemble`. A missing
    /// or unreadable layout only means the map is computed afresh.
    fn load_layout(&self, ensemble: &Ensemble) -> Option<SavedLayout> {
        let path = self.layout_path();
        if !path.is_file() {
            return None;
        }
        let matrix = match crate::data::matrix::read_matrix_with_ids(&path) {
            Ok(matrix) if matrix.values.ncols() == 2 => matrix,
            Ok(_) => return None,
            Err(e) => {
                eprintln!("sense: the saved map layout is not used: {e}");
                return None;
            }
        };
        let mut layout = SavedLayout::default();
        for (row, id) in matrix.ids.iter().enumerate() {
            if let Some(member) = ensemble.index_of(id) {
                layout.members.push(member);
                layout.ids.push(id.clone());
                layout
                    .coords
                    .push([matrix.values[[row, 0]], matrix.values[[row, 1]]]);
            }
        }
        (!layout.members.is_empty()).then_some(layout)
    }

    /// Writes the map layout off the UI thread, and with `epoch` (a live map of that epoch's
    /// latents) also into the run's `layouts/`, from which the run's animation is made. A
    /// failed write only loses a layout, which the next epoch rewrites, so it is logged
    /// rather than shown.
    pub fn save_layout(&self, ids: Arc<Vec<String>>, coords: &[[f32; 2]], epoch: Option<usize>) {
        let matrix = Array2::from_shape_fn((coords.len(), 2), |(i, j)| coords[i][j]);
        let path = self.layout_path();
        let run_dir = self.run_dir();
        // A followed run belongs to the process training it: nothing is written into it.
        let epoch = epoch.filter(|_| !self.is_following());
        let epoch_layout = epoch.map(|epoch| EpochLayout {
            epoch,
            ids: ids.to_vec(),
            coords: coords.to_vec(),
        });
        let spawned = std::thread::Builder::new()
            .name("sense-save-layout".into())
            .spawn(move || {
                if let Err(e) =
                    crate::data::matrix::write_matrix_with_ids(&path, matrix.view(), &ids)
                {
                    eprintln!("sense: the map layout was not saved: {e}");
                }
                if let Some(layout) = epoch_layout
                    && let Err(e) = write_epoch_layout(&run_dir, &layout)
                {
                    eprintln!(
                        "sense: the layout of epoch {} was not saved: {e}",
                        layout.epoch + 1
                    );
                }
            });
        if let Err(e) = spawned {
            eprintln!("sense: the map layout was not saved: {e}");
        }
    }
}

/// The opened dataset with its label store.
pub struct Loaded {
    pub ensemble: Ensemble,
    pub store: LabelStore,
    /// Hand labels imported from the data into a new store.
    pub imported: Option<usize>,
    /// The session's last layout, if it still fits the data.
    pub layout: Option<SavedLayout>,
    /// Silhouette and neighbourhood hit of the saved layout's hand-labelled members.
    pub layout_metrics: Option<MapMetrics>,
    /// The session's earlier training run, if it recorded any epoch.
    pub past_run: Option<PastRun>,
    /// The session's run has a checkpoint (Continue, reconstructions, interpolation).
    pub has_checkpoint: bool,
}

/// A training run of an earlier session, as its `metrics.jsonl` and `config.toml` tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRun {
    pub epochs: Vec<EpochSummary>,
    pub planned_epochs: usize,
}

/// The live map metrics of a saved layout, scored on the store's hand labels.
fn layout_metrics(layout: &SavedLayout, store: &LabelStore) -> Option<MapMetrics> {
    let classes: Vec<&str> = store.classes().map(|c| c.name.as_str()).collect();
    let labels: Vec<Option<usize>> = layout
        .ids
        .iter()
        .map(|id| {
            let label = store.manual(id)?;
            classes.iter().position(|&c| c == label.class)
        })
        .collect();
    live_metrics(&layout.coords, &labels, &TaskControl::new())
}

/// A map layout: members, their ids and positions, row by row.
#[derive(Debug, Default)]
pub struct SavedLayout {
    pub members: Vec<usize>,
    pub ids: Vec<String>,
    pub coords: Vec<[f32; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_specs_become_safe_directory_names() {
        assert_eq!(dir_name_for("sample:channels"), "sample-channels");
        assert_eq!(dir_name_for("/data/drops/"), "drops");
        assert_eq!(dir_name_for("/data/x y.npy"), "x-y.npy");
        assert_eq!(dir_name_for("::"), "dataset");
    }

    #[test]
    fn a_session_round_trips_and_is_reused_for_its_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let mut created = Session::open_or_create(Some("sample:mnist"), Some(dir.clone())).unwrap();
        created.file.map_max_members = 1234;
        created.save().unwrap();
        let again = Session::open_or_create(Some("sample:mnist"), Some(dir.clone())).unwrap();
        assert_eq!(again.file, created.file);
        let by_dir = Session::open_or_create(Some(dir.to_str().unwrap()), None).unwrap();
        assert_eq!(by_dir.file.map_max_members, 1234);
        let other = Session::open_or_create(Some("sample:channels"), Some(dir));
        assert!(
            other
                .unwrap_err()
                .to_string()
                .contains("belongs to sample:mnist")
        );
    }

    #[test]
    fn a_followed_run_gives_its_data_run_and_label_store_to_the_session() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("sweep/r00-base/baseline");
        std::fs::create_dir_all(&run).unwrap();
        let error = Session::follow(&run, Some(tmp.path().join("s0"))).unwrap_err();
        assert!(format!("{error:#}").contains("dataset.json"), "{error:#}");

        // A label store given to the run is the session's store …
        let store_path = tmp.path().join("store.csv");
        LabelStore::open_or_create(&store_path).unwrap();
        let record = DatasetRecord::new("sample:mnist", Some(&store_path));
        crate::train::run_dir::write_json(&run.join(crate::train::run_dir::DATASET), &record)
            .unwrap();
        let session = Session::follow(&run, Some(tmp.path().join("s1"))).unwrap();
        assert!(session.is_following());
        assert_eq!(session.run_dir(), run);
        assert_eq!(session.labels_path(), store_path);
        assert_eq!(session.file.dataset, "sample:mnist");
        assert_eq!(session.file.dataset_labels, None);
        // … and the session is found again for the same run, not for another.
        let again = Session::follow(&run, Some(tmp.path().join("s1"))).unwrap();
        assert_eq!(again.file, session.file);
        let other = tmp.path().join("sweep/r00-base/clustering");
        std::fs::create_dir_all(&other).unwrap();
        crate::train::run_dir::write_json(&other.join(crate::train::run_dir::DATASET), &record)
            .unwrap();
        assert!(Session::follow(&other, Some(tmp.path().join("s1"))).is_err());
        assert_ne!(follow_dir_name(&run), follow_dir_name(&other));
        assert!(follow_dir_name(&run).starts_with("r00-base-baseline-"));

        // A plain labels file is imported into the session's own store instead.
        let plain = tmp.path().join("labels.csv");
        std::fs::write(&plain, "id,label\n0,a\n").unwrap();
        let record = DatasetRecord::new("sample:mnist", Some(&plain));
        crate::train::run_dir::write_json(&run.join(crate::train::run_dir::DATASET), &record)
            .unwrap();
        let session = Session::follow(&run, Some(tmp.path().join("s2"))).unwrap();
        assert_eq!(session.labels_path(), tmp.path().join("s2/labels.csv"));
        assert_eq!(session.file.dataset_labels, Some(plain));
    }

    #[test]
    fn a_corrupt_session_file_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(SESSION_FILE), "{not json").unwrap();
        let error = Session::load(tmp.path()).unwrap_err();
        assert!(format!("{error:#}").contains("session.json"));
    }
}
