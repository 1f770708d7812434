//! Wiring: configuration → functions → the three servers, plus the
//! `healthcheck` subcommand.
//!
//! The servers start before the models load: Kubernetes' liveness probe must
//! get 200 within seconds while a large model (or a TensorRT engine build)
//! takes minutes; readiness turns 200 only after load and warm-up. On SIGTERM
//! readiness turns 503 at once, in-flight requests finish within
//! `--shutdown-timeout`, and the process exits 0.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use axum::Router;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    config::{HealthcheckArgs, ServeArgs},
    contract::{
        function_config::{FunctionConfig, NUCLIO_PROCESSOR_CONFIG},
        functions_file,
    },
    engine::{device::ProviderOptions, session::SessionOptions, ModelPool, QueueConfig},
    functions::{
        detector::DetectorSettings,
        interactor::{InteractorSettings, BROWSER_DECODER_NAME},
        tracker::TrackerSettings,
        DetectorFunction, Function, InteractorFunction, Registry, TrackerFunction,
    },
    http::{self, AppState},
    imaging::DecodeLimits,
    models::yolo::detect::DetectParams,
    observability,
};

pub fn serve(args: ServeArgs) -> ExitCode {
    observability::init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("nuclio-ort: {message}");
    ExitCode::FAILURE
}

/// One function to load, with everything it needs.
#[derive(Debug, Clone)]
pub enum FunctionPlan {
    Detector(DetectorSettings),
    Interactor(InteractorSettings),
    Tracker(TrackerSettings),
}

impl FunctionPlan {
    pub fn name(&self) -> &str {
        match self {
            FunctionPlan::Detector(s) => &s.name,
            FunctionPlan::Interactor(s) => &s.name,
            FunctionPlan::Tracker(s) => &s.name,
        }
    }
}

/// The resolved plan for this process, before anything heavy happens.
pub struct Plan {
    pub functions: Vec<FunctionPlan>,
    pub session: SessionOptions,
    pub max_body: usize,
    pub event_timeout: Option<Duration>,
    /// Requests admitted at once (decoding, queued or running); beyond it, 503.
    pub max_in_flight: usize,
}

/// Settings every function kind shares, from the command line.
pub struct Common {
    pub queue: QueueConfig,
    pub detect: DetectParams,
    pub limits: DecodeLimits,
}

