//! The subset of the Nuclio dashboard API that CVAT's lambda manager uses, so
//! CVAT can point `CVAT_NUCLIO_HOST`/`CVAT_NUCLIO_PORT` straight at this
//! server (`CVAT_NUCLIO_INVOKE_METHOD=dashboard`) with no Nuclio at all.
//!
//! - `GET /api/functions`: object keyed by function name.
//! - `GET /api/functions/{name}`: one function (called before every invocation: cheap).
//! - `POST /api/function_invocations`: invoke the function named by
//!   `x-nuclio-function-name`, honouring `X-Nuclio-Invoke-Timeout`.
//!
//! Everything else under `/api/` is a JSON 404/405: nothing is deployed,
//! built or deleted through this server.

use std::time::Duration;

use axum::{
    extract::{Path, Request, State},
    http::{HeaderMap, Method},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Map, Value};

use super::{invoke, AppState};
use crate::{
    functions::{FunctionInfo, Registry},
    Error,
};

/// The Nuclio function object CVAT parses (`LambdaFunction.__init__`).
pub fn function_object(info: &FunctionInfo, http_port: u16) -> Value {
    json!({
        "metadata": {
            "name": info.name,
            "namespace": info.namespace,
            "annotations": info.annotations,
        },
        "spec": {
            "description": info.description,
            "runtime": info.runtime,
        },
        "status": {
            "state": "ready",
            "httpPort": http_port,
        },
    })
}

fn registry(state: &AppState) -> Result<&Registry, Error> {
    state
        .registry()
        .map(|r| r.as_ref())
        .ok_or_else(|| Error::NotReady(state.expected.join(", ")))
}

pub async fn list(State(state): State<AppState>) -> Response {
    match registry(&state) {
        Ok(registry) => {
            let functions: Map<String, Value> = registry
                .iter()
                .map(|f| {
                    (
                        f.info().name.clone(),
                        function_object(f.info(), state.http_port),
                    )
                })
                .collect();
            Json(Value::Object(functions)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let found = registry(&state).and_then(|r| r.get(&name).ok_or(Error::UnknownFunction(name)));
    match found {
        Ok(function) => Json(function_object(function.info(), state.http_port)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn invoke(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers();
    let Some(name) = header(headers, "x-nuclio-function-name") else {
        return Error::MissingHeader("x-nuclio-function-name").into_response();
    };
    let timeout = match header(headers, "x-nuclio-invoke-timeout").map(parse_go_duration) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return e.into_response(),
        None => None,
    };
    let function = match registry(&state) {
        Ok(registry) => match registry.get(&name) {
            Some(f) => f,
            None => return Error::UnknownFunction(name).into_response(),
        },
        Err(e) => return e.into_response(),
    };
    invoke::run(&state, function, request, timeout).await
}

/// Any other `/api/...` route: a JSON answer instead of an invocation.
pub async fn other(method: Method, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let known = path == "/api/functions"
        || path.starts_with("/api/functions/")
        || path == "/api/function_invocations";
    if known {
        Error::MethodNotAllowed(format!(
            "{method} {path}: this server deploys nothing; only listing and invocation are served"
        ))
        .into_response()
    } else {
        Error::NotFound(format!(
            "{path}: not part of the Nuclio dashboard API subset served here"
        ))
        .into_response()
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Go durations as CVAT sends them (`120s`, `1m30s`, `500ms`).
fn parse_go_duration(text: String) -> Result<Duration, Error> {
    humantime::parse_duration(&text).map_err(|e| {
        Error::invalid(
            "x-nuclio-invoke-timeout",
            format!("`{text}` is not a duration: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cvat_timeouts() {
        assert_eq!(
            parse_go_duration("120s".into()).unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(
            parse_go_duration("1m30s".into()).unwrap(),
            Duration::from_secs(90)
        );
        assert!(parse_go_duration("soon".into()).is_err());
    }
}
