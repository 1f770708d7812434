//! A SAM interactor function (CVAT "Interactors" tab), in one of two modes:
//!
//! - browser decoder (no decoder model): reply `{"blob"}`, the raw embedding
//!   CVAT's SAM plugin decodes in the browser; only the function id
//!   `pth-facebookresearch-sam-vit-h` switches that plugin on;
//! - server decoder: run the prompt decoder here and reply CVAT's generic
//!   interactor format `{mask, bounds, points}`, so any CVAT (and any client)
//!   gets masks without the plugin.
//!
//! One request: parse, base64 and hash on the CPU pool → embedding from the
//! cache, or decode + preprocess (CPU pool) + encoder (queue) → decoder
//! (queue) → mask post-processing (CPU pool). Each stage is timed into the
//! metrics like the detector's, plus a hit/miss counter of the cache.

use std::{path::PathBuf, sync::Arc, time::Duration, time::Instant};

use base64::Engine;
use bytes::Bytes;

use super::{FunctionInfo, Kind};
use crate::{
    contract::{
        function_config::FunctionConfig,
        interactor::{InteractorRequest, MaskReply, Prompt},
        parse_body,
    },
    engine::{cpu, InferenceQueue, ModelPool, QueueConfig},
    imaging::{decode_base64, decode_image, DecodeLimits},
    models::sam::{
        preprocess::preprocess, CacheKey, Embedding, EmbeddingCache, PromptPoint, SamDecoder,
        SamEncoder,
    },
    post::mask::MaskView,
    Error, Result,
};

/// CVAT's SAM plugin decodes in the browser only for this function id.
pub const BROWSER_DECODER_NAME: &str = "pth-facebookresearch-sam-vit-h";

/// Douglas–Peucker tolerance of the returned polygon, in pixels: removes the
/// pixel staircase, keeps the shape (CVAT's UI can simplify further).
const POLYGON_EPSILON: f64 = 1.0;

#[derive(Debug, Clone)]
pub struct InteractorSettings {
    pub name: String,
    pub config: FunctionConfig,
    pub limits: DecodeLimits,
    pub encoder: PathBuf,
    /// `None`: browser-decoder mode (reply `{"blob"}`); `Some`: server-decoder mode.
    pub decoder: Option<PathBuf>,
    pub cache_entries: usize,
    pub cache_bytes: usize,
}

/// Both SAM models run one request at a time: the decoder's inputs
/// (`orig_im_size [2]`, prompts of varying length) have no batch axis to
/// stack on, and a ViT-H encoder batch would not fit most GPUs anyway.
fn queue_config() -> QueueConfig {
    QueueConfig {
        max_batch: 1,
        max_delay: Duration::ZERO,
        max_queue: 64,
        max_wait: Duration::from_secs(60),
    }
}

struct Decoder {
    queue: InferenceQueue,
    model: Arc<SamDecoder>,
}

pub struct InteractorFunction {
    pub info: FunctionInfo,
    encoder: InferenceQueue,
    encoder_model: Arc<SamEncoder>,
    decoder: Option<Decoder>,
    cache: EmbeddingCache,
    model_id: u64,
    limits: DecodeLimits,
}

