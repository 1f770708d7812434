//! State shared by the HTTP handlers.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;

use crate::functions::Registry;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    /// Set once every function is loaded and warmed up.
    registry: OnceLock<Arc<Registry>>,
    /// Set on SIGTERM: readiness goes 503 while in-flight requests finish.
    draining: AtomicBool,
    pub max_body: usize,
    pub event_timeout: Option<Duration>,
    pub metrics: PrometheusHandle,
    /// Names of the functions being loaded, for `/ready` before the registry exists.
    pub expected: Vec<String>,
    /// Port of the trigger server, reported as `status.httpPort` by the dashboard API.
    pub http_port: u16,
    /// Admission: one permit per request in flight (body read, decoding, queued, running).
    pub admission: Arc<Semaphore>,
    pub max_in_flight: usize,
}

impl AppState {
    pub fn new(
        max_body: usize,
        event_timeout: Option<Duration>,
        metrics: PrometheusHandle,
        expected: Vec<String>,
        http_port: u16,
    ) -> Self {
        Self(Arc::new(Inner {
            registry: OnceLock::new(),
            draining: AtomicBool::new(false),
            max_body,
            event_timeout,
            metrics,
            expected,
            http_port,
            admission: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            max_in_flight: Semaphore::MAX_PERMITS,
        }))
    }

    /// Limits the requests in flight; set before the state is shared.
    pub fn with_admission(mut self, max_in_flight: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.admission = Arc::new(Semaphore::new(max_in_flight.max(1)));
            inner.max_in_flight = max_in_flight.max(1);
        }
        self
    }

    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.0.registry.get()
    }

    /// Publishes the loaded, warmed-up functions: the server becomes ready.
    pub fn set_ready(&self, registry: Registry) {
        let _ = self.0.registry.set(Arc::new(registry));
        metrics::gauge!("nuclio_ort_ready").set(1.0);
    }

    pub fn is_ready(&self) -> bool {
        self.registry().is_some() && !self.0.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
        metrics::gauge!("nuclio_ort_ready").set(0.0);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
