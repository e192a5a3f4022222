//! Training panel: every engine option in a form with the paper's defaults, the run's
//! controls (Start / Continue / Pause / Resume / Stop), progress with ETA and throughput.
//! λ changes during a run go to the trainer and apply from the next epoch.

use crate::app::commands::{AppCommand, CommandQueue};
use crate::app::jobs::training::RunState;
use crate::app::state::AppState;
use crate::app::workspace::Workspace;
use crate::data::transform::{PreTransform, Scaling};
use crate::nn::losses::ReconstructionLoss;
use crate::nn::{ActivationKind, ModelKind};
use crate::train::{
    BackendChoice, EarlyStopping, LossWeights, LrScheduler, Monitor, OptimizerKind, TrainConfig,
};

pub fn show(ui: &mut egui::Ui, state: &mut AppState, queue: &mut CommandQueue) {
    ui.heading("Training");
    let Some(ws) = state.ws.as_ref() else {
        return;
    };
    controls(ui, ws, queue);
    let running = ws.is_training();
    let config = &mut state.forms.train;
    let before = loss_weights(config);
    egui::CollapsingHeader::new("Model and loss")
        .default_open(true)
        .show(ui, |ui| {
            // Settings that shape the model cannot change mid-run.
            ui.add_enabled_ui(!running, |ui| model_form(config, ui));
            loss_form(config, running, ui);
        });
    egui::CollapsingHeader::new("Optimisation")
        .default_open(false)
        .show(ui, |ui| {
            ui.add_enabled_ui(!running, |ui| optimisation_form(config, ui));
        });
    egui::CollapsingHeader::new("Data and variants")
        .default_open(false)
        .show(ui, |ui| {
            ui.add_enabled_ui(!running, |ui| data_form(config, ui));
        });
    let after = loss_weights(config);
    if running && after != before {
        queue.push(AppCommand::SetLossWeights(after));
    }
}

/// A run another process trains: where it is, how far, and when it last gave news.
fn following(
    ui: &mut egui::Ui,
    run: &crate::app::jobs::training::TrainingRun,
    dir: &std::path::Path,
    queue: &mut CommandQueue,
) {
    ui.label(format!("Following {}", dir.display()))
        .on_hover_text("A run another process trains (sense train, a Slurm sweep cell)");
    match &run.state {
        RunState::Starting => ui.label("waiting for its first epoch…"),
        RunState::Finished => ui.label(format!("finished after {} epochs", run.epoch)),
        RunState::Stopped if run.epoch == 0 => {
            ui.label("its trainer stopped before its first epoch ended (no checkpoint yet)")
        }
        RunState::Stopped => ui.label(format!(
            "its trainer stopped after {} epochs; sense train --resume continues it",
            run.epoch
        )),
        RunState::Failed(reason) => ui.colored_label(
            ui.visuals().error_fg_color,
            format!("stopped after {} epochs: {reason}", run.epoch),
        ),
        _ => {
            // One-based; the last epoch's summary comes before the run's end.
            let epoch = run.epoch.min(run.epochs.saturating_sub(1)) + 1;
            ui.label(match run.steps_per_epoch {
                0 => format!("training: epoch {epoch} of {}", run.epochs),
                steps => format!(
                    "training: epoch {epoch} of {}, step {} of {steps}",
                    run.epochs, run.step_in_epoch
                ),
            })
        }
    };
    stall_warning(ui, run);
    if run.epochs > 0 {
        ui.add(egui::ProgressBar::new(run.progress()).text(format!(
            "{:.0} % of the run{}",
            run.progress() * 100.0,
            run.images_per_sec
                .map_or(String::new(), |rate| format!(" · {rate:.0} img/s"))
        )));
    }
    if let Some(news) = run.last_news {
        // The clock moves without events from the run.
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs(1));
        ui.weak(format!(
            "last news {} ago",
            format_duration(news.elapsed().as_secs())
        ));
    }
    if run.state.is_active() && ui.button("Stop following").clicked() {
        queue.push(AppCommand::StopTraining);
    }
}

/// Why the trainer may be hung, while it is.
fn stall_warning(ui: &mut egui::Ui, run: &crate::app::jobs::training::TrainingRun) {
    if let Some(why) = &run.stalled {
        ui.colored_label(ui.visuals().warn_fg_color, format!("may be hung: {why}"));
    }
}

fn loss_weights(config: &TrainConfig) -> LossWeights {
    LossWeights {
        lambda_cluster: config.loss.lambda_cluster,
        lambda_contrastive: config.loss.lambda_contrastive,
    }
}

