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
    contract::function_config::{FunctionConfig, NUCLIO_PROCESSOR_CONFIG},
    engine::{device::ProviderOptions, session::SessionOptions, QueueConfig},
    functions::{detector::DetectorSettings, DetectorFunction, Function, Registry},
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

/// The resolved plan for this process, before anything heavy happens.
struct Plan {
    detector: DetectorSettings,
    max_body: usize,
    event_timeout: Option<Duration>,
}

fn plan(args: &ServeArgs) -> Result<Plan, String> {
    let config_path = args
        .function_config
        .clone()
        .or_else(|| Some(PathBuf::from(NUCLIO_PROCESSOR_CONFIG)).filter(|p| p.is_file()));
    let config = match &config_path {
        Some(path) => FunctionConfig::load(path)?,
        None => FunctionConfig::default(),
    };
    let model = args.model.clone().ok_or(
        "nothing to serve: pass --model PATH (or set NUCLIO_ORT_MODEL) with a YOLO ONNX model",
    )?;
    let name = args
        .name
        .clone()
        .or_else(|| config.name.clone())
        .unwrap_or_else(|| model_stem(&model));
    if !(0.0..=1.0).contains(&args.threshold) || !(0.0..=1.0).contains(&args.iou) {
        return Err("--threshold and --iou must be within [0, 1]".into());
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let max_batch = args.max_batch.unwrap_or(16).max(1);
    let session = SessionOptions {
        device: args.device,
        intra_threads: args.threads,
        providers: ProviderOptions {
            fp32_model: true,
            trt_cache_dir: args.trt_cache_dir.clone(),
            trt_profile: None,
            gpu_mem_limit: None,
        },
    };
    Ok(Plan {
        max_body: args
            .max_body_size
            .or(config.max_request_body_size)
            .unwrap_or(ServeArgs::DEFAULT_MAX_BODY),
        event_timeout: args.event_timeout.or(config.event_timeout),
        detector: DetectorSettings {
            name,
            model,
            config,
            session,
            queue: QueueConfig {
                max_batch,
                max_delay: args.max_queue_delay,
                max_queue: args.max_queue.unwrap_or((4 * max_batch).max(2 * cores)),
                max_wait: args.max_queue_wait,
            },
            defaults: DetectParams {
                threshold: args.threshold,
                iou: args.iou,
                max_det: args.max_det,
            },
            limits: DecodeLimits {
                max_pixels: args.max_image_pixels,
                fast_decode_min: None,
            },
            fast_decode: args.fast_decode,
        },
    })
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
    let state = AppState::new(
        plan.max_body,
        plan.event_timeout,
        metrics,
        vec![plan.detector.name.clone()],
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let trigger = bind(args.listen, "trigger").await?;
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

    let loading = tokio::spawn(load(plan.detector.clone(), args.device.is_gpu()));
    tokio::pin!(loading);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    // Wait for the models while answering probes; a signal during load stops at once.
    tokio::select! {
        loaded = &mut loading => {
            let function = loaded.map_err(|e| format!("model loading task failed: {e}"))??;
            announce(&function, &args);
            state.set_ready(Registry::new(vec![function]));
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

async fn load(settings: DetectorSettings, gpu: bool) -> Result<Function, String> {
    let max_batch = settings.queue.max_batch;
    let loaded = tokio::task::spawn_blocking(move || DetectorFunction::load(&settings))
        .await
        .map_err(|e| format!("model loading panicked: {e}"))??;
    // GPUs build kernels (and TensorRT engines) per batch size: warm every size used.
    let sizes: Vec<usize> = if gpu {
        let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |b| Some(b * 2))
            .take_while(|b| *b < max_batch)
            .collect();
        sizes.push(loaded.queue().config().max_batch);
        sizes.dedup();
        sizes
    } else {
        vec![1]
    };
    loaded
        .warm_up(&sizes)
        .await
        .map_err(|e| format!("warm-up of `{}` failed: {e}", loaded.info.name))?;
    Ok(Function::Detector(loaded))
}

fn announce(function: &Function, args: &ServeArgs) {
    let Function::Detector(detector) = function;
    let model = &detector.model;
    tracing::info!(
        function = %detector.info.name,
        model = %detector.queue().info().path,
        input = %format!("{}x{} {:?}", model.input_size[1], model.input_size[0], model.input_type),
        classes = model.names.len(),
        device = %args.device,
        max_batch = detector.queue().config().max_batch,
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
    match agent.get(&args.url).call() {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("not ready: {} answered {}", args.url, response.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("not ready: {}: {e}", args.url);
            ExitCode::FAILURE
        }
    }
}
