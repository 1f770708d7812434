//! `--device cpu|cuda[:N]|tensorrt[:N]` and the execution providers it selects.
//!
//! GPU providers are registered with `error_on_failure`: a node that asked for
//! a GPU and silently ran on the CPU is the most common "why is it slow"
//! report, so a provider that cannot start is a startup error instead.

use std::{fmt, path::PathBuf, str::FromStr};

use ort::ep::{self, ArenaExtendStrategy, ExecutionProvider, ExecutionProviderDispatch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(i32),
    TensorRt(i32),
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (kind, id) = match lower.split_once(':') {
            Some((kind, id)) => {
                let id = id
                    .parse::<i32>()
                    .ok()
                    .filter(|id| *id >= 0)
                    .ok_or_else(|| format!("invalid device ordinal in `{s}`"))?;
                (kind.to_owned(), id)
            }
            None => (lower.clone(), 0),
        };
        match kind.as_str() {
            "cpu" if !lower.contains(':') => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(id)),
            "tensorrt" | "trt" => Ok(Device::TensorRt(id)),
            _ => Err(format!(
                "unknown device `{s}`; expected cpu, cuda[:N] or tensorrt[:N]"
            )),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
            Device::TensorRt(id) => write!(f, "tensorrt:{id}"),
        }
    }
}

/// Provider settings that depend on the model being loaded.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// fp32 models get TF32 tensor-core math on Ampere+ (Ultralytics' PyTorch default too).
    pub fp32_model: bool,
    /// Writable directory for TensorRT engine and timing caches.
    pub trt_cache_dir: PathBuf,
    /// TensorRT optimisation profile: `(input name, [C, H, W])` and the batch range.
    pub trt_profile: Option<TrtProfile>,
    /// CUDA arena limit in bytes (None = ONNX Runtime's default, the whole device).
    pub gpu_mem_limit: Option<usize>,
}

/// A TensorRT optimisation profile: one engine for batch 1..=max_batch.
#[derive(Debug, Clone)]
pub struct TrtProfile {
    /// Input names with their shapes after the batch axis.
    pub inputs: Vec<(String, Vec<i64>)>,
    pub max_batch: usize,
}

impl TrtProfile {
    /// Profiles need every non-batch dimension fixed; `None` lets TensorRT
    /// build engines per shape as they come (still cached on disk).
    pub fn for_inputs(inputs: &[(String, Vec<i64>)], max_batch: usize) -> Option<Self> {
        let fixed = inputs
            .iter()
            .all(|(_, dims)| dims.iter().skip(1).all(|d| *d > 0));
        (fixed && !inputs.is_empty()).then(|| Self {
            inputs: inputs
                .iter()
                .map(|(name, dims)| (name.clone(), dims.iter().skip(1).copied().collect()))
                .collect(),
            max_batch: max_batch.max(1),
        })
    }

    fn shapes(&self, batch: usize) -> String {
        self.inputs
            .iter()
            .map(|(name, dims)| {
                let rest: String = dims.iter().map(|d| format!("x{d}")).collect();
                format!("{name}:{batch}{rest}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Device {
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Device::Cpu)
    }

    /// The GPU ordinal, `None` on the CPU.
    pub fn ordinal(&self) -> Option<i32> {
        match *self {
            Device::Cpu => None,
            Device::Cuda(id) | Device::TensorRt(id) => Some(id),
        }
    }

    /// The providers to register, most preferred first. Checks that the loaded
    /// ONNX Runtime library was built with them and says how to fix it if not.
    pub fn execution_providers(
        &self,
        options: &ProviderOptions,
    ) -> Result<Vec<ExecutionProviderDispatch>, String> {
        match *self {
            Device::Cpu => Ok(Vec::new()),
            Device::Cuda(id) => {
                require::<ep::CUDA>("CUDA")?;
                Ok(vec![cuda(id, options)])
            }
            Device::TensorRt(id) => {
                require::<ep::TensorRT>("TensorRT")?;
                require::<ep::CUDA>("CUDA")?;
                Ok(vec![tensorrt(id, options), cuda(id, options)])
            }
        }
    }
}

fn require<E: ExecutionProvider>(name: &str) -> Result<(), String> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "the loaded ONNX Runtime library has no {name} execution provider; install the GPU build \
             (`pip install onnxruntime-gpu`) and point ORT_DYLIB_PATH at its \
             onnxruntime/capi/libonnxruntime.so.*, or use --device cpu"
        )),
        Err(e) => Err(format!("could not query the {name} execution provider: {e}")),
    }
}

