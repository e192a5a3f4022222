//! Frame cost of the latent-map scatter widget (`sense::app::scatter`) at UMAP scale.
//!
//! 1. CPU path: the egui frame with the plot on `ScatterBackend::Cpu` (splat every point into
//!    one image + `TextureHandle::set` with the fresh image) + tessellation, with the view
//!    changed every frame so every frame re-splats.
//! 2. GPU path: a headless wgpu device (no window), an `egui_wgpu::Renderer`, and the egui
//!    frame with the plot's paint callback rendered into an offscreen texture. CPU time per
//!    frame (egui run + tessellate + texture/buffer updates + render pass + submit) for
//!    frames whose data is unchanged (view moves), whose colours changed, and whose positions
//!    changed (live UMAP); then the GPU-inclusive time after waiting for the device.
//!
//! ```text
//! cargo run --release --example scatter_frame -- [--points 135000] [--frames 60]
//!     [--cpu-only | --gpu-only] [--png DIR]
//! ```
//! `--png DIR` writes the first measured frame of each path (`cpu.png`: the splat image alone,
//! `gpu.png`: the whole rendered frame) to look at. The plot is 1280×800 points at 1 pixel per point. On a machine without a GPU, wgpu picks a
//! software adapter (Mesa lavapipe); the adapter is printed so the numbers are never confused.

use std::f32::consts::TAU;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use eframe::egui_wgpu::{self, wgpu};
use egui::{Color32, Id, RawInput, Rect, pos2, vec2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use sense::app::scatter::{ScatterBackend, ScatterPlot, View, register_gpu_with};

sense::process_allocator!();

const WIDTH_PX: u32 = 1280;
const HEIGHT_PX: u32 = 800;
const GPU_TARGET_MS: f64 = 2.0;
const CPU_TARGET_MS: f64 = 30.0;
const WARMUP_FRAMES: usize = 3;
const GPU_WAIT: Duration = Duration::from_secs(30);

struct Args {
    points: usize,
    frames: usize,
    cpu: bool,
    /// Where to write the first frame of each path as PNG, to compare them by eye.
    png_dir: Option<std::path::PathBuf>,
    gpu: bool,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut args = Self {
            points: 135_000,
            frames: 60,
            cpu: true,
            png_dir: None,
            gpu: true,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut number = |name: &str| -> Result<usize> {
                let value = it
                    .next()
                    .with_context(|| format!("{name} needs a number"))?;
                value
                    .parse()
                    .with_context(|| format!("{name} `{value}` is not a number"))
            };
            match arg.as_str() {
                "--points" => args.points = number("--points")?,
                "--frames" => args.frames = number("--frames")?.max(1),
                "--cpu-only" => args.gpu = false,
                "--gpu-only" => args.cpu = false,
                "--png" => {
                    args.png_dir = Some(it.next().context("--png needs a directory")?.into())
                }
                other => bail!(
                    "unknown argument `{other}` (see the doc comment of bench/scatter_frame.rs)"
                ),
            }
        }
        Ok(args)
    }
}

/// A UMAP-like map: Gaussian clusters of different sizes and spreads, one colour per cluster.
fn clustered_points(n: usize, seed: u64) -> (Vec<[f32; 2]>, Vec<Color32>) {
    const CLUSTERS: usize = 12;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<[f32; 2]> = (0..CLUSTERS)
        .map(|_| [rng.random_range(-12.0..12.0), rng.random_range(-8.0..8.0)])
        .collect();
    let spreads: Vec<f32> = (0..CLUSTERS).map(|_| rng.random_range(0.3..1.8)).collect();
    let palette: Vec<Color32> = (0..CLUSTERS)
        .map(|k| egui::epaint::Hsva::new(k as f32 / CLUSTERS as f32, 0.75, 0.9, 0.8).into())
        .collect();
    let unit = Normal::new(0.0f32, 1.0).expect("valid normal");
    let mut positions = Vec::with_capacity(n);
    let mut colours = Vec::with_capacity(n);
    for _ in 0..n {
        let k = rng.random_range(0..CLUSTERS);
        let (c, s) = (centres[k], spreads[k]);
        positions.push([
            c[0] + s * unit.sample(&mut rng),
            c[1] + s * unit.sample(&mut rng),
        ]);
        colours.push(palette[k]);
    }
    (positions, colours)
}

