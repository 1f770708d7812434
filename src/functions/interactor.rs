//! A SAM interactor function (CVAT "Interactors" tab). Filled in by the SAM
//! work; this is the interface the registry and the wiring rely on.

use std::path::PathBuf;

use bytes::Bytes;

use super::{FunctionInfo, Kind};
use crate::{
    contract::function_config::FunctionConfig, engine::ModelPool, imaging::DecodeLimits, Error,
    Result,
};

/// CVAT's SAM plugin decodes in the browser only for this function id.
pub const BROWSER_DECODER_NAME: &str = "pth-facebookresearch-sam-vit-h";

#[derive(Debug, Clone)]
pub struct InteractorSettings {
    pub name: String,
    pub config: FunctionConfig,
    pub limits: DecodeLimits,
    pub encoder: PathBuf,
    /// `None`: browser-decoder mode (reply `{"blob"}`); `Some`: server-decoder mode.
    pub decoder: Option<PathBuf>,
    pub cache_entries: usize,
    pub cache_bytes: usize,
}

pub struct InteractorFunction {
    pub info: FunctionInfo,
}

impl InteractorFunction {
    pub fn load(settings: &InteractorSettings, _pool: &ModelPool) -> Result<Self, String> {
        Ok(Self {
            info: FunctionInfo::from_config(
                &settings.name,
                Kind::Interactor,
                &settings.config,
                "SAM".into(),
            ),
        })
    }

    pub async fn warm_up(&self) -> Result<()> {
        Ok(())
    }

    pub async fn invoke(&self, _body: Bytes) -> Result<Vec<u8>> {
        Err(Error::Internal("interactor not implemented yet".into()))
    }
}
