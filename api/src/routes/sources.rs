//! Ingest sources: OPC-UA and Modbus TCP devices the platform polls (`haltless connectors`).
//!
//! `GET/POST /api/v1/sources`, `GET/PUT/DELETE /api/v1/sources/{id}`, `POST /api/v1/sources/{id}/enable`
//! and `/disable`, `GET /api/v1/sources/{id}/status`, `POST /api/v1/sources/{id}/trust` (an administrator
//! accepts the certificate a server now presents in place of the one pinned). A body is the source's `name`, optional `enabled`,
//! and its definition (protocol, endpoint, intervals, OPC-UA settings, points), checked whole by
//! [`SourceSpec::from_json`]; every problem comes back in one 422 naming its field.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_connectors::gateway::validate::valid_name;
use haltless_connectors::source::secrets::{self, SecretError};
use haltless_connectors::source::SourceSpec;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path};
use crate::state::AppState;
use crate::time::format_instant;

/// The source routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sources", get(list).post(create))
        .route("/sources/{id}", get(show).put(update).delete(remove))
        .route("/sources/{id}/enable", post(enable))
        .route("/sources/{id}/disable", post(disable))
        .route("/sources/{id}/status", get(status))
        .route("/sources/{id}/trust", post(trust))
}

/// What a caller needs to touch sources: admins and operators change them, every role and read keys see them.
fn authorize(key: &Caller, write: bool) -> Result<(), ApiError> {
    key.require(if write {
        Permission::Operate
    } else {
        Permission::Read
    })
}

/// A source row with its health.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    definition: Value,
    enabled: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    healthy: Option<bool>,
    status_version: Option<i64>,
    last_success_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    readings_per_minute: Option<i64>,
    polled_by: Option<String>,
    status_updated_at: Option<DateTime<Utc>>,
    certificate_sha256: Option<String>,
    certificate_pinned_at: Option<DateTime<Utc>>,
    presented_certificate_sha256: Option<String>,
}

const SELECT: &str = "SELECT s.id, s.name, s.definition, s.enabled, s.version, s.created_at, s.updated_at,
        st.healthy, st.version AS status_version, st.last_success_at, st.last_error, st.last_error_at,
        st.readings_per_minute, st.polled_by, st.updated_at AS status_updated_at,
        s.certificate_sha256, s.certificate_pinned_at, st.presented_certificate_sha256
    FROM ingest_sources s LEFT JOIN ingest_source_status st ON st.source_id = s.id";

/// A source as the API shows it: the definition (secrets redacted) with its id, version and status
/// (documentation of the JSON [`Row::view`] builds). The protocol's other fields (`opcua` for OPC-UA)
/// come along as stored.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SourceView {
    pub id: Uuid,
    pub name: String,
    /// Polled.
    pub enabled: bool,
    /// `modbus_tcp` or `opcua`.
    pub protocol: String,
    pub endpoint: String,
    pub poll_interval_ms: u64,
    pub timeout_ms: u64,
    /// The points, as in the definition ([`super::bodies::ModbusPoint`] or [`super::bodies::OpcUaPoint`]).
    #[schema(value_type = Vec<Object>)]
    pub points: Vec<()>,
    /// Starts at 1; every update adds one.
    pub version: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub status: SourceStatus,
}

/// `GET /api/v1/sources`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SourceList {
    pub sources: Vec<SourceView>,
}

/// How a source's polling goes (documentation of the JSON [`Row::status`] builds).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SourceStatus {
    /// `ok`, `error`, `pending` (not polled yet) or `disabled`.
    pub state: String,
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    /// The last error's category and message.
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub last_error_at: Option<String>,
    pub readings_per_minute: i64,
    /// The instance polling it.
    pub polled_by: Option<String>,
    /// The definition version the poller runs.
    pub definition_version: Option<i64>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    pub certificate: CertificateStatus,
}

/// The server certificate pinned (trust on first use) and the one presented last, as SHA-256 fingerprints.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CertificateStatus {
    pub pinned: Option<String>,
    #[schema(format = DateTime)]
    pub pinned_at: Option<String>,
    pub presented: Option<String>,
    /// Null until a server presented one.
    pub trusted: Option<bool>,
}

