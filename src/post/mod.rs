//! Model-independent post-processing: non-maximum suppression (and, as the
//! interactor and segmentation functions land, masks, RLE and polygons).

pub mod mask;
pub mod nms;
pub mod rle;

pub use self::nms::{nms, Candidate};
