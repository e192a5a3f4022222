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