/// `GET /api/v1/sources/{id}/status`: the status with the source's id and name (documentation of the JSON
/// [`status`] builds).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SourceStatusAnswer {
    pub id: Uuid,
    pub name: String,
    #[serde(flatten)]
    pub status: SourceStatus,
}

impl Row {
    fn status(&self) -> Value {
        let state = match (self.enabled, self.healthy) {
            (false, _) => "disabled",
            (true, Some(true)) => "ok",
            (true, Some(false)) if self.last_error.is_some() => "error",
            // Not polled yet (no status row, or a task that has not finished its first poll).
            (true, _) => "pending",
        };
        json!({
            "state": state,
            "last_success_at": self.last_success_at.map(format_instant),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.map(format_instant),
            "readings_per_minute": self.readings_per_minute.unwrap_or(0),
            "polled_by": self.polled_by,
            "definition_version": self.status_version,
            "updated_at": self.status_updated_at.map(format_instant),
            "certificate": self.certificate(),
        })
    }

    /// The server certificate pinned (trust on first use) and the one presented last, as SHA-256
    /// fingerprints; `trusted` is null until a server presented one.
    fn certificate(&self) -> Value {
        let pinned = self.certificate_sha256.as_deref();
        let presented = self.presented_certificate_sha256.as_deref();
        json!({
            "pinned": pinned,
            "pinned_at": self.certificate_pinned_at.map(format_instant),
            "presented": presented,
            "trusted": presented.map(|p| pinned.is_none_or(|pin| pin == p)),
        })
    }

    /// Points in the stored definition.
    fn points(&self) -> u64 {
        self.definition["points"]
            .as_array()
            .map_or(0, |p| p.len() as u64)
    }

    fn view(&self) -> Value {
        let definition = SourceSpec::from_json(self.definition.clone())
            .map(|spec| spec.redacted())
            .unwrap_or(Value::Null);
        let mut doc = json!({
            "id": self.id,
            "name": self.name,
            "enabled": self.enabled,
            "version": self.version,
            "created_at": format_instant(self.created_at),
            "updated_at": format_instant(self.updated_at),
            "status": self.status(),
        });
        if let (Some(doc), Value::Object(fields)) = (doc.as_object_mut(), definition) {
            doc.extend(fields);
        }
        doc
    }
}

/// Splits a body into name, enabled flag and definition, and checks them.
async fn parse(
    state: &AppState,
    key: &Caller,
    body: Value,
) -> Result<(String, Option<bool>, SourceSpec, Value), ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::validation("the body must be a JSON object"));
    };
    let name = match fields.remove("name") {
        Some(Value::String(name)) if valid_name(&name) => name,
        Some(_) => {
            return Err(invalid(vec![problem(
                "name",
                "must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
            )]))
        }
        None => return Err(invalid(vec![problem("name", "is required")])),
    };
    let enabled = match fields.remove("enabled") {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(invalid(vec![problem("enabled", "must be true or false")])),
    };
    let definition = Value::Object(fields);
    let spec = SourceSpec::from_json(definition.clone()).map_err(|errors| {
        invalid(
            errors
                .into_iter()
                .map(|e| json!({ "field": e.field, "reason": e.reason }))
                .collect(),
        )
    })?;
    let machines: Vec<&str> = {
        let mut m: Vec<&str> = spec.targets().into_iter().map(|(m, _)| m).collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    let known: Vec<String> =
        sqlx::query_scalar("SELECT name FROM machines WHERE tenant_id = $1 AND name = ANY($2)")
            .bind(key.tenant_id)
            .bind(&machines)
            .fetch_all(state.pool())
            .await?;
    let unknown: Vec<&str> = machines
        .into_iter()
        .filter(|m| !known.iter().any(|k| k == m))
        .collect();
    if !unknown.is_empty() {
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
    // Store the definition in its normalised form (defaults filled in), its secrets sealed for the tenant.
    let mut stored = serde_json::to_value(&spec).map_err(ApiError::internal)?;
    secrets::seal(
        &mut stored,
        spec.protocol,
        state.keyring(),
        key.tenant_id.as_bytes(),
    )
    .map_err(|e| match e {
        SecretError::NoKey => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this platform cannot store passwords: it has no key for secrets at rest (secrets.key_file)",
        ),
        other => ApiError::internal(other),
    })?;
    Ok((name, enabled, spec, stored))
}

