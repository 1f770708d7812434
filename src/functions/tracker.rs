//! A tracker function (CVAT "Trackers" tab): stateless, the state travels
//! with each request. Filled in by the tracker work; this is the interface the
//! registry and the wiring rely on.

use bytes::Bytes;

use super::{FunctionInfo, Kind};
use crate::{
    contract::function_config::FunctionConfig, engine::ModelPool, imaging::DecodeLimits, Error,
    Result,
};

#[derive(Debug, Clone)]
pub struct TrackerSettings {
    pub name: String,
    pub config: FunctionConfig,
    pub limits: DecodeLimits,
    /// Optional ONNX Siamese tracker (`--tracker-model`); `None` = built-in weight-free tracker.
    pub model: Option<std::path::PathBuf>,
}

pub struct TrackerFunction {
    pub info: FunctionInfo,
}

impl TrackerFunction {
    pub fn load(settings: &TrackerSettings, _pool: &ModelPool) -> Result<Self, String> {
        Ok(Self {
            info: FunctionInfo::from_config(
                &settings.name,
                Kind::Tracker,
                &settings.config,
                "tracker".into(),
            ),
        })
    }

    pub async fn warm_up(&self) -> Result<()> {
        Ok(())
    }

    pub async fn invoke(&self, _body: Bytes) -> Result<Vec<u8>> {
        Err(Error::Internal("tracker not implemented yet".into()))
    }
}
