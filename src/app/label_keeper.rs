//! The label store's one owner: a worker thread that applies every edit — the user's and the
//! pseudo-labeller's proposals alike — and saves it atomically before it answers (nothing is
//! lost if the app dies a moment later). The UI never waits on the disk: it sends
//! [`LabelEdit`]s and receives a fresh [`LabelView`] per change; a subscribed trainer gets
//! each new training snapshot straight from here, from its next batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use egui::Color32;

use super::worker::{Queue, Report, Waker, Worker, WorkerContext};
use crate::classify::{HandLabels, PseudoLabelProposal};
use crate::data::Ensemble;
use crate::error::DataError;
use crate::labels::{LabelSnapshot, LabelStore, Provenance};

/// A change to the labels. Members are ensemble indices.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelEdit {
    SetManual {
        members: Vec<usize>,
        class: String,
    },
    ClearManual {
        members: Vec<usize>,
    },
    AddClass(String),
    RenameClass {
        old: String,
        new: String,
    },
    MergeClasses {
        from: Vec<String>,
        into: String,
    },
    Undo,
    Redo,
    /// The pseudo-labeller's labels, replacing the previous ones (one undoable change).
    SetPseudo(Arc<PseudoLabelProposal>),
    /// Pseudo-labels at or above this confidence train and count.
    SetThreshold(f32),
}

/// Receives each new training snapshot (a running trainer's label channel).
pub type LabelSink = Box<dyn Fn(LabelSnapshot) + Send + Sync>;

enum KeeperCommand {
    Edit(LabelEdit),
    /// Push every new snapshot to this sink (`None`: to nobody). It also gets the current
    /// one at once unless its revision is `known_revision`.
    Subscribe {
        sink: Option<LabelSink>,
        known_revision: u64,
    },
}

#[derive(Debug, Clone)]
pub enum LabelEvent {
    Changed(Arc<LabelView>),
    Error(Arc<DataError>),
}

/// One class with its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassInfo {
    pub name: String,
    pub colour: Color32,
    pub manual: usize,
    pub pseudo: usize,
    pub pseudo_confident: usize,
}

/// A member's pseudo-label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PseudoInfo {
    pub class: usize,
    pub confidence: f32,
}

/// The labels as the UI shows them, per ensemble member, at one store revision.
#[derive(Debug, Clone)]
pub struct LabelView {
    pub revision: u64,
    pub classes: Vec<ClassInfo>,
    /// Per member: index into `classes`.
    pub manual: Vec<Option<usize>>,
    pub pseudo: Vec<Option<PseudoInfo>>,
    /// Per labelled member: "manual: user:anna at 2026-…", "pseudo: classifier:… 0.97".
    pub provenance: HashMap<usize, String>,
    pub undo: Option<String>,
    pub redo: Option<String>,
    pub threshold: f32,
    /// What training uses now: manual labels and confident pseudo-labels.
    pub snapshot: LabelSnapshot,
    /// Manual labels only, what the pseudo-labeller learns from.
    pub hand: LabelSnapshot,
    /// The store's file.
    pub path: PathBuf,
}

impl LabelView {
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.name == name)
    }

    /// The label training would use: manual, else a confident pseudo-label.
    pub fn effective(&self, member: usize) -> Option<usize> {
        self.manual.get(member).copied().flatten().or_else(|| {
            self.pseudo
                .get(member)
                .copied()
                .flatten()
                .filter(|p| p.confidence >= self.threshold)
                .map(|p| p.class)
        })
    }

    pub fn manual_count(&self) -> usize {
        self.manual.iter().flatten().count()
    }

    /// The hand labels, for a pseudo-labeller run.
    pub fn hand_labels(&self) -> HandLabels {
        HandLabels {
            snapshot: self.hand.clone(),
            origin: self.path.clone(),
        }
    }

    /// Whether hand labels of at least two classes exist (spreading has something to do).
    pub fn has_two_hand_labelled_classes(&self) -> bool {
        let mut classes = self.manual.iter().flatten();
        let Some(first) = classes.next() else {
            return false;
        };
        classes.any(|class| class != first)
    }
}

/// The UI's end of the keeper.
pub struct LabelKeeper {
    worker: Worker<KeeperCommand, LabelEvent>,
}

impl LabelKeeper {
    /// Starts the keeper thread; its first event is the initial view.
    pub fn start(
        ensemble: Ensemble,
        store: LabelStore,
        threshold: f32,
        waker: Waker,
    ) -> super::error::AppResult<Self> {
        let mut keeper = Keeper {
            ids: (0..ensemble.len()).map(|i| ensemble.member_id(i)).collect(),
            store,
            threshold,
            // The name is looked up once; the time is taken per edit, when it is made.
            user: crate::labels::current_user_name(),
            sink: None,
            pushed: None,
        };
        let worker = Worker::spawn("labels", Queue::Every, waker, move |command, context| {
            keeper.handle(command, context);
        })?;
        // The initial view: a threshold edit that changes nothing.
        worker.send(KeeperCommand::Edit(LabelEdit::SetThreshold(threshold)));
        Ok(Self { worker })
    }

