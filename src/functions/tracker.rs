//! A tracker function (CVAT "Trackers" tab) around the weight-free
//! correlation-filter tracker of [`crate::models::tracker`].
//!
//! Stateless by design: CVAT holds each object's state (signed, possibly for
//! hours) and sends it back with the next frame, maybe to another replica or
//! after a restart, so nothing about a track may live in this process. One
//! request = one CPU-pool job: parse, decode the frame once, then track every
//! object of the request in parallel on the same pool (objects are independent
//! and cost a fixed few milliseconds each, whatever their size).

use std::time::{Duration, Instant};

use bytes::Bytes;
use rayon::prelude::*;

use super::{FunctionInfo, Kind};
use crate::{
    contract::{
        function_config::FunctionConfig,
        parse_body,
        tracker::{ReplyShape, TrackerObject, TrackerReply, TrackerRequest},
    },
    engine::{cpu, ModelPool},
    imaging::{decode_base64, decode_image, DecodeLimits},
    models::tracker::{self, TrackError, TrackerState},
    Error, Result,
};

#[derive(Debug, Clone)]
pub struct TrackerSettings {
    pub name: String,
    pub config: FunctionConfig,
    pub limits: DecodeLimits,
    /// Optional ONNX Siamese tracker (`--tracker-model`); `None` = built-in weight-free tracker.
    pub model: Option<std::path::PathBuf>,
}

pub struct TrackerFunction {
    pub info: FunctionInfo,
    limits: DecodeLimits,
}

impl TrackerFunction {
    /// The built-in tracker needs no model from the pool.
    pub fn load(settings: &TrackerSettings, _pool: &ModelPool) -> Result<Self, String> {
        Self::builtin(settings)
    }

    /// Without a pool, for benches and tools that drive the function directly.
    pub fn builtin(settings: &TrackerSettings) -> Result<Self, String> {
        if let Some(model) = &settings.model {
            // Refusing beats silently serving the built-in tracker under a model's name.
            return Err(format!(
                "tracker `{}`: model-driven tracking (--tracker-model {}) is not supported in this build; \
                 use the built-in weight-free tracker (--tracker builtin)",
                settings.name,
                model.display()
            ));
        }
        Ok(Self {
            info: FunctionInfo::from_config(
                &settings.name,
                Kind::Tracker,
                &settings.config,
                "Single-object tracker (weight-free correlation filter, nuclio-ort)".into(),
            ),
            limits: settings.limits,
        })
    }

    /// One init + update on a small frame through the CPU pool, so readiness
    /// means the whole path (pool, FFT plans, state encoding) has run once.
    pub async fn warm_up(&self) -> Result<()> {
        cpu::run(|| {
            let frame = image::RgbImage::from_fn(160, 120, |x, y| {
                let v = ((x / 8 + y / 8) % 2 * 160 + (x * 3 + y * 5) % 64) as u8;
                image::Rgb([v, v / 2, 255 - v])
            });
            let started = tracker::init(&frame, [40.0, 30.0, 100.0, 80.0]).map_err(internal)?;
            tracker::update(&frame, &started.state).map_err(internal)?;
            Ok(())
        })
        .await
    }

    pub async fn invoke(&self, body: Bytes) -> Result<Vec<u8>> {
        let limits = self.limits;
        let (reply, decode_time, track_time) = cpu::run(move || {
            let started = Instant::now();
            let request: TrackerRequest = parse_body(&body)?;
            let (image, objects) = request.into_parts()?;
            drop(body);
            let bytes = decode_base64(&image)?;
            drop(image);
            let frame = decode_image(&bytes, limits)?.rgb;
            drop(bytes);
            let decoded = Instant::now();
            // Nested in the pool's own job: rayon spreads the objects over idle cores.
            let tracked = objects
                .into_par_iter()
                .enumerate()
                .map(|(index, object)| track(&frame, index, object))
                .collect::<Result<Vec<_>>>()?;
            let (shapes, states) = tracked.into_iter().unzip();
            let reply = serde_json::to_vec(&TrackerReply { shapes, states })
                .map_err(|e| Error::Internal(format!("serialising the tracker reply: {e}")))?;
            Ok((reply, decoded - started, decoded.elapsed()))
        })
        .await?;
        stage(&self.info.name, "decode", decode_time);
        stage(&self.info.name, "track", track_time);
        Ok(reply)
    }
}

/// Initialises or updates one object. The box is validated against the frame
/// in both cases: a degenerate box is a client bug even when a state exists.
fn track(
    frame: &image::RgbImage,
    index: usize,
    object: TrackerObject,
) -> Result<(ReplyShape, TrackerState)> {
    let rect = object.shape.map(|v| v as f32);
    tracker::validate_rect(rect, frame.width(), frame.height())
        .map_err(|e| request_error(index, e))?;
    match object.state {
        None => {
            let started = tracker::init(frame, rect).map_err(|e| request_error(index, e))?;
            // CVAT expects the initial box back as sent, not clipped.
            Ok((ReplyShape::Input(object.shape), started.state))
        }
        Some(state) => {
            let tracked = tracker::update(frame, &state).map_err(|e| request_error(index, e))?;
            Ok((ReplyShape::Tracked(tracked.rect), tracked.state))
        }
    }
}

fn request_error(index: usize, error: TrackError) -> Error {
    match error {
        TrackError::InvalidRect(reason) => {
            Error::invalid("shapes", format!("shapes[{index}] {reason}"))
        }
        TrackError::InvalidState(reason) => {
            Error::invalid("states", format!("states[{index}] is not usable: {reason}"))
        }
        TrackError::InvalidFrame(reason) => Error::CorruptImage(reason),
    }
}

fn internal(error: TrackError) -> Error {
    Error::Internal(format!("tracker warm-up failed: {error}"))
}

fn stage(function: &str, stage: &'static str, duration: Duration) {
    metrics::histogram!("nuclio_ort_stage_seconds", "function" => function.to_owned(), "stage" => stage)
        .record(duration.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(model: Option<&str>) -> TrackerSettings {
        TrackerSettings {
            name: "tracker".into(),
            config: FunctionConfig::default(),
            limits: DecodeLimits::default(),
            model: model.map(Into::into),
        }
    }

    #[test]
    fn model_mode_is_refused_at_startup_with_the_reason() {
        let err = TrackerFunction::builtin(&settings(Some("siam.onnx")))
            .err()
            .expect("refused");
        assert!(err.contains("not supported in this build"), "{err}");
        assert!(err.contains("siam.onnx"), "{err}");
        let f = TrackerFunction::builtin(&settings(None)).expect("builtin loads");
        assert_eq!(f.info.annotations["type"], "tracker");
    }

    #[test]
    fn error_mapping_names_the_object() {
        let e = request_error(3, TrackError::InvalidRect("zero area".into()));
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("shapes[3] zero area"), "{e}");
        let e = request_error(1, TrackError::InvalidState("bad".into()));
        assert!(e.to_string().contains("`states`") && e.to_string().contains("states[1]"));
    }
}