pub fn cuda(id: i32, options: &ProviderOptions) -> ExecutionProviderDispatch {
    let mut cuda = ep::CUDA::default()
        .with_device_id(id)
        .with_tf32(options.fp32_model)
        // Exhaustive search costs seconds per new input shape; YOLO convolutions
        // are well served by cuDNN's heuristic.
        .with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Heuristic)
        .with_arena_extend_strategy(ArenaExtendStrategy::SameAsRequested);
    if let Some(limit) = options.gpu_mem_limit {
        cuda = cuda.with_memory_limit(limit);
    }
    cuda.build().error_on_failure()
}

pub fn tensorrt(id: i32, options: &ProviderOptions) -> ExecutionProviderDispatch {
    let cache = options.trt_cache_dir.to_string_lossy().into_owned();
    let mut trt = ep::TensorRT::default()
        .with_device_id(id)
        .with_fp16(true)
        .with_engine_cache(true)
        .with_engine_cache_path(&cache)
        .with_timing_cache(true)
        .with_timing_cache_path(&cache);
    if let Some(profile) = &options.trt_profile {
        trt = trt
            .with_profile_min_shapes(profile.shapes(1))
            .with_profile_opt_shapes(profile.shapes(profile.max_batch))
            .with_profile_max_shapes(profile.shapes(profile.max_batch));
    }
    trt.build().error_on_failure()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("CUDA:1".parse::<Device>(), Ok(Device::Cuda(1)));
        assert_eq!("tensorrt:2".parse::<Device>(), Ok(Device::TensorRt(2)));
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("cpu:0".parse::<Device>().is_err());
        assert!("tpu"
            .parse::<Device>()
            .unwrap_err()
            .contains("expected cpu"));
        assert_eq!(Device::TensorRt(1).to_string(), "tensorrt:1");
    }

    #[test]
    fn tensorrt_profile_covers_batch_range() {
        let p = TrtProfile::for_inputs(&[("images".into(), vec![-1, 3, 640, 640])], 8).unwrap();
        assert_eq!(p.shapes(1), "images:1x3x640x640");
        assert_eq!(p.shapes(8), "images:8x3x640x640");
        let two =
            TrtProfile::for_inputs(&[("a".into(), vec![1, 2]), ("b".into(), vec![1, 3, 4])], 2)
                .unwrap();
        assert_eq!(two.shapes(2), "a:2x2,b:2x3x4");
        assert!(TrtProfile::for_inputs(&[("images".into(), vec![-1, 3, -1, -1])], 8).is_none());
    }

    #[test]
    fn gpu_options_are_built_without_a_gpu() {
        let options = ProviderOptions {
            fp32_model: true,
            trt_cache_dir: "/tmp/trt".into(),
            trt_profile: TrtProfile::for_inputs(&[("images".into(), vec![-1, 3, 640, 640])], 16),
            gpu_mem_limit: Some(1 << 30),
        };
        assert_eq!(cuda(0, &options).name(), "CUDAExecutionProvider");
        assert_eq!(tensorrt(1, &options).name(), "TensorrtExecutionProvider");
        assert!(Device::Cpu
            .execution_providers(&options)
            .unwrap()
            .is_empty());
    }
}
