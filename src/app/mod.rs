//! The desktop app: live training, the live latent map with brushing, the inspector and the
//! relabel → pseudo-label loop. It drives the training engine, the pseudo-labeller and the
//! projection through their worker APIs and owns none of what they do.
//!
//! ```text
//! sense_app.rs      SenseApp: eframe::App, the layout, the per-frame event pump
//! session.rs        a session directory (dataset, label store, run, layout) and autosave
//! label_keeper.rs   the label-store thread: edits saved atomically off the UI thread
//! jobs/             training, projection, classifier, one-shot background work
//! map.rs            the map's members, layout, colouring and selection
//! panels/           dataset, training, loss curves, reconstructions, latent map,
//!                   inspector, interpolation
//! scatter/          the scatter widget: WGSL instanced points or a CPU splat, brushing
//! images.rs         member pixels → egui images (thumbnails, error maps)
//! notifications.rs  dismissible messages
//! ```

mod images;
mod jobs;
mod label_keeper;
mod map;
mod notifications;
mod panels;
pub mod scatter;
mod sense_app;
mod session;

use std::path::PathBuf;

pub use sense_app::{AppProbe, SenseApp};
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
    let session = Session::open_or_create(options.open.as_deref(), options.session_dir.clone())?;
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
