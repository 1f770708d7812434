//! The SAM prompt decoder, as exported by `segment_anything`'s
//! `scripts/export_onnx_model.py` (`SamOnnxModel`).
//!
//! Inputs are matched by name, because the queue feeds them in the model's
//! declared order. CVAT's own browser `decoder.onnx` (uint8 masks cropped to
//! extra `xtl…ybr` outputs) is refused at startup: its outputs cannot be read
//! as float masks, and silently misreading them would return garbage masks.

use ndarray::{ArrayD, IxDyn};

use super::{encoder::names, preprocess::INPUT_SIZE, shape_fits, Embedding, EMBEDDING_SHAPE};
use crate::engine::{ModelInfo, TensorType};

/// The inputs of a SAM ONNX decoder, in whatever order the model declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Embeddings,
    PointCoords,
    PointLabels,
    MaskPrompt,
    HasMaskPrompt,
    OrigImSize,
}

const INPUTS: [(&str, Input); 6] = [
    ("image_embeddings", Input::Embeddings),
    ("point_coords", Input::PointCoords),
    ("point_labels", Input::PointLabels),
    ("mask_input", Input::MaskPrompt),
    ("has_mask_input", Input::HasMaskPrompt),
    ("orig_im_size", Input::OrigImSize),
];

/// Side of the low-resolution mask prompt (`mask_input`).
const LOW_RES: usize = INPUT_SIZE / 4;

/// One prompt point in pixels of the upright frame, with SAM's label:
/// 1 positive, 0 negative, 2/3 box top-left/bottom-right, -1 padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromptPoint {
    pub x: f64,
    pub y: f64,
    pub label: f32,
}

#[derive(Debug, Clone)]
pub struct SamDecoder {
    order: Vec<Input>,
    masks: usize,
    iou: usize,
}

/// The chosen mask: one byte per pixel (1 = object), row-major.
#[derive(Debug)]
pub struct DecodedMask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// Predicted IoU of the chosen mask.
    pub score: f32,
}

impl SamDecoder {
    pub fn from_model(info: &ModelInfo) -> Result<Self, String> {
        let mut order = Vec::with_capacity(info.inputs.len());
        for input in &info.inputs {
            let kind = INPUTS
                .iter()
                .find(|(name, _)| *name == input.name)
                .map(|(_, kind)| *kind)
                .ok_or_else(|| {
                    format!(
                        "SAM decoder input `{}` is unknown; expected the inputs of segment_anything's \
                         ONNX export: image_embeddings, point_coords, point_labels, mask_input, \
                         has_mask_input, orig_im_size",
                        input.name
                    )
                })?;
            if !matches!(input.ty, TensorType::F32 | TensorType::F16) {
                return Err(format!(
                    "SAM decoder input `{}` is {:?}; all inputs must be float",
                    input.name, input.ty
                ));
            }
            let fits = match kind {
                Input::Embeddings => shape_fits(&input.shape, &EMBEDDING_SHAPE),
                Input::PointCoords => input.shape.len() == 3 && shape_fits(&input.shape[2..], &[2]),
                Input::PointLabels => input.shape.len() == 2,
                Input::MaskPrompt => shape_fits(&input.shape, &[1, 1, LOW_RES, LOW_RES]),
                Input::HasMaskPrompt => shape_fits(&input.shape, &[1]),
                Input::OrigImSize => shape_fits(&input.shape, &[2]),
            };
            if !fits {
                return Err(format!(
                    "SAM decoder input `{}` has shape {:?}, which does not fit segment_anything's \
                     ONNX export (image_embeddings [1,256,64,64], point_coords [1,N,2], \
                     point_labels [1,N], mask_input [1,1,256,256], has_mask_input [1], orig_im_size [2])",
                    input.name, input.shape
                ));
            }
            order.push(kind);
        }
        for (name, kind) in INPUTS {
            if !order.contains(&kind) {
                return Err(format!(
                    "SAM decoder has no input `{name}` (inputs: {})",
                    names(&info.inputs)
                ));
            }
        }
        if let Some(bad) = info
            .outputs
            .iter()
            .find(|o| !matches!(o.ty, TensorType::F32 | TensorType::F16))
        {
            return Err(format!(
                "SAM decoder output `{}` is {:?}; this server reads float logits. CVAT's browser \
                 decoder.onnx (uint8 masks, xtl/ytl/xbr/ybr outputs) cannot be used here: export \
                 the standard decoder with segment_anything's scripts/export_onnx_model.py",
                bad.name, bad.ty
            ));
        }
        let output = |name: &str, rank: usize| {
            info.outputs
                .iter()
                .position(|o| o.name == name && (o.shape.is_empty() || o.shape.len() == rank))
                .ok_or_else(|| {
                    format!(
                        "SAM decoder has no rank-{rank} output `{name}` (outputs: {})",
                        names(&info.outputs)
                    )
                })
        };
        Ok(Self {
            masks: output("masks", 4)?,
            iou: output("iou_predictions", 2)?,
            order,
        })
    }

