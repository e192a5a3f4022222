//! Report figures and report.md: every writer produces a decodable PNG of the stated size with
//! its data drawn, an SVG, skips non-finite values, and rejects input with nothing to draw.

use std::path::Path;

use image::RgbImage;
use sense::labels::palette_colour;
use sense::report::*;

fn decode(path: &Path) -> RgbImage {
    let bytes = std::fs::read(path).expect("figure PNG readable");
    assert!(!bytes.is_empty(), "{} is empty", path.display());
    image::load_from_memory(&bytes)
        .expect("figure PNG decodes")
        .to_rgb8()
}

fn svg_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("figure SVG readable");
    assert!(text.contains("<svg"), "{} is not an SVG", path.display());
    text
}

fn count_colour(image: &RgbImage, rgb: [u8; 3]) -> usize {
    image.pixels().filter(|p| p.0 == rgb).count()
}

/// Checks both files of a figure and returns the decoded PNG and the SVG text. With
/// `SENSE_REPORT_KEEP=DIR` the files are also copied there, to look at them.
fn check_files(files: &FigureFiles) -> (RgbImage, String) {
    if let Ok(keep) = std::env::var("SENSE_REPORT_KEEP") {
        for file in [&files.png, &files.svg] {
            std::fs::copy(file, Path::new(&keep).join(file.file_name().unwrap())).unwrap();
        }
    }
    let png = decode(&files.png);
    assert_eq!(png.dimensions(), files.size_px);
    let non_white = png.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(non_white > 1000, "figure is nearly blank");
    let svg = svg_text(&files.svg);
    assert!(
        !svg.contains("NaN") && !svg.contains("inf\""),
        "non-finite value in the SVG"
    );
    (png, svg)
}

/// No temporary files left behind by the atomic writes.
fn assert_only(dir: &Path, mut expected: Vec<&str>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
}

fn classes(n: usize) -> Vec<ClassStyle> {
    (0..n)
        .map(|k| ClassStyle::from_palette(format!("class {k}"), k))
        .collect()
}

#[test]
fn scatter_draws_class_colours_at_the_points() {
    let dir = tempfile::tempdir().unwrap();
    // Three classes on separate rows, far enough apart that dots do not overlap.
    let mut points = Vec::new();
    let mut labels = Vec::new();
    for k in 0..3 {
        for j in 0..5 {
            points.push([j as f32 * 2.0, k as f32 * 3.0]);
            labels.push(Some(k));
        }
    }
    points.push([1.0, 1.5]);
    labels.push(None);
    points.push([f32::NAN, 0.0]);
    labels.push(Some(0));
    points.push([3.0, f32::INFINITY]);
    labels.push(None);
    let classes = classes(3);
    let mut plot = ScatterPlot::new("Sparse", &points, &labels, &classes);
    plot.subtitle = Some("silhouette 0.41 · neighbourhood hit 0.87");
    let out = plot.write(&dir.path().join("sparse")).unwrap();

    assert_eq!(out.files.size_px, (1600, 1200));
    assert_eq!(
        (out.png_points, out.svg_points, out.skipped_non_finite),
        (16, 16, 2)
    );
    let (png, svg) = check_files(&out.files);
    for (p, label) in points.iter().zip(&labels).take(16) {
        let (x, y) = out.png_pixels.pixel(*p);
        let pixel = png.get_pixel(x as u32, y as u32).0;
        match label {
            Some(k) => assert_eq!(pixel, palette_colour(*k).0, "class {k} at {p:?}"),
            None => assert!(
                pixel[0] == pixel[1] && pixel[1] == pixel[2] && pixel[0] < 230,
                "unlabelled point at {p:?} is not grey: {pixel:?}"
            ),
        }
    }
    // Between the points there is background (white or a light grey grid line).
    let (x, y) = out.png_pixels.pixel([1.0, 0.8]);
    let [r, g, b] = png.get_pixel(x as u32, y as u32).0;
    assert!(
        r == g && g == b && r > 200,
        "not background: {:?}",
        [r, g, b]
    );
    assert!(svg.contains("neighbourhood hit 0.87"));
    assert!(svg.contains("2 with non-finite coordinates not shown"));
    assert!(svg.contains("class 2 (5)") && svg.contains("unlabelled (1)"));
    assert_only(dir.path(), vec!["sparse.png", "sparse.svg"]);
}

