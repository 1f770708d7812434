//! One module per model family; each turns raw output tensors into results
//! and knows how to validate a model of its family at startup.

pub mod sam;
pub mod tracker;
pub mod yolo;
