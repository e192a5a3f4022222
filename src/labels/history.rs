//! Undo / redo: every change records the before and after of what it touched.
//!
//! The history lives in memory for the session only (the files hold the current state, not
//! the history). It keeps at most [`MAX_CHANGES`] changes and about [`MAX_MEMBER_EDITS`]
//! member edits in total (a classifier run over 135,000 members is one change of 135,000
//! edits); the oldest changes are forgotten first.

use super::classes::ClassTable;
use super::members::{MemberLabels, Members, put};
use std::collections::VecDeque;

pub const MAX_CHANGES: usize = 500;
pub const MAX_MEMBER_EDITS: usize = 2_000_000;

/// Identifies an acknowledged change (increasing within a session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangeId(pub u64);

/// One member's labels before and after a change.
#[derive(Clone, Debug)]
pub(crate) struct MemberEdit {
    pub id: String,
    pub before: MemberLabels,
    pub after: MemberLabels,
}

/// One undoable step.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub id: ChangeId,
    /// For an "Undo …" menu entry, e.g. "relabel 120 members as 'vortex'".
    pub description: String,
    pub members: Vec<MemberEdit>,
    /// The whole class table before and after, when the change touched it (tables are small).
    pub classes: Option<Box<(ClassTable, ClassTable)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Forward,
    Backward,
}

impl Change {
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.classes.as_ref().is_none_or(|c| c.0 == c.1)
    }

    pub(crate) fn apply(
        &self,
        direction: Direction,
        members: &mut Members,
        classes: &mut ClassTable,
    ) {
        for edit in &self.members {
            let labels = match direction {
                Direction::Forward => &edit.after,
                Direction::Backward => &edit.before,
            };
            put(members, &edit.id, labels);
        }
        if let Some(tables) = &self.classes {
            let (before, after) = &**tables;
            classes.clone_from(match direction {
                Direction::Forward => after,
                Direction::Backward => before,
            });
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct History {
    undo: VecDeque<Change>,
    redo: Vec<Change>,
    undo_member_edits: usize,
}

impl History {
    /// Records a new change; it invalidates whatever could be redone.
    pub(crate) fn record(&mut self, change: Change) {
        self.redo.clear();
        self.push_undo(change);
    }

    pub(crate) fn push_undo(&mut self, change: Change) {
        self.undo_member_edits += change.members.len();
        self.undo.push_back(change);
        while self.undo.len() > 1
            && (self.undo.len() > MAX_CHANGES || self.undo_member_edits > MAX_MEMBER_EDITS)
        {
            if let Some(oldest) = self.undo.pop_front() {
                self.undo_member_edits -= oldest.members.len();
            }
        }
    }

    pub(crate) fn pop_undo(&mut self) -> Option<Change> {
        let change = self.undo.pop_back()?;
        self.undo_member_edits -= change.members.len();
        Some(change)
    }

    pub(crate) fn push_redo(&mut self, change: Change) {
        self.redo.push(change);
    }

    pub(crate) fn pop_redo(&mut self) -> Option<Change> {
        self.redo.pop()
    }

    pub(crate) fn next_undo(&self) -> Option<&Change> {
        self.undo.back()
    }

    pub(crate) fn next_redo(&self) -> Option<&Change> {
        self.redo.last()
    }
}

impl Direction {
    pub(crate) fn reversed(self) -> Self {
        match self {
            Direction::Forward => Direction::Backward,
            Direction::Backward => Direction::Forward,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: u64, edits: usize) -> Change {
        Change {
            id: ChangeId(id),
            description: format!("change {id}"),
            members: (0..edits)
                .map(|i| MemberEdit {
                    id: format!("m{i}"),
                    before: MemberLabels::default(),
                    after: MemberLabels::default(),
                })
                .collect(),
            classes: None,
        }
    }

    #[test]
    fn history_forgets_the_oldest_changes_beyond_its_limits() {
        let mut history = History::default();
        for id in 0..MAX_CHANGES as u64 + 10 {
            history.record(change(id, 1));
        }
        let mut undone = 0;
        while let Some(c) = history.pop_undo() {
            history.push_redo(c);
            undone += 1;
        }
        assert_eq!(undone, MAX_CHANGES);
        assert_eq!(history.next_redo().unwrap().id, ChangeId(10));

        // Two huge changes: only the newest fits, and it is kept even though it alone
        // exceeds the budget.
        history.record(change(1000, MAX_MEMBER_EDITS / 2 + 1));
        assert!(history.next_redo().is_none(), "a new change clears redo");
        history.record(change(1001, MAX_MEMBER_EDITS + 1));
        assert_eq!(history.pop_undo().unwrap().id, ChangeId(1001));
        assert!(history.pop_undo().is_none());
    }
}
