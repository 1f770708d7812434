//! Segment Anything (SAM) encoders and prompt decoders.
//!
//! The encoder turns a frame into an image embedding once; the prompt decoder
//! turns clicks into a mask in milliseconds. Everything here exists to make
//! that split pay off: preprocessing that matches SAM bit for bit (so the
//! browser decoder agrees with us), startup validation of the ONNX interfaces
//! (so a wrong export fails at load, not on the first click) and an embedding
//! cache so a click on a known frame costs only the decoder.

pub mod cache;
pub mod decoder;
pub mod encoder;
pub mod preprocess;

pub use self::{
    cache::{CacheKey, EmbeddingCache, Lookup},
    decoder::{PromptPoint, SamDecoder},
    encoder::SamEncoder,
};

/// Channels × rows × columns of SAM ViT-H / MobileSAM image embeddings, the
/// only layout CVAT's browser decoder accepts.
pub const EMBEDDING_SHAPE: [usize; 4] = [1, 256, 64, 64];

/// An encoded frame: what the decoder needs besides the clicks.
#[derive(Debug)]
pub struct Embedding {
    /// `[1, 256, 64, 64]` float32.
    pub tensor: ndarray::ArrayD<f32>,
    /// Size of the upright decoded frame the clicks refer to.
    pub width: u32,
    pub height: u32,
}

impl Embedding {
    /// What the entry costs the cache (the tensor dominates).
    pub fn bytes(&self) -> usize {
        self.tensor.len() * std::mem::size_of::<f32>() + std::mem::size_of::<Self>()
    }
}

/// `true` when a model dimension (`-1` = dynamic) can hold `want`.
pub(crate) fn dim_fits(model: i64, want: usize) -> bool {
    model < 0 || model as usize == want
}

/// `true` when a model shape can hold `want` (same rank, every dim fits).
pub(crate) fn shape_fits(model: &[i64], want: &[usize]) -> bool {
    model.len() == want.len() && model.iter().zip(want).all(|(m, w)| dim_fits(*m, *w))
}
