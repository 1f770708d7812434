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
    memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType},
    session::{Session, SessionInputValue},
    value::Tensor,
};
use tokio::sync::oneshot;

use super::{
    session::{ModelInfo, TensorType},
    Device,
};
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
    /// Starts the worker thread that owns `session`. On a GPU `device` batch
    /// inputs are staged in pinned host memory.
    pub fn start(
        session: Session,
        info: ModelInfo,
        mut config: QueueConfig,
        label: &str,
        device: Device,
    ) -> Self {
        // A static batch axis caps the batch; the worker pads short batches.
        if let Some(batch) = info.inputs.first().and_then(|i| i.static_batch()) {
            config.max_batch = config.max_batch.min(batch).max(1);
        }
        config.max_batch = config.max_batch.max(1);
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(QueueStats::default());
        let info = Arc::new(info);
        let label: Arc<str> = Arc::from(label);
        let pinned = pinned_allocator(&session, device, &label);
        let worker = Worker {
            session,
            pinned,
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

/// ONNX Runtime's CUDA-pinned host allocator (arena-backed, so a batch buffer
/// per run is cheap). Without it the CUDA EP first copies pageable input into
/// a staging buffer of its own; failing to get one only costs that copy.
fn pinned_allocator(session: &Session, device: Device, label: &str) -> Option<Allocator> {
    let ordinal = device.ordinal()?;
    let allocator = MemoryInfo::new(
        AllocationDevice::CUDA_PINNED,
        ordinal,
        AllocatorType::Device,
        MemoryType::CPUInput,
    )
    .and_then(|info| Allocator::new(session, info));
    match allocator {
        Ok(allocator) => Some(allocator),
        Err(e) => {
            tracing::warn!(model = %label, error = %e, "no pinned host memory for batch inputs; using pageable memory");
            None
        }
    }
}

struct Worker {
    session: Session,
    /// Pinned host memory for batch inputs on GPU sessions; `None` on the CPU.
    pinned: Option<Allocator>,
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
        for mut group in groups {
            let started = Instant::now();
            let n = group.len();
            let result = self.execute(&mut group);
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

    /// Writes the group's inputs into one batch tensor per model input, runs
    /// the session, and splits every output back per request.
    fn execute(&mut self, group: &mut [Job]) -> Result<Vec<Vec<ArrayD<f32>>>, String> {
        let n = group.len();
        let static_batch = self.info.inputs.first().and_then(|i| i.static_batch());
        let batch = static_batch.unwrap_or(n).max(n);
        let mut feeds: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = Vec::new();
        for (i, input) in self.info.inputs.iter().enumerate() {
            let value = self.batch_input(i, input.ty, group, batch)?;
            feeds.push((Cow::Owned(input.name.clone()), value));
        }
        let outputs = self.session.run(feeds).map_err(|e| e.to_string())?;
        let mut per_job: Vec<Vec<ArrayD<f32>>> = (0..n).map(|_| Vec::new()).collect();
        for output in &self.info.outputs {
            let value = outputs
                .get(&output.name)
                .ok_or_else(|| format!("model produced no output `{}`", output.name))?;
            // One copy out of ONNX Runtime's buffer, straight into each request's slice.
            match output.ty {
                TensorType::F16 => {
                    let array = value
                        .try_extract_array::<f16>()
                        .map_err(|e| e.to_string())?;
                    split_outputs(&array, batch, &mut per_job, f16::to_f32);
                }
                _ => {
                    let array = value
                        .try_extract_array::<f32>()
                        .map_err(|e| e.to_string())?;
                    split_outputs(&array, batch, &mut per_job, |v| v);
                }
            }
        }
        Ok(per_job)
    }

    /// Input `i` of the whole batch. A lone f32 request on host memory hands
    /// its own tensor over (no copy); otherwise every request is written once
    /// into the batch buffer (pinned host memory on GPU sessions, so the
    /// upload is a DMA) and rows beyond the group are zero padding.
    fn batch_input(
        &self,
        i: usize,
        ty: TensorType,
        group: &mut [Job],
        batch: usize,
    ) -> Result<SessionInputValue<'static>, String> {
        let first = group
            .first()
            .and_then(|j| j.inputs.get(i))
            .ok_or("missing model input")?;
        let mut dims = first.shape().to_vec();
        let per_request = first.len();
        // A batch of one keeps the input's own shape (SAM's `orig_im_size` has no batch axis).
        if batch > 1 {
            if dims.first() != Some(&1) {
                return Err(format!(
                    "input {i} has no batch axis of 1 to stack on: {dims:?}"
                ));
            }
            dims[0] = batch;
        }
        if batch == 1 && ty != TensorType::F16 && self.pinned.is_none() {
            let own = std::mem::replace(&mut group[0].inputs[i], ArrayD::zeros(IxDyn(&[0])));
            return Ok(Tensor::from_array(own).map_err(|e| e.to_string())?.into());
        }
        match ty {
            TensorType::F16 => {
                let mut tensor = self.alloc::<f16>(&dims)?;
                fill_batch(
                    tensor.extract_tensor_mut().1,
                    group,
                    i,
                    per_request,
                    f16::from_f32,
                )?;
                Ok(tensor.into())
            }
            _ => {
                let mut tensor = self.alloc::<f32>(&dims)?;
                fill_batch(tensor.extract_tensor_mut().1, group, i, per_request, |v| v)?;
                Ok(tensor.into())
            }
        }
    }

    fn alloc<T>(&self, dims: &[usize]) -> Result<Tensor<T>, String>
    where
        T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + Default + 'static,
    {
        match &self.pinned {
            Some(allocator) => Tensor::<T>::new(allocator, dims.to_vec()),
            None => Tensor::from_array((dims.to_vec(), vec![T::default(); dims.iter().product()])),
        }
        .map_err(|e| e.to_string())
    }
}

/// Copies each request's input `i` into its row of `data` (converting the
/// element type on the way) and zeroes the padding rows.
fn fill_batch<T: Copy + Default>(
    data: &mut [T],
    group: &[Job],
    i: usize,
    per_request: usize,
    convert: impl Fn(f32) -> T,
) -> Result<(), String> {
    let mut rows = data.chunks_exact_mut(per_request.max(1));
    for job in group {
        let (row, input) = rows
            .next()
            .zip(job.inputs.get(i))
            .ok_or("batch buffer smaller than the group")?;
        if input.len() != per_request {
            return Err(format!(
                "input {i} differs in size within a batch ({} vs {per_request})",
                input.len()
            ));
        }
        match input.as_slice() {
            Some(src) => row.iter_mut().zip(src).for_each(|(d, s)| *d = convert(*s)),
            None => row
                .iter_mut()
                .zip(input.iter())
                .for_each(|(d, s)| *d = convert(*s)),
        }
    }
    rows.for_each(|row| row.fill(T::default()));
    Ok(())
}

/// Gives every request its slice of a batched output (batch axis kept as 1);
/// outputs without a batch axis go to every request whole.
fn split_outputs<T: Copy>(
    array: &ndarray::ArrayViewD<'_, T>,
    batch: usize,
    per_job: &mut [Vec<ArrayD<f32>>],
    convert: impl Fn(T) -> f32,
) {
    let batched = array.ndim() > 0 && array.shape()[0] == batch;
    for (k, slot) in per_job.iter_mut().enumerate() {
        let view = if batched {
            array.slice_axis(Axis(0), (k..k + 1).into())
        } else {
            array.view()
        };
        slot.push(view.mapv(&convert));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(values: &[f32]) -> Job {
        let (reply, _rx) = oneshot::channel();
        Job {
            inputs: vec![
                ArrayD::from_shape_vec(IxDyn(&[1, values.len()]), values.to_vec()).expect("shape"),
            ],
            reply,
            enqueued: Instant::now(),
        }
    }

    #[test]
    fn batch_rows_are_the_requests_then_zero_padding() {
        let group = [job(&[1.0, 2.0]), job(&[3.0, 4.0])];
        let mut data = vec![9.0f32; 6];
        fill_batch(&mut data, &group, 0, 2, |v| v).expect("fits");
        assert_eq!(data, [1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);

        let mut halves = vec![f16::from_f32(9.0); 4];
        fill_batch(&mut halves, &group, 0, 2, f16::from_f32).expect("fits");
        assert_eq!(halves[3], f16::from_f32(4.0));

        let uneven = [job(&[1.0, 2.0]), job(&[3.0])];
        assert!(fill_batch(&mut data, &uneven, 0, 2, |v| v).is_err());
        assert!(fill_batch(&mut data[..2], &group, 0, 2, |v| v).is_err());
    }

    #[test]
    fn outputs_split_per_request_or_shared_when_unbatched() {
        let batched = ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
            .expect("shape");
        let mut per_job = vec![Vec::new(), Vec::new()];
        split_outputs(&batched.view(), 3, &mut per_job, |v| v);
        assert_eq!(per_job[1][0].shape(), &[1, 2]);
        assert_eq!(per_job[1][0].as_slice(), Some(&[3.0, 4.0][..]));

        let shared = ArrayD::from_shape_vec(IxDyn(&[2]), vec![7.0f32, 8.0]).expect("shape");
        split_outputs(&shared.view(), 3, &mut per_job, |v| v);
        assert_eq!(per_job[0][1].as_slice(), Some(&[7.0, 8.0][..]));
    }
}
