//! YOLO detect heads: `[batch, 4 + classes (+ mask coefficients), anchors]`,
//! rows cx, cy, w, h in letterboxed input pixels, then per-class scores
//! (already sigmoid, no objectness), no NMS in the graph.
//!
//! Everything is read from the model: input name and size (static, or the
//! `imgsz` metadata when dynamic), class names, output layout. A model whose
//! layout cannot be interpreted is refused at startup with the reason.

use image::RgbImage;
use ndarray::{ArrayD, IxDyn};

use super::meta::UltralyticsMeta;
use crate::{
    engine::{ModelInfo, TensorType},
    imaging::{letterbox_into, Letterbox},
    post::{nms, Candidate},
};

/// Post-processing knobs, per request (threshold) or per function (the rest).
#[derive(Debug, Clone, Copy)]
pub struct DetectParams {
    pub threshold: f32,
    pub iou: f32,
    pub max_det: usize,
}

/// A detection in source-image pixels, corners clipped to the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub class: usize,
    pub score: f32,
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone)]
pub struct YoloDetect {
    pub input_name: String,
    pub input_type: TensorType,
    /// `[height, width]` of the model input.
    pub input_size: [u32; 2],
    /// Class names from the model metadata (`class{i}` when it has none).
    pub names: Vec<String>,
    /// Rows after the class scores (32 mask coefficients for -seg models).
    pub extra_rows: usize,
}

impl YoloDetect {
    pub fn from_model(info: &ModelInfo) -> Result<Self, String> {
        let meta = UltralyticsMeta::from_metadata(&info.metadata)?;
        if let Some(task) = meta.task.as_deref() {
            if !matches!(task, "detect" | "segment") {
                return Err(format!(
                    "model task is `{task}`; this function serves YOLO detect (and segment) models"
                ));
            }
        }
        let [input] = info.inputs.as_slice() else {
            return Err(format!(
                "expected one image input, the model has {}: {:?}",
                info.inputs.len(),
                info.inputs.iter().map(|i| &i.name).collect::<Vec<_>>()
            ));
        };
        if !matches!(input.ty, TensorType::F32 | TensorType::F16) {
            return Err(format!(
                "input `{}` is {:?}; expected float32 or float16",
                input.name, input.ty
            ));
        }
        let [_, c, h, w] = input.shape[..] else {
            return Err(format!(
                "input `{}` has shape {:?}; expected [batch, 3, height, width]",
                input.name, input.shape
            ));
        };
        if c != 3 && c != -1 {
            return Err(format!(
                "input `{}` has {c} channels; expected 3 (RGB)",
                input.name
            ));
        }
        let input_size = if h > 0 && w > 0 {
            [h as u32, w as u32]
        } else {
            meta.imgsz.ok_or_else(|| {
                format!(
                    "input `{}` has a dynamic size and the model has no `imgsz` metadata; re-export with `imgsz=640`",
                    input.name
                )
            })?
        };

        let output = info.outputs.first().ok_or("the model has no outputs")?;
        let [_, rows, _] = output.shape[..] else {
            return Err(format!(
                "output `{}` has shape {:?}; expected [batch, 4 + classes, anchors]",
                output.name, output.shape
            ));
        };
        // Segmentation models add mask coefficients, one per prototype channel.
        let extra_rows = info
            .outputs
            .get(1)
            .filter(|proto| proto.shape.len() == 4)
            .map(|proto| proto.shape[1].max(0) as usize)
            .unwrap_or(0);
        if rows <= 0 {
            return Err(format!(
                "output `{}` has a dynamic channel axis {:?}",
                output.name, output.shape
            ));
        }
        let rows = rows as usize;
        let names = match meta.names {
            Some(names) => {
                if rows != 4 + names.len() + extra_rows {
                    return Err(format!(
                        "output `{}` has {rows} rows but 4 box rows + {} classes (+ {extra_rows} mask rows) are expected; \
                         is this a detect model? (pose/obb heads are not supported here)",
                        output.name,
                        names.len()
                    ));
                }
                names
            }
            None if rows > 4 + extra_rows => (0..rows - 4 - extra_rows)
                .map(|i| format!("class{i}"))
                .collect(),
            None => {
                return Err(format!(
                    "output `{}` has only {rows} rows: no class scores",
                    output.name
                ))
            }
        };
        Ok(Self {
            input_name: input.name.clone(),
            input_type: input.ty,
            input_size,
            names,
            extra_rows,
        })
    }

    /// Input shape of one request, without the batch axis.
    pub fn input_shape(&self) -> Vec<usize> {
        vec![3, self.input_size[0] as usize, self.input_size[1] as usize]
    }

    /// Letterboxes the image into a fresh `[1, 3, H, W]` tensor.
    pub fn preprocess(&self, image: &RgbImage) -> (ArrayD<f32>, Letterbox) {
        let [h, w] = self.input_size;
        let mut tensor = ArrayD::<f32>::zeros(IxDyn(&[1, 3, h as usize, w as usize]));
        let slot = tensor.as_slice_mut().unwrap_or(&mut []);
        let letterbox = letterbox_into(image, w, h, slot);
        (tensor, letterbox)
    }

