//! The desktop app, headless (egui_kittest on wgpu — Mesa lavapipe in CI): open a small
//! `channels` ensemble, train a few steps on the CPU, see loss points and a latent map,
//! brush a rectangle, relabel with a key, check the label store on disk, undo, check it
//! reverted; and a snapshot of the main layout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use npyz::WriterBuilder;
use sense::app::{AppOptions, SenseApp, Session};
use sense::train::BackendChoice;

const MEMBERS: usize = 400;

/// A 400-member `channels` ensemble as `.npy` (f32, N×1×50×50) and its hand labels (every
/// fourth member) as CSV; ids are row numbers.
fn write_channels(dir: &Path) -> (String, PathBuf) {
    let ensemble = sense::samples::open_with("channels", Some(MEMBERS), 5).unwrap();
    let shape = ensemble.shape();
    let mut values = Vec::with_capacity(MEMBERS * shape.len());
    let mut member = vec![0.0f32; shape.len()];
    for i in 0..MEMBERS {
        ensemble.source.read_f32(i, &mut member).unwrap();
        values.extend_from_slice(&member);
    }
    let npy = dir.join("channels.npy");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&npy).unwrap());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[MEMBERS as u64, 1, shape.height as u64, shape.width as u64])
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    writer.extend(values).unwrap();
    writer.finish().unwrap();
    drop(out);
    let truth = ensemble.ground_truth.as_ref().unwrap();
    let mut csv = String::from("id,label\n");
    for i in (0..MEMBERS).step_by(4) {
        csv += &format!("{i},{}\n", truth.class_name(i).unwrap());
    }
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    (npy.display().to_string(), labels)
}

fn session_in(dir: &Path) -> Session {
    let (data, labels) = write_channels(dir);
    let mut session = Session::open_or_create(Some(&data), Some(dir.join("session"))).unwrap();
    session.file.dataset_labels = Some(labels);
    session.file.map_max_members = MEMBERS;
    let config = &mut session.file.train_config;
    config.backend = BackendChoice::Cpu;
    config.epochs = 3;
    config.model.latent_dim = 16;
    config.model.filters = 16;
    config.optimizer.batch_size = 64;
    config.evaluation.reconstructions = 4;
    session.save().unwrap();
    session
}

fn harness(session: Session) -> Harness<'static, SenseApp> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .with_accessibility_check(false)
        .build_eframe(move |cc| SenseApp::new(cc, session, &AppOptions::default()))
}

/// Steps the app (as real time passes, so worker threads progress) until `done` holds.
fn step_until(
    harness: &mut Harness<'_, SenseApp>,
    what: &str,
    timeout: Duration,
    done: impl Fn(&SenseApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}; errors: {:?}",
            harness.state().errors()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.step();
}

fn store_text(session_dir: &Path) -> String {
    std::fs::read_to_string(session_dir.join("labels.csv")).unwrap()
}

#[test]
fn train_brush_relabel_and_undo() {
    let tmp = tempfile::tempdir().unwrap();
    let session = session_in(tmp.path());
    let session_dir = session.dir.clone();
    let mut harness = harness(session);
    let minute = Duration::from_secs(60);

    step_until(&mut harness, "the raw-pixel map", 2 * minute, |app| {
        app.is_ready() && app.map_points() > 0
    });
    assert_eq!(harness.state().map_points(), MEMBERS);
    let imported = harness.state().labels().unwrap();
    assert_eq!(imported.manual_count(), MEMBERS / 4);

    harness.get_by_label("Start").click();
    step_until(&mut harness, "loss points", 2 * minute, |app| {
        app.loss_points() > 0
    });
    step_until(&mut harness, "a map of latents", 3 * minute, |app| {
        app.map_epoch().is_some() && app.is_settled()
    });

    // Brush a rectangle over the middle of the map.
    let rect = harness.state().map_rect().expect("the map is drawn");
    let (from, to) = (
        rect.lerp_inside(egui::vec2(0.2, 0.2)),
        rect.lerp_inside(egui::vec2(0.8, 0.8)),
    );
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    for t in 1..=8 {
        harness.hover_at(from + (to - from) * (t as f32 / 8.0));
        harness.step();
    }
    harness.drop_at(to);
    harness.step();
    let selection = harness.state().selection();
    assert!(!selection.is_empty(), "the brush selected nothing");
    assert!(selection.len() < MEMBERS, "the brush selected everything");

    // Relabel with key 1 (the first class); the store file changes at once.
    let before = store_text(&session_dir);
    let first_class = imported.classes[0].name.clone();
    let revision = imported.revision;
    harness.key_press(egui::Key::Num1);
    step_until(&mut harness, "the relabel", minute, |app| {
        app.labels().is_some_and(|l| l.revision > revision)
    });
    let relabelled = harness.state().labels().unwrap();
    for &member in &selection {
        assert_eq!(
            relabelled.manual[member],
            Some(0),
            "member {member} not relabelled"
        );
    }
    let after = store_text(&session_dir);
    assert_ne!(after, before);
    let first_id = format!("\n{},{first_class},user:", selection[0]);
    assert!(after.contains(&first_id), "{first_id:?} not in the store");

    // Undo restores the file's labels exactly.
    assert!(relabelled.undo.is_some());
    harness.get_by_label("Undo").click();
    step_until(&mut harness, "the undo", minute, |app| {
        app.labels()
            .is_some_and(|l| l.revision > relabelled.revision)
    });
    assert_eq!(store_text(&session_dir), before);

    // Redo and undo again by keyboard.
    let undone = harness.state().labels().unwrap().revision;
    harness.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    step_until(&mut harness, "the redo", minute, |app| {
        app.labels().is_some_and(|l| l.revision > undone)
    });
    assert_eq!(store_text(&session_dir), after);
    let redone = harness.state().labels().unwrap().revision;
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    step_until(&mut harness, "the second undo", minute, |app| {
        app.labels().is_some_and(|l| l.revision > redone)
    });
    assert_eq!(store_text(&session_dir), before);

    harness.get_by_label("Stop").click();
    step_until(&mut harness, "training to stop", minute, |app| {
        !app.is_training()
    });
    assert!(
        harness.state().errors().is_empty(),
        "{:?}",
        harness.state().errors()
    );
}

#[test]
fn main_layout_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let session = session_in(tmp.path());
    // A saved layout makes the map deterministic (no UMAP runs on open).
    let coords = ndarray::Array2::from_shape_fn((MEMBERS, 2), |(i, j)| {
        let angle = i as f32 * 0.137;
        let radius = 1.0 + (i % 4) as f32;
        if j == 0 {
            radius * angle.cos()
        } else {
            radius * angle.sin()
        }
    });
    sense::data::matrix::write_npy_matrix(&session.layout_path(), coords.view()).unwrap();
    let ids: Vec<String> = (0..MEMBERS).map(|i| i.to_string()).collect();
    sense::data::matrix::write_ids(&session.layout_path().with_extension("ids.csv"), &ids).unwrap();
    let mut harness = harness(session);
    step_until(
        &mut harness,
        "the saved map",
        Duration::from_secs(60),
        |app| app.is_settled(),
    );
    harness.run_steps(5);
    harness.snapshot("main_layout");
}