impl InteractorFunction {
    /// Loads (or shares) the encoder and decoder and checks that this server
    /// can drive them. Blocking.
    pub fn load(settings: &InteractorSettings, pool: &ModelPool) -> Result<Self, String> {
        let mut encoder_model = None;
        let label = |part: &str| format!("{}/{part}", settings.name);
        let encoder = pool.queue(
            &settings.encoder,
            &label("encoder"),
            queue_config(),
            |info| {
                encoder_model = Some(
                    SamEncoder::from_model(info)
                        .map_err(|e| format!("{}: {e}", settings.encoder.display()))?,
                );
                Ok(())
            },
        )?;
        let encoder_model = encoder_model.ok_or("encoder validation did not run")?;
        let decoder = match &settings.decoder {
            None => None,
            Some(path) => {
                let mut model = None;
                let queue = pool.queue(path, &label("decoder"), queue_config(), |info| {
                    model = Some(
                        SamDecoder::from_model(info)
                            .map_err(|e| format!("{}: {e}", path.display()))?,
                    );
                    Ok(())
                })?;
                let model = model.ok_or("decoder validation did not run")?;
                Some(Decoder {
                    queue,
                    model: Arc::new(model),
                })
            }
        };
        if decoder.is_none() && settings.name != BROWSER_DECODER_NAME {
            tracing::warn!(
                function = %settings.name,
                "SAM without --sam-decoder replies with embeddings, which CVAT's SAM plugin only \
                 decodes for a function named {BROWSER_DECODER_NAME}"
            );
        }
        let canonical = settings
            .encoder
            .canonicalize()
            .unwrap_or_else(|_| settings.encoder.clone());
        let model_id = xxhash_rust::xxh3::xxh3_64(canonical.to_string_lossy().as_bytes());
        let mode = if decoder.is_some() {
            "server decoder"
        } else {
            "browser decoder"
        };
        let mut info = FunctionInfo::from_config(
            &settings.name,
            Kind::Interactor,
            &settings.config,
            format!(
                "Segment Anything ({mode}) {} on ONNX Runtime (nuclio-ort)",
                settings.encoder.display()
            ),
        );
        for (key, value) in [
            ("version", "2"),
            ("spec", ""),
            ("min_pos_points", "1"),
            ("min_neg_points", "0"),
            ("startswith_box_optional", "true"),
        ] {
            info.annotations
                .entry(key.into())
                .or_insert_with(|| value.into());
        }
        // CVAT reads these flags with Python's bool(): "false" would mean true.
        info.annotations
            .retain(|_, v| !v.trim().eq_ignore_ascii_case("false"));
        Ok(Self {
            info,
            encoder,
            encoder_model: Arc::new(encoder_model),
            decoder,
            cache: EmbeddingCache::new(settings.cache_entries, settings.cache_bytes),
            model_id,
            limits: settings.limits,
        })
    }

    /// One encoder run, and one decoder run on a tiny frame, so the first
    /// click does not pay for session initialisation.
    pub async fn warm_up(&self) -> Result<()> {
        self.encoder
            .warm_up(&[self.encoder_model.input_shape()], &[1])
            .await?;
        if let Some(decoder) = &self.decoder {
            let embedding = Embedding {
                tensor: ndarray::ArrayD::zeros(ndarray::IxDyn(
                    &crate::models::sam::EMBEDDING_SHAPE,
                )),
                width: 64,
                height: 64,
            };
            let point = PromptPoint {
                x: 32.0,
                y: 32.0,
                label: 1.0,
            };
            let output = decoder
                .queue
                .infer(decoder.model.inputs(&embedding, &[point]))
                .await?;
            decoder
                .model
                .best_mask(&output.outputs, 64, 64)
                .map_err(Error::Inference)?;
        }
        Ok(())
    }

    pub async fn invoke(&self, body: Bytes) -> Result<Vec<u8>> {
        let function = self.info.name.clone();
        let server_mode = self.decoder.is_some();
        let model_id = self.model_id;
        let started = Instant::now();
        let (prompt, image, key) = cpu::run(move || {
            let request: InteractorRequest = parse_body(&body)?;
            // The browser decodes the clicks itself; only the server mode reads them.
            let prompt = if server_mode {
                let prompt = request.prompt()?;
                prompt.require_object()?;
                Some(prompt)
            } else {
                None
            };
            let image = decode_base64(request.image()?)?;
            if image.is_empty() {
                return Err(Error::EmptyImage);
            }
            let key = CacheKey::new(&image, model_id);
            Ok((prompt, image, key))
        })
        .await?;
        stage(&function, "parse", started.elapsed());

        let (encoder, model, limits, name) = (
            self.encoder.clone(),
            self.encoder_model.clone(),
            self.limits,
            function.clone(),
        );
        let (embedding, lookup) = self
            .cache
            .get_or_compute(key, move || encode(image, limits, encoder, model, name))
            .await?;
        metrics::counter!("nuclio_ort_sam_cache_total", "function" => function.clone(), "result" => lookup.as_str())
            .increment(1);
        let (entries, bytes) = self.cache.usage();
        metrics::gauge!("nuclio_ort_sam_cache_entries", "function" => function.clone())
            .set(entries as f64);
        metrics::gauge!("nuclio_ort_sam_cache_bytes", "function" => function.clone())
            .set(bytes as f64);

        match (&self.decoder, prompt) {
            (Some(decoder), Some(prompt)) => self.decode(decoder, &embedding, &prompt).await,
            _ => {
                let started = Instant::now();
                let reply = cpu::run(move || blob_reply(&embedding)).await?;
                stage(&function, "serialize", started.elapsed());
                Ok(reply)
            }
        }
    }

