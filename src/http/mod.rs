//! The three HTTP servers of a Nuclio function container:
//! the trigger port (invocations and `/__internal/health`, 8080), the health
//! port (`/live`, `/ready`, 8082) and the metrics port (`/metrics`, 8090).
//! The trigger port also serves the Nuclio dashboard API subset CVAT uses
//! (`/api/...`), so CVAT can talk to this server without Nuclio.
//! No response compression anywhere: the dashboard forwards CVAT's
//! `Accept-Encoding`, and CVAT expects plain JSON.

pub mod dashboard;
pub mod health;
pub mod invoke;
pub mod metrics;
pub mod state;

use axum::{
    extract::Request,
    routing::{any, get, post},
    Router,
};

pub use self::state::AppState;

pub fn trigger_router(state: AppState) -> Router {
    Router::new()
        // A known path with another method gets the JSON 405 of the error
        // table (axum's own 405 has an empty body).
        .route(
            "/__internal/health",
            get(health::ready).fallback(|request: Request| async move {
                invoke::wrong_method(&request, "GET (readiness)")
            }),
        )
        .route(
            "/functions/{name}",
            post(invoke::invoke_named).fallback(invoke::not_an_invocation),
        )
        .route(
            "/api/functions",
            get(dashboard::list).fallback(dashboard::other),
        )
        .route(
            "/api/functions/{name}",
            get(dashboard::get).fallback(dashboard::other),
        )
        .route(
            "/api/function_invocations",
            post(dashboard::invoke).fallback(dashboard::other),
        )
        .route("/api/{*rest}", any(dashboard::other))
        .fallback(invoke::invoke_default)
        .with_state(state)
}

pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/live", get(health::live))
        .route("/ready", get(health::ready))
        .with_state(state)
}

pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(state)
}
