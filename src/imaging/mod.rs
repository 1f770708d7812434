//! From the request's base64 text to a model input tensor: base64 → decode with
//! limits and EXIF orientation → letterbox/resize into the batch tensor.

pub mod base64;
pub mod decode;
pub mod jpeg;
pub mod letterbox;
pub mod pil_resize;

pub use self::{
    base64::decode_base64,
    decode::{decode_image, DecodeLimits, DecodedImage},
    letterbox::{letterbox_into, Letterbox},
};