fn controls(ui: &mut egui::Ui, ws: &Workspace, queue: &mut CommandQueue) {
    if let Some(run) = ws.training.as_ref()
        && let Some(dir) = run.followed_dir()
    {
        return following(ui, run, dir, queue);
    }
    ui.horizontal(
        |ui| match ws.training.as_ref().filter(|t| t.state.is_active()) {
            None => {
                let ready = ws.labels.is_some();
                let start = ui
                    .add_enabled(ready, egui::Button::new("Start"))
                    .on_hover_text("Train a new model (replaces the session's run)");
                if start.clicked() {
                    queue.push(AppCommand::StartTraining { resume: false });
                }
                if ws.has_checkpoint
                    && ui
                        .add_enabled(ready, egui::Button::new("Continue"))
                        .on_hover_text("Continue the session's run from its last checkpoint")
                        .clicked()
                {
                    queue.push(AppCommand::StartTraining { resume: true });
                }
            }
            Some(run) => {
                if run.state == RunState::Paused {
                    if ui.button("Resume").clicked() {
                        queue.push(AppCommand::ResumeTraining);
                    }
                } else if ui.button("Pause").clicked() {
                    queue.push(AppCommand::PauseTraining);
                }
                if ui.button("Stop").clicked() {
                    queue.push(AppCommand::StopTraining);
                }
            }
        },
    );
    let Some(run) = ws.training.as_ref() else {
        ui.label("Not trained yet: the map shows the raw pixels (PCA-50, UMAP).");
        return;
    };
    let status = match &run.state {
        RunState::Starting => "starting…".to_string(),
        RunState::Running => "training".into(),
        RunState::Paused => "paused".into(),
        RunState::Stopping => "stopping after this batch…".into(),
        RunState::Finished => "finished".into(),
        RunState::Stopped => "stopped".into(),
        RunState::Failed(e) => format!("failed: {e}"),
    };
    if run.restored {
        let last = run.history.epochs.last();
        ui.label(format!(
            "The session's run: {status} after {} of {} epochs{}. The map shows its last layout.",
            run.epoch,
            run.epochs,
            last.map_or(String::new(), |e| format!(
                " (train loss {:.4}{})",
                e.train.total,
                e.val
                    .map_or(String::new(), |v| format!(", val {:.4}", v.total))
            )),
        ));
        return;
    }
    ui.label(status);
    stall_warning(ui, run);
    if run.steps_per_epoch > 0 {
        ui.add(
            egui::ProgressBar::new(run.step_in_epoch as f32 / run.steps_per_epoch as f32).text(
                format!(
                    "epoch {}/{} · batch {}/{}",
                    (run.epoch + 1).min(run.epochs),
                    run.epochs,
                    run.step_in_epoch,
                    run.steps_per_epoch
                ),
            ),
        );
        let mut overall = format!("{:.0} % of the run", run.progress() * 100.0);
        if let Some(eta) = run.eta() {
            overall.push_str(&format!(" · ETA {}", format_duration(eta.as_secs())));
        }
        if let Some(rate) = run.images_per_sec {
            overall.push_str(&format!(" · {rate:.0} img/s"));
        }
        ui.add(egui::ProgressBar::new(run.progress()).text(overall));
    }
}

fn format_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

fn model_form(config: &mut TrainConfig, ui: &mut egui::Ui) {
    egui::Grid::new("model-form").num_columns(2).show(ui, |ui| {
        let model = &mut config.model;
        ui.label("model");
        egui::ComboBox::from_id_salt("model-kind")
            .selected_text(model.kind.name())
            .show_ui(ui, |ui| {
                for kind in [
                    ModelKind::Ae,
                    ModelKind::Vae,
                    ModelKind::UnetVae,
                    ModelKind::CnnAe,
                ] {
                    ui.selectable_value(&mut model.kind, kind, kind.name());
                }
            });
        ui.end_row();
        ui.label("latent size");
        egui::ComboBox::from_id_salt("latent-dim")
            .selected_text(model.latent_dim.to_string())
            .show_ui(ui, |ui| {
                for dim in [2, 8, 16, 32, 64, 128, 256, 512] {
                    ui.selectable_value(&mut model.latent_dim, dim, dim.to_string());
                }
            });
        ui.end_row();
        ui.label("filters");
        ui.add(egui::DragValue::new(&mut model.filters).range(4..=256));
        ui.end_row();
        ui.label("β (VAE)");
        ui.add_enabled(
            matches!(model.kind, ModelKind::Vae | ModelKind::UnetVae),
            egui::DragValue::new(&mut model.beta)
                .range(0.0..=100.0)
                .speed(0.05),
        );
        ui.end_row();
        ui.label("dropout");
        ui.add(egui::Slider::new(&mut model.dropout, 0.0..=0.9));
        ui.end_row();
        ui.label("batch norm");
        ui.checkbox(&mut model.batch_norm, "");
        ui.end_row();
        ui.label("activation");
        let name = |a: Option<ActivationKind>| match a {
            None => "published".to_string(),
            Some(a) => format!("{a:?}"),
        };
        egui::ComboBox::from_id_salt("activation")
            .selected_text(name(model.activation))
            .show_ui(ui, |ui| {
                for a in [
                    None,
                    Some(ActivationKind::Relu),
                    Some(ActivationKind::LeakyRelu),
                    Some(ActivationKind::Elu),
                    Some(ActivationKind::Selu),
                ] {
                    ui.selectable_value(&mut model.activation, a, name(a));
                }
            });
        ui.end_row();
    });
}

