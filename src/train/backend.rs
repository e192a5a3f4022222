//! Choosing where to train: a hardware GPU through wgpu, or burn's pure-Rust CPU backend.
//!
//! The choice is made once, before any tensor exists. Software Vulkan drivers (Mesa lavapipe,
//! llvmpipe) report themselves as CPU adapters: they never count as a GPU, and no burn wgpu
//! device is ever created for them (burn's kernels crash lavapipe, and it would be far slower
//! than the CPU backend anyway).

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
#[cfg(feature = "gpu")]
use std::path::PathBuf;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// A hardware GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// A hardware GPU; falls back to the CPU with a message when there is none.
    Gpu,
    Cpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Gpu,
    Cpu,
}

/// The backend a run trains on.
#[derive(Debug, Clone)]
pub struct SelectedBackend {
    /// Plain device (no autodiff); training uses `device.clone().autodiff()`.
    pub device: Device,
    pub kind: BackendKind,
    /// Human-readable, e.g. `"CPU (burn flex)"` or `"NVIDIA H100 (Vulkan)"`.
    pub name: String,
    /// Why the run is not on what was asked for (e.g. a GPU was requested but none found).
    pub fallback_reason: Option<String>,
}

/// A graphics adapter as wgpu reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterSummary {
    pub name: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// `Vulkan`, `Metal`, `Dx12`, …
    pub api: String,
}

impl AdapterSummary {
    /// Whether this is real GPU hardware (software rasterisers are `Cpu` adapters).
    pub fn is_hardware(&self) -> bool {
        matches!(
            self.device_type.as_str(),
            "DiscreteGpu" | "IntegratedGpu" | "VirtualGpu"
        )
    }
}

pub fn cpu_backend(fallback_reason: Option<String>) -> SelectedBackend {
    SelectedBackend {
        device: Device::flex(),
        kind: BackendKind::Cpu,
        name: "CPU (burn flex)".into(),
        fallback_reason,
    }
}

/// Picks the backend for `choice`. Never fails: anything that rules out the GPU lands on
/// the CPU with the reason in [`SelectedBackend::fallback_reason`].
pub fn select_backend(choice: BackendChoice) -> SelectedBackend {
    select_from(choice, hardware_adapters)
}

