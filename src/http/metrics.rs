//! Prometheus text exposition.

use axum::{extract::State, http::header, response::IntoResponse};

use super::AppState;

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