fn raw_input(frame: usize) -> RawInput {
    RawInput {
        screen_rect: Some(Rect::from_min_size(
            pos2(0.0, 0.0),
            vec2(WIDTH_PX as f32, HEIGHT_PX as f32),
        )),
        time: Some(frame as f64 / 60.0),
        ..Default::default()
    }
}

/// A slightly different view every frame (a slow pan and zoom), so no frame can reuse the last.
fn moved(base: View, frame: usize) -> View {
    let phase = frame as f32 * TAU / 40.0;
    let step = 20.0 / base.points_per_unit;
    View {
        center: [
            base.center[0] + step * phase.cos(),
            base.center[1] + step * phase.sin(),
        ],
        points_per_unit: base.points_per_unit * (1.0 + 0.05 * phase.sin()),
    }
}

/// Milliseconds: median, mean, 95th percentile.
fn summary(samples_ms: &mut [f64]) -> (f64, f64, f64) {
    samples_ms.sort_by(f64::total_cmp);
    let n = samples_ms.len();
    let mean = samples_ms.iter().sum::<f64>() / n as f64;
    (
        samples_ms[n / 2],
        mean,
        samples_ms[((n as f64 * 0.95) as usize).min(n - 1)],
    )
}

fn save_png(path: &std::path::Path, rgba: &[u8], width: u32, height: u32) {
    match image::save_buffer(path, rgba, width, height, image::ExtendedColorType::Rgba8) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(err) => eprintln!("could not write {}: {err}", path.display()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench_cpu(args: &Args, positions: &Arc<Vec<[f32; 2]>>, colours: &Arc<Vec<Color32>>) -> f64 {
    let ctx = egui::Context::default();
    let mut plot = ScatterPlot::new(Id::unique("scatter_bench"));
    plot.set_points(positions.clone(), colours.clone(), None);
    let mut plot_rect = Rect::NOTHING;
    for frame in 0..WARMUP_FRAMES {
        let _warmup = ctx.run_ui(raw_input(frame), |ui| {
            plot_rect = plot.show(ui, ScatterBackend::Cpu).response.rect
        });
    }
    let base = plot.view();
    let mut frame_ms = Vec::with_capacity(args.frames);
    let mut uploaded_px = 0;
    for frame in 0..args.frames {
        plot.set_view(moved(base, frame));
        let start = Instant::now();
        let output = ctx.run_ui(raw_input(WARMUP_FRAMES + frame), |ui| {
            plot.show(ui, ScatterBackend::Cpu);
        });
        let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
        frame_ms.push(ms(start.elapsed()));
        std::hint::black_box(primitives);
        if frame == 0
            && let Some(dir) = &args.png_dir
            && let Some(egui::ImageData::Color(image)) = output
                .textures_delta
                .set
                .values()
                .flatten()
                .map(|d| &d.image)
                .find(|i| i.width() > 1000)
        {
            save_png(
                &dir.join("cpu.png"),
                image.as_raw(),
                image.width() as u32,
                image.height() as u32,
            );
        }
        uploaded_px += output
            .textures_delta
            .set
            .values()
            .flat_map(|deltas| deltas.iter().map(|d| d.image.width() * d.image.height()))
            .sum::<usize>();
    }
    let (median, mean, p95) = summary(&mut frame_ms);
    println!(
        "CPU path   plot {:.0}×{:.0} pt, {} points, {} threads: {median:.2} ms/frame median ({mean:.2} mean, {p95:.2} p95) \
         for splat + texture set + egui run + tessellate; {:.1} Mpx uploaded per frame",
        plot_rect.width(),
        plot_rect.height(),
        args.points,
        rayon::current_num_threads(),
        uploaded_px as f64 / args.frames as f64 / 1e6,
    );
    median
}

/// Minimal executor for wgpu's futures (they resolve on the first polls on native).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    renderer: egui_wgpu::Renderer,
    target: wgpu::Texture,
    target_view: wgpu::TextureView,
}

const TARGET_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

impl Gpu {
    fn new() -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .context("no wgpu adapter")?;
        let info = adapter.get_info();
        println!(
            "GPU adapter: {} ({:?}, {:?} backend, driver {} {})",
            info.name, info.device_type, info.backend, info.driver, info.driver_info
        );
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .context("wgpu device")?;
        let mut renderer = egui_wgpu::Renderer::new(
            &device,
            TARGET_FORMAT,
            egui_wgpu::RendererOptions::default(),
        );
        register_gpu_with(&device, TARGET_FORMAT, &mut renderer);
        let target = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("scatter_bench_target"),
            size: wgpu::Extent3d {
                width: WIDTH_PX,
                height: HEIGHT_PX,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: TARGET_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let target_view = target.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            device,
            queue,
            renderer,
            target,
            target_view,
        })
    }

    /// One full frame; returns (CPU ms up to and including submit, ms until the GPU is done).
    fn frame(
        &mut self,
        ctx: &egui::Context,
        input: RawInput,
        plot: &mut ScatterPlot,
    ) -> Result<(f64, f64)> {
        let start = Instant::now();
        let output = ctx.run_ui(input, |ui| {
            plot.show(ui, ScatterBackend::Gpu);
        });
        let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
        for (id, delta) in output
            .textures_delta
            .set
            .iter()
            .flat_map(|(id, deltas)| deltas.iter().map(move |d| (id, d)))
        {
            self.renderer
                .update_texture(&self.device, &self.queue, *id, delta);
        }
        let screen = egui_wgpu::ScreenDescriptor {
            size_in_pixels: [WIDTH_PX, HEIGHT_PX],
            pixels_per_point: output.pixels_per_point,
        };
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("scatter_bench"),
            });
        let callback_buffers = self.renderer.update_buffers(
            &self.device,
            &self.queue,
            &mut encoder,
            &primitives,
            &screen,
        );
        {
            let mut pass = encoder
                .begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("scatter_bench"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &self.target_view,
                        depth_slice: None,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                            store: wgpu::StoreOp::Store,
                        },
                    })],
                    ..Default::default()
                })
                .forget_lifetime();
            self.renderer.render(&mut pass, &primitives, &screen);
        }
        let submission = self
            .queue
            .submit(callback_buffers.into_iter().chain([encoder.finish()]));
        for id in &output.textures_delta.free {
            self.renderer.free_texture(id);
        }
        let cpu_ms = ms(start.elapsed());
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(GPU_WAIT),
            })
            .context("waiting for the GPU")?;
        Ok((cpu_ms, ms(start.elapsed())))
    }

    /// The target's pixels (RGBA), to check that points were drawn at all.
    fn read_back(&self) -> Result<Vec<u8>> {
        let bytes_per_row = WIDTH_PX * 4; // 5120, a multiple of wgpu's 256-byte row alignment
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scatter_bench_readback"),
            size: u64::from(bytes_per_row * HEIGHT_PX),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_texture_to_buffer(
            self.target.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(bytes_per_row),
                    rows_per_image: None,
                },
            },
            wgpu::Extent3d {
                width: WIDTH_PX,
                height: HEIGHT_PX,
                depth_or_array_layers: 1,
            },
        );
        self.queue.submit([encoder.finish()]);
        buffer.slice(..).map_async(wgpu::MapMode::Read, |_| ());
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(GPU_WAIT),
            })
            .context("waiting for the read-back")?;
        let pixels = buffer
            .slice(..)
            .get_mapped_range()
            .context("mapping the read-back")?
            .to_vec();
        Ok(pixels)
    }
}

