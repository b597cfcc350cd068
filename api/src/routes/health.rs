//! `GET /healthz` (the process is up), `GET /readyz` (its dependencies answer), `GET /metrics`.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{extract::State, Router};
use fred::prelude::ClientLike;
use serde_json::json;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let postgres =
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(state.pool()))
            .await
            .map_err(|_| "timed out".to_owned())
            .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
    let redis = tokio::time::timeout(CHECK_TIMEOUT, state.redis().ping::<String>(None))
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()));
    let kafka = state
        .admission()
        .sink()
        .ping(CHECK_TIMEOUT)
        .await
        .map_err(|e| e.to_string());
    let checks = [("postgres", postgres), ("redis", redis), ("kafka", kafka)];
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    let body: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(name, r)| {
            let v = match r {
                Ok(()) => json!({ "status": "ok" }),
                Err(e) => json!({ "status": "down", "error": e }),
            };
            (name.to_owned(), v)
        })
        .collect();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({ "status": if ok { "ready" } else { "not_ready" }, "checks": body })),
    )
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus().render(),
    )
}