fn plan(args: &ServeArgs) -> Result<Plan, String> {
    if !(0.0..=1.0).contains(&args.threshold) || !(0.0..=1.0).contains(&args.iou) {
        return Err("--threshold and --iou must be within [0, 1]".into());
    }
    let config_path = args
        .function_config
        .clone()
        .or_else(|| Some(PathBuf::from(NUCLIO_PROCESSOR_CONFIG)).filter(|p| p.is_file()));
    let config = match &config_path {
        Some(path) => FunctionConfig::load(path)?,
        None => FunctionConfig::default(),
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let max_batch = args.max_batch.unwrap_or(16).max(1);
    let common = Common {
        queue: QueueConfig {
            max_batch,
            max_delay: args.max_queue_delay,
            max_queue: args.max_queue.unwrap_or((4 * max_batch).max(2 * cores)),
            max_wait: args.max_queue_wait,
        },
        detect: DetectParams {
            threshold: args.threshold,
            iou: args.iou,
            max_det: args.max_det,
        },
        limits: DecodeLimits {
            max_pixels: args.max_image_pixels,
            fast_decode_min: None,
        },
    };
    let functions = match &args.functions {
        Some(path) => functions_file::load(path, &common, args)?,
        None => single_process_functions(args, &config, &common)?,
    };
    if functions.is_empty() {
        return Err("nothing to serve: pass --model PATH (YOLO detector), --sam-encoder PATH (SAM interactor), \
                    --tracker builtin, or --functions FILE"
            .into());
    }
    let mut names = std::collections::HashSet::new();
    for f in &functions {
        if !names.insert(f.name().to_owned()) {
            return Err(format!(
                "two functions are named `{}`; give them distinct names",
                f.name()
            ));
        }
    }
    Ok(Plan {
        functions,
        session: SessionOptions {
            device: args.device,
            intra_threads: args.threads,
            spin: args.spin,
            providers: ProviderOptions {
                fp32_model: true,
                trt_cache_dir: args.trt_cache_dir.clone(),
                trt_profile: None,
                gpu_mem_limit: None,
            },
        },
        max_body: args
            .max_body_size
            .or(config.max_request_body_size)
            .unwrap_or(ServeArgs::DEFAULT_MAX_BODY),
        event_timeout: args.event_timeout.or(config.event_timeout),
        // Everything that can be queued, plus what runs and decodes: bounds the
        // memory of request bodies in flight as well as queue latency.
        max_in_flight: common.queue.max_queue + common.queue.max_batch + cores,
    })
}

/// The functions named by `--model`, `--sam-encoder` and `--tracker`. With
/// exactly one, `--name` and the function config apply to it.
fn single_process_functions(
    args: &ServeArgs,
    config: &FunctionConfig,
    common: &Common,
) -> Result<Vec<FunctionPlan>, String> {
    let mut functions = Vec::new();
    if let Some(model) = &args.model {
        functions.push(FunctionPlan::Detector(DetectorSettings {
            name: model_stem(model),
            model: model.clone(),
            config: FunctionConfig::default(),
            queue: common.queue,
            defaults: common.detect,
            limits: common.limits,
            fast_decode: args.fast_decode,
        }));
    }
    if let Some(encoder) = &args.sam_encoder {
        functions.push(FunctionPlan::Interactor(InteractorSettings {
            name: match args.sam_decoder {
                None => BROWSER_DECODER_NAME.into(),
                Some(_) => format!("{}-interactor", model_stem(encoder)),
            },
            config: FunctionConfig::default(),
            limits: common.limits,
            encoder: encoder.clone(),
            decoder: args.sam_decoder.clone(),
            cache_entries: args.sam_cache_entries,
            cache_bytes: args.sam_cache_bytes,
        }));
    }
    if args.tracker.is_some() || args.tracker_model.is_some() {
        functions.push(FunctionPlan::Tracker(TrackerSettings {
            name: "nuclio-ort-tracker".into(),
            config: FunctionConfig::default(),
            limits: common.limits,
            model: args.tracker_model.clone(),
        }));
    }
    if let [only] = functions.as_mut_slice() {
        let name = args.name.clone().or_else(|| config.name.clone());
        match only {
            FunctionPlan::Detector(s) => {
                s.config = config.clone();
                s.name = name.unwrap_or_else(|| s.name.clone());
            }
            FunctionPlan::Interactor(s) => {
                s.config = config.clone();
                s.name = name.unwrap_or_else(|| s.name.clone());
            }
            FunctionPlan::Tracker(s) => {
                s.config = config.clone();
                s.name = name.unwrap_or_else(|| s.name.clone());
            }
        }
    } else if args.name.is_some() {
        return Err(
            "--name names one function, but several are configured; use --functions FILE".into(),
        );
    }
    Ok(functions)
}

fn model_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| {
            s.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.',
                "-",
            )
        })
        .unwrap_or_else(|| "detector".into())
}