    /// Decodes one image's output `[1, rows, anchors]` into detections in the
    /// source image's pixels.
    pub fn postprocess(
        &self,
        output: &ArrayD<f32>,
        letterbox: &Letterbox,
        params: &DetectParams,
    ) -> Result<Vec<Detection>, String> {
        let shape = output.shape();
        let rows = 4 + self.names.len() + self.extra_rows;
        if shape.len() != 3 || shape[1] != rows {
            return Err(format!(
                "unexpected output shape {shape:?}, expected [1, {rows}, anchors]"
            ));
        }
        let anchors = shape[2];
        let data = output.as_slice().ok_or("output tensor is not contiguous")?;
        let row = |r: usize| &data[r * anchors..(r + 1) * anchors];

        // Best class per anchor, class row by class row (contiguous, vectorisable).
        let mut best = vec![f32::NEG_INFINITY; anchors];
        let mut best_class = vec![0u16; anchors];
        for class in 0..self.names.len() {
            for ((b, bc), &score) in best
                .iter_mut()
                .zip(best_class.iter_mut())
                .zip(row(4 + class))
            {
                if score > *b {
                    *b = score;
                    *bc = class as u16;
                }
            }
        }
        let (cx, cy, bw, bh) = (row(0), row(1), row(2), row(3));
        let candidates: Vec<Candidate> = (0..anchors)
            .filter(|&a| best[a] > params.threshold)
            .map(|a| {
                let (hw, hh) = (bw[a] / 2.0, bh[a] / 2.0);
                Candidate {
                    bbox: [cx[a] - hw, cy[a] - hh, cx[a] + hw, cy[a] + hh],
                    score: best[a],
                    class: usize::from(best_class[a]),
                }
            })
            .collect();
        let (width, height) = (letterbox.src_width as f32, letterbox.src_height as f32);
        Ok(nms(candidates, params.iou, params.max_det)
            .into_iter()
            .map(|c| {
                let (x1, y1) = letterbox.to_source(c.bbox[0], c.bbox[1]);
                let (x2, y2) = letterbox.to_source(c.bbox[2], c.bbox[3]);
                Detection {
                    class: c.class,
                    score: c.score,
                    bbox: [
                        x1.clamp(0.0, width),
                        y1.clamp(0.0, height),
                        x2.clamp(0.0, width),
                        y2.clamp(0.0, height),
                    ],
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::engine::TensorInfo;

    fn info(input: Vec<i64>, outputs: Vec<Vec<i64>>, names: &str) -> ModelInfo {
        ModelInfo {
            path: "m.onnx".into(),
            inputs: vec![TensorInfo {
                name: "images".into(),
                ty: TensorType::F32,
                shape: input,
            }],
            outputs: outputs
                .into_iter()
                .enumerate()
                .map(|(i, shape)| TensorInfo {
                    name: format!("output{i}"),
                    ty: TensorType::F32,
                    shape,
                })
                .collect(),
            metadata: HashMap::from([
                ("names".to_owned(), names.to_owned()),
                ("imgsz".to_owned(), "[320, 320]".to_owned()),
            ]),
        }
    }

    #[test]
    fn reads_layout_from_the_model() {
        let m = YoloDetect::from_model(&info(
            vec![-1, 3, 640, 640],
            vec![vec![-1, 6, 8400]],
            "{0: 'a', 1: 'b'}",
        ))
        .unwrap();
        assert_eq!(
            (m.input_size, m.names.len(), m.extra_rows),
            ([640, 640], 2, 0)
        );
        // Dynamic size falls back to imgsz; seg adds the prototype channels.
        let m = YoloDetect::from_model(&info(
            vec![1, 3, -1, -1],
            vec![vec![1, 38, -1], vec![1, 32, -1, -1]],
            "{0: 'a', 1: 'b'}",
        ))
        .unwrap();
        assert_eq!((m.input_size, m.extra_rows), ([320, 320], 32));
    }

    #[test]
    fn refuses_layouts_it_cannot_interpret() {
        let err = YoloDetect::from_model(&info(
            vec![1, 3, 640, 640],
            vec![vec![1, 56, 8400]],
            "{0: 'person'}",
        ))
        .unwrap_err();
        assert!(err.contains("56 rows"), "{err}");
        let err =
            YoloDetect::from_model(&info(vec![1, 640, 640], vec![vec![1, 5, 8400]], "{0: 'a'}"))
                .unwrap_err();
        assert!(err.contains("[batch, 3, height, width]"), "{err}");
    }

    #[test]
    fn decodes_nms_and_unletterboxes() {
        let m = YoloDetect::from_model(&info(
            vec![1, 3, 64, 64],
            vec![vec![1, 6, 3]],
            "{0: 'a', 1: 'b'}",
        ))
        .unwrap();
        // Three anchors: two overlapping class-0 boxes, one class-1 box below threshold.
        #[rustfmt::skip]
        let out = ndarray::Array::from_shape_vec(IxDyn(&[1, 6, 3]), vec![
            32.0, 33.0, 10.0,   // cx
            32.0, 32.0, 10.0,   // cy
            20.0, 20.0, 4.0,    // w
            10.0, 10.0, 4.0,    // h
            0.9, 0.8, 0.1,      // class a
            0.1, 0.2, 0.2,      // class b
        ]).unwrap();
        // Source 128x64 → r = 0.5, 64x32, pad_top 16.
        let lb = Letterbox::plan(128, 64, 64, 64);
        let dets = m
            .postprocess(
                &out,
                &lb,
                &DetectParams {
                    threshold: 0.25,
                    iou: 0.7,
                    max_det: 300,
                },
            )
            .unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class, 0);
        assert_eq!(dets[0].bbox, [44.0, 22.0, 84.0, 42.0]);
    }
}
