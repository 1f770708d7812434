//! Ultralytics YOLO (v8/11) exported to ONNX.

pub mod detect;
pub mod meta;

pub use self::{detect::YoloDetect, meta::UltralyticsMeta};
