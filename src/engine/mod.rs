//! ONNX Runtime plumbing, kept apart from model logic: finding and loading the
//! library, execution providers, sessions and their I/O description, and the
//! per-model batching queue that owns each session.

pub mod cpu;
pub mod device;
pub mod pool;
pub mod queue;
pub mod runtime;
pub mod session;

pub use self::{
    device::Device,
    pool::ModelPool,
    queue::{InferenceQueue, QueueConfig, QueueStats},
    runtime::{OrtRuntime, RuntimeError},
    session::{ModelInfo, TensorInfo, TensorType},
};