#[test]
fn scatter_svg_keeps_labelled_points_and_samples_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5000;
    let points: Vec<[f32; 2]> = (0..n).map(|i| [(i % 71) as f32, (i / 71) as f32]).collect();
    let labels: Vec<Option<usize>> = (0..n).map(|i| (i % 50 == 0).then_some(i % 4)).collect();
    let classes = classes(4);
    let mut plot = ScatterPlot::new("Subsampled SVG", &points, &labels, &classes);
    plot.svg_max_points = 1000;
    let out = plot.write(&dir.path().join("sub")).unwrap();
    assert_eq!((out.png_points, out.svg_points), (5000, 1000));
    let (_, svg) = check_files(&out.files);
    assert!(
        svg.contains("this SVG shows 1,000 of them"),
        "caption says so"
    );
    // Every point is a circle; the legend adds one per entry (4 classes + unlabelled).
    assert_eq!(svg.matches("<circle").count(), 1000 + 5);
    // All 100 labelled points are in: count circles in the class colours (4 legend marks).
    let labelled_circles: usize = (0..4)
        .map(|k| svg.matches(&palette_colour(k).hex().to_uppercase()).count())
        .sum();
    assert_eq!(labelled_circles, 100 + 4);

    // Same seed, same files.
    let again = plot.write(&dir.path().join("sub2")).unwrap();
    assert_eq!(svg, svg_text(&again.files.svg));
}

#[test]
fn scatter_rejects_input_with_nothing_to_draw() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("bad");
    let classes = classes(2);
    // (points, labels, expected reason)
    type Case = (Vec<[f32; 2]>, Vec<Option<usize>>, &'static str);
    let cases: Vec<Case> = vec![
        (vec![], vec![], "nothing to plot"),
        (vec![[f32::NAN, 1.0]], vec![None], "nothing to plot"),
        (vec![[0.0, 1.0]], vec![], "1 points but 0 labels"),
        (vec![[0.0, 1.0]], vec![Some(2)], "label 2 has no class"),
    ];
    for (points, labels, reason) in cases {
        let err = ScatterPlot::new("x", &points, &labels, &classes)
            .write(&base)
            .unwrap_err();
        assert!(err.reason.contains(reason), "{err}");
        assert_eq!(err.path, dir.path().join("bad.png"));
    }
    assert_only(dir.path(), vec![]);
}

/// Not a test of correctness: the timing of the largest ensemble (135K members), PNG alone
/// (SVG capped at one point) and both files. `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn scatter_135k_timing() {
    let dir = tempfile::tempdir().unwrap();
    let n = 135_000;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut points = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % 10;
        let angle = k as f32 * 0.628;
        let radius = 1.5 * (uniform() + uniform() + uniform() - 1.5);
        let theta = uniform() * std::f32::consts::TAU;
        points.push([
            6.0 * angle.cos() + radius * theta.cos(),
            6.0 * angle.sin() + radius * theta.sin(),
        ]);
        labels.push((i % 40 != 0).then_some(k));
    }
    let classes: Vec<ClassStyle> = (0..10)
        .map(|k| ClassStyle::from_palette(format!("digit {k}"), k))
        .collect();
    let mut plot = ScatterPlot::new("UMAP of 135K latents", &points, &labels, &classes);
    plot.subtitle = Some("silhouette 0.41 · neighbourhood hit 0.87");
    plot.svg_max_points = 1;
    let start = std::time::Instant::now();
    plot.write(&dir.path().join("png_only")).unwrap();
    let png_secs = start.elapsed().as_secs_f64();
    plot.svg_max_points = 30_000;
    let start = std::time::Instant::now();
    let out = plot.write(&dir.path().join("both")).unwrap();
    let both_secs = start.elapsed().as_secs_f64();
    let svg_bytes = std::fs::metadata(&out.files.svg).unwrap().len();
    let png_bytes = std::fs::metadata(&out.files.png).unwrap().len();
    eprintln!(
        "135K scatter: PNG {png_secs:.2} s; PNG + SVG(30K) {both_secs:.2} s; \
         PNG {png_bytes} B, SVG {svg_bytes} B"
    );
    if let Ok(keep) = std::env::var("SENSE_REPORT_KEEP") {
        std::fs::copy(&out.files.png, Path::new(&keep).join("umap135k.png")).unwrap();
    }
}

