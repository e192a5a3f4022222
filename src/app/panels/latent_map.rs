//! The latent map: the live UMAP scatter with its toolbar (brush mode, colouring, k-means /
//! GMM, reconstruction errors, exports), hover tooltips with thumbnails, the legend and the
//! live metrics of the hand-labelled members.

use ndarray::Array2;

use crate::analysis::clustering::{ClusterMethod, ClusterOptions, cluster};
use crate::app::jobs::background::{Job, take_finished};
use crate::app::map::{ColourMode, Legend};
use crate::app::notifications::Notifications;
use crate::app::sense_app::Workspace;
use crate::app::{SenseApp, panels};
use crate::train::{CheckpointChoice, TrainedModel};

/// The map toolbar's settings and the jobs it started.
pub struct MapTools {
    pub cluster_method: ClusterMethod,
    pub cluster_k: usize,
    cluster_job: Option<Job<(Vec<usize>, Vec<usize>)>>,
    error_job: Option<Job<(Vec<usize>, Vec<f32>)>>,
    pub export_job: Option<Job<String>>,
}

impl Default for MapTools {
    fn default() -> Self {
        Self {
            cluster_method: ClusterMethod::Kmeans,
            cluster_k: 7,
            cluster_job: None,
            error_job: None,
            export_job: None,
        }
    }
}

impl MapTools {
    pub fn busy(&self) -> bool {
        self.cluster_job.is_some() || self.error_job.is_some() || self.export_job.is_some()
    }
}

/// Results of the toolbar's jobs, if the map still shows the same members.
pub fn pump_jobs(ws: &mut Workspace, notifications: &mut Notifications) {
    if let Some(result) = take_finished(&mut ws.map_tools.cluster_job) {
        match result {
            Ok((members, clusters)) if members == ws.map.members => {
                ws.map.clusters = Some(clusters);
                ws.map.colour_mode = ColourMode::Cluster;
                ws.colours_dirty = true;
            }
            Ok(_) => notifications.info("The map changed while clustering: run it again"),
            Err(e) => notifications.error(format!("Clustering: {e}")),
        }
    }
    if let Some(result) = take_finished(&mut ws.map_tools.error_job) {
        match result {
            Ok((members, errors)) if members == ws.map.members => {
                ws.map.errors = Some(errors);
                ws.map.colour_mode = ColourMode::ReconstructionError;
                ws.colours_dirty = true;
            }
            Ok(_) => notifications.info("The map changed while computing errors: run it again"),
            Err(e) => notifications.error(format!("Reconstruction errors: {e}")),
        }
    }
    if let Some(result) = take_finished(&mut ws.map_tools.export_job) {
        match result {
            Ok(text) => notifications.info(text),
            Err(e) => notifications.error(format!("Export: {e}")),
        }
    }
}

pub fn show(app: &mut SenseApp, ui: &mut egui::Ui) {
    panels::inspector::handle_keys(app, ui.ctx());
    toolbar(app, ui);
    let Some(ws) = app.ws.as_mut() else {
        return;
    };
    let title = match ws.map.epoch {
        Some(epoch) => format!("latents of epoch {}", epoch + 1),
        None if ws.map.is_empty() => "computing the first map…".into(),
        None if ws.map.restored => "the session's last layout".into(),
        None => "raw pixels (PCA-50, UMAP), before training".into(),
    };
    ui.horizontal(|ui| {
        ui.label(format!("{title} · {} members", ws.map.members.len()));
        if let Some((secs, warm)) = ws.map.projection {
            let how = if warm { "warm-started" } else { "from scratch" };
            ui.weak(format!("UMAP {secs:.1} s, {how}"));
        }
        if let Some(p) = ws.projection.progress() {
            ui.spinner();
            ui.label(format!("UMAP {} {:.0} %", p.stage, p.fraction() * 100.0));
            if ui.small_button("cancel").clicked() {
                ws.projection.cancel();
            }
        }
    });
    // Room for the legend and metrics below the plot.
    let footer_px = 52.0;
    let plot_height = (ui.available_height() - footer_px).max(120.0);
    let response = ui
        .allocate_ui(egui::vec2(ui.available_width(), plot_height), |ui| {
            app.scatter.show(ui, app.scatter_backend)
        })
        .inner;
    app.map_rect = Some(response.response.rect);
    if let Some(row) = response.hovered
        && let Some(&member) = ws.map.members.get(row)
    {
        let texture = ws.thumbnails.get(ui.ctx(), &ws.ensemble, member);
        let labels = ws.labels.clone();
        let id = ws.ensemble.member_id(member);
        response.response.clone().on_hover_ui_at_pointer(|ui| {
            if let Ok(texture) = &texture {
                ui.add(panels::image_of(texture, 96.0));
            }
            ui.label(id);
            if let Some(text) = labels.as_ref().and_then(|l| l.provenance.get(&member)) {
                ui.small(text.as_str());
            }
        });
    }
    if let Some((row, op)) = response.clicked {
        ws.map.select_rows(&[row], op);
        ws.colours_dirty = true;
    }
    if let Some((rows, op)) = &response.brushed {
        ws.map.select_rows(rows, *op);
        ws.colours_dirty = true;
    }
    legend(ws, ui);
}

