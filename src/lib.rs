//! nuclio-ort: a native ONNX Runtime inference server that speaks CVAT's Nuclio
//! function contract.
//!
//! The modules follow the data flow of one request:
//! `http` → `contract` → `functions` → `imaging` → `engine` → `models` → `post`
//! → back out through `contract`. `config` holds every flag, `error` the one
//! error type with its HTTP status table, `app` wires the servers together.

pub mod app;
pub mod bench;
pub mod config;
pub mod contract;
pub mod engine;
pub mod error;
pub mod functions;
pub mod http;
pub mod imaging;
pub mod models;
pub mod observability;
pub mod post;

pub use error::{Error, Result};
