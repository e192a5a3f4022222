//! Training throughput of the SENSE paper autoencoder on burn's CPU backend (flex), or with
//! `--backend gpu` on burn's wgpu backend (a hardware adapter; the run fails rather than fall
//! back, so a GPU figure is never a CPU one).
//!
//! Trains `ModelKind::Ae` (4 × conv 3×3/s2, 64 filters, latent 256, mirrored transposed-conv
//! decoder, MSE, Adam lr 5e-4 / eps 1e-8) on one fixed batch of standard-normal single-channel
//! images and prints images per second for three phases: forward alone, forward + backward, and
//! the full step (forward + backward + Adam). `--ops` adds a per-layer timing of every conv,
//! transposed conv and dense layer of the model, forward and backward, so the gap to PyTorch
//! (`bench/torch_reference.py --ops`) can be traced to an op. `--kernels` lists every kernel a
//! train step launches on the wgpu backend, how often and for how long (see `kernel_watch`).
//!
//! ```text
//! cargo run --release --example train_throughput -- [--sizes 28x28:128,50x50:128,160x224:32]
//!     [--steps 20] [--warmup 3] [--ops] [--kernels] [--step-only] [--json]
//!     [--backend cpu|gpu|noop] [--conv lowered|burn]
//! ```
//! `--conv burn` runs the CPU convolutions on burn-flex's own kernels instead of ours
//! (`sense::nn::conv`), to compare the two.
//! `--backend noop` (a build with the `noop-gpu` feature) trains through burn's whole wgpu path
//! on wgpu's no-op backend: every kernel is generated, compiled to WGSL, validated and
//! dispatched, and no GPU runs it. Its step time is the host's share of a GPU step (autodiff,
//! fusion, cubecl's launches, wgpu's validation), which a GPU step can never beat.
//! `bench/train_throughput.sh` runs it against the PyTorch reference and prints the ratio table.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::module::linear;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, StandardNormal};
use sense::data::Shape;
use sense::nn::conv::{self, ConvGeometry, CpuConvPath};
use sense::nn::losses::mse;
use sense::nn::{Autoencoder, ModelConfig, ModelKind, halved};
use sense::train::backend::{BackendChoice, BackendKind, SelectedBackend, select_backend};

sense::process_allocator!();

const LEARNING_RATE: f64 = 5e-4;
const ADAM_EPSILON: f32 = 1e-8;
const FILTERS: usize = 64;
const LATENT_DIM: usize = 256;
const LEVELS: usize = 4;
/// Train steps watched by `--kernels`.
const KERNEL_STEPS: usize = 3;

/// One benchmarked input size.
#[derive(Debug, Clone, Copy)]
struct Case {
    height_px: usize,
    width_px: usize,
    batch: usize,
}

impl Case {
    fn parse(spec: &str) -> Result<Self> {
        let bad = || format!("size `{spec}` is not HxW:BATCH (e.g. 50x50:128)");
        let (size, batch) = spec.split_once(':').with_context(bad)?;
        let (h, w) = size.split_once('x').with_context(bad)?;
        let case = Self {
            height_px: h.trim().parse().with_context(bad)?,
            width_px: w.trim().parse().with_context(bad)?,
            batch: batch.trim().parse().with_context(bad)?,
        };
        if case.height_px == 0 || case.width_px == 0 || case.batch == 0 {
            bail!(bad());
        }
        Ok(case)
    }

    fn label(&self) -> String {
        format!("{}x{}", self.height_px, self.width_px)
    }
}

struct Args {
    cases: Vec<Case>,
    steps: usize,
    warmup: usize,
    ops: bool,
    /// `--kernels`: list the kernels a train step launches (see `kernel_watch`).
    kernels: bool,
    /// `--step-only`: time the full train step alone, so a profile of the run is of it.
    step_only: bool,
    json: bool,
    backend: BenchBackend,
    conv: CpuConvPath,
}

