//! `POST /api/v1/ingest`: the ingest gateway's HTTP face.
//!
//! Authenticates the key, bounds and decompresses the body, validates it whole, and hands it to the one
//! admission path ([`haltless_connectors::admission`]), which resolves machine names for the key's tenant
//! and writes the readings; answers 202 only after Kafka acknowledged every record.

use std::io::Read;
use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use flate2::read::GzDecoder;
use futures::StreamExt;
use haltless_connectors::admission::{source_label, Charge, Delivery, Refusal};
use haltless_connectors::gateway::IngestError;
use haltless_schemas::{metric_names, Source};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json};
use crate::state::AppState;

/// Optional header naming the ingest path of a request: `agent` for the edge agent.
pub const SOURCE_HEADER: &str = "x-haltless-source";

/// The ingest route.
pub fn router() -> Router<AppState> {
    // The handler enforces its own, configurable limit so that the answer is a JSON 413.
    Router::new()
        .route("/ingest", post(ingest))
        .layer(DefaultBodyLimit::disable())
}

/// Wraps `api` (outside authentication and rate limits) so that at most `max_concurrent` ingest requests
/// are handled at once; one more is shed at once.
pub fn limit_concurrency(
    api: Router<AppState>,
    max_concurrent: usize,
    max_body_bytes: usize,
) -> Router<AppState> {
    let slots = Arc::new(Semaphore::new(max_concurrent.max(1)));
    api.layer(middleware::from_fn(move |request: Request, next: Next| {
        let is_ingest =
            request.method() == Method::POST && request.uri().path().ends_with("/ingest");
        let slot = is_ingest.then(|| slots.clone().try_acquire_owned());
        async move {
            match slot {
                Some(Err(_)) => {
                    discard(request.into_body(), max_body_bytes).await;
                    shed()
                }
                // The slot, if any, is held until the answer is ready.
                _slot => next.run(request).await,
            }
        }
    }))
}

/// Reads and drops a shed request's body (up to `limit` bytes), holding none of it: a client still sending
/// when the answer comes would otherwise see its connection reset instead of the 503 and its Retry-After.
async fn discard(body: Body, limit: usize) {
    let mut frames = body.into_data_stream();
    let mut seen = 0;
    while let Some(Ok(chunk)) = frames.next().await {
        seen += chunk.len();
        if seen > limit {
            break;
        }
    }
}

/// The answer past the concurrency limit: immediate, before authentication, rate limits or the body, so
/// that an overloaded gateway spends nothing on requests it cannot serve (nor charges them to the tenant)
/// and clients back off.
fn shed() -> Response {
    overloaded().into_response()
}

/// 503 `overloaded`, counted as shed: past the concurrency limit, or with Kafka's producer queue full.
fn overloaded() -> ApiError {
    metrics::counter!(metric_names::INGEST_SHED).increment(1);
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the gateway is at capacity; retry shortly",
    )
    .retry_after(1)
}

/// The answer to `POST /api/v1/ingest` (documentation of the JSON the handler builds).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Accepted {
    /// Readings acknowledged by Kafka.
    pub accepted: u64,
}

#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest", request_body(content = super::bodies::IngestBody, description = "Readings of the caller's machines, optionally gzip (`Content-Encoding: gzip`)"), responses((status = 202, description = "Every reading acknowledged by Kafka", body = Accepted), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 503, description = "Kafka did not acknowledge in time (`unavailable`), or the gateway is at capacity (`overloaded`, answered at once: too many requests in process, or too many records waiting for Kafka); see Retry-After", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    key: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    key.require(Permission::Ingest)?;
    let config = &state.settings().gateway;
    let body = read_body(body, &headers, config.max_body_bytes).await?;
    // The edge agent says so, and the topic records it; anything else is the plain gateway.
    let source = match headers.get(SOURCE_HEADER).and_then(|v| v.to_str().ok()) {
        Some(v) if v.eq_ignore_ascii_case("agent") => Source::Agent,
        _ => Source::Gateway,
    };
    let request =
        haltless_connectors::gateway::validate::parse_request(&body, config, crate::time::now_ms())
            .map_err(|e| {
                metrics::counter!(metric_names::READINGS_REJECTED, "reason" => "invalid", "source" => source_label(source))
                    .increment(1);
                ingest_error(e)
            })?;
    let delivery = Delivery {
        tenant_id: key.tenant_id,
        source,
        machines: request.machines,
        allowed: key.machine_restriction(),
        // The rate-limit middleware charged this request as one write.
        charge: Charge::Charged,
    };
    let accepted = state
        .admission()
        .admit(delivery)
        .await
        .map_err(refusal_error)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": accepted }))))
}

/// The answer to a refused delivery.
fn refusal_error(refusal: Refusal) -> ApiError {
    let message = refusal.to_string();
    let machines = |names: &[String]| json!({ "machines": names });
    match refusal {
        Refusal::RetiredMachines(names) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "retired_machine", message)
                .with_details(machines(&names))
        }
        Refusal::UnknownMachines(names) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_machine", message)
                .with_details(machines(&names))
        }
        Refusal::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
        Refusal::RateLimited {
            retry_after_secs, ..
        } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .retry_after(retry_after_secs),
        Refusal::Unavailable(cause) => {
            tracing::warn!(%cause, "kafka unavailable, answering 503");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the readings could not be stored durably in time; retry the request",
            )
            .retry_after(1)
        }
        Refusal::Overloaded(cause) => {
            tracing::debug!(%cause, "producer queue full, answering 503 overloaded");
            overloaded()
        }
        Refusal::Database(e) => ApiError::from(e),
        Refusal::Write(e) => ApiError::internal(e),
    }
}

/// Reads at most `limit` bytes of body, gunzipping it when `Content-Encoding: gzip` says so.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
    };
    let raw = to_bytes(body, limit).await.map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::with_capacity(raw.len() * 4);
            GzDecoder::new(raw.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(format!("the gzip body does not decompress: {e}"))
                })?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out.into())
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding `{other}` is not supported; use gzip or none"),
        )),
    }
}

fn ingest_error(e: IngestError) -> ApiError {
    let message = e.to_string();
    match e {
        IngestError::Malformed(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", message)
        }
        IngestError::Empty => ApiError::validation(message),
        IngestError::TooMany { count, max } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_readings", message)
                .with_details(json!({ "count": count, "max": max }))
        }
        IngestError::Invalid { total, errors } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_readings",
            message,
        )
        .with_details(json!({ "invalid": total, "entries": errors })),
    }
}
