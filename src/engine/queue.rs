//! The per-model inference queue: one thread owns the session and turns
//! concurrent single-image requests into batches.
//!
//! A request on an idle server runs at once (no batching delay). When requests
//! are already waiting, the worker takes them all and waits at most
//! `max_delay` for the batch to fill. Admission is bounded (`max_queue`
//! waiting requests, `max_wait` in the queue): beyond either the caller gets
//! `Overloaded` quickly instead of latency piling up. Requests whose caller has
//! gone away are dropped before inference; every other admitted request gets
//! exactly one reply.

use std::{
    borrow::Cow,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, Instant},
};

use half::f16;
use ndarray::{ArrayD, Axis, IxDyn};
use ort::{
    session::{Session, SessionInputValue},
    value::Tensor,
};
use tokio::sync::oneshot;

use super::session::{ModelInfo, TensorType};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    pub max_batch: usize,
    pub max_delay: Duration,
    pub max_queue: usize,
    pub max_wait: Duration,
}

/// What one request got back, with the timings the metrics split out.
#[derive(Debug)]
pub struct InferenceOutput {
    /// One array per model output, this request's slice (batch dim 1 kept).
    pub outputs: Vec<ArrayD<f32>>,
    pub queue_wait: Duration,
    pub run: Duration,
    pub batch_size: usize,
}

#[derive(Debug, Default)]
pub struct QueueStats {
    pub waiting: AtomicUsize,
}

struct Job {
    inputs: Vec<ArrayD<f32>>,
    reply: oneshot::Sender<Result<InferenceOutput>>,
    enqueued: Instant,
}

/// Handle to a model's queue; cheap to clone.
#[derive(Clone)]
pub struct InferenceQueue {
    tx: mpsc::Sender<Job>,
    config: QueueConfig,
    stats: Arc<QueueStats>,
    info: Arc<ModelInfo>,
    label: Arc<str>,
}