fn curve(epochs: usize, f: impl Fn(f64) -> f64) -> Vec<(usize, f64)> {
    (0..epochs).map(|e| (e, f(e as f64))).collect()
}

#[test]
fn training_curves_panel_per_term_and_skip_non_finite() {
    let dir = tempfile::tempdir().unwrap();
    let mut kl = curve(30, |e| 0.5 + 0.1 * e.sqrt());
    kl[3].1 = f64::NAN;
    kl[7].1 = f64::INFINITY;
    let losses = vec![
        LossSeries::new(
            "reconstruction",
            curve(30, |e| 0.1 * (-e / 8.0).exp() + 0.01),
            curve(30, |e| 0.12 * (-e / 8.0).exp() + 0.013),
        ),
        LossSeries::new("KL", kl, vec![]),
        LossSeries::new("clustering", vec![(0, f64::NAN), (1, f64::NAN)], vec![]),
        LossSeries::new("contrastive", curve(30, |e| 0.3 - 0.02 * e), vec![]),
        LossSeries::new("total", curve(30, |e| 1.0 / (e + 1.0)), vec![]),
    ];
    let psnr = LossSeries::new(
        "PSNR",
        curve(30, |e| 20.0 + e.ln_1p() * 3.0),
        curve(30, |e| 19.0 + e.ln_1p() * 3.0),
    );
    let ssim = LossSeries::new(
        "SSIM",
        curve(30, |e| 0.5 + 0.4 * (1.0 - (-e / 10.0).exp())),
        vec![],
    );
    let mut curves = TrainingCurves::new("Training", &losses);
    curves.psnr_db = Some(&psnr);
    curves.ssim = Some(&ssim);
    let files = curves.write(&dir.path().join("curves")).unwrap();
    let (png, svg) = check_files(&files);
    // 6 panels in a 3 × 2 grid.
    assert_eq!(files.size_px, (1800, 110 + 2 * 560));
    for title in [
        "reconstruction",
        "KL  (2 non-finite skipped)",
        "contrastive  (linear: values ≤ 0)",
        "PSNR / SSIM",
    ] {
        assert!(svg.contains(title), "panel {title:?} missing");
    }
    assert!(svg.contains("clustering  (2 non-finite skipped)") && svg.contains("no finite values"));
    assert!(
        svg.contains("loss (log scale)") && svg.contains("PSNR (dB)") && svg.contains("\nSSIM\n")
    );
    // Train (blue) and validation (orange) lines are drawn.
    assert!(count_colour(&png, [0x1f, 0x77, 0xb4]) > 500);
    assert!(count_colour(&png, [0xff, 0x7f, 0x0e]) > 200);
    // Every panel has data drawn: each grid cell has coloured (non-grey) pixels, except the
    // clustering panel (third), which has none.
    let (w, _) = files.size_px;
    for (cell, expect_data) in [true, true, false, true, true, true]
        .into_iter()
        .enumerate()
    {
        let (x0, y0) = ((cell as u32 % 3) * w / 3, 110 + (cell as u32 / 3) * 560);
        let coloured = (x0..x0 + w / 3)
            .flat_map(|x| (y0..y0 + 560).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                let [r, g, b] = png.get_pixel(x, y).0;
                r.max(g).max(b) - r.min(g).min(b) > 60
            })
            .count();
        assert_eq!(
            coloured > 300,
            expect_data,
            "panel {cell}: {coloured} coloured pixels"
        );
    }

    let err = TrainingCurves::new("Training", &[])
        .write(&dir.path().join("none"))
        .unwrap_err();
    assert!(err.reason.contains("nothing to plot"), "{err}");
}

fn ramp(shape: [usize; 3], offset: f32) -> Vec<f32> {
    let n = shape.iter().product::<usize>();
    (0..n).map(|i| i as f32 / n as f32 + offset).collect()
}

