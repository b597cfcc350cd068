//! `GET /healthz` (the process is up), `GET /readyz` (its dependencies answer and its roles run, within a
//! second whatever is down), `GET /metrics`.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{extract::State, Router};
use fred::prelude::ClientLike;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Each check's deadline: the checks run side by side, so readiness answers within it (and well within
/// a second) whatever is down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

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
    let deadline =
        |what: &'static str| format!("no answer within {} ms ({what})", CHECK_TIMEOUT.as_millis());
    let postgres = async {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(state.pool()))
            .await
            .map_err(|_| deadline("query"))
            .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
    };
    let redis = async {
        if !state.redis().is_connected() {
            return Err("not connected; reconnecting".to_owned());
        }
        tokio::time::timeout(CHECK_TIMEOUT, state.redis().ping::<String>(None))
            .await
            .map_err(|_| deadline("PING"))
            .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
    };
    let kafka = async {
        tokio::time::timeout(CHECK_TIMEOUT, state.admission().sink().ping(CHECK_TIMEOUT))
            .await
            .map_err(|_| deadline("metadata"))
            .and_then(|r| r.map_err(|e| e.to_string()))
    };
    let (postgres, redis, kafka) = tokio::join!(postgres, redis, kafka);
    let checks = [("postgres", postgres), ("redis", redis), ("kafka", kafka)];
    let roles = state.roles().snapshot();
    let ok = checks.iter().all(|(_, r)| r.is_ok()) && roles.values().all(|r| r.status == "running");
    let body: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(name, r)| {
            // The backend's own words (addresses, versions, error text) go to the log, not to an
            // anonymous caller.
            let v = match r {
                Ok(()) => json!({ "status": "ok" }),
                Err(e) => {
                    tracing::warn!(check = name, error = %e, "readiness check failed");
                    json!({ "status": "down" })
                }
            };
            (name.to_owned(), v)
        })
        .collect();
    let down: Vec<&str> = body
        .iter()
        .filter(|(_, v)| v["status"] != "ok")
        .map(|(k, _)| k.as_str())
        .chain(
            roles
                .iter()
                .filter(|(_, r)| r.status != "running")
                .map(|(k, _)| k.as_str()),
        )
        .collect();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "status": if ok { "ready" } else { "not_ready" },
            "down": down,
            "checks": body,
            "roles": roles,
        })),
    )
}

/// The metrics, to anyone unless `http.metrics_token` is set, then to its bearers only.
async fn render_metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.settings().http.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same_secret(given.as_bytes(), token.expose_secret().as_bytes()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the metrics need the bearer token of http.metrics_token",
            ));
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus().render(),
    ))
}

/// Whether two secrets are equal, in a time that does not tell how much of them matched.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Comparing digests makes the lengths equal; the fold reads every byte whatever differs.
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
