//! The desktop app: live training, the live latent map with brushing, the inspector and the
//! relabel → pseudo-label loop. It drives the training engine, the pseudo-labeller and the
//! projection through their worker APIs and owns none of what they do.
//!
//! Data flows one way round (ARCHITECTURE.md draws it): view → command → worker → event →
//! state → view.
//!
//! ```text
//! sense_app.rs      SenseApp: eframe::App — logic step, views, then the frame's commands
//! state.rs          AppState: session, workspace, jobs, forms, the map widget
//! workspace.rs      the open dataset: keeper, trainer, pseudo-labeller, projection, map
//! panels/           views: draw the state, push commands (no threads, no workers)
//! commands.rs       AppCommand and the queue; executes commands after the frame
//! logic.rs          the per-frame step: worker events and finished jobs into the state
//! worker.rs         the worker kit: named thread, commands in, events out, cancel,
//!                   progress, panic → error, wakes the UI
//! jobs/             the trainer, projection and pseudo-labeller as the app runs them, and
//!                   the table of one-shot jobs
//! label_keeper.rs   the label store's one owner: every edit saved atomically off the UI
//! session.rs        a session directory (dataset, label store, run, layout)
//! map.rs            the map's members, layout, colouring and selection
//! scatter/          the scatter widget: WGSL instanced points or a CPU splat, brushing
//! images.rs         member pixels → egui images (thumbnails, reconstructions, strips)
//! notifications.rs  dismissible messages
//! probe.rs          read-only summaries for tests and the smoke run
//! error.rs          AppError
//! ```

mod commands;
mod error;
mod images;
mod jobs;
mod label_keeper;
mod logic;
mod map;
mod notifications;
mod panels;
mod probe;
pub mod scatter;
mod sense_app;
mod session;
mod state;
mod worker;
mod workspace;

use std::path::{Path, PathBuf};

pub use error::AppError;
pub use probe::{AppProbe, DrawnRegion};
pub use sense_app::SenseApp;
pub use session::{Session, default_sessions_dir};

/// Which egui renderer draws the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RendererChoice {
    /// wgpu when a hardware GPU adapter exists, else glow (egui's wgpu renderer on software
    /// Vulkan costs ~5× the CPU per frame of glow).
    #[default]
    Auto,
    Wgpu,
    Glow,
}

/// What the app opens and how.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// A dataset spec (`sample:channels`, a folder, a file) or a session directory; the
    /// `channels` sample when absent.
    pub open: Option<String>,
    /// Where the session lives (default: one directory per dataset under
    /// [`default_sessions_dir`]).
    pub session_dir: Option<PathBuf>,
    /// `open` is a run directory another process trains: follow it live.
    pub follow: bool,
    pub renderer: RendererChoice,
    /// Quit as soon as the first latent map is on screen (CI's smoke test of the binary).
    pub quit_after_first_map: bool,
}

/// The dataset the app opens without arguments.
pub const DEFAULT_DATASET: &str = "sample:channels";

/// Opens the window and runs until it closes.
pub fn run(options: AppOptions) -> anyhow::Result<()> {
    let renderer = match options.renderer {
        RendererChoice::Wgpu => eframe::Renderer::Wgpu,
        RendererChoice::Glow => eframe::Renderer::Glow,
        RendererChoice::Auto => match has_hardware_gpu() {
            true => eframe::Renderer::Wgpu,
            false => eframe::Renderer::Glow,
        },
    };
    let native = eframe::NativeOptions {
        renderer,
        viewport: egui::ViewportBuilder::default()
            .with_title("SENSE Explorer")
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([900.0, 600.0]),
        ..Default::default()
    };
    let session = match (&options.open, options.follow) {
        (Some(run_dir), true) => Session::follow(Path::new(run_dir), options.session_dir.clone())?,
        _ => Session::open_or_create(options.open.as_deref(), options.session_dir.clone())?,
    };
    eframe::run_native(
        "SENSE Explorer",
        native,
        Box::new(move |cc| Ok(Box::new(SenseApp::new(cc, session, &options)))),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}

/// Whether wgpu sees a hardware adapter (software rasterisers do not count).
fn has_hardware_gpu() -> bool {
    crate::train::backend::hardware_adapters()
        .map(|adapters| adapters.iter().any(|a| a.is_hardware()))
        .unwrap_or(false)
}