#[test]
fn reconstruction_grid_shows_images_and_error_maps() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [1, 8, 12];
    let original = ramp(shape, 0.0);
    let perfect = original.clone();
    let mut noisy: Vec<f32> = original
        .iter()
        .enumerate()
        .map(|(i, v)| v + (i % 3) as f32 * 0.05)
        .collect();
    noisy[5] = f32::NAN;
    let rows = [
        ReconstructionRow {
            id: "member-0",
            original: &original,
            reconstruction: &perfect,
        },
        ReconstructionRow {
            id: "member-17",
            original: &original,
            reconstruction: &noisy,
        },
    ];
    let files = ReconstructionGrid::new("Reconstructions", shape, &rows)
        .write(&dir.path().join("recon"))
        .unwrap();
    let (png, svg) = check_files(&files);
    // The ramp's minimum is shown black (per-image min–max scaling), the perfect row's error
    // is viridis(0) everywhere, the NaN pixel is magenta.
    assert!(count_colour(&png, [0, 0, 0]) > 50);
    assert!(count_colour(&png, [68, 1, 84]) > 8 * 12 * 20);
    assert!(count_colour(&png, [255, 0, 255]) > 20);
    // Grey images: many pure grey pixels that are neither text nor background.
    let grey = png
        .pixels()
        .filter(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2] && p.0[0] > 40 && p.0[0] < 200)
        .count();
    assert!(grey > 2000, "{grey} grey pixels");
    // Six tiles and the colour bar embedded in the SVG.
    assert_eq!(svg.matches("data:image/png;base64,").count(), 7);
    for text in [
        "member-17",
        "original",
        "reconstruction",
        "|error|",
        "magenta: non-finite values",
    ] {
        assert!(svg.contains(text), "{text:?} missing");
    }

    // RGB, odd size.
    let shape = [3, 5, 7];
    let original = ramp(shape, 0.0);
    let reconstruction = ramp(shape, 0.1);
    let rows = [ReconstructionRow {
        id: "rgb",
        original: &original,
        reconstruction: &reconstruction,
    }];
    let files = ReconstructionGrid::new("RGB", shape, &rows)
        .write(&dir.path().join("rgb"))
        .unwrap();
    let (png, _) = check_files(&files);
    let colourful = png
        .pixels()
        .filter(|p| p.0[0] != p.0[1] || p.0[1] != p.0[2])
        .count();
    assert!(colourful > 1000);
}

#[test]
fn reconstruction_grid_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("recon");
    let image = vec![0.0f32; 16];
    let short = vec![0.0f32; 15];
    let ok = [ReconstructionRow {
        id: "a",
        original: &image,
        reconstruction: &image,
    }];
    let bad = [ReconstructionRow {
        id: "b",
        original: &image,
        reconstruction: &short,
    }];
    let err = ReconstructionGrid::new("t", [1, 4, 4], &[])
        .write(&base)
        .unwrap_err();
    assert!(err.reason.contains("nothing to plot"), "{err}");
    let err = ReconstructionGrid::new("t", [1, 4, 4], &bad)
        .write(&base)
        .unwrap_err();
    assert!(
        err.reason
            .contains("member b: reconstruction has 15 values"),
        "{err}"
    );
    let err = ReconstructionGrid::new("t", [0, 4, 4], &ok)
        .write(&base)
        .unwrap_err();
    assert!(err.reason.contains("not a CHW shape"), "{err}");
    let many = vec![ok[0]; MAX_ROWS + 1];
    let err = ReconstructionGrid::new("t", [1, 4, 4], &many)
        .write(&base)
        .unwrap_err();
    assert!(err.reason.contains("show at most"), "{err}");
    assert_only(dir.path(), vec![]);
}

#[test]
fn method_bars_one_panel_per_metric() {
    let dir = tempfile::tempdir().unwrap();
    let methods = vec!["model".to_string(), "PCA".to_string()];
    let metrics = vec![
        BarMetric::new("MSE", "", false, vec![0.0023, 0.0041]),
        BarMetric::new("PSNR", "dB", true, vec![27.31, 24.02]),
        BarMetric::new("SSIM", "", true, vec![0.871, f64::NAN]),
    ];
    let files = MethodBars::new("Model vs PCA", &methods, &metrics)
        .write(&dir.path().join("bars"))
        .unwrap();
    let (png, svg) = check_files(&files);
    // Each method keeps its palette colour: model in three panels, PCA in two (SSIM is NaN).
    let model = count_colour(&png, palette_colour(0).0);
    let pca = count_colour(&png, palette_colour(1).0);
    assert!(model > 3000 && pca > 2000, "model {model}, PCA {pca} px");
    for text in ["PSNR (dB)", "↑ better", "↓ better", "27.31", "n/a", "PCA"] {
        assert!(svg.contains(text), "{text:?} missing");
    }

    let lopsided = vec![BarMetric::new("MSE", "", false, vec![0.1])];
    let err = MethodBars::new("x", &methods, &lopsided)
        .write(&dir.path().join("b"))
        .unwrap_err();
    assert!(err.reason.contains("1 values for 2 methods"), "{err}");
    let err = MethodBars::new("x", &methods, &[])
        .write(&dir.path().join("b"))
        .unwrap_err();
    assert!(err.reason.contains("nothing to plot"), "{err}");
}

