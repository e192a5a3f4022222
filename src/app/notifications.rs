//! Dismissible messages over the map: errors stay until dismissed, information
//! fades after a while. The app keeps running whatever they say.

use std::time::{Duration, Instant};

const INFO_LIFETIME: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// What a message is about, when a later event can make it untrue: a newer message on the same
/// topic replaces it, and the event that ends it takes it down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// The trainer's health: it failed, is gone, or may be hung.
    Trainer,
}

#[derive(Debug, Clone)]
pub struct Notification {
    pub level: Level,
    pub text: String,
    pub at: Instant,
    pub topic: Option<Topic>,
}

#[derive(Debug, Default)]
pub struct Notifications {
    items: Vec<Notification>,
}

impl Notifications {
    pub fn info(&mut self, text: impl Into<String>) {
        self.push(Level::Info, text.into());
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.push(Level::Error, text.into());
    }

    /// Says `text` about `topic`, in place of what was said about it before.
    pub fn set(&mut self, topic: Topic, level: Level, text: impl Into<String>) {
        self.clear(topic);
        self.items.push(Notification {
            level,
            text: text.into(),
            at: Instant::now(),
            topic: Some(topic),
        });
    }

    /// Takes down what was said about `topic` (it is no longer true).
    pub fn clear(&mut self, topic: Topic) {
        self.items.retain(|n| n.topic != Some(topic));
    }

    fn push(&mut self, level: Level, text: String) {
        // The same message twice in a row (e.g. a repeated failure) shows once.
        if let Some(last) = self.items.last_mut()
            && last.text == text
        {
            last.at = Instant::now();
            return;
        }
        self.items.push(Notification {
            level,
            text,
            at: Instant::now(),
            topic: None,
        });
    }

    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.items
            .iter()
            .filter(|n| n.level == Level::Error)
            .map(|n| n.text.as_str())
    }

    /// Every message still kept, errors and information alike.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|n| n.text.as_str())
    }

    /// Draws the messages above the bottom panel, over the map, each with a dismiss button.
    pub fn show(&mut self, ctx: &egui::Context) {
        self.items
            .retain(|n| n.level == Level::Error || n.at.elapsed() < INFO_LIFETIME);
        if self.items.is_empty() {
            return;
        }
        let mut dismissed = None;
        egui::Area::new(egui::Id::unique("notifications"))
            .anchor(egui::Align2::CENTER_BOTTOM, [0.0, -290.0])
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                ui.set_max_width(420.0);
                for (i, n) in self.items.iter().enumerate() {
                    let fill = match n.level {
                        Level::Error => egui::Color32::from_rgb(110, 30, 30),
                        Level::Info => egui::Color32::from_rgb(35, 60, 90),
                    };
                    egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                        ui.horizontal(|ui| {
                            ui.label(egui::RichText::new(&n.text).color(egui::Color32::WHITE));
                            if ui.small_button("x").on_hover_text("Dismiss").clicked() {
                                dismissed = Some(i);
                            }
                        });
                    });
                }
            });
        if let Some(i) = dismissed {
            self.items.remove(i);
        }
        if self.items.iter().any(|n| n.level == Level::Info) {
            ctx.request_repaint_after(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_on_a_topic_replaces_the_last_and_goes_when_cleared() {
        let mut notifications = Notifications::default();
        notifications.error("Cannot export: disk full");
        notifications.set(Topic::Trainer, Level::Error, "the trainer may be hung");
        notifications.set(Topic::Trainer, Level::Error, "Training failed: killed");
        assert_eq!(
            notifications.texts().collect::<Vec<_>>(),
            ["Cannot export: disk full", "Training failed: killed"]
        );
        notifications.clear(Topic::Trainer);
        assert_eq!(
            notifications.texts().collect::<Vec<_>>(),
            ["Cannot export: disk full"],
            "the other message stays"
        );
    }
}