/// Where the bench trains.
enum BenchBackend {
    /// `--backend cpu|gpu`, chosen as `sense` chooses.
    Selected(BackendChoice),
    /// `--backend noop`: the wgpu path with no GPU behind it (see the module comment).
    NoopGpu,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut args = Self {
            cases: Vec::new(),
            steps: 20,
            warmup: 3,
            ops: false,
            kernels: false,
            step_only: false,
            json: false,
            backend: BenchBackend::Selected(BackendChoice::Cpu),
            conv: CpuConvPath::Lowered,
        };
        let mut sizes = "28x28:128,50x50:128,160x224:32".to_owned();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--sizes" => sizes = value()?,
                "--steps" => args.steps = value()?.parse().context("--steps")?,
                "--warmup" => args.warmup = value()?.parse().context("--warmup")?,
                "--ops" => args.ops = true,
                "--kernels" => args.kernels = true,
                "--step-only" => args.step_only = true,
                "--json" => args.json = true,
                "--backend" => {
                    args.backend = match value()?.as_str() {
                        "cpu" => BenchBackend::Selected(BackendChoice::Cpu),
                        "gpu" => BenchBackend::Selected(BackendChoice::Gpu),
                        "noop" => BenchBackend::NoopGpu,
                        other => bail!("--backend `{other}`: use cpu, gpu or noop"),
                    }
                }
                "--conv" => {
                    args.conv = match value()?.as_str() {
                        "lowered" => CpuConvPath::Lowered,
                        "burn" => CpuConvPath::Burn,
                        other => bail!("--conv `{other}`: use lowered or burn"),
                    }
                }
                other => bail!(
                    "unknown argument `{other}`; use --sizes HxW:B,.. --steps N --warmup N --ops --kernels --step-only --json --backend cpu|gpu|noop --conv lowered|burn"
                ),
            }
        }
        if args.steps == 0 {
            bail!("--steps must be at least 1");
        }
        args.cases = sizes.split(',').map(Case::parse).collect::<Result<_>>()?;
        Ok(args)
    }
}

/// Seconds of CPU time this process has used, all threads together.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we hand it.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Throughput of one phase: wall-clock images/s and how many cores were busy meanwhile.
#[derive(Debug, Clone, Copy)]
struct Rate {
    img_per_sec: f64,
    busy_cores: f64,
}

/// Measures the calls between `start` and `finish`.
struct Stopwatch {
    wall: Instant,
    cpu_secs: f64,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu_secs: cpu_secs(),
        }
    }

    fn finish(self, images: usize) -> Rate {
        let wall_secs = self.wall.elapsed().as_secs_f64();
        Rate {
            img_per_sec: images as f64 / wall_secs,
            busy_cores: (cpu_secs() - self.cpu_secs) / wall_secs,
        }
    }
}

/// Rate over `steps` timed calls of `step`, after `warmup` untimed ones.
fn measure(batch: usize, warmup: usize, steps: usize, mut step: impl FnMut()) -> Rate {
    for _ in 0..warmup {
        step();
    }
    let watch = Stopwatch::start();
    for _ in 0..steps {
        step();
    }
    watch.finish(batch * steps)
}

/// Mean milliseconds of `op` over `reps` calls after one warm-up call. Each call returns a
/// scalar tensor that depends on all of its work; they are summed and read back once at the
/// end, so on a GPU the figure is of finished work without a read-back latency per call.
fn mean_ms(reps: usize, mut op: impl FnMut() -> Tensor<1>) -> f64 {
    op().into_scalar::<f32>();
    let start = Instant::now();
    let mut total = op();
    for _ in 1..reps {
        total = total + op();
    }
    total.into_scalar::<f32>();
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

/// Standard-normal values from a fixed seed (the same batch every step, like the reference).
fn normal_batch(case: Case) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..case.batch * case.height_px * case.width_px)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect()
}

struct Throughput {
    /// `None` with `--step-only`.
    forward: Option<Rate>,
    forward_backward: Option<Rate>,
    step: Rate,
    /// `--kernels`: the launches of one train step, by kernel.
    kernels: Option<Vec<kernel_watch::KernelRow>>,
}

