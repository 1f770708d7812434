//! CVAT / Nuclio JSON: request and reply types and their validation, one file
//! per function kind, plus the label spec and the Nuclio function config.

pub mod detector;
pub mod function_config;
pub mod functions_file;
pub mod interactor;
pub mod spec;
pub mod tracker;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Parses a request body, turning serde's errors into messages that name the
/// problem (and never a 500).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyBody);
    }
    serde_json::from_slice(body).map_err(|e| Error::InvalidJson(e.to_string()))
}

/// A JSON number (or a numeric string, as some scripts send) as `f64`.
pub fn number_field(field: &'static str, value: &serde_json::Value) -> Result<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::invalid(field, format!("expected a number, got {value}")))
}
