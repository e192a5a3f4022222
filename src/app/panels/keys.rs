//! The keyboard: 1–9 and 0 relabel the selection as that class, Ctrl+Z / Ctrl+Shift+Z (or
//! Ctrl+Y) undo and redo, Esc clears the selection, N / P walk the suggestions, F5 toggles
//! the presentation view (Esc also leaves it). Ignored while a text field has focus.

use crate::app::commands::{AppCommand, CommandQueue};
use crate::app::label_keeper::LabelEdit;
use crate::app::state::AppState;

const CLASS_KEYS: [egui::Key; 10] = [
    egui::Key::Num1,
    egui::Key::Num2,
    egui::Key::Num3,
    egui::Key::Num4,
    egui::Key::Num5,
    egui::Key::Num6,
    egui::Key::Num7,
    egui::Key::Num8,
    egui::Key::Num9,
    egui::Key::Num0,
];

pub fn handle(ctx: &egui::Context, state: &AppState, queue: &mut CommandQueue) {
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    let (toggle, leave) = ctx.input(|i| {
        (
            i.key_pressed(egui::Key::F5),
            i.key_pressed(egui::Key::Escape),
        )
    });
    if toggle || (leave && state.presentation) {
        queue.push(AppCommand::SetPresentation(!state.presentation && toggle));
    }
    if state.presentation {
        // The projector view only shows: no relabelling from it.
        return;
    }
    let Some(labels) = ws.labels.as_ref() else {
        return;
    };
    let (next, previous) = ctx.input(|i| {
        let plain = !i.modifiers.command && !i.modifiers.alt;
        (
            plain && i.key_pressed(egui::Key::N),
            plain && i.key_pressed(egui::Key::P),
        )
    });
    if ws.suggestions.is_some() {
        if next {
            queue.push(AppCommand::StepSuggestion(1));
        }
        if previous {
            queue.push(AppCommand::StepSuggestion(-1));
        }
    }
    let (class_key, undo, redo, escape) = ctx.input(|i| {
        let command = i.modifiers.command;
        (
            CLASS_KEYS
                .iter()
                .position(|&k| i.key_pressed(k) && !command),
            command && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
            command
                && ((i.modifiers.shift && i.key_pressed(egui::Key::Z))
                    || i.key_pressed(egui::Key::Y)),
            i.key_pressed(egui::Key::Escape),
        )
    });
    if let Some(index) = class_key
        && let Some(class) = labels.classes.get(index)
        && !ws.map.selection.is_empty()
    {
        queue.push(AppCommand::RelabelSelection(class.name.clone()));
    }
    if undo {
        queue.push(AppCommand::Label(LabelEdit::Undo));
    }
    if redo {
        queue.push(AppCommand::Label(LabelEdit::Redo));
    }
    if escape {
        queue.push(AppCommand::ClearSelection);
    }
}

/// The key that relabels the selection as class `i` (1–9, then 0).
pub fn key_hint(i: usize) -> String {
    match i {
        0..=8 => format!("[{}]", i + 1),
        9 => "[0]".into(),
        _ => String::new(),
    }
}