fn problem(field: &str, reason: &str) -> Value {
    json!({ "field": field, "reason": reason })
}

fn invalid(errors: Vec<Value>) -> ApiError {
    let message = match errors.first() {
        Some(first) if errors.len() == 1 => format!(
            "invalid source: {}: {}",
            first["field"].as_str().unwrap_or_default(),
            first["reason"].as_str().unwrap_or_default()
        ),
        _ => format!("invalid source: {} problems", errors.len()),
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_source", message)
        .with_details(json!({ "errors": errors }))
}

fn conflict(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("ingest_sources_tenant_name_key") => {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "a source with this name already exists",
            )
        }
        _ => e.into(),
    }
}

/// A refusal for the tenant's tier (403 `tier_limit`, as for machines).
fn tier_limit(key: &Caller, message: String, details: Value) -> ApiError {
    let mut details = details;
    details["tier"] = json!(key.limits.tier);
    ApiError::new(StatusCode::FORBIDDEN, "tier_limit", message).with_details(details)
}

/// Refuses a definition of `points` points past the tier's sources and points. `replacing` is the source
/// an update replaces: it is not counted as another source, and an update that adds no points passes
/// (a tenant moved to a smaller tier can still edit what it has). Locks the tenant row first, so that
/// concurrent creations cannot overshoot.
async fn check_tier(
    tx: &mut sqlx::PgConnection,
    key: &Caller,
    points: usize,
    replacing: Option<&Row>,
) -> Result<(), ApiError> {
    let limits = &key.limits;
    let tier = limits.tier.as_str();
    let points = points as u64;
    let before = replacing.map_or(0, Row::points);
    if points > limits.max_points_per_source && points > before {
        return Err(tier_limit(
            key,
            format!(
                "the {tier} tier allows at most {} points per source and this definition has {points}; \
                 split the source or upgrade the tier",
                limits.max_points_per_source
            ),
            json!({ "limit": limits.max_points_per_source, "points": points }),
        ));
    }
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(key.tenant_id)
        .execute(&mut *tx)
        .await?;
    let (others, other_points): (i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(sum(jsonb_array_length(definition -> 'points')), 0)::bigint
         FROM ingest_sources WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(key.tenant_id)
    .bind(replacing.map(|r| r.id))
    .fetch_one(&mut *tx)
    .await?;
    if replacing.is_none() && others as u64 >= limits.max_sources {
        return Err(tier_limit(
            key,
            format!(
                "the {tier} tier allows at most {} ingest sources and this tenant has {others};                  upgrade the tier or delete a source",
                limits.max_sources
            ),
            json!({ "limit": limits.max_sources, "sources": others }),
        ));
    }
    let total = other_points as u64 + points;
    if total > limits.max_points && points > before {
        return Err(tier_limit(
            key,
            format!(
                "the {tier} tier allows at most {} points over all sources and this tenant's would have {total}; \
                 remove points or upgrade the tier",
                limits.max_points
            ),
            json!({ "limit": limits.max_points, "points": total }),
        ));
    }
    Ok(())
}

/// For an API key restricted to machines (`$R`, NULL otherwise): only the sources whose every point feeds
/// one of them, since a source's point map names its machines. Others answer 404, as other machines do.
const RESTRICTED: &str = "($R::uuid[] IS NULL OR NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(s.definition -> 'points') p
    WHERE NOT EXISTS (SELECT 1 FROM machines m
                      WHERE m.tenant_id = s.tenant_id AND m.id = ANY($R::uuid[]) AND m.name = p ->> 'machine')))";

