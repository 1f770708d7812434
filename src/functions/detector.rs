//! A detector function: YOLO model + label spec → CVAT rectangles.
//!
//! One request: parse and decode on the CPU pool → batch queue → post-process
//! on the CPU pool → JSON. Each stage is timed into the metrics, so a user can
//! see where a request's time goes without a profiler.

use std::{path::PathBuf, sync::Arc, time::Instant};

use bytes::Bytes;

use super::{FunctionInfo, Kind};
use crate::{
    contract::{
        detector::{DetectorRequest, DetectorShape},
        function_config::FunctionConfig,
        parse_body,
        spec::{self, LabelSpec},
    },
    engine::{cpu, InferenceQueue, ModelPool, QueueConfig},
    imaging::{decode_base64, decode_image, DecodeLimits},
    models::yolo::{detect::DetectParams, YoloDetect},
    Result,
};

/// Everything needed to build a detector function.
#[derive(Debug, Clone)]
pub struct DetectorSettings {
    pub name: String,
    pub model: PathBuf,
    pub config: FunctionConfig,
    pub queue: QueueConfig,
    pub defaults: DetectParams,
    pub limits: DecodeLimits,
    /// Decode JPEGs at reduced DCT scale down to the model input size.
    pub fast_decode: bool,
}

pub struct DetectorFunction {
    pub info: FunctionInfo,
    pub model: Arc<YoloDetect>,
    /// Label name per model class; `None` for classes the spec leaves out.
    labels: Arc<Vec<Option<String>>>,
    queue: InferenceQueue,
    defaults: DetectParams,
    limits: DecodeLimits,
}

impl DetectorFunction {
    /// Loads the model (or shares it from the pool) and validates it against
    /// the label spec. Blocking.
    pub fn load(settings: &DetectorSettings, pool: &ModelPool) -> Result<Self, String> {
        let mut parsed = None;
        let queue = pool.queue(&settings.model, &settings.name, settings.queue, |info| {
            parsed = Some(
                YoloDetect::from_model(info)
                    .map_err(|e| format!("{}: {e}", settings.model.display()))?,
            );
            Ok(())
        })?;
        let model = parsed.ok_or("model validation did not run")?;
        let spec_labels = match settings.config.annotations.get("spec") {
            Some(text) if !text.trim().is_empty() => spec::parse_spec(text)?,
            _ => spec::rectangle_labels(&model.names),
        };
        let labels = class_labels(&model.names, &spec_labels)?;
        let limits = DecodeLimits {
            fast_decode_min: settings.fast_decode.then_some(model.input_size),
            ..settings.limits
        };
        let mut info = FunctionInfo::from_config(
            &settings.name,
            Kind::Detector,
            &settings.config,
            format!(
                "YOLO detector {} on ONNX Runtime (nuclio-ort)",
                settings.model.display()
            ),
        );
        info.annotations
            .insert("spec".into(), spec::to_json(&spec_labels));
        Ok(Self {
            info,
            model: Arc::new(model),
            labels: Arc::new(labels),
            queue,
            defaults: settings.defaults,
            limits,
        })
    }

    pub fn queue(&self) -> &InferenceQueue {
        &self.queue
    }

    /// Runs the batch sizes that will be used, so readiness means "fast".
    pub async fn warm_up(&self, batch_sizes: &[usize]) -> Result<()> {
        self.queue
            .warm_up(&[self.model.input_shape()], batch_sizes)
            .await
    }

