//! Function invocation: `POST /` (the single function, as Nuclio's HTTP
//! trigger serves it on any path) and `POST /functions/{name}`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, Method, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http_body_util::BodyExt;

use super::AppState;
use crate::{functions::Function, Error, Result};

pub async fn invoke_named(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let function = match state.registry() {
        Some(registry) => registry
            .get(&name)
            .ok_or_else(|| Error::UnknownFunction(name.clone())),
        None if state.expected.contains(&name) => Err(Error::NotReady(name.clone())),
        None => Err(Error::UnknownFunction(name.clone())),
    };
    match function {
        Ok(function) => run(&state, function, request, None).await,
        Err(e) => e.into_response(),
    }
}

/// A method the path does not serve: the error table's JSON 405 saying what
/// the path does answer (axum's own 405 has an empty body).
pub fn wrong_method(request: &Request, answers: &str) -> Response {
    Error::MethodNotAllowed(format!(
        "{} {}: this path answers {answers}",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}

const INVOKE: &str = "POST with a CVAT JSON body";

/// `wrong_method` for the invocation paths.
pub async fn not_an_invocation(request: Request) -> Response {
    wrong_method(&request, INVOKE)
}

/// Nuclio's trigger invokes the function for any method and path; CVAT uses
/// `POST /`. A GET is answered with a hint instead of an image error.
pub async fn invoke_default(State(state): State<AppState>, request: Request) -> Response {
    if request.method() != Method::POST {
        return wrong_method(&request, INVOKE);
    }
    let function = match state.registry() {
        Some(registry) => registry.single().ok_or_else(|| {
            Error::NotFound(format!(
                "this server hosts {} functions; POST to /functions/{{name}}",
                registry.iter().count()
            ))
        }),
        None => Err(Error::NotReady(state.expected.join(", "))),
    };
    match function {
        Ok(function) => run(&state, function, request, None).await,
        Err(e) => e.into_response(),
    }
}

/// Reads the body within the limit, invokes with the event timeout, and
/// records the request metrics. Exactly one reply per accepted request.
/// `timeout` (the dashboard's `X-Nuclio-Invoke-Timeout`) tightens the event timeout.
pub async fn run(
    state: &AppState,
    function: Arc<Function>,
    request: Request,
    timeout: Option<Duration>,
) -> Response {
    let started = Instant::now();
    let name = function.info().name.clone();
    let limit = match (state.event_timeout, timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let result = async {
        // Refuse quickly when full, without buffering the body.
        let Ok(_permit) = state.admission.clone().try_acquire_owned() else {
            metrics::counter!("nuclio_ort_rejected_total", "model" => name.clone(), "reason" => "in_flight").increment(1);
            discard_body(request, state.max_body).await;
            return Err(Error::Overloaded(format!(
                "{} requests are already in flight (limit --max-queue + --max-batch + cores = {})",
                state.max_in_flight, state.max_in_flight
            )));
        };
        let body = read_body(request, state.max_body).await?;
        let call = function.invoke(body);
        match limit {
            Some(limit) => tokio::time::timeout(limit, call)
                .await
                .map_err(|_| Error::Timeout(limit))?,
            None => call.await,
        }
    }
    .await;
    let response = match result {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => {
            // Overload (503) and timeouts (504) are expected under load: no log flood.
            if error.status() == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::warn!(function = %name, kind = error.kind(), error = %error, "invocation failed");
            } else {
                tracing::debug!(function = %name, kind = error.kind(), error = %error, "invocation refused");
            }
            error.into_response()
        }
    };
    record(&name, response.status(), started);
    response
}

fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads and drops the body of a refused request, chunk by chunk (flat
/// memory). A reply sent while the client is still uploading ends in a
/// connection reset: the client would see "broken pipe" instead of the 503
/// and its Retry-After. Bounded by the body limit and a few seconds.
async fn discard_body(request: Request, limit: usize) {
    if declared_length(&request).is_some_and(|len| len > limit as u64) {
        return;
    }
    let mut body = request.into_body();
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_DEADLINE, drain).await;
}

const DISCARD_DEADLINE: Duration = Duration::from_secs(5);

async fn read_body(request: Request, limit: usize) -> Result<Bytes> {
    let declared = declared_length(&request);
    // Refuse before reading a byte when the client announces too much.
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    let body: Body = request.into_body();
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            Error::BodyTooLarge { limit }
        } else {
            Error::InvalidJson(format!("could not read the request body: {e}"))
        }
    })
}

fn record(function: &str, status: StatusCode, started: Instant) {
    let code = status.as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("nuclio_ort_requests_total", "function" => function.to_owned(), "status" => code.clone()).increment(1);
    metrics::histogram!("nuclio_ort_request_duration_seconds", "function" => function.to_owned(), "status" => code)
        .record(elapsed);
    let result = if status.is_success() {
        "success"
    } else {
        "failure"
    };
    metrics::counter!("nuclio_processor_handled_events_total", "function" => function.to_owned(), "result" => result)
        .increment(1);
}