fn loss_form(config: &mut TrainConfig, running: bool, ui: &mut egui::Ui) {
    egui::Grid::new("loss-form").num_columns(2).show(ui, |ui| {
        ui.label("λ_cl (soft silhouette)");
        ui.add(egui::Slider::new(
            &mut config.loss.lambda_cluster,
            0.0..=2.0,
        ))
        .on_hover_text("Changes during a run apply from the next epoch");
        ui.end_row();
        ui.label("λ_con (contrastive)");
        ui.add(egui::Slider::new(
            &mut config.loss.lambda_contrastive,
            0.0..=2.0,
        ))
        .on_hover_text("Changes during a run apply from the next epoch");
        ui.end_row();
        ui.add_enabled_ui(!running, |ui| ui.label("reconstruction"));
        ui.add_enabled_ui(!running, |ui| {
            let mut ssim = matches!(
                config.loss.reconstruction,
                ReconstructionLoss::MseSsim { .. }
            );
            if ui.checkbox(&mut ssim, "MSE + SSIM").changed() {
                config.loss.reconstruction = match ssim {
                    true => ReconstructionLoss::MseSsim {
                        alpha: 0.5,
                        ssim: Default::default(),
                    },
                    false => ReconstructionLoss::Mse,
                };
            }
            if let ReconstructionLoss::MseSsim { alpha, .. } = &mut config.loss.reconstruction {
                ui.add(egui::Slider::new(alpha, 0.0..=1.0).text("α"));
            }
        });
        ui.end_row();
    });
}

fn optimisation_form(config: &mut TrainConfig, ui: &mut egui::Ui) {
    egui::Grid::new("optim-form").num_columns(2).show(ui, |ui| {
        ui.label("epochs");
        ui.add(egui::DragValue::new(&mut config.epochs).range(1..=10_000));
        ui.end_row();
        ui.label("batch size");
        ui.add(egui::DragValue::new(&mut config.optimizer.batch_size).range(1..=4096));
        ui.end_row();
        ui.label("learning rate");
        ui.add(
            egui::DragValue::new(&mut config.optimizer.learning_rate)
                .range(1e-6..=1.0)
                .speed(1e-5)
                .max_decimals(6),
        );
        ui.end_row();
        ui.label("optimiser");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut config.optimizer.kind, OptimizerKind::Adam, "Adam");
            ui.selectable_value(&mut config.optimizer.kind, OptimizerKind::Sgd, "SGD");
        });
        ui.end_row();
        ui.label("weight decay");
        ui.add(
            egui::DragValue::new(&mut config.optimizer.weight_decay)
                .range(0.0..=1.0)
                .speed(1e-4),
        );
        ui.end_row();
        ui.label("LR schedule");
        let schedule = &mut config.schedule.lr_scheduler;
        let name = match schedule {
            LrScheduler::None => "constant",
            LrScheduler::Step { .. } => "step",
            LrScheduler::Cosine { .. } => "cosine",
            LrScheduler::ReduceOnPlateau { .. } => "reduce on plateau",
        };
        egui::ComboBox::from_id_salt("lr-schedule")
            .selected_text(name)
            .show_ui(ui, |ui| {
                let options = [
                    (LrScheduler::None, "constant"),
                    (
                        LrScheduler::Step {
                            every_epochs: 10,
                            gamma: 0.5,
                        },
                        "step",
                    ),
                    (LrScheduler::Cosine { min_lr: 1e-6 }, "cosine"),
                    (
                        LrScheduler::ReduceOnPlateau {
                            factor: 0.5,
                            patience: 3,
                            min_lr: 1e-6,
                        },
                        "reduce on plateau",
                    ),
                ];
                for (option, label) in options {
                    let selected =
                        std::mem::discriminant(schedule) == std::mem::discriminant(&option);
                    if ui.selectable_label(selected, label).clicked() && !selected {
                        *schedule = option;
                    }
                }
            });
        ui.end_row();
        ui.label("early stopping");
        let mut enabled = config.schedule.early_stopping.is_some();
        ui.horizontal(|ui| {
            if ui.checkbox(&mut enabled, "").changed() {
                config.schedule.early_stopping = enabled.then(EarlyStopping::default);
            }
            if let Some(stop) = &mut config.schedule.early_stopping {
                ui.add(
                    egui::DragValue::new(&mut stop.patience)
                        .range(1..=100)
                        .suffix(" epochs"),
                );
            }
        });
        ui.end_row();
        ui.label("KL warm-up");
        ui.add(
            egui::DragValue::new(&mut config.schedule.kl_warmup_epochs)
                .range(0.0..=100.0)
                .suffix(" epochs"),
        );
        ui.end_row();
        ui.label("pre-train (rec. only)");
        ui.add(
            egui::DragValue::new(&mut config.schedule.pretrain_epochs)
                .range(0..=100)
                .suffix(" epochs"),
        );
        ui.end_row();
        ui.label("validation share");
        ui.add(egui::Slider::new(&mut config.data.val_fraction, 0.0..=0.5));
        ui.end_row();
        ui.label("backend");
        ui.horizontal(|ui| {
            for (choice, label) in [
                (BackendChoice::Auto, "auto"),
                (BackendChoice::Gpu, "GPU"),
                (BackendChoice::Cpu, "CPU"),
            ] {
                ui.selectable_value(&mut config.backend, choice, label);
            }
        });
        ui.end_row();
        ui.label("seed");
        ui.add(egui::DragValue::new(&mut config.seed));
        ui.end_row();
    });
}

