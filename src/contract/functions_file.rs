//! `--functions functions.yaml`: several functions in one process.
//!
//! ```yaml
//! functions:
//!   - name: yolo11n-detector          # function id CVAT sees
//!     kind: detector                  # detector | interactor | tracker
//!     model: models/yolo11n.onnx      # paths are relative to this file
//!     labels: [{id: 0, name: person, type: rectangle}]   # optional, default: model names
//!     annotations: {name: "YOLO11n (ONNX)"}             # optional Nuclio annotations
//!     description: "YOLO11n on ONNX Runtime"
//!     options: {threshold: 0.5, iou: 0.7, max_det: 300, fast_decode: false}
//!   - name: pth-facebookresearch-sam-vit-h
//!     kind: interactor
//!     encoder: sam/encoder.onnx       # decoder: sam/decoder.onnx for server-side masks
//!     options: {cache_entries: 32}
//!   - name: tracker
//!     kind: tracker                   # built-in weight-free tracker
//! ```
//! Unknown keys are errors: a typo should not silently change what is served.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{function_config::FunctionConfig, spec};
use crate::{
    app::{Common, FunctionPlan},
    config::ServeArgs,
    functions::{
        detector::DetectorSettings, interactor::InteractorSettings, tracker::TrackerSettings,
    },
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    functions: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    kind: String,
    #[serde(default)]
    model: Option<PathBuf>,
    #[serde(default)]
    encoder: Option<PathBuf>,
    #[serde(default)]
    decoder: Option<PathBuf>,
    /// A Nuclio function.yaml to take annotations and description from.
    #[serde(default)]
    function_config: Option<PathBuf>,
    #[serde(default)]
    labels: Option<Vec<spec::LabelSpec>>,
    #[serde(default)]
    annotations: BTreeMap<String, serde_yaml_ng::Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Options,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    threshold: Option<f32>,
    iou: Option<f32>,
    max_det: Option<usize>,
    fast_decode: Option<bool>,
    cache_entries: Option<usize>,
    cache_bytes: Option<usize>,
}

pub fn load(path: &Path, common: &Common, args: &ServeArgs) -> Result<Vec<FunctionPlan>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, path.parent().unwrap_or(Path::new(".")), common, args)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(
    text: &str,
    base: &Path,
    common: &Common,
    args: &ServeArgs,
) -> Result<Vec<FunctionPlan>, String> {
    let file: File = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    file.functions
        .into_iter()
        .map(|entry| plan_entry(entry, base, common, args))
        .collect()
}

fn plan_entry(
    entry: Entry,
    base: &Path,
    common: &Common,
    args: &ServeArgs,
) -> Result<FunctionPlan, String> {
    let resolve = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    let name = entry.name.clone();
    let require = |value: &Option<PathBuf>, key: &str| {
        value
            .as_ref()
            .map(resolve)
            .ok_or_else(|| format!("function `{name}` ({}) needs `{key}`", entry.kind))
    };
    let mut config = match &entry.function_config {
        Some(p) => FunctionConfig::load(&resolve(p))?,
        None => FunctionConfig::default(),
    };
    config.name = Some(entry.name.clone());
    if entry.description.is_some() {
        config.description = entry.description.clone();
    }
    for (key, value) in &entry.annotations {
        match value {
            serde_yaml_ng::Value::Bool(false) => {
                config.annotations.remove(key);
            }
            serde_yaml_ng::Value::String(s) => {
                config.annotations.insert(key.clone(), s.clone());
            }
            serde_yaml_ng::Value::Number(n) => {
                config.annotations.insert(key.clone(), n.to_string());
            }
            serde_yaml_ng::Value::Bool(true) => {
                config.annotations.insert(key.clone(), "true".into());
            }
            other => {
                return Err(format!(
                    "annotation `{key}` of `{name}` must be a scalar, got {other:?}"
                ))
            }
        }
    }
    if let Some(labels) = &entry.labels {
        spec::validate(labels).map_err(|e| format!("function `{name}`: {e}"))?;
        config
            .annotations
            .insert("spec".into(), spec::to_json(labels));
    }
    let o = &entry.options;
    for (key, value) in [("threshold", o.threshold), ("iou", o.iou)] {
        if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(format!(
                "function `{name}`: options.{key} must be within [0, 1]"
            ));
        }
    }
    match entry.kind.as_str() {
        "detector" => Ok(FunctionPlan::Detector(DetectorSettings {
            name: entry.name.clone(),
            model: require(&entry.model, "model")?,
            config,
            queue: common.queue,
            defaults: crate::models::yolo::detect::DetectParams {
                threshold: o.threshold.unwrap_or(common.detect.threshold),
                iou: o.iou.unwrap_or(common.detect.iou),
                max_det: o.max_det.unwrap_or(common.detect.max_det),
            },
            limits: common.limits,
            fast_decode: o.fast_decode.unwrap_or(args.fast_decode),
        })),
        "interactor" => Ok(FunctionPlan::Interactor(InteractorSettings {
            name: entry.name.clone(),
            config,
            limits: common.limits,
            encoder: require(&entry.encoder, "encoder")?,
            decoder: entry.decoder.as_ref().map(resolve),
            cache_entries: o.cache_entries.unwrap_or(args.sam_cache_entries),
            cache_bytes: o.cache_bytes.unwrap_or(args.sam_cache_bytes),
        })),
        "tracker" => Ok(FunctionPlan::Tracker(TrackerSettings {
            name: entry.name.clone(),
            config,
            limits: common.limits,
            model: entry.model.as_ref().map(resolve),
        })),
        other => Err(format!(
            "function `{name}` has kind `{other}`; expected detector, interactor or tracker"
        )),
    }
}
