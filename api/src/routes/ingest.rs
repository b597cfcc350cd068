//! `POST /api/v1/ingest`: the ingest gateway's HTTP face.
//!
//! Authenticates the key, bounds and decompresses the body, validates it whole, resolves machine names
//! for the key's tenant, and answers 202 only after Kafka acknowledged every record.

use std::io::Read;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use flate2::read::GzDecoder;
use haltless_connectors::gateway::{IngestError, SinkError};
use haltless_schemas::{metric_names, ReadingBatch, Source};
use serde_json::{json, Value};
use uuid::Uuid;

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

#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest", request_body(content = serde_json::Value, description = "`{\"readings\": [{\"machine\", \"metric\", \"ts\", \"value\", \"quality\"?}]}`, optionally gzip"), responses((status = 202, description = "Every reading acknowledged by Kafka"), (status = 422, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 503, description = "Kafka did not acknowledge in time", body = crate::openapi::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::openapi::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    key: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    key.require(Permission::Ingest)?;
    let config = &state.settings().gateway;
    let body = read_body(body, &headers, config.max_body_bytes).await?;
    let request =
        haltless_connectors::gateway::validate::parse_request(&body, config, crate::time::now_ms())
            .map_err(|e| {
                metrics::counter!(metric_names::READINGS_REJECTED, "reason" => "invalid")
                    .increment(1);
                ingest_error(e)
            })?;

    let names: Vec<&str> = request.machine_names().collect();
    let rows: Vec<(String, Uuid, String)> = sqlx::query_as(
        "SELECT name, id, status FROM machines WHERE tenant_id = $1 AND name = ANY($2)",
    )
    .bind(key.tenant_id)
    .bind(&names)
    .fetch_all(state.pool())
    .await?;
    let retired: Vec<&str> = rows
        .iter()
        .filter(|(_, id, status)| status == "retired" && key.may_access(*id))
        .map(|(n, _, _)| n.as_str())
        .collect();
    if !retired.is_empty() {
        metrics::counter!(metric_names::READINGS_REJECTED, "reason" => "retired_machine")
            .increment(request.len() as u64);
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "retired_machine",
            format!(
                "machine(s) retired, they take no more readings: {}",
                retired.join(", ")
            ),
        )
        .with_details(json!({ "machines": retired })));
    }
    let known: Vec<(String, Uuid)> = rows.into_iter().map(|(n, id, _)| (n, id)).collect();
    let id_of = |name: &str| known.iter().find(|(n, _)| n == name).map(|(_, id)| *id);
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| id_of(n).is_none())
        .collect();
    if !unknown.is_empty() {
        metrics::counter!(metric_names::READINGS_REJECTED, "reason" => "unknown_machine")
            .increment(request.len() as u64);
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_machine",
            format!(
                "unknown machine(s): {}; register them with POST /api/v1/machines",
                unknown.join(", ")
            ),
        )
        .with_details(json!({ "machines": unknown })));
    }
    let denied: Vec<&str> = known
        .iter()
        .filter(|(_, id)| !key.may_access(*id))
        .map(|(n, _)| n.as_str())
        .collect();
    if !denied.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key may not write to: {}", denied.join(", ")),
        ));
    }

    let ingest_time_ms = crate::time::now_ms();
    let accepted = request.len();
    // The edge agent says so, and the topic records it; anything else is the plain gateway.
    let source = match headers.get(SOURCE_HEADER).and_then(|v| v.to_str().ok()) {
        Some(v) if v.eq_ignore_ascii_case("agent") => Source::Agent,
        _ => Source::Gateway,
    };
    let batches: Vec<ReadingBatch> = request
        .machines
        .into_iter()
        .filter_map(|m| {
            Some(ReadingBatch {
                tenant_id: key.tenant_id,
                machine_id: id_of(&m.machine)?,
                machine: m.machine,
                source,
                ingest_time_ms,
                readings: m.readings,
            })
        })
        .collect();
    state.sink().write(&batches).await.map_err(|e| match e {
        SinkError::Unavailable(cause) => {
            tracing::warn!(%cause, "kafka unavailable, answering 503");
            metrics::counter!(metric_names::READINGS_REJECTED, "reason" => "unavailable")
                .increment(accepted as u64);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the readings could not be stored durably in time; retry the request",
            )
            .retry_after(1)
        }
        other => ApiError::internal(other),
    })?;
    metrics::counter!(metric_names::READINGS_ACCEPTED).increment(accepted as u64);
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": accepted }))))
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
