//! Creating sessions and describing their inputs and outputs, so model
//! families can validate a model at startup from facts instead of guesses.

use std::{collections::HashMap, path::Path};

use ort::{
    session::{builder::GraphOptimizationLevel, Session},
    value::{TensorElementType, ValueType},
};

use super::{
    device::{Device, ProviderOptions, TrtProfile},
    runtime::OrtRuntime,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    /// Anything this server cannot feed (int8 inputs, strings, …), by name.
    Other(&'static str),
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub ty: TensorType,
    /// Dimensions; `-1` where the model leaves them dynamic.
    pub shape: Vec<i64>,
}

impl TensorInfo {
    /// The static batch size, or `None` when the batch axis is dynamic.
    pub fn static_batch(&self) -> Option<usize> {
        self.shape.first().filter(|d| **d > 0).map(|d| *d as usize)
    }
}

/// What a loaded model says about itself.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: String,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// Custom metadata (Ultralytics writes `names`, `imgsz`, `task`, `stride` …).
    pub metadata: HashMap<String, String>,
}

impl ModelInfo {
    pub fn input(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs.iter().find(|t| t.name == name)
    }
    pub fn output(&self, name: &str) -> Option<&TensorInfo> {
        self.outputs.iter().find(|t| t.name == name)
    }
}

/// Settings shared by every session of the process.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub device: Device,
    pub intra_threads: Option<usize>,
    /// Intra-op threads busy-wait between operators (ORT's default; ours is off).
    pub spin: bool,
    pub providers: ProviderOptions,
}

/// Loads `path` on the configured device. `max_batch` sizes TensorRT's
/// optimisation profile, so one engine serves every batch the queue forms.
pub fn load_session(
    path: &Path,
    options: &SessionOptions,
    max_batch: usize,
) -> Result<(Session, ModelInfo), String> {
    let runtime = OrtRuntime::get().map_err(|e| e.to_string())?;
    if !path.is_file() {
        return Err(format!("model file {} does not exist", path.display()));
    }
    let mut options = options.clone();
    if matches!(options.device, Device::TensorRt(_)) && options.providers.trt_profile.is_none() {
        // Input names and shapes are only known from the model: read them on the CPU first.
        let cpu = SessionOptions {
            device: Device::Cpu,
            ..options.clone()
        };
        let (_, info) = load_session(path, &cpu, max_batch)?;
        let inputs: Vec<_> = info
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.shape.clone()))
            .collect();
        options.providers.trt_profile = TrtProfile::for_inputs(&inputs, max_batch);
        options.providers.fp32_model = info.inputs.iter().all(|i| i.ty != TensorType::F16);
        if let Err(e) = std::fs::create_dir_all(&options.providers.trt_cache_dir) {
            return Err(format!(
                "TensorRT cache directory {} is not writable: {e} (set --trt-cache-dir to a writable path, e.g. an emptyDir)",
                options.providers.trt_cache_dir.display()
            ));
        }
    }
    let providers = options.device.execution_providers(&options.providers)?;
    let fail = |e: ort::Error| format!("{}: {e}", path.display());
    let mut builder = Session::builder(&runtime.environment)
        .map_err(fail)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| fail(e.into()))?
        // Requests arrive one at a time per model thread; ORT's own pool does the parallel work.
        .with_inter_threads(1)
        .map_err(|e| fail(e.into()))?
        // ORT's pool busy-waits between operators by default (`--spin`).
        .with_intra_op_spinning(options.spin)
        .map_err(|e| fail(e.into()))?;
    if let Some(threads) = options.intra_threads {
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| fail(e.into()))?;
    }
    if !providers.is_empty() {
        builder = builder.with_execution_providers(&providers).map_err(|e| {
            format!(
                "{} could not start on {}: {e}",
                path.display(),
                options.device
            )
        })?;
    }
    let session = builder.commit_from_file(path).map_err(fail)?;
    let info = describe(path, &session);
    Ok((session, info))
}

fn describe(path: &Path, session: &Session) -> ModelInfo {
    let tensor = |outlet: &ort::value::Outlet| {
        let (ty, shape) = match outlet.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                (element_type(*ty), shape.iter().copied().collect())
            }
            other => (TensorType::Other(value_kind(other)), Vec::new()),
        };
        TensorInfo {
            name: outlet.name().to_owned(),
            ty,
            shape,
        }
    };
    let metadata = session
        .metadata()
        .ok()
        .map(|m| {
            m.custom_keys()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|k| m.custom(&k).map(|v| (k, v)))
                .collect()
        })
        .unwrap_or_default();
    ModelInfo {
        path: path.display().to_string(),
        inputs: session.inputs().iter().map(tensor).collect(),
        outputs: session.outputs().iter().map(tensor).collect(),
        metadata,
    }
}

fn element_type(ty: TensorElementType) -> TensorType {
    match ty {
        TensorElementType::Float32 => TensorType::F32,
        TensorElementType::Float16 => TensorType::F16,
        TensorElementType::Uint8 => TensorType::Other("uint8"),
        TensorElementType::Int8 => TensorType::Other("int8"),
        TensorElementType::Int32 => TensorType::Other("int32"),
        TensorElementType::Int64 => TensorType::Other("int64"),
        TensorElementType::Float64 => TensorType::Other("float64"),
        TensorElementType::Bool => TensorType::Other("bool"),
        TensorElementType::String => TensorType::Other("string"),
        _ => TensorType::Other("unsupported element type"),
    }
}

fn value_kind(ty: &ValueType) -> &'static str {
    match ty {
        ValueType::Sequence(_) => "sequence",
        ValueType::Map { .. } => "map",
        _ => "non-tensor",
    }
}