fn train_throughput(
    case: Case,
    warmup: usize,
    steps: usize,
    kernel_steps: usize,
    step_only: bool,
    backend: &Device,
) -> Result<Throughput> {
    let device = backend.clone().autodiff();
    device.seed(42);
    let shape = Shape::new(1, case.height_px, case.width_px);
    let mut model = ModelConfig::new(ModelKind::Ae)
        .with_filters(FILTERS)
        .with_latent_dim(LATENT_DIM)
        .init(shape, &device)?;
    let mut optim = AdamConfig::new().with_epsilon(ADAM_EPSILON).init();
    let data = TensorData::new(
        normal_batch(case),
        [case.batch, 1, case.height_px, case.width_px],
    );
    let x = Tensor::<4>::from_data(data, &device);

    // Forward alone: the inference model on the plain device (no graph recorded).
    let plain = device.clone().without_autodiff();
    let valid = model.valid();
    let x_plain = x.clone().to_device(&plain);
    let forward = (!step_only).then(|| {
        measure(case.batch, warmup, steps, || {
            let recon = valid.forward(x_plain.clone()).recon;
            mse(recon, x_plain.clone()).into_scalar::<f32>();
        })
    });

    let forward_backward = (!step_only).then(|| {
        measure(case.batch, warmup, steps, || {
            let loss = mse(model.forward(x.clone()).recon, x.clone());
            let grads = loss.backward();
            loss.into_scalar::<f32>();
            drop(grads);
        })
    });

    // The full step. `optim.step` takes the model by value, so the model goes in and comes
    // back out (a closure capturing it would keep a second reference to every weight).
    let mut train_step = |model: Autoencoder| {
        let loss = mse(model.forward(x.clone()).recon, x.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(LEARNING_RATE, model, grads);
        (model, loss.into_scalar::<f32>())
    };
    let mut last_loss = f32::NAN;
    let mut watch = Stopwatch::start();
    for i in 0..warmup + steps {
        if i == warmup {
            watch = Stopwatch::start();
        }
        (model, last_loss) = train_step(model);
    }
    let step = watch.finish(case.batch * steps);
    if !last_loss.is_finite() {
        bail!("training diverged at {}: loss {last_loss}", case.label());
    }
    let kernels = match kernel_steps {
        0 => None,
        observed => {
            let watch = kernel_watch::KernelWatch::start()?;
            for _ in 0..observed {
                (model, _) = train_step(model);
            }
            Some(watch.per_step(observed))
        }
    };
    Ok(Throughput {
        forward,
        forward_backward,
        step,
        kernels,
    })
}

fn print_kernels(rows: &[kernel_watch::KernelRow]) {
    if rows.is_empty() {
        println!(
            "  kernels per train step: none launched (the CPU backend runs no cubecl kernels)"
        );
        return;
    }
    let launches: f64 = rows.iter().map(|r| r.launches).sum();
    let ms: f64 = rows.iter().map(|r| r.ms).sum();
    println!(
        "  kernels per train step: {launches:.0} launches of {} kernels, {ms:.2} ms timed one at a time",
        rows.len()
    );
    println!("  {:>8} {:>9}  {:<7} kernel", "launches", "ms", "timing");
    for row in rows {
        println!(
            "  {:>8.1} {:>9.3}  {:<7} {}",
            row.launches, row.ms, row.timing, row.kernel
        );
    }
}

/// Milliseconds of one layer op: forward alone, forward + backward to the weights, and
/// forward + backward to weights and input (what every layer but the first needs).
fn time_layer<const D: usize, const W: usize>(
    reps: usize,
    x: &Tensor<D>,
    weight: &Tensor<W>,
    bias: Option<&Tensor<1>>,
    op: impl Fn(Tensor<D>, Tensor<W>, Option<Tensor<1>>) -> Tensor<D>,
) -> [f64; 3] {
    let fwd = mean_ms(reps, || op(x.clone(), weight.clone(), bias.cloned()).sum());
    let autodiff = x.device().autodiff();
    let backward = |input_grad: bool| {
        let x = x.clone().to_device(&autodiff).autodiff();
        let x = if input_grad { x.require_grad() } else { x };
        let w = weight
            .clone()
            .to_device(&autodiff)
            .autodiff()
            .require_grad();
        let b = bias.map(|b| b.clone().to_device(&autodiff).autodiff().require_grad());
        mean_ms(reps, || {
            let grads = op(x.clone(), w.clone(), b.clone()).sum().backward();
            let grad_w = w.grad(&grads).expect("the weight has a gradient").sum();
            match x.grad(&grads) {
                Some(grad_x) => grad_w + grad_x.sum(),
                None => grad_w,
            }
        })
    };
    [fwd, backward(false), backward(true)]
}

/// Per-layer timing of the model's ops at one size (inputs made once, outside the timing).
fn profile_ops(case: Case, reps: usize, device: &Device, backend_name: &str) {
    let b = case.batch;
    let hs: Vec<usize> = (0..=LEVELS).map(|l| halved(case.height_px, l)).collect();
    let ws: Vec<usize> = (0..=LEVELS).map(|l| halved(case.width_px, l)).collect();
    let random = |dims: &[usize]| -> Tensor<1> {
        Tensor::random(
            [dims.iter().product::<usize>()],
            Distribution::Normal(0.0, 0.1),
            device,
        )
    };

    println!(
        "  per-layer ms on {backend_name} (CPU convs: {:?}; {reps} calls, one read-back at the end):",
        conv::cpu_conv_path()
    );
    println!(
        "  {:<28} {:>8} {:>11} {:>11} {:>8}",
        "op", "fwd", "bwd weight", "bwd input", "total"
    );
    let mut sum = [0.0; 3];
    let mut report = |name: String, [fwd, with_w, with_x]: [f64; 3], input_grad: bool| {
        let bwd_w = with_w - fwd;
        let bwd_x = if input_grad { with_x - with_w } else { 0.0 };
        let row = [fwd, bwd_w, bwd_x];
        for (s, r) in sum.iter_mut().zip(row) {
            *s += r;
        }
        println!(
            "  {name:<28} {fwd:>8.2} {bwd_w:>11.2} {bwd_x:>11.2} {:>8.2}",
            fwd + bwd_w + bwd_x
        );
    };

    let geometry = ConvGeometry {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
    };
    // The convolutions alone, as in the reference's table (the model fuses ReLU into them).
    let conv = |x: Tensor<4>, w: Tensor<4>, bias: Option<Tensor<1>>| {
        conv::conv2d(x, w, bias, geometry, None)
    };
    for l in 0..LEVELS {
        let c_in = if l == 0 { 1 } else { FILTERS };
        let x = random(&[b, c_in, hs[l], ws[l]]).reshape([b, c_in, hs[l], ws[l]]);
        let w = random(&[FILTERS, c_in, 3, 3]).reshape([FILTERS, c_in, 3, 3]);
        let times = time_layer(reps, &x, &w, Some(&random(&[FILTERS])), conv);
        // The first layer's input is data: no gradient flows into it.
        report(
            format!("conv{l} {c_in}->{FILTERS} {}x{}", hs[l], ws[l]),
            times,
            l > 0,
        );
    }

    let features = FILTERS * hs[LEVELS] * ws[LEVELS];
    for (name, d_in, d_out) in [
        ("dense encode", features, LATENT_DIM),
        ("dense decode", LATENT_DIM, features),
    ] {
        let x = random(&[b, d_in]).reshape([b, d_in]);
        let w = random(&[d_in, d_out]).reshape([d_in, d_out]);
        let bias = random(&[d_out]);
        let times = time_layer(reps, &x, &w, Some(&bias), linear);
        report(format!("{name} {d_in}->{d_out}"), times, true);
    }

    for l in (1..=LEVELS).rev() {
        let c_out = if l == 1 { 1 } else { FILTERS };
        let big_px = [hs[l - 1], ws[l - 1]];
        let deconv = |x: Tensor<4>, w: Tensor<4>, bias: Option<Tensor<1>>| {
            conv::conv_transpose2d(x, w, bias, geometry, big_px, None)
        };
        let x = random(&[b, FILTERS, hs[l], ws[l]]).reshape([b, FILTERS, hs[l], ws[l]]);
        let w = random(&[FILTERS, c_out, 3, 3]).reshape([FILTERS, c_out, 3, 3]);
        let times = time_layer(reps, &x, &w, Some(&random(&[c_out])), deconv);
        let name = format!(
            "deconv{} {FILTERS}->{c_out} {}x{}",
            LEVELS - l,
            hs[l - 1],
            ws[l - 1]
        );
        report(name, times, true);
    }
    println!(
        "  {:<28} {:>8.2} {:>11.2} {:>11.2} {:>8.2}",
        "sum of layers",
        sum[0],
        sum[1],
        sum[2],
        sum.iter().sum::<f64>()
    );
}

fn main() -> Result<()> {
    let args = Args::parse()?;
    conv::set_cpu_conv_path(args.conv);
    let threads = rayon::current_num_threads();
    let backend = match args.backend {
        BenchBackend::Selected(choice) => select_backend(choice),
        BenchBackend::NoopGpu => noop_gpu::backend()?,
    };
    if let Some(reason) = &backend.fallback_reason {
        bail!("{reason}");
    }
    let framework = match backend.kind {
        BackendKind::Cpu => "burn-flex".to_string(),
        BackendKind::Gpu => format!("burn-wgpu {}", backend.name),
    };
    for &case in &args.cases {
        let kernel_steps = if args.kernels { KERNEL_STEPS } else { 0 };
        let t = train_throughput(
            case,
            args.warmup,
            args.steps,
            kernel_steps,
            args.step_only,
            &backend.device,
        )?;
        let phases = [
            ("forward", t.forward),
            ("forward_backward", t.forward_backward),
            ("step", Some(t.step)),
        ];
        let phases = phases
            .into_iter()
            .filter_map(|(name, rate)| Some((name, rate?)));
        if args.json {
            let mut line = serde_json::json!({
                "framework": framework,
                "size": case.label(),
                "batch": case.batch,
                "steps": args.steps,
                "threads": threads,
                "cpu_conv": format!("{:?}", args.conv),
            });
            for (name, rate) in phases {
                line[format!("{name}_img_per_sec")] = rate.img_per_sec.into();
                line[format!("{name}_busy_cores")] = rate.busy_cores.into();
            }
            println!("{line}");
        } else {
            println!(
                "{framework} {} batch {} ({threads} rayon threads):",
                case.label(),
                case.batch
            );
            for (name, rate) in phases {
                println!(
                    "  {name:<17} {:>9.1} img/s  {:>4.2} cores busy",
                    rate.img_per_sec, rate.busy_cores
                );
            }
        }
        if let Some(rows) = &t.kernels {
            print_kernels(rows);
        }
        if args.ops {
            profile_ops(case, args.steps.clamp(3, 10), &backend.device, &framework);
        }
    }
    Ok(())
}

/// burn's wgpu backend on wgpu's no-op backend (`--backend noop`).
#[cfg(feature = "noop-gpu")]
mod noop_gpu {
    use super::{BackendKind, Result, SelectedBackend};
    use anyhow::Context;
    use burn::tensor::Device;
    use burn::tensor::wgpu::{WgpuSetup, wgpu};
    use sense::train::backend::block_on;

    /// A device that reports what a Vulkan NVIDIA GPU reports to cubecl where it changes which
    /// kernels cubecl generates (a discrete GPU with 32-wide subgroups, f16, i64 and float
    /// atomics, large workgroups and shared memory), so the host does the work it would do
    /// there. No timestamp queries: autotune times candidates on the host clock, where no
    /// kernel runs, so its choices can differ from a GPU's (the conv weight gradient may take
    /// the fallback, a direct conv with layout copies, over the im2col kernel), and launch
    /// counts are those of the choices made here.
    pub fn backend() -> Result<SelectedBackend> {
        let features = wgpu::Features::SUBGROUP
            | wgpu::Features::SHADER_F16
            | wgpu::Features::SHADER_INT64
            | wgpu::Features::SHADER_FLOAT32_ATOMIC;
        let limits = wgpu::Limits {
            max_compute_workgroup_storage_size: 48 * 1024,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroup_size_x: 1024,
            max_compute_workgroup_size_y: 1024,
            max_compute_workgroup_size_z: 64,
            max_storage_buffers_per_shader_stage: 64,
            max_storage_buffer_binding_size: u64::from(u32::MAX),
            max_buffer_size: u64::from(u32::MAX),
            ..wgpu::Limits::default()
        };
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::NOOP,
            backend_options: wgpu::BackendOptions {
                noop: wgpu::NoopBackendOptions {
                    enable: true,
                    limits: Some(limits.clone()),
                    features: Some(features),
                    device_type: Some(wgpu::DeviceType::DiscreteGpu),
                    subgroup_min_size: Some(32),
                    subgroup_max_size: Some(32),
                },
                ..Default::default()
            },
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .context("the no-op wgpu adapter")?;
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            required_features: features,
            // As the adapter reports them: wgpu rounds some of the asked-for ones down.
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            ..Default::default()
        }))
        .context("the no-op wgpu device")?;
        let device = Device::wgpu_options()
            .setup(WgpuSetup {
                instance,
                adapter,
                device,
                queue,
                backend: wgpu::Backend::Noop,
            })
            .init()
            .context("registering the no-op wgpu device with burn")?;
        Ok(SelectedBackend {
            device,
            kind: BackendKind::Gpu,
            name: "no-op wgpu (host work only)".into(),
            fallback_reason: None,
        })
    }
}

