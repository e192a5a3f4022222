//! The label store's own thread. Every edit is saved atomically by the store before the keeper
//! answers (nothing is lost if the app dies a moment later), and the UI never waits on the
//! disk: it sends [`LabelEdit`]s and receives a fresh [`LabelView`] per change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};
use egui::Color32;

use crate::data::Ensemble;
use crate::labels::{LabelSnapshot, LabelStore, Provenance};

/// A change the user asks for. Members are ensemble indices.
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
    /// Another writer (the pseudo-labeller) changed the store: send a fresh view.
    Refresh,
    /// Pseudo-labels at or above this confidence train and count.
    SetThreshold(f32),
}

#[derive(Debug, Clone)]
pub enum LabelEvent {
    Changed(Arc<LabelView>),
    Error(String),
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
}

/// The UI's end of the keeper.
pub struct LabelKeeper {
    edits: Sender<LabelEdit>,
    events: Receiver<LabelEvent>,
    store: Arc<Mutex<LabelStore>>,
}

impl LabelKeeper {
    /// Starts the keeper thread; its first event is the initial view.
    pub fn start(ensemble: Ensemble, store: LabelStore, threshold: f32) -> std::io::Result<Self> {
        let store = Arc::new(Mutex::new(store));
        let (edits, edits_rx) = crossbeam_channel::unbounded();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let shared = store.clone();
        std::thread::Builder::new()
            .name("sense-labels".into())
            .spawn(move || keep(&ensemble, &shared, threshold, &edits_rx, &events_tx))?;
        let keeper = Self {
            edits,
            events,
            store,
        };
        keeper.send(LabelEdit::Refresh);
        Ok(keeper)
    }

    pub fn send(&self, edit: LabelEdit) {
        // The keeper only stops when this handle is dropped.
        let _ = self.edits.send(edit);
    }

    pub fn try_recv(&self) -> Option<LabelEvent> {
        self.events.try_recv().ok()
    }

    /// The store itself, for the pseudo-labeller (it locks it only while writing).
    pub fn store(&self) -> Arc<Mutex<LabelStore>> {
        self.store.clone()
    }
}

fn lock(store: &Mutex<LabelStore>) -> MutexGuard<'_, LabelStore> {
    // A panic elsewhere while holding the lock leaves the store as it was last saved.
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn keep(
    ensemble: &Ensemble,
    store: &Mutex<LabelStore>,
    mut threshold: f32,
    edits: &Receiver<LabelEdit>,
    events: &Sender<LabelEvent>,
) {
    let ids: Vec<String> = (0..ensemble.len()).map(|i| ensemble.member_id(i)).collect();
    // The name is looked up once; the time is taken per edit, when it is made.
    let user = crate::labels::current_user_name();
    while let Ok(edit) = edits.recv() {
        if let LabelEdit::SetThreshold(value) = edit {
            threshold = value;
        }
        let result = {
            let mut store = lock(store);
            apply(&mut store, edit, &ids, &Provenance::user(&user))
                .map(|_| view_of(&store, &ids, threshold))
        };
        let event = match result {
            Ok(view) => LabelEvent::Changed(Arc::new(view)),
            Err(message) => LabelEvent::Error(message),
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

fn apply(
    store: &mut LabelStore,
    edit: LabelEdit,
    ids: &[String],
    user: &Provenance,
) -> Result<(), String> {
    let ids_of = |members: &[usize]| -> Vec<&str> {
        members
            .iter()
            .filter_map(|&m| ids.get(m).map(String::as_str))
            .collect()
    };
    let outcome = match edit {
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
        // The pseudo-labeller writes through the same store object: only the view is stale.
        LabelEdit::Refresh | LabelEdit::SetThreshold(_) => Ok(()),
    };
    outcome.map_err(|e| e.to_string())
}

fn view_of(store: &LabelStore, ids: &[String], threshold: f32) -> LabelView {
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
                Some(LabelEvent::Error(message)) => panic!("{message}"),
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        panic!("the keeper did not answer");
    }

    #[test]
    fn each_edit_is_stamped_when_it_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let ensemble = crate::data::open("sample:channels", &Default::default()).unwrap();
        let (first, second) = (ensemble.member_id(0), ensemble.member_id(1));
        let store = LabelStore::create(dir.path().join("labels.csv")).unwrap();
        let keeper = LabelKeeper::start(ensemble, store, 0.9).unwrap();
        next_view(&keeper);
        for member in [0, 1] {
            std::thread::sleep(Duration::from_millis(30));
            keeper.send(LabelEdit::SetManual {
                members: vec![member],
                class: "a".into(),
            });
            next_view(&keeper);
        }
        let store = keeper.store();
        let store = lock(&store);
        let time = |id: &str| store.manual(id).unwrap().provenance.time.unwrap();
        assert!(time(&second) > time(&first), "both edits share one time");
    }
}