fn toolbar(app: &mut SenseApp, ui: &mut egui::Ui) {
    let Some(ws) = app.ws.as_mut() else {
        return;
    };
    ui.horizontal_wrapped(|ui| {
        app.scatter.toolbar(ui);
        ui.separator();
        let parameters = ws.ensemble.parameters.as_ref();
        let mut mode = ws.map.colour_mode;
        egui::ComboBox::from_id_salt("colour-mode")
            .selected_text(format!("colour: {}", mode.name(parameters)))
            .show_ui(ui, |ui| {
                let mut modes = vec![
                    ColourMode::Label,
                    ColourMode::Manual,
                    ColourMode::Pseudo,
                    ColourMode::Confidence,
                    ColourMode::Cluster,
                    ColourMode::ReconstructionError,
                ];
                modes.extend(
                    (0..parameters.map_or(0, |p| p.names.len())).map(ColourMode::Parameter),
                );
                for m in modes {
                    ui.selectable_value(&mut mode, m, m.name(parameters));
                }
            });
        if mode != ws.map.colour_mode {
            ws.map.colour_mode = mode;
            ws.colours_dirty = true;
        }
        ui.separator();
        let tools = &mut ws.map_tools;
        egui::ComboBox::from_id_salt("cluster-method")
            .selected_text(match tools.cluster_method {
                ClusterMethod::Gmm => "GMM",
                _ => "k-means",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut tools.cluster_method, ClusterMethod::Kmeans, "k-means");
                ui.selectable_value(&mut tools.cluster_method, ClusterMethod::Gmm, "GMM");
            });
        ui.add(
            egui::DragValue::new(&mut tools.cluster_k)
                .range(2..=50)
                .prefix("K = "),
        );
        let has_latents = ws.map.latents.is_some();
        let cluster_button = ui
            .add_enabled(
                has_latents && tools.cluster_job.is_none(),
                egui::Button::new("Cluster"),
            )
            .on_disabled_hover_text("Needs a map of latents (train first)");
        if cluster_button.clicked()
            && let Some(latents) = ws.map.latents.clone()
        {
            let (method, k, members) = (
                tools.cluster_method,
                tools.cluster_k,
                ws.map.members.clone(),
            );
            tools.cluster_job = Some(Job::spawn("cluster", move |control| {
                let options = ClusterOptions::default();
                let result = cluster(latents.view(), method, k, &options, control)
                    .map_err(|e| e.to_string())?;
                Ok((members, result.assignments))
            }));
        }
        if let Some(job) = &tools.cluster_job {
            ui.spinner();
            if ui.small_button("cancel").clicked() {
                job.cancel();
            }
        }
        let errors_button = ui
            .add_enabled(
                ws.has_checkpoint && tools.error_job.is_none(),
                egui::Button::new("Reconstruction errors"),
            )
            .on_hover_text("Colour by each member's reconstruction MSE (best checkpoint)");
        if errors_button.clicked() {
            let (ensemble, members) = (ws.ensemble.clone(), ws.map.members.clone());
            let run_dir = app.session.run_dir();
            tools.error_job = Some(Job::spawn("errors", move |control| {
                reconstruction_errors(&ensemble, &members, &run_dir, control)
                    .map(|errors| (members, errors))
            }));
        }
        if let Some(job) = &tools.error_job {
            ui.spinner();
            if let Some(p) = job.progress() {
                ui.label(format!("{:.0} %", p.fraction() * 100.0));
            }
        }
        ui.separator();
        let can_export = !ws.map.is_empty() && tools.export_job.is_none();
        let export = ui
            .add_enabled(can_export, egui::Button::new("Export map"))
            .on_hover_text(
                "PNG + SVG at publication size, the layout as .npy and CSV with ids and labels",
            );
        if export.clicked() {
            let job = export_map(ws, &app.session.exports_dir());
            ws.map_tools.export_job = Some(job);
        }
    });
}

