//! [`SenseApp`]: the window. Each frame has three parts — the logic step moves worker
//! events into the state ([`super::logic`]), the views draw the state and queue
//! [`AppCommand`](super::commands::AppCommand)s, and the queued commands run after the views
//! ([`super::commands`]). Nothing here waits, and nothing repaints on a timer: workers wake
//! the window when they have news.

use std::time::{Duration, Instant};

use super::AppOptions;
use super::commands::{CommandQueue, execute_all};
use super::jobs::{JobKind, JobOutput};
use super::panels;
use super::probe::DrawnRegion;
use super::scatter::ScatterBackend;
use super::session::Session;
use super::state::{AppState, BottomTab};
use super::worker::Waker;

/// How often the session file is saved while the app is in use.
const AUTOSAVE_EVERY: Duration = Duration::from_secs(30);

pub struct SenseApp {
    state: AppState,
    queue: CommandQueue,
    quit_after_first_map: bool,
    last_autosave: Instant,
    started: Instant,
}

impl SenseApp {
    pub fn new(cc: &eframe::CreationContext<'_>, session: Session, options: &AppOptions) -> Self {
        let scatter_backend = match cc.wgpu_render_state.as_ref() {
            Some(render_state) => {
                super::scatter::register_gpu(render_state);
                ScatterBackend::Gpu
            }
            None => ScatterBackend::Cpu,
        };
        let waker = Waker::for_context(&cc.egui_ctx);
        let mut state = AppState::new(session, scatter_backend, waker);
        start_up(&mut state);
        Self {
            state,
            queue: CommandQueue::default(),
            quit_after_first_map: options.quit_after_first_map,
            last_autosave: Instant::now(),
            started: Instant::now(),
        }
    }

    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    pub(crate) fn state_mut(&mut self) -> &mut AppState {
        &mut self.state
    }

    fn autosave(&mut self) {
        if self.last_autosave.elapsed() >= AUTOSAVE_EVERY {
            self.last_autosave = Instant::now();
            self.state.save_session();
        }
    }

    fn quit_once_the_first_map_is_shown(&mut self, ctx: &egui::Context) {
        if self.quit_after_first_map && self.is_settled() {
            eprintln!(
                "first map: {} members, {:.1} s after start",
                self.map_points(),
                self.started.elapsed().as_secs_f32()
            );
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            self.quit_after_first_map = false;
        }
    }
}

/// Opens the session's dataset and asks which backend training would get, both on jobs.
pub(super) fn start_up(state: &mut AppState) {
    let session = state.session.clone();
    let opening = state.jobs.start(JobKind::Open, move |_| {
        Ok(JobOutput::Opened(Box::new(session.open_data()?)))
    });
    let choice = state.session.file.train_config.backend;
    let probing = state.jobs.start(JobKind::BackendProbe, move |_| {
        Ok(JobOutput::Backend(
            crate::train::select_backend(choice).name,
        ))
    });
    for e in [opening, probing].into_iter().filter_map(Result::err) {
        state.notifications.error(format!("Cannot start: {e}"));
    }
}

/// The bottom panel's height before the user resizes it.
const BOTTOM_PANEL_DEFAULT_PX: f32 = 340.0;

impl eframe::App for SenseApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        super::logic::step(&mut self.state, ctx);
        self.autosave();
        self.quit_once_the_first_map_is_shown(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let (state, queue) = (&mut self.state, &mut self.queue);
        panels::keys::handle(ui.ctx(), state, queue);
        if !state.presentation {
            egui::Panel::top("top-bar").show(ui, |ui| panels::top_bar::show(ui, state, queue));
        }
        if state.ws.is_none() {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.centered_and_justified(|ui| {
                    if state.jobs.is_running(JobKind::Open) {
                        ui.spinner();
                        ui.label(format!("Opening {}…", state.session.file.dataset));
                    } else {
                        ui.label("The dataset could not be opened (see the message).");
                    }
                });
            });
        } else if state.presentation {
            egui::CentralPanel::default()
                .show(ui, |ui| panels::presentation::show(ui, state, queue));
        } else {
            egui::Panel::left("left-panel")
                .resizable(true)
                .default_size(330.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        panels::dataset::show(ui, state, queue);
                        ui.separator();
                        panels::training::show(ui, state, queue);
                    });
                });
            // "-v2": widths saved before the panel kept its width were content-sized (narrow).
            egui::Panel::right("inspector-v2")
                .resizable(true)
                .default_size(340.0)
                .show(ui, |ui| {
                    // Keep the panel's width: egui shrinks a panel to its contents otherwise,
                    // by how many frames its wrapped text has had (a layout that varied).
                    ui.set_min_width(ui.available_width());
                    panels::inspector::show(ui, state, queue)
                });
            // Tall enough for a 200 px loss plot at 1440 x 900; the user's size persists
            // (egui memory, saved by eframe).
            // "-v2": sizes saved before the panel filled its height were content-sized (tiny).
            let bottom = egui::Panel::bottom("bottom-panel-v2")
                .resizable(true)
                .default_size(BOTTOM_PANEL_DEFAULT_PX)
                .min_size(120.0)
                .show(ui, |ui| {
                    // Fill the panel: egui sizes a panel to its contents otherwise, and the
                    // plots take the height they are given.
                    ui.set_min_height(ui.available_height());
                    ui.horizontal(|ui| {
                        let tab = &mut state.bottom_tab;
                        ui.selectable_value(tab, BottomTab::LossCurves, "Loss curves");
                        ui.selectable_value(tab, BottomTab::Reconstructions, "Reconstructions");
                        ui.selectable_value(tab, BottomTab::Interpolation, "Interpolation");
                    });
                    ui.separator();
                    match state.bottom_tab {
                        BottomTab::LossCurves => panels::loss_curves::show(ui, state),
                        BottomTab::Reconstructions => panels::reconstructions::show(ui, state),
                        BottomTab::Interpolation => panels::interpolation::show(ui, state, queue),
                    }
                });
            DrawnRegion::BottomPanel.record(ui.ctx(), bottom.response.rect);
            egui::CentralPanel::default().show(ui, |ui| panels::latent_map::show(ui, state, queue));
        }
        state.notifications.show(ui.ctx());
        // The views' commands run now, after the frame; what they change shows next frame.
        if !queue.is_empty() {
            execute_all(state, queue);
            ui.ctx().request_repaint();
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.state.save_session();
        if let Some(ws) = self.state.ws.as_mut() {
            if let Some(run) = ws.training.as_mut() {
                run.stop();
            }
            ws.keeper.flush(Duration::from_secs(5));
        }
    }
}