    pub fn send(&self, edit: LabelEdit) {
        self.worker.send(KeeperCommand::Edit(edit));
    }

    /// From now on every new training snapshot goes to `sink` (a running trainer), and the
    /// current one too unless it is still `known_revision`'s.
    pub fn subscribe(&self, sink: LabelSink, known_revision: u64) {
        self.worker.send(KeeperCommand::Subscribe {
            sink: Some(sink),
            known_revision,
        });
    }

    pub fn unsubscribe(&self) {
        self.worker.send(KeeperCommand::Subscribe {
            sink: None,
            known_revision: 0,
        });
    }

    pub fn try_recv(&self) -> Option<LabelEvent> {
        match self.worker.try_recv()? {
            Report::Event(event) => Some(event),
            Report::Panicked(message) => Some(LabelEvent::Error(Arc::new(DataError::new(
                "label store",
                format!("internal error: {message}"),
            )))),
        }
    }

    /// Edits are waiting or being saved.
    pub fn is_busy(&self) -> bool {
        self.worker.is_busy()
    }

    /// Waits up to `limit` for the edits sent so far to be saved (when the app closes: an
    /// edit made a moment before must not be lost with the process).
    pub fn flush(&self, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        while self.is_busy() && start.elapsed() < limit {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// The keeper thread's state.
struct Keeper {
    ids: Vec<String>,
    store: LabelStore,
    threshold: f32,
    user: String,
    sink: Option<LabelSink>,
    /// (revision, threshold) of the snapshot the sink has.
    pushed: Option<(u64, f32)>,
}

impl Keeper {
    fn handle(&mut self, command: KeeperCommand, context: &WorkerContext<LabelEvent>) {
        match command {
            KeeperCommand::Subscribe {
                sink,
                known_revision,
            } => {
                self.sink = sink;
                self.pushed = Some((known_revision, self.threshold));
                self.push_snapshot();
            }
            KeeperCommand::Edit(edit) => {
                if let LabelEdit::SetThreshold(value) = edit {
                    self.threshold = value;
                }
                let provenance = Provenance::user(&self.user);
                let event = match apply(&mut self.store, edit, &self.ids, &provenance) {
                    Ok(()) => {
                        self.push_snapshot();
                        LabelEvent::Changed(Arc::new(view_of(
                            &self.store,
                            &self.ids,
                            self.threshold,
                        )))
                    }
                    Err(e) => LabelEvent::Error(Arc::new(e)),
                };
                context.send(event);
            }
        }
    }

    /// Gives the subscribed trainer the training snapshot if it changed since the last one.
    fn push_snapshot(&mut self) {
        let Some(sink) = &self.sink else {
            return;
        };
        let now = (self.store.revision(), self.threshold);
        if self.pushed != Some(now) {
            sink(self.store.snapshot(self.threshold));
            self.pushed = Some(now);
        }
    }
}

fn apply(
    store: &mut LabelStore,
    edit: LabelEdit,
    ids: &[String],
    user: &Provenance,
) -> Result<(), DataError> {
    let ids_of = |members: &[usize]| -> Vec<&str> {
        members
            .iter()
            .filter_map(|&m| ids.get(m).map(String::as_str))
            .collect()
    };
    match edit {
        LabelEdit::SetManual { members, class } => store
            .set_manual(&ids_of(&members), class.trim(), user.clone())
            .map(drop),
        LabelEdit::ClearManual { members } => store.clear_manual(&ids_of(&members)).map(drop),
        LabelEdit::AddClass(name) => store.add_class(name.trim()).map(drop),
        LabelEdit::RenameClass { old, new } => store.rename_class(&old, new.trim()).map(drop),
        LabelEdit::MergeClasses { from, into } => {
            let from: Vec<&str> = from.iter().map(String::as_str).collect();
            store.merge_classes(&from, &into).map(drop)
        }
        LabelEdit::Undo => store.undo().map(drop),
        LabelEdit::Redo => store.redo().map(drop),
        LabelEdit::SetPseudo(proposal) => {
            proposal.write_to(store, |m| ids.get(m).map(String::as_str))
        }
        LabelEdit::SetThreshold(_) => Ok(()),
    }
}

pub(crate) fn view_of(store: &LabelStore, ids: &[String], threshold: f32) -> LabelView {
    let counts = store.class_counts(threshold);
    let classes: Vec<ClassInfo> = counts
        .iter()
        .map(|c| ClassInfo {
            name: c.name.clone(),
            colour: Color32::from_rgb(c.colour.0[0], c.colour.0[1], c.colour.0[2]),
            manual: c.manual,
            pseudo: c.pseudo,
            pseudo_confident: c.pseudo_confident,
        })
        .collect();
    let index_of: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut manual = vec![None; ids.len()];
    let mut pseudo = vec![None; ids.len()];
    let mut provenance = HashMap::new();
    for (member, id) in ids.iter().enumerate() {
        let mut lines = Vec::new();
        if let Some(label) = store.manual(id) {
            manual[member] = index_of.get(label.class).copied();
            lines.push(format!(
                "manual '{}' — {}",
                label.class, label.provenance.source
            ));
        }
        if let Some(label) = store.pseudo(id) {
            pseudo[member] = index_of.get(label.class).map(|&class| PseudoInfo {
                class,
                confidence: label.confidence,
            });
            lines.push(format!(
                "pseudo '{}' {:.3} — {}",
                label.class, label.confidence, label.provenance.source
            ));
        }
        if !lines.is_empty() {
            provenance.insert(member, lines.join("\n"));
        }
    }
    LabelView {
        revision: store.revision(),
        classes,
        manual,
        pseudo,
        provenance,
        undo: store.undo_description().map(str::to_string),
        redo: store.redo_description().map(str::to_string),
        threshold,
        snapshot: store.snapshot(threshold),
        // NaN admits no pseudo-label.
        hand: store.snapshot(f32::NAN),
        path: store.path().to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn next_view(keeper: &LabelKeeper) -> Arc<LabelView> {
        for _ in 0..500 {
            match keeper.try_recv() {
                Some(LabelEvent::Changed(view)) => return view,
                Some(LabelEvent::Error(e)) => panic!("{e}"),
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        panic!("the keeper did not answer");
    }

    fn keeper_in(dir: &std::path::Path) -> (LabelKeeper, Ensemble, PathBuf) {
        let ensemble = crate::data::open("sample:channels", &Default::default()).unwrap();
        let path = dir.join("labels.csv");
        let store = LabelStore::create(&path).unwrap();
        let keeper = LabelKeeper::start(ensemble.clone(), store, 0.9, Waker::none()).unwrap();
        next_view(&keeper);
        (keeper, ensemble, path)
    }

    #[test]
    fn each_edit_is_stamped_when_it_is_made_and_saved_before_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (keeper, ensemble, path) = keeper_in(dir.path());
        let (first, second) = (ensemble.member_id(0), ensemble.member_id(1));
        for member in [0, 1] {
            std::thread::sleep(Duration::from_millis(30));
            keeper.send(LabelEdit::SetManual {
                members: vec![member],
                class: "a".into(),
            });
            next_view(&keeper);
        }
        let store = LabelStore::open_read_only(&path).unwrap();
        let time = |id: &str| store.manual(id).unwrap().provenance.time.unwrap();
        assert!(time(&second) > time(&first), "both edits share one time");
    }

    #[test]
    fn proposals_are_undoable_edits_and_reach_a_subscribed_trainer() {
        use crate::classify::Prediction;
        let dir = tempfile::tempdir().unwrap();
        let (keeper, _, path) = keeper_in(dir.path());
        let (tx, snapshots) = crossbeam_channel::unbounded();
        keeper.subscribe(Box::new(move |s| tx.send(s).unwrap()), 0);
        keeper.send(LabelEdit::SetManual {
            members: vec![0, 1],
            class: "a".into(),
        });
        let view = next_view(&keeper);
        assert_eq!(view.manual_count(), 2);
        let pushed = snapshots.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(pushed.len(), 2);
        let proposal = PseudoLabelProposal {
            classes: vec!["a".into()],
            predictions: (2..5)
                .map(|member| Prediction {
                    member,
                    class: 0,
                    confidence: 0.95,
                })
                .collect(),
            provenance: Provenance::classifier("test"),
        };
        keeper.send(LabelEdit::SetPseudo(Arc::new(proposal)));
        let view = next_view(&keeper);
        assert_eq!(view.pseudo.iter().flatten().count(), 3);
        // Confident pseudo-labels train: the trainer gets them without the UI.
        let pushed = snapshots.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(pushed.len(), 5);
        let on_disk = LabelStore::open_read_only(&path).unwrap();
        assert_eq!(on_disk.members().filter(|(_, _, p)| p.is_some()).count(), 3);
        keeper.send(LabelEdit::Undo);
        let view = next_view(&keeper);
        assert_eq!(view.pseudo.iter().flatten().count(), 0);
        assert_eq!(view.manual_count(), 2);
        let pushed = snapshots.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(pushed.len(), 2);
        keeper.unsubscribe();
        keeper.send(LabelEdit::Redo);
        next_view(&keeper);
        assert!(snapshots.recv_timeout(Duration::from_millis(200)).is_err());
    }
}