fn legend(ws: &Workspace, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| match &ws.legend {
        Legend::Classes(classes) => {
            for (name, colour, count) in classes {
                let (rect, _) = ui.allocate_exact_size([10.0, 10.0].into(), egui::Sense::hover());
                ui.painter().circle_filled(rect.center(), 5.0, *colour);
                ui.label(format!("{name} ({count})"));
            }
        }
        Legend::Continuous { name, min, max } => {
            ui.label(format!("{name}: {min:.3}"));
            let (rect, _) = ui.allocate_exact_size([120.0, 10.0].into(), egui::Sense::hover());
            for i in 0..24 {
                let [r, g, b] = crate::report::viridis(i as f32 / 23.0);
                let x0 = rect.left() + rect.width() * i as f32 / 24.0;
                let cell = egui::Rect::from_min_size(
                    egui::pos2(x0, rect.top()),
                    egui::vec2(rect.width() / 24.0 + 0.5, rect.height()),
                );
                ui.painter()
                    .rect_filled(cell, 0.0, egui::Color32::from_rgb(r, g, b));
            }
            ui.label(format!("{max:.3}"));
        }
        Legend::Missing(why) => {
            ui.weak(why);
        }
    });
    ui.horizontal(|ui| match &ws.map.metrics {
        Some(m) => {
            ui.label(format!(
                "hand-labelled members ({}): silhouette {:.3} · neighbourhood hit (k = 17) {:.3}",
                m.labelled_members, m.silhouette, m.neighbourhood_hit
            ));
        }
        None => {
            ui.weak("silhouette and neighbourhood hit appear once the map has hand-labelled members of 2+ classes");
        }
    });
}

/// Mean squared reconstruction error of each member (data units), with the best checkpoint on
/// the CPU (the GPU may be busy training).
fn reconstruction_errors(
    ensemble: &crate::data::Ensemble,
    members: &[usize],
    run_dir: &std::path::Path,
    control: &crate::task::TaskControl,
) -> Result<Vec<f32>, String> {
    let backend = crate::train::backend::cpu_backend(None);
    let model = TrainedModel::load(run_dir, ensemble.shape(), CheckpointChoice::Best, &backend)
        .map_err(|e| e.to_string())?;
    let mut errors = Vec::with_capacity(members.len());
    for (done, chunk) in members.chunks(256).enumerate() {
        if control.is_cancelled() {
            return Err("cancelled".into());
        }
        control.report("reconstruct", done * 256, members.len());
        for r in model
            .reconstruct(ensemble, chunk)
            .map_err(|e| e.to_string())?
        {
            let n = r.original.len().max(1) as f32;
            let mse = r
                .original
                .iter()
                .zip(&r.reconstruction)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                / n;
            errors.push(mse);
        }
    }
    Ok(errors)
}

/// Writes the map as PNG + SVG (report style, labelled by the current labels), the layout as
/// `.npy` + ids, and a CSV of id, x, y, label.
fn export_map(ws: &Workspace, exports_dir: &std::path::Path) -> Job<String> {
    let coords = ws.map.coords.clone();
    let ids = ws.map.ids.clone();
    let labels = ws.labels.clone();
    let members = ws.map.members.clone();
    let epoch = ws.map.epoch;
    let metrics = ws.map.metrics;
    let dir = exports_dir.to_path_buf();
    Job::spawn("export", move |_| {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "-");
        let base = dir.join(format!("latent-map-{stamp}"));
        let (classes, per_row): (Vec<crate::report::ClassStyle>, Vec<Option<usize>>) = match &labels
        {
            Some(l) => (
                l.classes
                    .iter()
                    .map(|c| {
                        crate::report::ClassStyle::new(
                            &c.name,
                            crate::labels::Colour([c.colour.r(), c.colour.g(), c.colour.b()]),
                        )
                    })
                    .collect(),
                members.iter().map(|&m| l.effective(m)).collect(),
            ),
            None => (Vec::new(), vec![None; members.len()]),
        };
        let title = match epoch {
            Some(e) => format!("Latent map, epoch {}", e + 1),
            None => "Raw-pixel map".to_string(),
        };
        let subtitle = metrics.map(|m| {
            format!(
                "hand-labelled: silhouette {:.3} · neighbourhood hit {:.3}",
                m.silhouette, m.neighbourhood_hit
            )
        });
        let mut plot = crate::report::ScatterPlot::new(&title, &coords, &per_row, &classes);
        plot.subtitle = subtitle.as_deref();
        plot.write(&base).map_err(|e| e.to_string())?;
        let matrix = Array2::from_shape_fn((coords.len(), 2), |(i, j)| coords[i][j]);
        let npy = base.with_extension("npy");
        crate::data::matrix::write_matrix_with_ids(&npy, matrix.view(), &ids)
            .map_err(|e| e.to_string())?;
        let csv_path = base.with_extension("csv");
        let mut writer = csv::Writer::from_path(&csv_path).map_err(|e| e.to_string())?;
        writer
            .write_record(["id", "x", "y", "label"])
            .map_err(|e| e.to_string())?;
        for ((id, p), label) in ids.iter().zip(coords.iter()).zip(&per_row) {
            let name = label
                .and_then(|c| classes.get(c))
                .map_or("", |c| c.name.as_str());
            writer
                .write_record([id.as_str(), &p[0].to_string(), &p[1].to_string(), name])
                .map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| e.to_string())?;
        Ok(format!(
            "Map exported to {}.{{png,svg,npy,csv}}",
            base.display()
        ))
    })
}