/// Median CPU ms and median GPU-inclusive ms over `frames` frames, `before_frame` run
/// (untimed) before each.
fn time_frames(
    gpu: &mut Gpu,
    ctx: &egui::Context,
    plot: &mut ScatterPlot,
    frames: usize,
    first_frame: usize,
    mut before_frame: impl FnMut(&mut ScatterPlot, usize),
) -> Result<(f64, f64)> {
    let (mut cpu_ms, mut total_ms) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
    for frame in 0..frames {
        before_frame(plot, frame);
        let (cpu, total) = gpu.frame(ctx, raw_input(first_frame + frame), plot)?;
        cpu_ms.push(cpu);
        total_ms.push(total);
    }
    Ok((summary(&mut cpu_ms).0, summary(&mut total_ms).0))
}

fn bench_gpu(
    args: &Args,
    positions: &Arc<Vec<[f32; 2]>>,
    colours: &Arc<Vec<Color32>>,
) -> Result<f64> {
    let mut gpu = Gpu::new()?;
    let ctx = egui::Context::default();
    let mut plot = ScatterPlot::new(Id::unique("scatter_bench"));
    plot.set_points(positions.clone(), colours.clone(), None);
    for frame in 0..WARMUP_FRAMES {
        gpu.frame(&ctx, raw_input(frame), &mut plot)?;
    }
    let pixels = gpu.read_back()?;
    if let Some(dir) = &args.png_dir {
        save_png(&dir.join("gpu.png"), &pixels, WIDTH_PX, HEIGHT_PX);
    }
    let background = [pixels[0], pixels[1], pixels[2], pixels[3]];
    let drawn = pixels.chunks_exact(4).filter(|p| *p != background).count();
    println!(
        "GPU check: {drawn} of {} pixels differ from the background",
        WIDTH_PX * HEIGHT_PX
    );
    if drawn < 1000 {
        bail!("the GPU path drew (almost) nothing: {drawn} pixels");
    }

    let base = plot.view();
    let mut next_frame = WARMUP_FRAMES;
    let (unchanged_cpu, unchanged_total) = time_frames(
        &mut gpu,
        &ctx,
        &mut plot,
        args.frames,
        next_frame,
        |plot, frame| {
            plot.set_view(moved(base, frame));
        },
    )?;
    next_frame += args.frames;

    // Two colourings (the palette, and the palette dimmed) alternating, as a selection would.
    let dimmed = Arc::new(
        colours
            .iter()
            .map(|c| c.gamma_multiply(0.3))
            .collect::<Vec<_>>(),
    );
    let (colours_cpu, colours_total) = time_frames(
        &mut gpu,
        &ctx,
        &mut plot,
        args.frames,
        next_frame,
        |plot, frame| {
            plot.set_colours(if frame % 2 == 0 {
                dimmed.clone()
            } else {
                colours.clone()
            });
        },
    )?;
    next_frame += args.frames;

    let shifted = Arc::new(
        positions
            .iter()
            .map(|p| [p[0] + 0.01, p[1]])
            .collect::<Vec<_>>(),
    );
    let (positions_cpu, positions_total) = time_frames(
        &mut gpu,
        &ctx,
        &mut plot,
        args.frames,
        next_frame,
        |plot, frame| {
            let next = if frame % 2 == 0 {
                shifted.clone()
            } else {
                positions.clone()
            };
            plot.set_points(next, colours.clone(), None);
        },
    )?;

    println!(
        "GPU path   {} points, 1280×800 px, median per frame (CPU up to submit / incl. GPU wait):",
        args.points
    );
    println!("  data unchanged (view moves): {unchanged_cpu:.2} ms / {unchanged_total:.2} ms");
    println!("  colours changed:             {colours_cpu:.2} ms / {colours_total:.2} ms");
    println!("  positions changed (live):    {positions_cpu:.2} ms / {positions_total:.2} ms");
    Ok(unchanged_cpu.max(colours_cpu))
}

fn main() -> Result<()> {
    let args = Args::parse()?;
    let (positions, colours) = clustered_points(args.points, 42);
    let (positions, colours) = (Arc::new(positions), Arc::new(colours));
    let cpu_ms = args.cpu.then(|| bench_cpu(&args, &positions, &colours));
    let gpu_ms = if args.gpu {
        Some(bench_gpu(&args, &positions, &colours)?)
    } else {
        None
    };

    let verdict = |ms: f64, target: f64| if ms <= target { "meets" } else { "MISSES" };
    let mut lines = Vec::new();
    if let Some(ms) = gpu_ms {
        lines.push(format!(
            "GPU path {ms:.2} ms CPU/frame {} the {GPU_TARGET_MS} ms target",
            verdict(ms, GPU_TARGET_MS)
        ));
    }
    if let Some(ms) = cpu_ms {
        lines.push(format!(
            "CPU path {ms:.2} ms/frame {} the {CPU_TARGET_MS} ms target",
            verdict(ms, CPU_TARGET_MS)
        ));
    }
    println!("RESULT ({} points): {}", args.points, lines.join("; "));
    Ok(())
}
