//! Loss curves: one line per term (reconstruction, KL, clustering, contrastive), training
//! solid and validation dashed, the step losses faint beneath; a log-scale toggle; PSNR/SSIM
//! and the map's live metrics per epoch beside them. Each plot's legend is a row above it,
//! never over the curves, and the plots fill the panel's height.

use egui_plot::{GridMark, Line, LineStyle, Plot, PlotPoints};

use crate::app::map::palette;
use crate::app::probe::DrawnRegion;
use crate::app::state::AppState;
use crate::train::{EpochSummary, Losses};

/// (label, getter) of every loss term a curve can show.
type Term = (&'static str, fn(&Losses) -> Option<f64>);
const TERMS: [Term; 5] = [
    ("total", |l| Some(l.total)),
    ("reconstruction", |l| Some(l.reconstruction)),
    ("KL", |l| l.kl),
    ("clustering (1 − S)", |l| l.cluster),
    ("contrastive", |l| l.contrastive),
];

pub fn show(ui: &mut egui::Ui, state: &AppState) {
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    let Some(run) = ws.training.as_ref() else {
        ui.label("Start training to see the loss curves.");
        return;
    };
    let log_id = egui::Id::unique("loss-log-scale");
    let mut log_scale = ui.data_mut(|d| *d.get_persisted_mut_or(log_id, true));
    ui.horizontal(|ui| {
        ui.checkbox(&mut log_scale, "log scale");
        if let Some(last) = run.history.epochs.last() {
            ui.label(format!(
                "epoch {}: train {:.4}{}",
                last.epoch + 1,
                last.train.total,
                last.val
                    .map_or(String::new(), |v| format!(" · val {:.4}", v.total))
            ));
        }
    });
    ui.data_mut(|d| d.insert_persisted(log_id, log_scale));
    let transform = move |v: f64| match log_scale {
        true => (v > 0.0).then(|| v.log10()),
        false => Some(v),
    };
    let steps_per_epoch = run.steps_per_epoch.max(1) as f64;
    let width = ui.available_width();
    let height = ui.available_height();
    let with_data = |get: fn(&Losses) -> Option<f64>| {
        run.history.epochs.iter().any(|e| get(&e.train).is_some())
    };
    let mut loss_legend = vec![LegendEntry::new(
        "total (steps)",
        egui::Color32::from_gray(110),
        false,
    )];
    for (i, (name, term)) in TERMS.iter().enumerate() {
        if with_data(*term) {
            loss_legend.push(LegendEntry::new(format!("{name} train"), palette(i), false));
            if run.history.epochs.iter().any(|e| e.val.is_some()) {
                loss_legend.push(LegendEntry::new(format!("{name} val"), palette(i), true));
            }
        }
    }
    let quality_legend = [
        LegendEntry::new("PSNR / 10 dB", palette(5), false),
        LegendEntry::new("SSIM", palette(6), false),
        LegendEntry::new("map silhouette", palette(7), false),
        LegendEntry::new("map neighbourhood hit", palette(8), false),
    ];
    ui.horizontal_top(|ui| {
        let column = egui::vec2(width * 0.6, height);
        let loss_plot =
            ui.allocate_ui_with_layout(column, egui::Layout::top_down(egui::Align::Min), |ui| {
                legend_row(ui, &loss_legend);
                let mut plot = Plot::new("loss-curves")
                    .x_axis_label("epoch")
                    .height(ui.available_height().max(MIN_PLOT_HEIGHT_PX))
                    .allow_scroll(false);
                if log_scale {
                    plot = plot.y_axis_formatter(|mark: GridMark, _| {
                        format!("{:.3}", 10f64.powf(mark.value))
                    });
                }
                plot.show(ui, |plot_ui| {
                    let steps: PlotPoints = run
                        .history
                        .steps
                        .iter()
                        .filter_map(|(step, l)| {
                            Some([*step as f64 / steps_per_epoch, transform(l.total)?])
                        })
                        .collect();
                    plot_ui.line(
                        Line::new("total (steps)", steps)
                            .color(egui::Color32::from_gray(110))
                            .width(1.0),
                    );
                    for (i, (name, term)) in TERMS.iter().enumerate() {
                        let series =
                            |get: &dyn Fn(&EpochSummary) -> Option<Losses>| -> Vec<[f64; 2]> {
                                run.history
                                    .epochs
                                    .iter()
                                    .filter_map(|e| {
                                        let value = term(&get(e)?)?;
                                        Some([(e.epoch + 1) as f64, transform(value)?])
                                    })
                                    .collect()
                            };
                        let train = series(&|e| Some(e.train));
                        if train.is_empty() {
                            continue;
                        }
                        let colour = palette(i);
                        plot_ui.line(
                            Line::new(format!("{name} train"), train)
                                .color(colour)
                                .width(2.0),
                        );
                        let val = series(&|e| e.val);
                        if !val.is_empty() {
                            plot_ui.line(
                                Line::new(format!("{name} val"), val)
                                    .color(colour)
                                    .style(LineStyle::dashed_loose()),
                            );
                        }
                    }
                })
                .response
            });
        DrawnRegion::LossPlot.record(ui.ctx(), loss_plot.inner.rect);
        ui.vertical(|ui| {
            legend_row(ui, &quality_legend);
            Plot::new("quality-curves")
                .x_axis_label("epoch")
                .height(ui.available_height().max(MIN_PLOT_HEIGHT_PX))
                .allow_scroll(false)
                .show(ui, |plot_ui| {
                    let per_epoch = |get: fn(&EpochSummary) -> Option<f64>| -> Vec<[f64; 2]> {
                        run.history
                            .epochs
                            .iter()
                            .filter_map(|e| Some([(e.epoch + 1) as f64, get(e)?]))
                            .collect()
                    };
                    // PSNR in tens of dB so it shares an axis with the 0..1 scores.
                    let psnr = per_epoch(|e| e.val_psnr_db.map(|p| p / 10.0));
                    plot_ui.line(Line::new("PSNR / 10 dB", psnr).color(palette(5)));
                    plot_ui.line(Line::new("SSIM", per_epoch(|e| e.val_ssim)).color(palette(6)));
                    let history = &ws.map.metrics_history;
                    let points = |get: fn(&crate::app::jobs::projection::MapMetrics) -> f64| {
                        history
                            .iter()
                            .map(|(epoch, m)| [(epoch + 1) as f64, get(m)])
                            .collect::<Vec<_>>()
                    };
                    plot_ui.line(
                        Line::new("map silhouette", points(|m| m.silhouette)).color(palette(7)),
                    );
                    plot_ui.line(
                        Line::new("map neighbourhood hit", points(|m| m.neighbourhood_hit))
                            .color(palette(8)),
                    );
                });
        });
    });
}

/// Below this the curves are unreadable; the panel scrolls rather than squash them.
const MIN_PLOT_HEIGHT_PX: f32 = 120.0;

/// One series in a legend row: a short line in its colour (dashed for validation).
struct LegendEntry {
    name: String,
    colour: egui::Color32,
    dashed: bool,
}

impl LegendEntry {
    fn new(name: impl Into<String>, colour: egui::Color32, dashed: bool) -> Self {
        Self {
            name: name.into(),
            colour,
            dashed,
        }
    }
}

/// The legend as a wrapped row above its plot, so it never covers a curve.
fn legend_row(ui: &mut egui::Ui, entries: &[LegendEntry]) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 6.0;
        for entry in entries {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(18.0, 10.0), egui::Sense::hover());
            let stroke = egui::Stroke::new(2.0, entry.colour);
            let (left, right) = (rect.left_center(), rect.right_center());
            if entry.dashed {
                ui.painter()
                    .add(egui::Shape::dashed_line(&[left, right], stroke, 4.0, 3.0));
            } else {
                ui.painter().line_segment([left, right], stroke);
            }
            ui.label(egui::RichText::new(&entry.name).small());
        }
    });
}
