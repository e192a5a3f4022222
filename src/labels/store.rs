//! [`LabelStore`]: the labels of one ensemble, persisted on every change.

use super::classes::{Class, ClassId, ClassTable, check_name};
use super::colour::Colour;
use super::history::{Change, ChangeId, Direction, History, MemberEdit};
use super::members::{Manual, ManualLabel, MemberLabels, Members, Pseudo, PseudoLabel};
use super::persist::{self, OnDisk, StoreLock};
use super::provenance::Provenance;
use super::snapshot::{LabelSnapshot, SnapshotClass, TrainingLabel};
use crate::data::ClassLabels;
use crate::error::{DataError, DataResult};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Manual and pseudo labels per member id, with classes, provenance and undo/redo.
///
/// Every method that changes something writes both files atomically before it returns `Ok`;
/// once it has returned, the change survives a crash or power cut. On an error nothing
/// changed, neither in memory nor on disk. Changes that would alter nothing return
/// `Ok(None)` and are not recorded.
///
/// While a store is open for writing, it holds a lock so a second window cannot open it for
/// writing too; [`open_read_only`](Self::open_read_only) takes no lock.
#[derive(Debug)]
pub struct LabelStore {
    csv_path: PathBuf,
    classes: ClassTable,
    members: Members,
    history: History,
    /// What the files on disk hold (for deciding what a save must write).
    disk: OnDisk,
    revision: u64,
    next_change: u64,
    /// `None` when opened read-only.
    lock: Option<StoreLock>,
}

/// Label counts of one class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassCounts {
    pub name: String,
    pub colour: Colour,
    pub manual: usize,
    pub pseudo: usize,
    /// Pseudo-labels with confidence at or above the threshold asked for.
    pub pseudo_confident: usize,
}

impl LabelStore {
    /// Creates a new, empty store at `path` (a `.csv`; the sidecar goes next to it). Fails if
    /// `path` already exists, so existing labels are never overwritten.
    pub fn create(path: impl AsRef<Path>) -> DataResult<Self> {
        let csv_path = path.as_ref().to_path_buf();
        let lock = StoreLock::acquire(&csv_path)?;
        if csv_path.exists() {
            return Err(DataError::new(
                &csv_path,
                "already exists (open it instead of creating it)",
            ));
        }
        let classes = ClassTable::default();
        let members = Members::new();
        let nothing = OnDisk {
            csv_fingerprint: String::new(),
            sidecar_current: false,
            sidecar_previous: None,
        };
        let disk = persist::save(&csv_path, &classes, &members, None, &nothing)?;
        Ok(Self::from_parts(
            csv_path,
            classes,
            members,
            disk,
            Some(lock),
        ))
    }