/// Normalisation, augmentation, the AE variants and the rarer loss settings.
fn data_form(config: &mut TrainConfig, ui: &mut egui::Ui) {
    egui::Grid::new("data-form").num_columns(2).show(ui, |ui| {
        let norm = &mut config.data.normalization;
        ui.label("pre-transform");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut norm.pre, PreTransform::None, "none");
            ui.selectable_value(&mut norm.pre, PreTransform::Log { epsilon: 1e-6 }, "log");
            ui.selectable_value(&mut norm.pre, PreTransform::Asinh, "asinh");
        });
        ui.end_row();
        ui.label("scaling");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut norm.scaling, Scaling::ZScore, "zero mean, unit std");
            ui.selectable_value(&mut norm.scaling, Scaling::MinMax, "min-max");
        });
        ui.end_row();
        ui.label("stratified split");
        ui.checkbox(&mut config.data.stratify, "");
        ui.end_row();
        let aug = &mut config.data.augmentation;
        ui.label("augmentation");
        ui.horizontal(|ui| {
            ui.checkbox(&mut aug.flips, "flips");
            ui.checkbox(&mut aug.rotations, "rotations");
        });
        ui.end_row();
        ui.label("brightness ±");
        ui.add(egui::Slider::new(&mut aug.brightness, 0.0..=0.5));
        ui.end_row();
        ui.label("input noise σ");
        ui.add(egui::Slider::new(&mut aug.noise_std, 0.0..=1.0));
        ui.end_row();
        ui.label("denoising σ");
        ui.add(egui::Slider::new(
            &mut config.variant.denoising_noise_std,
            0.0..=1.0,
        ))
        .on_hover_text("Denoising AE: noise on the input, clean target (0 = off)");
        ui.end_row();
        ui.label("sparsity weight");
        ui.add(
            egui::DragValue::new(&mut config.variant.sparse_l1_weight)
                .range(0.0..=10.0)
                .speed(1e-3),
        )
        .on_hover_text("Sparse AE: weight of mean |z| (0 = off)");
        ui.end_row();
        ui.label("KL free bits");
        ui.add(
            egui::DragValue::new(&mut config.loss.free_bits_nats)
                .range(0.0..=10.0)
                .speed(0.01)
                .suffix(" nats"),
        );
        ui.end_row();
        ui.label("contrastive margin");
        ui.add(
            egui::DragValue::new(&mut config.loss.contrastive_margin)
                .range(0.0..=100.0)
                .speed(0.05),
        );
        ui.end_row();
        ui.label("adaptive λ");
        ui.checkbox(&mut config.schedule.adaptive_weights, "")
            .on_hover_text("Adjust the label-loss weights from the loss balance each epoch");
        ui.end_row();
        ui.label("monitor");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut config.schedule.monitor, Monitor::Total, "total loss");
            ui.selectable_value(
                &mut config.schedule.monitor,
                Monitor::Reconstruction,
                "reconstruction",
            );
        });
        ui.end_row();
    });
}
