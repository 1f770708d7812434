//! The SAM image encoder: checked at startup against the interface the rest
//! of the pipeline assumes (one `[1, 3, 1024, 1024]` image in, one
//! `[1, 256, 64, 64]` embedding out), so a wrong file fails with a message
//! instead of producing embeddings no decoder understands.

use ndarray::ArrayD;

use super::{preprocess::INPUT_SIZE, shape_fits, EMBEDDING_SHAPE};
use crate::engine::{ModelInfo, TensorType};

#[derive(Debug, Clone)]
pub struct SamEncoder {
    /// Position of the embedding among the model outputs.
    output: usize,
}

const INPUT_SHAPE: [usize; 4] = [1, 3, INPUT_SIZE, INPUT_SIZE];

fn float(ty: TensorType) -> bool {
    matches!(ty, TensorType::F32 | TensorType::F16)
}

impl SamEncoder {
    pub fn from_model(info: &ModelInfo) -> Result<Self, String> {
        let [input] = info.inputs.as_slice() else {
            return Err(format!(
                "a SAM encoder has one input (the image); this model has {}: {}",
                info.inputs.len(),
                names(&info.inputs)
            ));
        };
        if !float(input.ty) || !shape_fits(&input.shape, &INPUT_SHAPE) {
            return Err(format!(
                "SAM encoder input `{}` is {:?} {:?}; expected float32 [1, 3, 1024, 1024] \
                 (SAM-preprocessed image, NCHW)",
                input.name, input.ty, input.shape
            ));
        }
        let output = info
            .outputs
            .iter()
            .position(|o| o.name == "image_embeddings")
            .or_else(|| (info.outputs.len() == 1).then_some(0))
            .ok_or_else(|| {
                format!(
                    "a SAM encoder has an output `image_embeddings` (or exactly one output); \
                     this model has {}",
                    names(&info.outputs)
                )
            })?;
        if let Some(other) = info.outputs.iter().find(|o| !float(o.ty)) {
            return Err(format!(
                "SAM encoder output `{}` is {:?}; only float outputs are supported",
                other.name, other.ty
            ));
        }
        let out = &info.outputs[output];
        if !shape_fits(&out.shape, &EMBEDDING_SHAPE) {
            return Err(format!(
                "SAM encoder output `{}` is {:?}; expected [1, 256, 64, 64] (SAM ViT-H / \
                 MobileSAM embeddings, the layout CVAT's decoder reads)",
                out.name, out.shape
            ));
        }
        Ok(Self { output })
    }

    /// Per-request input shape without the batch axis, for warm-up.
    pub fn input_shape(&self) -> Vec<usize> {
        INPUT_SHAPE[1..].to_vec()
    }

    /// Picks the embedding out of the outputs and checks its actual shape
    /// (a model with dynamic dims could still return something else).
    pub fn embedding(&self, mut outputs: Vec<ArrayD<f32>>) -> Result<ArrayD<f32>, String> {
        if self.output >= outputs.len() {
            return Err(format!(
                "encoder returned {} outputs, expected at least {}",
                outputs.len(),
                self.output + 1
            ));
        }
        let embedding = outputs.swap_remove(self.output);
        if embedding.shape() != EMBEDDING_SHAPE {
            return Err(format!(
                "encoder returned an embedding of shape {:?}, expected [1, 256, 64, 64]",
                embedding.shape()
            ));
        }
        Ok(embedding.as_standard_layout().into_owned())
    }
}

pub(crate) fn names(tensors: &[crate::engine::TensorInfo]) -> String {
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    format!("[{}]", names.join(", "))
}