    /// The model inputs, in its order, for one prompt on `embedding`.
    /// Coordinates are scaled by `1024 / max(h, w)` like CVAT's plugin; without
    /// a box a `(0, 0)` point labelled -1 is added, as `SamPredictor`'s ONNX
    /// example does (the export expects it when no box corners are present).
    pub fn inputs(&self, embedding: &Embedding, prompt: &[PromptPoint]) -> Vec<ArrayD<f32>> {
        let scale = INPUT_SIZE as f64 / f64::from(embedding.width.max(embedding.height).max(1));
        let has_box = prompt.iter().any(|p| p.label == 2.0 || p.label == 3.0);
        let mut points = prompt.to_vec();
        if !has_box {
            points.push(PromptPoint {
                x: 0.0,
                y: 0.0,
                label: -1.0,
            });
        }
        let n = points.len();
        let coords: Vec<f32> = points
            .iter()
            .flat_map(|p| [(p.x * scale) as f32, (p.y * scale) as f32])
            .collect();
        let labels: Vec<f32> = points.iter().map(|p| p.label).collect();
        let array = |shape: &[usize], data: Vec<f32>| {
            ArrayD::from_shape_vec(IxDyn(shape), data)
                .unwrap_or_else(|_| ArrayD::zeros(IxDyn(shape)))
        };
        self.order
            .iter()
            .map(|input| match input {
                Input::Embeddings => embedding.tensor.clone(),
                Input::PointCoords => array(&[1, n, 2], coords.clone()),
                Input::PointLabels => array(&[1, n], labels.clone()),
                Input::MaskPrompt => ArrayD::zeros(IxDyn(&[1, 1, LOW_RES, LOW_RES])),
                Input::HasMaskPrompt => ArrayD::zeros(IxDyn(&[1])),
                Input::OrigImSize => {
                    array(&[2], vec![embedding.height as f32, embedding.width as f32])
                }
            })
            .collect()
    }

    /// The mask with the highest predicted IoU, thresholded at logit 0.
    pub fn best_mask(
        &self,
        outputs: &[ArrayD<f32>],
        width: u32,
        height: u32,
    ) -> Result<DecodedMask, String> {
        let (masks, iou) = match (outputs.get(self.masks), outputs.get(self.iou)) {
            (Some(m), Some(i)) => (m, i),
            _ => return Err(format!("decoder returned only {} outputs", outputs.len())),
        };
        let (w, h) = (width as usize, height as usize);
        let shape = masks.shape();
        if shape.len() != 4 || shape[0] != 1 || shape[2] != h || shape[3] != w || shape[1] == 0 {
            return Err(format!(
                "decoder returned masks of shape {shape:?}, expected [1, K, {h}, {w}]"
            ));
        }
        let k = shape[1];
        if iou.len() != k {
            return Err(format!(
                "decoder returned {} IoU predictions for {k} masks",
                iou.len()
            ));
        }
        let (best, score) = iou
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, s)| !s.is_nan())
            .fold(
                (0, f32::NEG_INFINITY),
                |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
            );
        let plane = masks.index_axis(ndarray::Axis(0), 0);
        let chosen = plane.index_axis(ndarray::Axis(0), best);
        let data = chosen.iter().map(|&v| u8::from(v > 0.0)).collect();
        Ok(DecodedMask {
            width,
            height,
            data,
            score,
        })
    }
}