/// [`select_backend`] with the adapter list injected (so the decision is testable anywhere).
pub fn select_from(
    choice: BackendChoice,
    adapters: impl FnOnce() -> Result<Vec<AdapterSummary>, String>,
) -> SelectedBackend {
    if choice == BackendChoice::Cpu {
        return cpu_backend(None);
    }
    let found = match adapters() {
        Ok(found) => found,
        Err(reason) => {
            return cpu_backend(Some(format!(
                "no GPU available ({reason}); training on the CPU"
            )));
        }
    };
    let Some(adapter) = best_hardware_adapter(&found) else {
        let seen = match found.is_empty() {
            true => "no graphics adapter found".to_string(),
            false => format!(
                "only software adapters found: {}",
                found
                    .iter()
                    .map(|a| format!("{} ({})", a.name, a.device_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let reason = match choice {
            BackendChoice::Gpu => format!("GPU requested but {seen}; training on the CPU"),
            _ => format!("{seen}; training on the CPU"),
        };
        return cpu_backend(Some(reason));
    };
    match gpu_device(adapter) {
        Ok(device) => SelectedBackend {
            device,
            kind: BackendKind::Gpu,
            name: format!("{} ({})", adapter.name, adapter.api),
            fallback_reason: None,
        },
        Err(reason) => cpu_backend(Some(format!(
            "GPU {} could not be used ({reason}); training on the CPU",
            adapter.name
        ))),
    }
}

/// Discrete before integrated before virtual GPUs.
fn best_hardware_adapter(adapters: &[AdapterSummary]) -> Option<&AdapterSummary> {
    let rank = |a: &AdapterSummary| match a.device_type.as_str() {
        "DiscreteGpu" => 0,
        "IntegratedGpu" => 1,
        _ => 2,
    };
    adapters
        .iter()
        .filter(|a| a.is_hardware())
        .min_by_key(|a| rank(a))
}

#[cfg(feature = "gpu")]
fn gpu_device(adapter: &AdapterSummary) -> Result<Device, String> {
    use burn::tensor::{DeviceKind, Tensor};
    let kind = match adapter.device_type.as_str() {
        "DiscreteGpu" => DeviceKind::DiscreteGpu(0),
        "IntegratedGpu" => DeviceKind::IntegratedGpu(0),
        _ => DeviceKind::VirtualGpu(0),
    };
    use_user_autotune_cache();
    // Device creation is lazy: run one tiny op so a broken driver fails here, not mid-run.
    std::panic::catch_unwind(|| {
        let device = Device::wgpu(kind);
        let probe = Tensor::<1>::ones([4], &device).sum().into_scalar::<f32>();
        (probe == 4.0).then_some(device)
    })
    .map_err(|panic| panic_message(&panic))?
    .ok_or_else(|| "a test computation gave a wrong result".to_string())
}

#[cfg(not(feature = "gpu"))]
fn gpu_device(_adapter: &AdapterSummary) -> Result<Device, String> {
    Err("this build has no GPU support (cargo feature `gpu`)".into())
}

/// Points cubecl's persistent autotune cache at [`autotune_cache_dir`] before the first GPU
/// device exists, so a second start on the same shapes skips autotuning. Only cubecl's
/// default location (`target/` of the enclosing cargo project) is moved: a location the user
/// chose in a `cubecl.toml` stays, and a configuration cubecl already loaded is kept.
#[cfg(feature = "gpu")]
fn use_user_autotune_cache() {
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let config = with_user_cache(
        CubeClRuntimeConfig::from_current_dir().override_from_env(),
        autotune_cache_dir(),
    );
    let _ = CubeClRuntimeConfig::try_set(config);
}

/// `config` with its environment (autotune cache) directory moved to `dir` when it is still
/// cubecl's default.
#[cfg(feature = "gpu")]
fn with_user_cache(
    mut config: burn::cubecl::config::CubeClRuntimeConfig,
    dir: Option<PathBuf>,
) -> burn::cubecl::config::CubeClRuntimeConfig {
    use burn::cubecl::config::cache::CacheConfig;
    if let (CacheConfig::Target, Some(dir)) = (&config.environment.path, dir) {
        config.environment.path = CacheConfig::Directory(dir);
    }
    config
}

/// The per-user directory for the GPU autotune cache: `$XDG_CACHE_HOME/sense/cubecl` or
/// `~/.cache/sense/cubecl` on Linux, `~/Library/Caches/sense/cubecl` on macOS,
/// `%LOCALAPPDATA%\sense\cubecl` on Windows. `None` when the platform names no such place.
///
/// cubecl's own default is `target/environment` under the outermost `Cargo.toml` above the
/// working directory: fine for a checkout, wrong for an installed binary started anywhere.
#[cfg(feature = "gpu")]
pub fn autotune_cache_dir() -> Option<PathBuf> {
    let platform = match () {
        _ if cfg!(target_os = "macos") => CachePlatform::MacOs,
        _ if cfg!(windows) => CachePlatform::Windows,
        _ => CachePlatform::Xdg,
    };
    cache_dir_for(platform, |name| std::env::var_os(name))
}

#[cfg(feature = "gpu")]
#[derive(Debug, Clone, Copy)]
enum CachePlatform {
    Xdg,
    MacOs,
    Windows,
}

/// [`autotune_cache_dir`] with the platform and environment given (so tests can vary them).
#[cfg(feature = "gpu")]
fn cache_dir_for(
    platform: CachePlatform,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    // Relative values are ignored, as the XDG base directory specification asks.
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = match platform {
        CachePlatform::Xdg => {
            absolute("XDG_CACHE_HOME").or_else(|| Some(absolute("HOME")?.join(".cache")))?
        }
        CachePlatform::MacOs => absolute("HOME")?.join("Library").join("Caches"),
        CachePlatform::Windows => absolute("LOCALAPPDATA")?,
    };
    Some(base.join("sense").join("cubecl"))
}

/// The graphics adapters on this machine, hardware and software alike.
#[cfg(feature = "gpu")]
pub fn hardware_adapters() -> Result<Vec<AdapterSummary>, String> {
    use burn::tensor::wgpu::wgpu;
    std::panic::catch_unwind(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::PRIMARY,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        adapters
            .iter()
            .map(|adapter| {
                let info = adapter.get_info();
                AdapterSummary {
                    name: info.name,
                    device_type: format!("{:?}", info.device_type),
                    api: format!("{:?}", info.backend),
                }
            })
            .collect()
    })
    .map_err(|panic| format!("adapter enumeration failed: {}", panic_message(&panic)))
}

#[cfg(not(feature = "gpu"))]
pub fn hardware_adapters() -> Result<Vec<AdapterSummary>, String> {
    Err("this build has no GPU support (cargo feature `gpu`)".into())
}

/// Native wgpu futures complete on the first poll; this drives one without an async runtime.
#[cfg(feature = "gpu")]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::yield_now();
    }
}

/// The text of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, device_type: &str) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            device_type: device_type.into(),
            api: "Vulkan".into(),
        }
    }

    #[test]
    fn software_adapters_do_not_count_as_gpus() {
        let lavapipe = || Ok(vec![adapter("llvmpipe (LLVM 15.0.6, 256 bits)", "Cpu")]);
        for choice in [BackendChoice::Auto, BackendChoice::Gpu] {
            let picked = select_from(choice, lavapipe);
            assert_eq!(picked.kind, BackendKind::Cpu);
            let reason = picked.fallback_reason.expect("a fallback message");
            assert!(reason.contains("llvmpipe"), "{reason}");
        }
        let reason = select_from(BackendChoice::Gpu, lavapipe)
            .fallback_reason
            .unwrap();
        assert!(reason.starts_with("GPU requested"), "{reason}");
    }

    #[test]
    fn cpu_choice_never_looks_for_adapters() {
        let picked = select_from(BackendChoice::Cpu, || panic!("must not enumerate"));
        assert_eq!(picked.kind, BackendKind::Cpu);
        assert!(picked.fallback_reason.is_none());
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn cubecl_config_moves_only_the_default_cache_location() {
        use burn::cubecl::config::CubeClRuntimeConfig;
        use burn::cubecl::config::cache::CacheConfig;
        let dir = PathBuf::from("/home/ada/.cache/sense/cubecl");
        let moved = with_user_cache(CubeClRuntimeConfig::default(), Some(dir.clone()));
        assert!(
            matches!(&moved.environment.path, CacheConfig::Directory(d) if *d == dir),
            "{:?}",
            moved.environment.path
        );
        let mut chosen = CubeClRuntimeConfig::default();
        chosen.environment.path = CacheConfig::Global;
        let kept = with_user_cache(chosen, Some(dir));
        assert!(matches!(kept.environment.path, CacheConfig::Global));
        let no_home = with_user_cache(CubeClRuntimeConfig::default(), None);
        assert!(matches!(no_home.environment.path, CacheConfig::Target));
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn autotune_cache_goes_to_the_user_cache_directory() {
        use std::ffi::OsString;
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| OsString::from(value))
            }
        };
        let dir = |platform, pairs| cache_dir_for(platform, env(pairs));
        let home = &[("HOME", "/home/ada")];
        let xdg = &[("HOME", "/home/ada"), ("XDG_CACHE_HOME", "/var/cache/ada")];
        assert_eq!(
            dir(CachePlatform::Xdg, home),
            Some(PathBuf::from("/home/ada/.cache/sense/cubecl"))
        );
        assert_eq!(
            dir(CachePlatform::Xdg, xdg),
            Some(PathBuf::from("/var/cache/ada/sense/cubecl"))
        );
        // A relative XDG_CACHE_HOME is invalid and ignored.
        let relative = &[("HOME", "/home/ada"), ("XDG_CACHE_HOME", "cache")];
        assert_eq!(
            dir(CachePlatform::Xdg, relative),
            Some(PathBuf::from("/home/ada/.cache/sense/cubecl"))
        );
        assert_eq!(
            dir(CachePlatform::MacOs, xdg),
            Some(PathBuf::from("/home/ada/Library/Caches/sense/cubecl"))
        );
        assert_eq!(dir(CachePlatform::Xdg, &[]), None);
        assert_eq!(dir(CachePlatform::Windows, home), None);
    }

    #[test]
    fn discrete_gpus_rank_first() {
        let found = [
            adapter("soft", "Cpu"),
            adapter("igpu", "IntegratedGpu"),
            adapter("dgpu", "DiscreteGpu"),
        ];
        assert_eq!(best_hardware_adapter(&found).unwrap().name, "dgpu");
    }
}