async fn run(args: ServeArgs) -> Result<(), String> {
    let plan = plan(&args)?;
    let metrics = observability::metrics_handle();
    let names = plan.functions.iter().map(|f| f.name().to_owned()).collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let trigger = bind(args.listen, "trigger").await?;
    let http_port = trigger
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(args.listen.port());
    let state = AppState::new(plan.max_body, plan.event_timeout, metrics, names, http_port)
        .with_admission(plan.max_in_flight);
    let health = bind(args.health_listen, "health").await?;
    let metrics_port = bind(args.metrics_listen, "metrics").await?;
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(serve_router(
        trigger,
        http::trigger_router(state.clone()),
        stop_rx.clone(),
    ));
    servers.spawn(serve_router(
        health,
        http::health_router(state.clone()),
        stop_rx.clone(),
    ));
    servers.spawn(serve_router(
        metrics_port,
        http::metrics_router(state.clone()),
        stop_rx.clone(),
    ));

    let loading = tokio::spawn(load_all(plan.functions, plan.session));
    tokio::pin!(loading);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    // Wait for the models while answering probes; a signal during load stops at once.
    tokio::select! {
        loaded = &mut loading => {
            let registry = loaded.map_err(|e| format!("model loading task failed: {e}"))??;
            for function in registry.iter() {
                announce(function, &args);
            }
            state.set_ready(registry);
        }
        _ = &mut shutdown => {
            tracing::info!("stop signal during model load; exiting");
            return Ok(());
        }
    }

    shutdown.await;
    tracing::info!(timeout = ?args.shutdown_timeout, "stop signal: not ready, finishing in-flight requests");
    state.start_draining();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(args.shutdown_timeout, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight requests did not finish within the shutdown timeout");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Loads every function (models shared through one pool) and warms them up.
pub async fn load_all(
    plans: Vec<FunctionPlan>,
    session: SessionOptions,
) -> Result<Registry, String> {
    let gpu = session.device.is_gpu();
    let pool = std::sync::Arc::new(ModelPool::new(session));
    let mut functions = Vec::with_capacity(plans.len());
    for plan in plans {
        let name = plan.name().to_owned();
        let pool = pool.clone();
        let function = tokio::task::spawn_blocking(move || -> Result<Function, String> {
            Ok(match &plan {
                FunctionPlan::Detector(s) => Function::Detector(DetectorFunction::load(s, &pool)?),
                FunctionPlan::Interactor(s) => {
                    Function::Interactor(InteractorFunction::load(s, &pool)?)
                }
                FunctionPlan::Tracker(s) => Function::Tracker(TrackerFunction::load(s, &pool)?),
            })
        })
        .await
        .map_err(|e| format!("loading `{name}` panicked: {e}"))??;
        let warm = match &function {
            Function::Detector(d) => {
                d.warm_up(&batch_sizes(d.queue().config().max_batch, gpu))
                    .await
            }
            Function::Interactor(i) => i.warm_up().await,
            Function::Tracker(t) => t.warm_up().await,
        };
        warm.map_err(|e| format!("warm-up of `{name}` failed: {e}"))?;
        functions.push(function);
    }
    Ok(Registry::new(functions))
}

/// GPUs build kernels (and TensorRT engines) per batch shape: warm every
/// power of two up to the largest batch. CPUs need one run.
fn batch_sizes(max_batch: usize, gpu: bool) -> Vec<usize> {
    if !gpu {
        return vec![1];
    }
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |b| Some(b * 2))
        .take_while(|b| *b < max_batch)
        .collect();
    sizes.push(max_batch);
    sizes
}

fn announce(function: &Function, args: &ServeArgs) {
    let info = function.info();
    let detail = match function {
        Function::Detector(d) => format!(
            "model {} input {}x{} {:?}, {} classes, max batch {}",
            d.queue().info().path,
            d.model.input_size[1],
            d.model.input_size[0],
            d.model.input_type,
            d.model.names.len(),
            d.queue().config().max_batch
        ),
        Function::Interactor(_) | Function::Tracker(_) => String::new(),
    };
    tracing::info!(
        function = %info.name,
        kind = info.kind.as_str(),
        detail = %detail,
        device = %args.device,
        listen = %args.listen,
        health = %args.health_listen,
        metrics = %args.metrics_listen,
        "ready"
    );
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what} port): {e}"))
}

async fn serve_router(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "server stopped with an error");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `nuclio-ort healthcheck`: exit 0 when the readiness endpoint answers 2xx.
pub fn healthcheck(args: &HealthcheckArgs) -> ExitCode {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(args.timeout))
        .build()
        .into();
    let url = args.probe_url();
    match agent.get(&url).call() {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("not ready: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("not ready: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