    pub async fn invoke(&self, body: Bytes) -> Result<Vec<u8>> {
        let function = self.info.name.clone();
        let (model, limits, defaults) = (self.model.clone(), self.limits, self.defaults);
        let prepared = cpu::run(move || {
            let started = Instant::now();
            let request: DetectorRequest = parse_body(&body)?;
            let threshold = request.threshold()?.unwrap_or(defaults.threshold);
            let bytes = decode_base64(request.image()?)?;
            drop(body);
            let image = decode_image(&bytes, limits)?;
            let decoded = Instant::now();
            let (tensor, letterbox) = model.preprocess(&image.rgb);
            Ok(Prepared {
                tensor,
                letterbox,
                frame: Frame {
                    scale: image.scale(),
                    width: image.width as f32,
                    height: image.height as f32,
                },
                threshold,
                decode_time: decoded - started,
                preprocess_time: decoded.elapsed(),
            })
        })
        .await?;
        let Prepared {
            tensor,
            letterbox,
            frame,
            threshold,
            decode_time,
            preprocess_time,
        } = prepared;
        stage(&function, "decode", decode_time);
        stage(&function, "preprocess", preprocess_time);

        let output = self.queue.infer(vec![tensor]).await?;
        stage(&function, "queue", output.queue_wait);
        stage(&function, "inference", output.run);

        let (model, labels) = (self.model.clone(), self.labels.clone());
        let started = Instant::now();
        let reply = cpu::run(move || {
            let first = output
                .outputs
                .first()
                .ok_or_else(|| crate::Error::Inference("model returned no outputs".into()))?;
            let params = DetectParams {
                threshold,
                ..defaults
            };
            let detections = model
                .postprocess(first, &letterbox, &params)
                .map_err(crate::Error::Inference)?;
            let shapes: Vec<DetectorShape> = detections
                .into_iter()
                .filter_map(|d| {
                    let label = labels.get(d.class)?.clone()?;
                    Some(DetectorShape::rectangle(
                        label,
                        frame.to_original(d.bbox),
                        d.score,
                    ))
                })
                .collect();
            serde_json::to_vec(&shapes).map_err(|e| crate::Error::Internal(e.to_string()))
        })
        .await?;
        stage(&function, "postprocess", started.elapsed());
        Ok(reply)
    }
}

/// The output of the CPU stage of a request.
struct Prepared {
    tensor: ndarray::ArrayD<f32>,
    letterbox: crate::imaging::Letterbox,
    frame: Frame,
    threshold: f32,
    decode_time: std::time::Duration,
    preprocess_time: std::time::Duration,
}

/// The original (upright) frame a decoded image stands for.
#[derive(Debug, Clone, Copy)]
struct Frame {
    scale: [f32; 2],
    width: f32,
    height: f32,
}

impl Frame {
    /// Decoded-image pixels → original pixels, clipped (identity unless fast-decoded).
    fn to_original(self, b: [f32; 4]) -> [f32; 4] {
        let [sx, sy] = self.scale;
        [
            (b[0] * sx).min(self.width),
            (b[1] * sy).min(self.height),
            (b[2] * sx).min(self.width),
            (b[3] * sy).min(self.height),
        ]
    }
}

fn stage(function: &str, stage: &'static str, duration: std::time::Duration) {
    metrics::histogram!("nuclio_ort_stage_seconds", "function" => function.to_owned(), "stage" => stage)
        .record(duration.as_secs_f64());
}

/// Maps model classes to spec label names: by `id` when the spec has ids
/// (this is how users rename classes to their CVAT task labels), else by name.
fn class_labels(model_names: &[String], spec: &[LabelSpec]) -> Result<Vec<Option<String>>, String> {
    let mut labels = vec![None; model_names.len()];
    for label in spec {
        let class = match label.id {
            Some(id) => usize::try_from(id)
                .ok()
                .filter(|i| *i < model_names.len())
                .ok_or_else(|| {
                    format!(
                        "label spec maps `{}` to class id {id}, but the model has classes 0..{}",
                        label.name,
                        model_names.len()
                    )
                })?,
            None => model_names
                .iter()
                .position(|n| *n == label.name)
                .ok_or_else(|| {
                    format!(
                    "label spec has `{}` without an `id` and the model has no class of that name",
                    label.name
                )
                })?,
        };
        labels[class] = Some(label.name.clone());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_renames_by_id_and_matches_by_name() {
        let names: Vec<String> = ["person", "bicycle", "car"].map(String::from).to_vec();
        let spec =
            spec::parse_spec(r#"[{"id": 0, "name": "pedestrian"}, {"name": "car"}]"#).unwrap();
        assert_eq!(
            class_labels(&names, &spec).unwrap(),
            vec![Some("pedestrian".into()), None, Some("car".into())]
        );
        let bad = spec::parse_spec(r#"[{"id": 7, "name": "x"}]"#).unwrap();
        assert!(class_labels(&names, &bad).unwrap_err().contains("0..3"));
        let bad = spec::parse_spec(r#"[{"name": "truck"}]"#).unwrap();
        assert!(class_labels(&names, &bad).is_err());
    }
}
