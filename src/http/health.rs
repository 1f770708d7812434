//! Probes. Liveness answers from the first second (also while models load);
//! readiness only once every function is loaded and warmed up, and again not
//! once SIGTERM arrived, so Kubernetes stops routing before the process exits.

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde_json::json;

use super::AppState;

pub async fn live() -> impl IntoResponse {
    Json(json!({ "status": "alive" }))
}

pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let functions: Vec<_> = match state.registry() {
        Some(registry) => registry
            .iter()
            .map(|f| json!({ "name": f.info().name, "kind": f.info().kind.as_str(), "state": "ready" }))
            .collect(),
        None => state
            .expected
            .iter()
            .map(|name| json!({ "name": name, "state": "loading" }))
            .collect(),
    };
    let (status, word) = if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if state.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "loading")
    };
    (
        status,
        Json(json!({ "status": word, "functions": functions })),
    )
}