async fn fetch(state: &AppState, key: &Caller, id: &str) -> Result<Row, ApiError> {
    let not_found = || ApiError::not_found(format!("no source `{id}`"));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    sqlx::query_as::<_, Row>(&format!(
        "{SELECT} WHERE s.tenant_id = $1 AND s.id = $2 AND {}",
        RESTRICTED.replace("$R", "$3")
    ))
    .bind(key.tenant_id)
    .bind(id)
    .bind(key.machine_restriction())
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(not_found)
}

#[utoipa::path(post, path = "/api/v1/sources", tag = "sources", request_body(content = super::bodies::SourceDefinition, description = "The source definition: name, enabled, protocol, endpoint, poll_interval_ms, timeout_ms, the protocol's settings, points (see the README)"), responses((status = 201, description = "The source, secrets redacted", body = SourceView), (status = 409, description = "A source with this name exists", body = crate::error::ErrorBody), (status = 422, description = "The definition breaks a rule; details name each field", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it, or the tier's limit of sources or points is reached (`tier_limit`)", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&key, true)?;
    let (name, enabled, spec, stored) = parse(&state, &key, body).await?;
    let id = Uuid::new_v4();
    let mut tx = state.pool().begin().await?;
    check_tier(&mut tx, &key, spec.targets().len(), None).await?;
    sqlx::query(
        "INSERT INTO ingest_sources (id, tenant_id, name, protocol, definition, enabled) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(key.tenant_id)
    .bind(&name)
    .bind(spec.protocol.name())
    .bind(&stored)
    .bind(enabled.unwrap_or(true))
    .execute(&mut *tx)
    .await
    .map_err(conflict)?;
    tx.commit().await?;
    let row = fetch(&state, &key, &id.to_string()).await?;
    Ok((StatusCode::CREATED, Json(row.view())))
}

#[utoipa::path(put, path = "/api/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "Source id")), request_body(content = super::bodies::SourceDefinition, description = "The source definition: name, enabled, protocol, endpoint, poll_interval_ms, timeout_ms, the protocol's settings, points (see the README)"), responses((status = 200, description = "The source, secrets redacted", body = SourceView), (status = 404, description = "No such source in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "A source with this name exists", body = crate::error::ErrorBody), (status = 422, description = "The definition breaks a rule; details name each field", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it, or the tier's limit of points is reached (`tier_limit`)", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    authorize(&key, true)?;
    let current = fetch(&state, &key, &id).await?;
    let (name, enabled, spec, stored) = parse(&state, &key, body).await?;
    let mut tx = state.pool().begin().await?;
    check_tier(&mut tx, &key, spec.targets().len(), Some(&current)).await?;
    sqlx::query(
        "UPDATE ingest_sources SET name = $3, protocol = $4, definition = $5, enabled = $6,
             version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(key.tenant_id)
    .bind(current.id)
    .bind(&name)
    .bind(spec.protocol.name())
    .bind(&stored)
    .bind(enabled.unwrap_or(current.enabled))
    .execute(&mut *tx)
    .await
    .map_err(conflict)?;
    tx.commit().await?;
    Ok(Json(fetch(&state, &key, &id).await?.view()))
}

async fn set_enabled(
    state: &AppState,
    key: &Caller,
    id: &str,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    authorize(key, true)?;
    let current = fetch(state, key, id).await?;
    if current.enabled != enabled {
        sqlx::query(
            "UPDATE ingest_sources SET enabled = $3, version = version + 1, updated_at = now()
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(key.tenant_id)
        .bind(current.id)
        .bind(enabled)
        .execute(state.pool())
        .await?;
    }
    Ok(Json(fetch(state, key, id).await?.view()))
}

#[utoipa::path(post, path = "/api/v1/sources/{id}/enable", tag = "sources", params(("id" = String, Path, description = "Source id")), responses((status = 200, description = "The source, polled from now on", body = SourceView), (status = 404, description = "No such source in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &key, &id, true).await
}

#[utoipa::path(post, path = "/api/v1/sources/{id}/disable", tag = "sources", params(("id" = String, Path, description = "Source id")), responses((status = 200, description = "The source, no longer polled", body = SourceView), (status = 404, description = "No such source in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &key, &id, false).await
}