#[test]
fn line_chart_with_marker_skips_non_finite_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut inertia: Vec<(f64, f64)> = (2..=12).map(|k| (k as f64, 1000.0 / k as f64)).collect();
    inertia.push((13.0, f64::NAN));
    let series = [LineSeries::new("inertia", inertia)];
    let mut chart = LineChart::new("Elbow curve", "K (clusters)", "inertia", &series);
    chart.marker = Some((4.0, "chosen K = 4"));
    chart.log_y = true;
    let files = chart.write(&dir.path().join("elbow")).unwrap();
    let (png, svg) = check_files(&files);
    assert!(count_colour(&png, palette_colour(0).0) > 500);
    for text in [
        "chosen K = 4",
        "K (clusters)",
        "inertia (log scale)",
        "1 point with non-finite values not shown",
    ] {
        assert!(svg.contains(text), "{text:?} missing");
    }
    let nothing = [LineSeries::new("empty", vec![(1.0, f64::NAN)])];
    let err = LineChart::new("x", "x", "y", &nothing)
        .write(&dir.path().join("e"))
        .unwrap_err();
    assert!(err.reason.contains("nothing to plot"), "{err}");
}

#[test]
fn report_markdown_embeds_figures_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let figures = dir.path().join("figures");
    std::fs::create_dir(&figures).unwrap();
    let series = [LineSeries::new(
        "BIC",
        vec![(2.0, 10.0), (3.0, 8.0), (4.0, 9.0)],
    )];
    let files = LineChart::new("BIC over K", "K", "BIC", &series)
        .write(&figures.join("bic over k"))
        .unwrap();

    let mut report = ReportDocument::new("Run 2024-05-01 | CAMELS");
    report.facts = vec![
        ("data".into(), "CAMELS, 15,000 members, 1×64×64".into()),
        ("epochs".into(), "50".into()),
    ];
    report.tables.push(MetricsTable {
        title: "Reconstruction".into(),
        row_header: "method".into(),
        columns: vec!["MSE".into(), "PSNR (dB)".into(), "SSIM".into()],
        rows: vec![
            ("model".into(), vec![0.002341, 27.3149, 0.87123]),
            ("PCA | 32".into(), vec![0.0041, 24.0, f64::NAN]),
        ],
    });
    report.figures.push(ReportFigure::new("BIC over K", &files));
    let path = dir.path().join("report.md");
    report.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();

    assert!(text.starts_with("# Run 2024-05-01 | CAMELS\n"));
    assert!(text.contains("- **epochs**: 50"));
    assert!(text.contains("| method | MSE | PSNR (dB) | SSIM |"));
    assert!(text.contains("| model | 0.002341 | 27.31 | 0.8712 |"));
    assert!(text.contains("| PCA \\| 32 | 0.0041 | 24 | n/a |"));
    // Links are relative, escaped, and point at files that exist.
    assert!(text.contains("![BIC over K](figures/bic%20over%20k.png)"));
    assert!(text.contains("([SVG](figures/bic%20over%20k.svg))"));
    for link in ["figures/bic over k.png", "figures/bic over k.svg"] {
        assert!(dir.path().join(link).is_file());
    }
    assert_only(dir.path(), vec!["figures", "report.md"]);

    // A figure that does not exist is an error naming it.
    report.figures.push(ReportFigure {
        caption: "missing".into(),
        png: figures.join("umap.png"),
        svg: None,
    });
    let err = report.write(&path).unwrap_err();
    assert_eq!(err.path, figures.join("umap.png"));
}