impl InferenceQueue {
    /// Starts the worker thread that owns `session`.
    pub fn start(session: Session, info: ModelInfo, mut config: QueueConfig, label: &str) -> Self {
        // A static batch axis caps the batch; the worker pads short batches.
        if let Some(batch) = info.inputs.first().and_then(|i| i.static_batch()) {
            config.max_batch = config.max_batch.min(batch).max(1);
        }
        config.max_batch = config.max_batch.max(1);
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(QueueStats::default());
        let info = Arc::new(info);
        let label: Arc<str> = Arc::from(label);
        let worker = Worker {
            session,
            info: info.clone(),
            config,
            stats: stats.clone(),
            label: label.clone(),
        };
        let spawned = thread::Builder::new()
            .name(format!("infer-{label}"))
            .spawn(move || worker.run(rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start inference thread");
        }
        Self {
            tx,
            config,
            stats,
            info,
            label,
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    pub fn waiting(&self) -> usize {
        self.stats.waiting.load(Ordering::Relaxed)
    }

    /// Runs one request (inputs with a leading batch dimension of 1, in the
    /// model's input order). Refuses at once when the queue is full.
    pub async fn infer(&self, inputs: Vec<ArrayD<f32>>) -> Result<InferenceOutput> {
        let waiting = self.stats.waiting.fetch_add(1, Ordering::AcqRel);
        if waiting >= self.config.max_queue {
            self.stats.waiting.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("nuclio_ort_rejected_total", "model" => self.label.to_string(), "reason" => "queue_full")
                .increment(1);
            return Err(Error::Overloaded(format!(
                "{waiting} requests already wait for model `{}` (limit --max-queue {})",
                self.label, self.config.max_queue
            )));
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            inputs,
            reply,
            enqueued: Instant::now(),
        };
        if self.tx.send(job).is_err() {
            self.stats.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Internal("inference thread has stopped".into()));
        }
        rx.await
            .map_err(|_| Error::Internal("inference thread dropped the request".into()))?
    }

    /// Runs zero-filled batches of each size, so the first real request does
    /// not pay for kernel selection, arena growth or TensorRT engine builds.
    /// Jobs are enqueued together (bypassing admission) so they form one batch.
    /// `shapes` are the per-request input shapes without the batch axis.
    pub async fn warm_up(&self, shapes: &[Vec<usize>], batch_sizes: &[usize]) -> Result<()> {
        for &n in batch_sizes {
            let mut replies = Vec::with_capacity(n);
            for _ in 0..n {
                let inputs = shapes
                    .iter()
                    .map(|shape| {
                        let mut dims = vec![1];
                        dims.extend(shape);
                        ArrayD::zeros(IxDyn(&dims))
                    })
                    .collect();
                let (reply, rx) = oneshot::channel();
                self.stats.waiting.fetch_add(1, Ordering::AcqRel);
                let job = Job {
                    inputs,
                    reply,
                    enqueued: Instant::now(),
                };
                if self.tx.send(job).is_err() {
                    return Err(Error::Internal("inference thread has stopped".into()));
                }
                replies.push(rx);
            }
            for rx in replies {
                rx.await.map_err(|_| {
                    Error::Internal("inference thread dropped the warm-up".into())
                })??;
            }
        }
        Ok(())
    }
}

struct Worker {
    session: Session,
    info: Arc<ModelInfo>,
    config: QueueConfig,
    stats: Arc<QueueStats>,
    label: Arc<str>,
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            // Only a queue that already had company waits for a fuller batch.
            let mut had_company = false;
            while jobs.len() < self.config.max_batch {
                match rx.try_recv() {
                    Ok(job) => {
                        had_company = true;
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            if had_company && jobs.len() < self.config.max_batch && !self.config.max_delay.is_zero()
            {
                let deadline = Instant::now() + self.config.max_delay;
                while jobs.len() < self.config.max_batch {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
            }
            self.stats.waiting.fetch_sub(jobs.len(), Ordering::AcqRel);
            let jobs = self.admit(jobs);
            if !jobs.is_empty() {
                self.run_batch(jobs);
            }
        }
    }

    /// Drops requests nobody waits for and refuses those that waited too long.
    fn admit(&self, jobs: Vec<Job>) -> Vec<Job> {
        let now = Instant::now();
        let mut kept = Vec::with_capacity(jobs.len());
        for job in jobs {
            let waited = now - job.enqueued;
            if job.reply.is_closed() {
                metrics::counter!("nuclio_ort_rejected_total", "model" => self.label.to_string(), "reason" => "client_gone")
                    .increment(1);
            } else if waited > self.config.max_wait {
                metrics::counter!("nuclio_ort_rejected_total", "model" => self.label.to_string(), "reason" => "queue_wait")
                    .increment(1);
                let _ = job.reply.send(Err(Error::Overloaded(format!(
                    "request waited {waited:?} in the queue of model `{}` (limit --max-queue-wait {:?})",
                    self.label, self.config.max_wait
                ))));
            } else {
                kept.push(job);
            }
        }
        kept
    }

    fn run_batch(&mut self, jobs: Vec<Job>) {
        // Requests whose inputs differ in shape (e.g. prompt counts) cannot share a batch.
        let mut groups: Vec<Vec<Job>> = Vec::new();
        for job in jobs {
            let shape = |j: &Job| {
                j.inputs
                    .iter()
                    .map(|a| a.shape().to_vec())
                    .collect::<Vec<_>>()
            };
            match groups.iter_mut().find(|g| shape(&g[0]) == shape(&job)) {
                Some(group) => group.push(job),
                None => groups.push(vec![job]),
            }
        }
        for group in groups {
            let started = Instant::now();
            let n = group.len();
            let result = self.execute(&group);
            let run = started.elapsed();
            metrics::histogram!("nuclio_ort_inference_seconds", "model" => self.label.to_string())
                .record(run.as_secs_f64());
            metrics::histogram!("nuclio_ort_batch_size", "model" => self.label.to_string())
                .record(n as f64);
            match result {
                Ok(mut per_job) => {
                    for (job, outputs) in group.into_iter().zip(per_job.drain(..)) {
                        let _ = job.reply.send(Ok(InferenceOutput {
                            outputs,
                            queue_wait: started - job.enqueued,
                            run,
                            batch_size: n,
                        }));
                    }
                }
                Err(message) => {
                    tracing::error!(model = %self.label, error = %message, "inference failed");
                    for job in group {
                        let _ = job.reply.send(Err(Error::Inference(message.clone())));
                    }
                }
            }
        }
    }

    /// Stacks the group's inputs along the batch axis, runs the session, and
    /// splits every output back per request.
    fn execute(&mut self, group: &[Job]) -> Result<Vec<Vec<ArrayD<f32>>>, String> {
        let n = group.len();
        let static_batch = self.info.inputs.first().and_then(|i| i.static_batch());
        let batch = static_batch.unwrap_or(n).max(n);
        let mut feeds: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = Vec::new();
        for (i, input) in self.info.inputs.iter().enumerate() {
            let views: Vec<_> = group
                .iter()
                .map(|j| {
                    j.inputs
                        .get(i)
                        .map(|a| a.view())
                        .ok_or("missing model input")
                })
                .collect::<Result<_, _>>()?;
            let mut stacked = ndarray::concatenate(Axis(0), &views).map_err(|e| e.to_string())?;
            if batch > n {
                // Static batch larger than the group: pad with zeros, ignore their outputs.
                let mut dims = stacked.shape().to_vec();
                dims[0] = batch - n;
                let pad = ArrayD::<f32>::zeros(IxDyn(&dims));
                stacked = ndarray::concatenate(Axis(0), &[stacked.view(), pad.view()])
                    .map_err(|e| e.to_string())?;
            }
            let value: SessionInputValue<'static> = match input.ty {
                TensorType::F16 => Tensor::from_array(stacked.mapv(f16::from_f32))
                    .map_err(|e| e.to_string())?
                    .into(),
                _ => Tensor::from_array(stacked)
                    .map_err(|e| e.to_string())?
                    .into(),
            };
            feeds.push((Cow::Owned(input.name.clone()), value));
        }
        let outputs = self.session.run(feeds).map_err(|e| e.to_string())?;
        let mut per_job: Vec<Vec<ArrayD<f32>>> = (0..n).map(|_| Vec::new()).collect();
        for output in &self.info.outputs {
            let value = outputs
                .get(&output.name)
                .ok_or_else(|| format!("model produced no output `{}`", output.name))?;
            let array: ArrayD<f32> = match output.ty {
                TensorType::F16 => value
                    .try_extract_array::<f16>()
                    .map_err(|e| e.to_string())?
                    .mapv(f16::to_f32),
                _ => value
                    .try_extract_array::<f32>()
                    .map_err(|e| e.to_string())?
                    .to_owned(),
            };
            let batched = array.ndim() > 0 && array.shape()[0] == batch;
            for (k, slot) in per_job.iter_mut().enumerate() {
                slot.push(if batched {
                    array.slice_axis(Axis(0), (k..k + 1).into()).to_owned()
                } else {
                    array.clone()
                });
            }
        }
        Ok(per_job)
    }
}
