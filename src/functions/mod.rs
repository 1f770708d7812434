//! The registry of named functions. Each function binds a CVAT kind
//! (detector, interactor, tracker) to its models and its Nuclio annotations;
//! HTTP routes only ever look functions up here by name.

pub mod detector;

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;

pub use self::detector::DetectorFunction;
use crate::Result;

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

/// A loaded, ready function.
pub enum Function {
    Detector(DetectorFunction),
}

impl Function {
    pub fn info(&self) -> &FunctionInfo {
        match self {
            Function::Detector(f) => &f.info,
        }
    }

    /// Handles one invocation body; returns the JSON reply body.
    pub async fn invoke(&self, body: Bytes) -> Result<Vec<u8>> {
        match self {
            Function::Detector(f) => f.invoke(body).await,
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