    async fn decode(
        &self,
        decoder: &Decoder,
        embedding: &Arc<Embedding>,
        prompt: &Prompt,
    ) -> Result<Vec<u8>> {
        let function = &self.info.name;
        let (width, height) = (embedding.width, embedding.height);
        prompt.check_inside(width, height)?;
        let points = prompt_points(prompt);
        let output = decoder
            .queue
            .infer(decoder.model.inputs(embedding, &points))
            .await?;
        stage(function, "decoder_queue", output.queue_wait);
        stage(function, "decoder", output.run);
        let model = decoder.model.clone();
        let box_only = prompt.positive.is_empty();
        let started = Instant::now();
        let reply = cpu::run(move || {
            let mask = model
                .best_mask(&output.outputs, width, height)
                .map_err(Error::Inference)?;
            let view = MaskView {
                width,
                height,
                data: &mask.data,
            };
            let Some(bounds) = view.bounds() else {
                // CVAT's UI shows this message and lets the user keep clicking;
                // an empty mask reply would become a broken shape instead.
                return Err(Error::invalid(
                    if box_only { "obj_bbox" } else { "pos_points" },
                    "SAM found no object for these prompts (the mask is empty); click inside the \
                     object, or move negative points away from it",
                ));
            };
            let reply = MaskReply {
                mask: view.crop_rows(bounds, 255),
                bounds,
                points: view.largest_polygon(POLYGON_EPSILON),
            };
            serde_json::to_vec(&reply).map_err(|e| Error::Internal(e.to_string()))
        })
        .await?;
        stage(function, "postprocess", started.elapsed());
        Ok(reply)
    }
}

/// Decode + SAM preprocessing on the CPU pool, then the encoder queue: the
/// work a cache hit skips.
async fn encode(
    image: Vec<u8>,
    limits: DecodeLimits,
    queue: InferenceQueue,
    model: Arc<SamEncoder>,
    function: String,
) -> Result<Embedding> {
    let (tensor, width, height, decode_time, preprocess_time) = cpu::run(move || {
        let started = Instant::now();
        let decoded = decode_image(&image, limits)?;
        drop(image);
        let done = Instant::now();
        let tensor = preprocess(&decoded.rgb);
        let (width, height) = decoded.rgb.dimensions();
        Ok((tensor, width, height, done - started, done.elapsed()))
    })
    .await?;
    stage(&function, "decode", decode_time);
    stage(&function, "preprocess", preprocess_time);
    let output = queue.infer(vec![tensor]).await?;
    stage(&function, "encoder_queue", output.queue_wait);
    stage(&function, "encoder", output.run);
    let tensor = model.embedding(output.outputs).map_err(Error::Inference)?;
    Ok(Embedding {
        tensor,
        width,
        height,
    })
}

/// SAM's prompt: positives (1), negatives (0), box corners (2, 3).
fn prompt_points(prompt: &Prompt) -> Vec<PromptPoint> {
    let point = |p: &[f64; 2], label: f32| PromptPoint {
        x: p[0],
        y: p[1],
        label,
    };
    let mut points: Vec<PromptPoint> = prompt
        .positive
        .iter()
        .map(|p| point(p, 1.0))
        .chain(prompt.negative.iter().map(|p| point(p, 0.0)))
        .collect();
    if let Some([x0, y0, x1, y1]) = prompt.bbox {
        points.push(point(&[x0, y0], 2.0));
        points.push(point(&[x1, y1], 3.0));
    }
    points
}

/// `{"blob": base64(little-endian f32 [1,256,64,64])}`, written directly: the
/// 5.6 MB string is not worth a second copy through serde.
fn blob_reply(embedding: &Embedding) -> Result<Vec<u8>> {
    let raw: Vec<u8> = embedding
        .tensor
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut reply = Vec::with_capacity(raw.len() * 4 / 3 + 16);
    reply.extend_from_slice(b"{\"blob\":\"");
    let start = reply.len();
    reply.resize(start + base64::encoded_len(raw.len(), true).unwrap_or(0), 0);
    let written = engine
        .encode_slice(&raw, &mut reply[start..])
        .map_err(|e| Error::Internal(format!("base64 of the embedding: {e}")))?;
    reply.truncate(start + written);
    reply.extend_from_slice(b"\"}");
    Ok(reply)
}

fn stage(function: &str, stage: &'static str, duration: Duration) {
    metrics::histogram!("nuclio_ort_stage_seconds", "function" => function.to_owned(), "stage" => stage)
        .record(duration.as_secs_f64());
}