#[cfg(not(feature = "noop-gpu"))]
mod noop_gpu {
    use super::{Result, SelectedBackend};

    pub fn backend() -> Result<SelectedBackend> {
        anyhow::bail!("--backend noop needs a build with the `noop-gpu` feature")
    }
}

/// `--kernels`: which kernels a train step launches on the wgpu backend.
#[cfg(feature = "gpu")]
mod kernel_watch {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use anyhow::Result;
    use burn::cubecl::config::{TypeNameFormatLevel, type_name_format};
    use burn::cubecl::logging::{
        Duration as ProfileTime, LaunchObservation, LaunchObserver, TimingMethod, TimingRequest,
    };

    /// Every kernel launch of the observed train steps, by kernel. Each launch is timed on its
    /// own (`TimingRequest::Resolved` waits for it), so the times are each kernel's cost, and
    /// the steps themselves run slower than the timed ones above. On a GPU with timestamp queries
    /// the time is the device's; otherwise it is the host's wall clock around a blocking submit.
    #[derive(Default)]
    struct KernelTally(Mutex<BTreeMap<&'static str, KernelStats>>);

    #[derive(Default, Clone)]
    struct KernelStats {
        launches: usize,
        timed_ms: f64,
        /// How the launches were timed (`Device`, `System`, or `mixed`), as cubecl reports it.
        timing: String,
    }

    impl LaunchObserver for KernelTally {
        fn launched(&self, kernel: &'static str) {
            lock(&self.0).entry(kernel).or_default().launches += 1;
        }

        fn timing(&self) -> TimingRequest {
            TimingRequest::Resolved
        }

        fn timed(&self, kernel: &'static str, duration: ProfileTime, method: TimingMethod) {
            let mut kernels = lock(&self.0);
            let stats = kernels.entry(kernel).or_default();
            stats.timed_ms += duration.as_secs_f64() * 1e3;
            // wgpu falls back to the host clock once its timestamp queries run out.
            let method = format!("{method:?}");
            stats.timing = match stats.timing.is_empty() || stats.timing == method {
                true => method,
                false => "mixed".into(),
            };
        }
    }

    /// The tally survives a panicking observer call: it only ever holds counts.
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One kernel's launches and time in one train step, averaged over the observed steps.
    pub struct KernelRow {
        pub kernel: String,
        pub launches: f64,
        pub ms: f64,
        pub timing: String,
    }

    /// Watches every kernel launch until [`Self::per_step`].
    pub struct KernelWatch {
        tally: Arc<KernelTally>,
        _observation: LaunchObservation,
    }

    impl KernelWatch {
        pub fn start() -> Result<Self> {
            let tally = Arc::new(KernelTally::default());
            let observation = LaunchObservation::new(tally.clone());
            Ok(Self {
                tally,
                _observation: observation,
            })
        }

        /// Stops watching; the launches and times of one step, slowest kernel first.
        pub fn per_step(self, steps: usize) -> Vec<KernelRow> {
            let steps = steps as f64;
            let mut rows: Vec<KernelRow> = lock(&self.tally.0)
                .iter()
                .map(|(kernel, stats)| KernelRow {
                    kernel: type_name_format(kernel, TypeNameFormatLevel::Balanced),
                    launches: stats.launches as f64 / steps,
                    ms: stats.timed_ms / steps,
                    timing: stats.timing.clone(),
                })
                .collect();
            rows.sort_by(|a, b| b.ms.total_cmp(&a.ms));
            rows
        }
    }
}

#[cfg(not(feature = "gpu"))]
mod kernel_watch {
    use anyhow::{Result, bail};

    pub struct KernelRow {
        pub kernel: String,
        pub launches: f64,
        pub ms: f64,
        pub timing: String,
    }

    pub struct KernelWatch;

    impl KernelWatch {
        pub fn start() -> Result<Self> {
            bail!("--kernels needs a build with the `gpu` feature (kernels are cubecl's)")
        }

        pub fn per_step(self, _steps: usize) -> Vec<KernelRow> {
            Vec::new()
        }
    }
}