    /// Opens an existing store for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> DataResult<Self> {
        let csv_path = path.as_ref().to_path_buf();
        let lock = StoreLock::acquire(&csv_path)?;
        let loaded = persist::load(&csv_path)?;
        Ok(Self::from_parts(
            csv_path,
            loaded.classes,
            loaded.members,
            loaded.disk,
            Some(lock),
        ))
    }

    /// Opens the store at `path`, creating an empty one if there is none.
    pub fn open_or_create(path: impl AsRef<Path>) -> DataResult<Self> {
        if path.as_ref().exists() {
            Self::open(path)
        } else {
            Self::create(path)
        }
    }

    /// Opens an existing store without locking it; every change fails.
    pub fn open_read_only(path: impl AsRef<Path>) -> DataResult<Self> {
        let csv_path = path.as_ref().to_path_buf();
        let loaded = persist::load(&csv_path)?;
        Ok(Self::from_parts(
            csv_path,
            loaded.classes,
            loaded.members,
            loaded.disk,
            None,
        ))
    }

    fn from_parts(
        csv_path: PathBuf,
        classes: ClassTable,
        members: Members,
        disk: OnDisk,
        lock: Option<StoreLock>,
    ) -> Self {
        Self {
            csv_path,
            classes,
            members,
            history: History::default(),
            disk,
            revision: 0,
            next_change: 1,
            lock,
        }
    }

    // ---- Lookups --------------------------------------------------------------------------

    /// The label CSV.
    pub fn path(&self) -> &Path {
        &self.csv_path
    }

    /// The class sidecar next to the CSV (`<stem>.classes.json`).
    pub fn sidecar_path(&self) -> PathBuf {
        super::sidecar::path_for(&self.csv_path)
    }

    /// Increases with every change, undo and redo of this session.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Classes in creation order.
    pub fn classes(&self) -> impl Iterator<Item = &Class> {
        self.classes.iter().map(|(_, c)| c)
    }

    /// The class called `name` now, or formerly (renamed or merged into it).
    pub fn class(&self, name: &str) -> Option<&Class> {
        self.classes
            .resolve(name)
            .and_then(|id| self.classes.get(id))
    }

    /// The colour of class `name` (current or former name).
    pub fn class_colour(&self, name: &str) -> Option<Colour> {
        self.class(name).map(|c| c.colour)
    }

    fn class_name(&self, id: ClassId) -> &str {
        self.classes.get(id).map_or("", |c| c.name.as_str())
    }

    /// Member `id`'s manual label.
    pub fn manual(&self, id: &str) -> Option<ManualLabel<'_>> {
        let manual = self.members.get(id)?.manual.as_ref()?;
        Some(ManualLabel {
            class: self.class_name(manual.class),
            provenance: &manual.provenance,
        })
    }

    /// Member `id`'s pseudo-label.
    pub fn pseudo(&self, id: &str) -> Option<PseudoLabel<'_>> {
        let pseudo = self.members.get(id)?.pseudo.as_ref()?;
        Some(PseudoLabel {
            class: self.class_name(pseudo.class),
            confidence: pseudo.confidence,
            provenance: &pseudo.provenance,
        })
    }

    /// Members with a manual or pseudo label.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every labelled member, sorted by id.
    pub fn members(
        &self,
    ) -> impl Iterator<Item = (&str, Option<ManualLabel<'_>>, Option<PseudoLabel<'_>>)> {
        self.members
            .keys()
            .map(|id| (id.as_str(), self.manual(id), self.pseudo(id)))
    }

    /// Per class (in order): manual labels, pseudo-labels, and pseudo-labels with confidence
    /// ≥ `threshold`.
    pub fn class_counts(&self, threshold: f32) -> Vec<ClassCounts> {
        let mut counts = vec![[0usize; 3]; self.classes.slot_count()];
        for labels in self.members.values() {
            if let Some(count) = labels
                .manual
                .as_ref()
                .and_then(|m| counts.get_mut(m.class.index()))
            {
                count[0] += 1;
            }
            if let Some(p) = &labels.pseudo
                && let Some(count) = counts.get_mut(p.class.index())
            {
                count[1] += 1;
                count[2] += usize::from(p.confidence >= threshold);
            }
        }
        self.classes
            .iter()
            .map(|(id, class)| {
                let [manual, pseudo, pseudo_confident] = counts[id.index()];
                ClassCounts {
                    name: class.name.clone(),
                    colour: class.colour,
                    manual,
                    pseudo,
                    pseudo_confident,
                }
            })
            .collect()
    }

    /// The training labels now: manual (weight 1), else pseudo with confidence ≥ `threshold`
    /// (weight = confidence; a NaN threshold admits none).
    pub fn snapshot(&self, threshold: f32) -> LabelSnapshot {
        let mut dense = vec![u32::MAX; self.classes.slot_count()];
        let mut classes = Vec::with_capacity(self.classes.len());
        for (id, class) in self.classes.iter() {
            dense[id.index()] = classes.len() as u32;
            classes.push(SnapshotClass {
                name: class.name.clone(),
                colour: class.colour,
            });
        }
        let mut labels = HashMap::with_capacity(self.members.len());
        for (id, member) in &self.members {
            let (class, weight, manual) = match (&member.manual, &member.pseudo) {
                (Some(m), _) => (m.class, 1.0, true),
                (None, Some(p)) if p.confidence >= threshold => (p.class, p.confidence, false),
                _ => continue,
            };
            // Members only ever point at live classes; `get` just keeps this panic-free.
            if let Some(&class) = dense.get(class.index()).filter(|&&c| c != u32::MAX) {
                labels.insert(
                    id.clone(),
                    TrainingLabel {
                        class,
                        weight,
                        manual,
                    },
                );
            }
        }
        LabelSnapshot::new(self.revision, threshold, classes, labels)
    }

    // ---- Member changes -------------------------------------------------------------------

    /// Sets the manual labels of an ensemble's labels file (or sample ground truth): member
    /// `i` has id `id_of(i)`. Adds the file's classes (in its order) that are not classes yet;
    /// replaces existing manual labels of the members it labels.
    pub fn import_manual(
        &mut self,
        labels: &ClassLabels,
        id_of: impl Fn(usize) -> String,
        provenance: Provenance,
    ) -> DataResult<Option<ChangeId>> {
        let provenance = Arc::new(provenance.normalised());
        let mut classes = self.classes.clone();
        let mut class_ids = Vec::with_capacity(labels.classes.len());
        for name in &labels.classes {
            check_name(name).map_err(|reason| self.error(reason))?;
            let id = match classes.find(name) {
                Some(id) => id,
                None => classes.add(name),
            };
            class_ids.push(id);
        }
        let mut seen = HashSet::new();
        let mut edits = Vec::new();
        for (member, class) in labels.per_member.iter().enumerate() {
            let Some(class) = class else { continue };
            let class = *class_ids.get(*class as usize).ok_or_else(|| {
                self.error(format!(
                    "member {member} has class index {class}, but there are only {} classes",
                    labels.classes.len()
                ))
            })?;
            let id = id_of(member);
            if id.is_empty() {
                return Err(self.error(format!("member {member} has an empty id")));
            }
            if !seen.insert(id.clone()) {
                return Err(self.error(format!("member id '{id}' occurs twice")));
            }
            self.edit_member(&mut edits, id, |labels| {
                labels.manual = Some(Manual {
                    class,
                    provenance: provenance.clone(),
                });
            });
        }
        let description = format!("import {} labels", edits.len());
        self.commit(description, edits, Some(classes))
    }

    /// Labels `ids` by hand as `class`, creating the class if there is none of that name.
    pub fn set_manual(
        &mut self,
        ids: &[impl AsRef<str>],
        class: &str,
        provenance: Provenance,
    ) -> DataResult<Option<ChangeId>> {
        check_name(class).map_err(|reason| self.error(reason))?;
        check_ids(ids).map_err(|reason| self.error(reason))?;
        let provenance = Arc::new(provenance.normalised());
        let mut classes = self.classes.clone();
        let (class_id, new_class) = match classes.find(class) {
            Some(id) => (id, false),
            None => (classes.add(class), true),
        };
        let mut edits = Vec::new();
        let mut seen = HashSet::new();
        for id in ids.iter().map(AsRef::as_ref).filter(|id| seen.insert(*id)) {
            self.edit_member(&mut edits, id.to_string(), |labels| {
                labels.manual = Some(Manual {
                    class: class_id,
                    provenance: provenance.clone(),
                });
            });
        }
        let description = format!("label {} members as '{class}'", edits.len());
        self.commit(description, edits, new_class.then_some(classes))
    }

    /// Removes the manual labels of `ids` (their pseudo-labels stay).
    pub fn clear_manual(&mut self, ids: &[impl AsRef<str>]) -> DataResult<Option<ChangeId>> {
        check_ids(ids).map_err(|reason| self.error(reason))?;
        let mut edits = Vec::new();
        let mut seen = HashSet::new();
        for id in ids.iter().map(AsRef::as_ref).filter(|id| seen.insert(*id)) {
            if self.members.contains_key(id) {
                self.edit_member(&mut edits, id.to_string(), |labels| labels.manual = None);
            }
        }
        let description = format!("clear the labels of {} members", edits.len());
        self.commit(description, edits, None)
    }

    /// Replaces all pseudo-labels with one classifier run's proposals `(id, class,
    /// confidence)`: members not listed lose their pseudo-label. Classes may be given by a
    /// current or former name (the run may have started before a rename); an unknown class,
    /// a duplicate id or a confidence outside 0..=1 is an error.
    pub fn set_pseudo<S, C>(
        &mut self,
        entries: impl IntoIterator<Item = (S, C, f32)>,
        provenance: Provenance,
    ) -> DataResult<Option<ChangeId>>
    where
        S: AsRef<str>,
        C: AsRef<str>,
    {
        let provenance = Arc::new(provenance.normalised());
        let resolver = self.classes.resolver();
        let mut proposed: BTreeMap<String, Pseudo> = BTreeMap::new();
        for (id, class, confidence) in entries {
            let (id, class) = (id.as_ref(), class.as_ref());
            if id.is_empty() {
                return Err(self.error("a pseudo-label has an empty member id"));
            }
            let class_id = *resolver.get(class).ok_or_else(|| {
                self.error(format!("pseudo-label for '{id}': unknown class '{class}'"))
            })?;
            if !(0.0..=1.0).contains(&confidence) {
                return Err(self.error(format!(
                    "pseudo-label for '{id}': confidence {confidence} is not in 0..1"
                )));
            }
            let pseudo = Pseudo {
                class: class_id,
                confidence: confidence + 0.0, // -0 → 0
                provenance: provenance.clone(),
            };
            if proposed.insert(id.to_string(), pseudo).is_some() {
                return Err(self.error(format!("pseudo-labels list member '{id}' twice")));
            }
        }
        let count = proposed.len();
        let mut edits = Vec::new();
        let dropped: Vec<String> = self
            .members
            .iter()
            .filter(|(id, labels)| labels.pseudo.is_some() && !proposed.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in dropped {
            self.edit_member(&mut edits, id, |labels| labels.pseudo = None);
        }
        for (id, pseudo) in proposed {
            self.edit_member(&mut edits, id, |labels| labels.pseudo = Some(pseudo));
        }
        let description = match count {
            0 => "clear the pseudo-labels".to_string(),
            _ => format!("set {count} pseudo-labels"),
        };
        self.commit(description, edits, None)
    }

    /// Removes every pseudo-label.
    pub fn clear_pseudo(&mut self) -> DataResult<Option<ChangeId>> {
        // With no entries the provenance is never stored.
        let unused = Provenance::now(super::Source::Other(String::new()));
        self.set_pseudo(std::iter::empty::<(&str, &str, f32)>(), unused)
    }

    /// Records the edit of member `id` by `change`, if it changes anything.
    fn edit_member(
        &self,
        edits: &mut Vec<MemberEdit>,
        id: String,
        change: impl FnOnce(&mut MemberLabels),
    ) {
        let before = self.members.get(&id).cloned().unwrap_or_default();
        let mut after = before.clone();
        change(&mut after);
        if after != before {
            edits.push(MemberEdit { id, before, after });
        }
    }

    // ---- Class changes --------------------------------------------------------------------

    /// Adds an empty class with the next free palette colour.
    pub fn add_class(&mut self, name: &str) -> DataResult<Option<ChangeId>> {
        check_name(name).map_err(|reason| self.error(reason))?;
        if self.classes.find(name).is_some() {
            return Err(self.error(format!("class '{name}' already exists")));
        }
        let mut classes = self.classes.clone();
        classes.add(name);
        self.commit(format!("add class '{name}'"), Vec::new(), Some(classes))
    }

    /// Renames a class; it keeps its colour and its labels, and `old` stays a former name.
    pub fn rename_class(&mut self, old: &str, new: &str) -> DataResult<Option<ChangeId>> {
        let id = self.find_class(old)?;
        check_name(new).map_err(|reason| self.error(reason))?;
        if old == new {
            return Ok(None);
        }
        if self.classes.find(new).is_some() {
            return Err(self.error(format!(
                "cannot rename '{old}' to '{new}': that class exists (merge them instead)"
            )));
        }
        let mut classes = self.classes.clone();
        classes.rename(id, new);
        self.commit(
            format!("rename class '{old}' to '{new}'"),
            Vec::new(),
            Some(classes),
        )
    }

    /// Merges the classes `from` into `into`: their manual and pseudo labels become `into`
    /// (keeping their provenance), the classes disappear, and their names become former
    /// names of `into`, which keeps its colour.
    pub fn merge_classes(&mut self, from: &[&str], into: &str) -> DataResult<Option<ChangeId>> {
        let into_id = self.find_class(into)?;
        let mut from_ids = Vec::new();
        for &name in from {
            let id = self.find_class(name)?;
            if id == into_id {
                return Err(self.error(format!("cannot merge class '{into}' into itself")));
            }
            if !from_ids.contains(&id) {
                from_ids.push(id);
            }
        }
        if from_ids.is_empty() {
            return Err(self.error("no classes to merge"));
        }
        let mut edits = Vec::new();
        let affected: Vec<String> = self
            .members
            .iter()
            .filter(|(_, labels)| {
                labels
                    .manual
                    .as_ref()
                    .is_some_and(|m| from_ids.contains(&m.class))
                    || labels
                        .pseudo
                        .as_ref()
                        .is_some_and(|p| from_ids.contains(&p.class))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in affected {
            self.edit_member(&mut edits, id, |labels| {
                if let Some(m) = labels
                    .manual
                    .as_mut()
                    .filter(|m| from_ids.contains(&m.class))
                {
                    m.class = into_id;
                }
                if let Some(p) = labels
                    .pseudo
                    .as_mut()
                    .filter(|p| from_ids.contains(&p.class))
                {
                    p.class = into_id;
                }
            });
        }
        let mut classes = self.classes.clone();
        classes.merge(&from_ids, into_id);
        let description = format!("merge {} into '{into}'", quoted_list(from));
        self.commit(description, edits, Some(classes))
    }

    /// Changes a class's colour.
    pub fn set_class_colour(&mut self, name: &str, colour: Colour) -> DataResult<Option<ChangeId>> {
        let id = self.find_class(name)?;
        let mut classes = self.classes.clone();
        classes.set_colour(id, colour);
        self.commit(
            format!("colour class '{name}' {colour}"),
            Vec::new(),
            Some(classes),
        )
    }

    fn find_class(&self, name: &str) -> DataResult<ClassId> {
        self.classes
            .find(name)
            .ok_or_else(|| self.error(format!("no class named '{name}'")))
    }

    // ---- Undo / redo ----------------------------------------------------------------------

    pub fn can_undo(&self) -> bool {
        self.history.next_undo().is_some()
    }

    pub fn can_redo(&self) -> bool {
        self.history.next_redo().is_some()
    }

    /// What [`undo`](Self::undo) would undo, e.g. "label 12 members as 'vortex'".
    pub fn undo_description(&self) -> Option<&str> {
        self.history.next_undo().map(|c| c.description.as_str())
    }

    /// What [`redo`](Self::redo) would redo.
    pub fn redo_description(&self) -> Option<&str> {
        self.history.next_redo().map(|c| c.description.as_str())
    }

    /// Undoes the latest change of this session (and saves). `Ok(false)`: nothing to undo.
    pub fn undo(&mut self) -> DataResult<bool> {
        self.check_writable()?;
        let Some(change) = self.history.pop_undo() else {
            return Ok(false);
        };
        if let Err(e) = self.apply_and_save(&change, Direction::Backward) {
            self.history.push_undo(change);
            return Err(e);
        }
        self.history.push_redo(change);
        Ok(true)
    }

    /// Redoes the latest undone change (and saves). `Ok(false)`: nothing to redo.
    pub fn redo(&mut self) -> DataResult<bool> {
        self.check_writable()?;
        let Some(change) = self.history.pop_redo() else {
            return Ok(false);
        };
        if let Err(e) = self.apply_and_save(&change, Direction::Forward) {
            self.history.push_redo(change);
            return Err(e);
        }
        self.history.push_undo(change);
        Ok(true)
    }

    // ---- Committing -----------------------------------------------------------------------

    fn commit(
        &mut self,
        description: String,
        members: Vec<MemberEdit>,
        classes: Option<ClassTable>,
    ) -> DataResult<Option<ChangeId>> {
        self.check_writable()?;
        let change = Change {
            id: ChangeId(self.next_change),
            description,
            members,
            classes: classes.map(|after| Box::new((self.classes.clone(), after))),
        };
        if change.is_empty() {
            return Ok(None);
        }
        self.apply_and_save(&change, Direction::Forward)?;
        self.next_change += 1;
        let id = change.id;
        self.history.record(change);
        Ok(Some(id))
    }

    /// Applies `change` and saves; on a failed save, reverts it so memory matches disk.
    fn apply_and_save(&mut self, change: &Change, direction: Direction) -> DataResult<()> {
        let previous_classes = change.classes.as_ref().map(|_| self.classes.clone());
        change.apply(direction, &mut self.members, &mut self.classes);
        let previous = previous_classes
            .as_ref()
            .filter(|previous| **previous != self.classes);
        match persist::save(
            &self.csv_path,
            &self.classes,
            &self.members,
            previous,
            &self.disk,
        ) {
            Ok(disk) => {
                self.disk = disk;
                self.revision += 1;
                Ok(())
            }
            Err(e) => {
                change.apply(direction.reversed(), &mut self.members, &mut self.classes);
                // The sidecar may have been replaced before the CSV failed.
                self.disk.sidecar_current = false;
                Err(e)
            }
        }
    }

    fn check_writable(&self) -> DataResult<()> {
        match self.lock {
            Some(_) => Ok(()),
            None => Err(self.error("opened read-only")),
        }
    }

    fn error(&self, reason: impl Into<String>) -> DataError {
        DataError::new(&self.csv_path, reason)
    }
}

fn check_ids(ids: &[impl AsRef<str>]) -> Result<(), String> {
    if ids.is_empty() {
        return Err("no members given".into());
    }
    if ids.iter().any(|id| id.as_ref().is_empty()) {
        return Err("empty member id".into());
    }
    Ok(())
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