#[utoipa::path(delete, path = "/api/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "Source id")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such source in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&key, true)?;
    let current = fetch(&state, &key, &id).await?;
    sqlx::query("DELETE FROM ingest_sources WHERE tenant_id = $1 AND id = $2")
        .bind(key.tenant_id)
        .bind(current.id)
        .execute(state.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/sources/{id}", tag = "sources", params(("id" = String, Path, description = "Source id")), responses((status = 200, description = "The source, secrets redacted", body = SourceView), (status = 404, description = "No such source in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&key, false)?;
    Ok(Json(fetch(&state, &key, &id).await?.view()))
}

#[utoipa::path(get, path = "/api/v1/sources/{id}/status", tag = "sources", params(("id" = String, Path, description = "Source id")), responses((status = 200, description = "The source's status: state, last reading, last error (a category), per point", body = SourceStatusAnswer), (status = 404, description = "No such source in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn status(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&key, false)?;
    let row = fetch(&state, &key, &id).await?;
    let mut doc = row.status();
    doc["id"] = json!(row.id);
    doc["name"] = json!(row.name);
    Ok(Json(doc))
}

/// The body of `POST /api/v1/sources/{id}/trust`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustCertificate {
    /// The SHA-256 fingerprint (64 hexadecimal digits, colons allowed) of the certificate the source's
    /// server presents now, as `status.certificate.presented` shows it: checked out of band, it is what
    /// the administrator vouches for.
    #[schema(pattern = "^\\s*(:*[0-9A-Fa-f]){64}:*\\s*$")]
    pub fingerprint: String,
}

/// A fingerprint in its stored form (64 lowercase hex digits), or `None` when it is not one.
fn normal_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

#[utoipa::path(post, path = "/api/v1/sources/{id}/trust", tag = "sources", params(("id" = String, Path, description = "Source id")), request_body = TrustCertificate, responses((status = 200, description = "The source, its server's certificate pinned anew and the source restarted", body = SourceView), (status = 404, description = "No such source in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "The server presents no certificate, or another one than this fingerprint", body = crate::error::ErrorBody), (status = 422, description = "Not a SHA-256 fingerprint", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Only administrators accept certificates", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn trust(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
    Json(body): Json<TrustCertificate>,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Admin)?;
    let current = fetch(&state, &key, &id).await?;
    let fingerprint = normal_fingerprint(&body.fingerprint).ok_or_else(|| {
        ApiError::validation("fingerprint must be a SHA-256 fingerprint: 64 hexadecimal digits")
    })?;
    match current.presented_certificate_sha256.as_deref() {
        None => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the source's server has presented no certificate yet: there is nothing to accept",
            ))
        }
        Some(presented) if presented != fingerprint => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the source's server presents another certificate than this fingerprint",
            )
            .with_details(json!({ "presented": presented })))
        }
        Some(_) => {}
    }
    // A new version restarts the source with the new pin.
    sqlx::query(
        "UPDATE ingest_sources SET certificate_sha256 = $3, certificate_pinned_at = now(),
             version = version + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(key.tenant_id)
    .bind(current.id)
    .bind(&fingerprint)
    .execute(state.pool())
    .await?;
    tracing::info!(source = %current.id, tenant = %key.tenant_id, %fingerprint, "server certificate accepted");
    Ok(Json(fetch(&state, &key, &id).await?.view()))
}

#[utoipa::path(get, path = "/api/v1/sources", tag = "sources", responses((status = 200, description = "`{\"sources\": [...]}`, secrets redacted", body = SourceList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    key: Caller,
) -> Result<Json<Value>, ApiError> {
    authorize(&key, false)?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE s.tenant_id = $1 AND {} ORDER BY s.name",
        RESTRICTED.replace("$R", "$2")
    ))
    .bind(key.tenant_id)
    .bind(key.machine_restriction())
    .fetch_all(state.pool())
    .await?;
    let sources: Vec<Value> = rows.iter().map(Row::view).collect();
    Ok(Json(json!({ "sources": sources })))
}
