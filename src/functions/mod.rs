//! The registry of named functions. Each function binds a CVAT kind
//! (detector, interactor, tracker) to its models and its Nuclio annotations;
//! HTTP routes only ever look functions up here by name.

pub mod detector;
pub mod interactor;
pub mod tracker;

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;

pub use self::{
    detector::DetectorFunction, interactor::InteractorFunction, tracker::TrackerFunction,
};
use crate::{contract::function_config::FunctionConfig, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Detector,
    Interactor,
    Tracker,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Detector => "detector",
            Kind::Interactor => "interactor",
            Kind::Tracker => "tracker",
        }
    }
}

/// What CVAT and the Nuclio dashboard API learn about a function.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub kind: Kind,
    pub namespace: String,
    /// Nuclio annotations, all strings (`type`, `spec`, `name`, `version`, …).
    pub annotations: BTreeMap<String, String>,
    pub description: String,
    pub runtime: String,
}

impl FunctionInfo {
    /// Info from the function's Nuclio config, with the kind's own annotations
    /// on top (`type` always matches what the server actually serves).
    pub fn from_config(
        name: &str,
        kind: Kind,
        config: &FunctionConfig,
        description: String,
    ) -> Self {
        let mut annotations = config.annotations.clone();
        annotations.insert("type".into(), kind.as_str().into());
        annotations
            .entry("name".into())
            .or_insert_with(|| name.to_owned());
        annotations
            .entry("framework".into())
            .or_insert_with(|| "onnx".into());
        Self {
            name: name.to_owned(),
            kind,
            namespace: config.namespace.clone().unwrap_or_else(|| "nuclio".into()),
            annotations,
            description: config.description.clone().unwrap_or(description),
            runtime: config
                .runtime
                .clone()
                .unwrap_or_else(|| "nuclio-ort".into()),
        }
    }
}

/// A loaded, ready function.
pub enum Function {
    Detector(DetectorFunction),
    Interactor(InteractorFunction),
    Tracker(TrackerFunction),
}

impl Function {
    pub fn info(&self) -> &FunctionInfo {
        match self {
            Function::Detector(f) => &f.info,
            Function::Interactor(f) => &f.info,
            Function::Tracker(f) => &f.info,
        }
    }

    /// Handles one invocation body; returns the JSON reply body.
    pub async fn invoke(&self, body: Bytes) -> Result<Vec<u8>> {
        match self {
            Function::Detector(f) => f.invoke(body).await,
            Function::Interactor(f) => f.invoke(body).await,
            Function::Tracker(f) => f.invoke(body).await,
        }
    }
}

/// All functions of the process, by name.
#[derive(Default)]
pub struct Registry {
    functions: Vec<Arc<Function>>,
}

impl Registry {
    pub fn new(functions: Vec<Function>) -> Self {
        Self {
            functions: functions.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        self.functions
            .iter()
            .find(|f| f.info().name == name)
            .cloned()
    }

    /// The function served at `POST /`: the only one, if there is exactly one.
    pub fn single(&self) -> Option<Arc<Function>> {
        match self.functions.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.functions.iter()
    }
}
