//! Maintenance events (what was done to a machine, when, by whom) and compliance sign-offs (who signed
//! which checklist when, with its items). A sign-off is a draft until signed; once signed, changing or
//! deleting it answers 409, and a database trigger refuses updates of signed rows as well.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_processors::prediction::stream::LIFE_RESTART;
use haltless_schemas::{Reading, ReadingBatch, Source};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use haltless_processors::detection::processor::{RuleChange, StateReset};

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::routes::paging::{instant, machine_id, one_of, Page};
use crate::state::AppState;
use crate::time::{format_instant, parse_instant};

/// The maintenance routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/maintenance-events", get(list_events).post(create_event))
        .route("/maintenance-events/{id}", get(show_event))
        .route("/signoffs", get(list_signoffs).post(create_signoff))
        .route(
            "/signoffs/{id}",
            get(show_signoff)
                .patch(update_signoff)
                .delete(delete_signoff),
        )
        .route("/signoffs/{id}/sign", post(sign))
}

/// Kinds of maintenance events.
pub const KINDS: [&str; 7] = [
    "inspection",
    "repair",
    "replacement",
    "calibration",
    "lubrication",
    "cleaning",
    "other",
];

/// Body of `POST /api/v1/maintenance-events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Machine name.
    #[schema(value_type = super::bodies::MachineName)]
    pub machine: String,
    /// inspection, repair, replacement, calibration, lubrication, cleaning or other.
    #[schema(value_type = super::bodies::MaintenanceKind)]
    pub kind: String,
    /// Up to 10,000 characters.
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub notes: String,
    /// When it was done (RFC 3339 or epoch ms), not in the future.
    #[schema(value_type = super::bodies::Instant)]
    pub performed_at: String,
    /// Who did it (1 to 200 characters); the caller when absent.
    #[schema(min_length = 1, max_length = 200)]
    pub by: Option<String>,
    /// For a replacement, repair or calibration: the metrics whose detectors start afresh (all of the
    /// machine's when absent or empty).
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// The kinds of maintenance after which the machine is another for its detectors: they forget what they
/// learned (of the metrics named, or all), from the moment the event is recorded (or performed, if later).
pub const RESETTING_KINDS: [&str; 3] = ["replacement", "repair", "calibration"];

/// Filters of the maintenance event list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Machine name.
    #[param(value_type = Option<super::bodies::MachineName>)]
    pub machine: Option<String>,
    /// Kind.
    #[param(value_type = Option<super::bodies::MaintenanceKind>)]
    pub kind: Option<String>,
    /// Performed at or after.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// Performed before.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// A maintenance event.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = MaintenanceEvent)]
pub(crate) struct EventRow {
    id: Uuid,
    /// The machine's name.
    machine: String,
    #[schema(value_type = super::bodies::MaintenanceKind)]
    kind: String,
    notes: String,
    #[serde(serialize_with = "ser_instant")]
    performed_at: DateTime<Utc>,
    /// Who performed it.
    performed_by: String,
    /// Who recorded it.
    recorded_by: String,
    #[serde(serialize_with = "ser_instant")]
    created_at: DateTime<Utc>,
}

/// A page of maintenance events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventList {
    events: Vec<EventRow>,
    /// The offset of the next page; null on the last one.
    next_offset: Option<i64>,
}

fn ser_instant<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_instant(*t))
}

const EVENT_SELECT: &str = "SELECT e.id, m.name AS machine, e.kind, e.notes, e.performed_at, e.performed_by,
        e.recorded_by, e.created_at FROM maintenance_events e JOIN machines m ON m.id = e.machine_id";

#[utoipa::path(post, path = "/api/v1/maintenance-events", tag = "maintenance", request_body = NewEvent, responses((status = 201, description = "The event", body = EventRow), (status = 404, description = "No such machine in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_event(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<NewEvent>,
) -> Result<(StatusCode, Json<EventRow>), ApiError> {
    key.require(Permission::Operate)?;
    one_of("kind", Some(&body.kind), &KINDS)?;
    if body.notes.chars().count() > 10_000 {
        return Err(ApiError::validation(
            "notes must be at most 10000 characters",
        ));
    }
    let performed_at = parse_instant(&body.performed_at)
        .map_err(|e| ApiError::validation(format!("performed_at: {e}")))?;
    if performed_at > Utc::now() + chrono::Duration::minutes(5) {
        return Err(ApiError::validation(
            "performed_at must not lie in the future",
        ));
    }
    let by = body.by.clone().unwrap_or_else(|| key.actor());
    if !(1..=200).contains(&by.trim().chars().count()) || by.chars().count() > 200 {
        return Err(ApiError::validation("by must be 1 to 200 characters"));
    }
    if body.metrics.len() > 100
        || body
            .metrics
            .iter()
            .any(|m| !(1..=200).contains(&m.chars().count()))
    {
        return Err(ApiError::validation(
            "metrics: at most 100 names of 1 to 200 characters",
        ));
    }
    let machine = machine_id(&state, &key, &body.machine).await?;
    if body.kind == "replacement" {
        restart_life(&state, &key, machine, &body.machine, performed_at).await?;
    }
    let id = Uuid::new_v4();
    let mut tx = state.pool().begin().await?;
    sqlx::query(
        "INSERT INTO maintenance_events (id, tenant_id, machine_id, kind, notes, performed_at, performed_by, recorded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(key.tenant_id)
    .bind(machine)
    .bind(&body.kind)
    .bind(&body.notes)
    .bind(performed_at)
    .bind(&by)
    .bind(key.actor())
    .execute(&mut *tx)
    .await?;
    if RESETTING_KINDS.contains(&body.kind.as_str()) {
        // The detectors see it on the rules topic, in event-time order with the readings, so a replay
        // resets at the same point; the row is committed only once Kafka has the event.
        let at = performed_at.timestamp_millis().max(crate::time::now_ms());
        let reset = StateReset {
            maintenance_id: id,
            kind: body.kind.clone(),
            metrics: body.metrics.clone(),
        };
        let change = RuleChange::maintenance(key.tenant_id, &body.machine, at, reset);
        crate::routes::rules::publish(&state, &change).await?;
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(find_event(&state, &key, id).await?),
    ))
}

/// A replacement starts the machine's new life at `at`: the mark goes into its readings stream, where the
/// RUL predictor sees it in order with the readings (and a replay sees it again).
async fn restart_life(
    state: &AppState,
    key: &Caller,
    machine_id: Uuid,
    machine: &str,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let batch = ReadingBatch {
        tenant_id: key.tenant_id,
        machine_id,
        machine: machine.to_owned(),
        source: Source::Gateway,
        ingest_time_ms: Utc::now().timestamp_millis(),
        readings: vec![Reading {
            metric: LIFE_RESTART.into(),
            event_time_ms: at.timestamp_millis(),
            value: 1.0,
            quality: None,
        }],
    };
    state.admission().sink().write(&[batch]).await.map_err(|e| {
        tracing::warn!(error = %e, "the replacement's restart mark was not stored");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the replacement could not be stored durably in time; retry",
        )
        .retry_after(1)
    })
}

async fn find_event(state: &AppState, key: &Caller, id: Uuid) -> Result<EventRow, ApiError> {
    sqlx::query_as(&format!(
        "{EVENT_SELECT} WHERE e.tenant_id = $1 AND e.id = $2 AND ($3::uuid[] IS NULL OR e.machine_id = ANY($3))"
    ))
    .bind(key.tenant_id)
    .bind(id)
    .bind(key.machine_restriction())
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no maintenance event {id}")))
}

#[utoipa::path(get, path = "/api/v1/maintenance-events/{id}", tag = "maintenance", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The event", body = EventRow), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show_event(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<EventRow>, ApiError> {
    key.require(Permission::Read)?;
    Ok(Json(find_event(&state, &key, id).await?))
}

#[utoipa::path(get, path = "/api/v1/maintenance-events", tag = "maintenance", params(EventFilter), responses((status = 200, description = "`{\"events\": [...], \"next_offset\"}`, newest first", body = EventList), (status = 404, description = "No such machine in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<EventFilter>,
) -> Result<Json<EventList>, ApiError> {
    key.require(Permission::Read)?;
    one_of("kind", f.kind.as_deref(), &KINDS)?;
    let (from, to) = (
        instant("from", f.from.as_deref())?,
        instant("to", f.to.as_deref())?,
    );
    let page = Page::new(f.limit, f.offset, 50, 500)?;
    let machine = match &f.machine {
        Some(name) => Some(machine_id(&state, &key, name).await?),
        None => None,
    };
    let mut rows: Vec<EventRow> = sqlx::query_as(&format!(
        "{EVENT_SELECT} WHERE e.tenant_id = $1 AND ($2::uuid IS NULL OR e.machine_id = $2)
           AND ($3::text IS NULL OR e.kind = $3) AND ($4::timestamptz IS NULL OR e.performed_at >= $4)
           AND ($5::timestamptz IS NULL OR e.performed_at < $5) AND ($6::uuid[] IS NULL OR e.machine_id = ANY($6))
         ORDER BY e.performed_at DESC, e.id LIMIT $7 OFFSET $8"
    ))
    .bind(key.tenant_id)
    .bind(machine)
    .bind(&f.kind)
    .bind(from)
    .bind(to)
    .bind(key.machine_restriction())
    .bind(page.fetch())
    .bind(page.offset)
    .fetch_all(state.pool())
    .await?;
    let next = page.cut(&mut rows);
    Ok(Json(EventList {
        events: rows,
        next_offset: next,
    }))
}

/// One checklist item of a sign-off.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// What was checked (1 to 500 characters).
    #[schema(min_length = 1, max_length = 500)]
    pub item: String,
    /// Whether it passed.
    pub ok: bool,
    /// Remark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Body of `POST /api/v1/signoffs`: the checklist and its items are required.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSignoff {
    /// Name of the checklist (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub checklist: String,
    /// The machine it concerns (name), if any.
    #[schema(value_type = Option<super::bodies::MachineName>)]
    pub machine: Option<String>,
    /// The items (1 to 500).
    #[schema(min_items = 1, max_items = 500)]
    pub items: Vec<ChecklistItem>,
    /// Remarks.
    pub notes: Option<String>,
    /// Sign at once.
    #[serde(default)]
    pub sign: bool,
}

/// Body of `PATCH /api/v1/signoffs/{id}`: the fields given change (`sign: true` is refused there: a draft
/// is signed with `POST /api/v1/signoffs/{id}/sign`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignoffBody {
    /// Name of the checklist (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub checklist: Option<String>,
    /// The machine it concerns (name), if any.
    #[schema(value_type = Option<super::bodies::MachineName>)]
    pub machine: Option<String>,
    /// The items (1 to 500).
    #[schema(min_items = 1, max_items = 500)]
    pub items: Option<Vec<ChecklistItem>>,
    /// Remarks.
    pub notes: Option<String>,
    /// Sign at once (on creation only).
    #[serde(default)]
    pub sign: bool,
}

/// Filters of the sign-off list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignoffFilter {
    /// Machine name.
    pub machine: Option<String>,
    /// Checklist name.
    pub checklist: Option<String>,
    /// `draft` or `signed`.
    pub status: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct SignoffRow {
    id: Uuid,
    machine: Option<String>,
    checklist: String,
    items: Value,
    notes: String,
    created_by: String,
    created_at: DateTime<Utc>,
    signed_by: Option<String>,
    signed_at: Option<DateTime<Utc>>,
}

/// A compliance sign-off.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignoffView {
    pub id: Uuid,
    /// The machine it concerns (name), if any.
    pub machine: Option<String>,
    pub checklist: String,
    #[schema(value_type = Vec<ChecklistItem>)]
    pub items: Value,
    pub notes: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// `draft` or `signed`.
    pub status: &'static str,
    pub signed_by: Option<String>,
    #[schema(format = DateTime)]
    pub signed_at: Option<String>,
}

/// A page of sign-offs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignoffList {
    pub signoffs: Vec<SignoffView>,
    /// The offset of the next page; null on the last one.
    pub next_offset: Option<i64>,
}

impl SignoffRow {
    fn view(&self) -> SignoffView {
        SignoffView {
            id: self.id,
            machine: self.machine.clone(),
            checklist: self.checklist.clone(),
            items: self.items.clone(),
            notes: self.notes.clone(),
            created_by: self.created_by.clone(),
            created_at: format_instant(self.created_at),
            status: if self.signed_at.is_some() {
                "signed"
            } else {
                "draft"
            },
            signed_by: self.signed_by.clone(),
            signed_at: self.signed_at.map(format_instant),
        }
    }
}

const SIGNOFF_SELECT: &str = "SELECT s.id, m.name AS machine, s.checklist, s.items, s.notes, s.created_by,
        s.created_at, s.signed_by, s.signed_at FROM signoffs s LEFT JOIN machines m ON m.id = s.machine_id";

fn validate_signoff(checklist: &str, items: &[ChecklistItem], notes: &str) -> Result<(), ApiError> {
    if !(1..=200).contains(&checklist.trim().chars().count()) || checklist.chars().count() > 200 {
        return Err(ApiError::validation(
            "checklist must be 1 to 200 characters",
        ));
    }
    if !(1..=500).contains(&items.len()) {
        return Err(ApiError::validation("items must hold 1 to 500 entries"));
    }
    if let Some(i) = items.iter().position(|i| {
        !(1..=500).contains(&i.item.trim().chars().count()) || i.item.chars().count() > 500
    }) {
        return Err(ApiError::validation(format!(
            "items[{i}].item must be 1 to 500 characters"
        )));
    }
    if notes.chars().count() > 10_000 {
        return Err(ApiError::validation(
            "notes must be at most 10000 characters",
        ));
    }
    Ok(())
}

async fn find_signoff(state: &AppState, key: &Caller, id: Uuid) -> Result<SignoffRow, ApiError> {
    sqlx::query_as(&format!(
        "{SIGNOFF_SELECT} WHERE s.tenant_id = $1 AND s.id = $2
           AND ($3::uuid[] IS NULL OR s.machine_id = ANY($3))"
    ))
    .bind(key.tenant_id)
    .bind(id)
    .bind(key.machine_restriction())
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no sign-off {id}")))
}

fn immutable(row: &SignoffRow) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "immutable",
        format!(
            "this sign-off was signed by {} at {} and can no longer change",
            row.signed_by.as_deref().unwrap_or("?"),
            row.signed_at.map(format_instant).unwrap_or_default()
        ),
    )
}

#[utoipa::path(post, path = "/api/v1/signoffs", tag = "maintenance", request_body = NewSignoff, responses((status = 201, description = "The sign-off (a draft, or signed with `\"sign\": true`)", body = SignoffView), (status = 404, description = "No such machine in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_signoff(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<NewSignoff>,
) -> Result<(StatusCode, Json<SignoffView>), ApiError> {
    key.require(Permission::Operate)?;
    let checklist = body.checklist.clone();
    let items = body.items.clone();
    let notes = body.notes.clone().unwrap_or_default();
    validate_signoff(&checklist, &items, &notes)?;
    let machine = match &body.machine {
        Some(name) => Some(machine_id(&state, &key, name).await?),
        None => None,
    };
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO signoffs (id, tenant_id, machine_id, checklist, items, notes, created_by, signed_by, signed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8::text IS NULL THEN NULL ELSE now() END)",
    )
    .bind(id)
    .bind(key.tenant_id)
    .bind(machine)
    .bind(&checklist)
    .bind(json!(items))
    .bind(&notes)
    .bind(key.actor())
    .bind(body.sign.then(|| key.actor()))
    .execute(state.pool())
    .await?;
    let row = find_signoff(&state, &key, id).await?;
    Ok((StatusCode::CREATED, Json(row.view())))
}

#[utoipa::path(get, path = "/api/v1/signoffs", tag = "maintenance", params(SignoffFilter), responses((status = 200, description = "`{\"signoffs\": [...], \"next_offset\"}`, newest first", body = SignoffList), (status = 404, description = "No such machine in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_signoffs(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<SignoffFilter>,
) -> Result<Json<SignoffList>, ApiError> {
    key.require(Permission::Read)?;
    one_of("status", f.status.as_deref(), &["draft", "signed"])?;
    let page = Page::new(f.limit, f.offset, 50, 500)?;
    let machine = match &f.machine {
        Some(name) => Some(machine_id(&state, &key, name).await?),
        None => None,
    };
    let mut rows: Vec<SignoffRow> = sqlx::query_as(&format!(
        "{SIGNOFF_SELECT} WHERE s.tenant_id = $1 AND ($2::uuid IS NULL OR s.machine_id = $2)
           AND ($3::text IS NULL OR s.checklist = $3)
           AND ($4::text IS NULL OR (s.signed_at IS NOT NULL) = ($4 = 'signed'))
           AND ($5::uuid[] IS NULL OR s.machine_id = ANY($5))
         ORDER BY s.created_at DESC, s.id LIMIT $6 OFFSET $7"
    ))
    .bind(key.tenant_id)
    .bind(machine)
    .bind(&f.checklist)
    .bind(&f.status)
    .bind(key.machine_restriction())
    .bind(page.fetch())
    .bind(page.offset)
    .fetch_all(state.pool())
    .await?;
    let next = page.cut(&mut rows);
    let signoffs = rows.iter().map(SignoffRow::view).collect();
    Ok(Json(SignoffList {
        signoffs,
        next_offset: next,
    }))
}

#[utoipa::path(get, path = "/api/v1/signoffs/{id}", tag = "maintenance", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The sign-off", body = SignoffView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show_signoff(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<SignoffView>, ApiError> {
    key.require(Permission::Read)?;
    Ok(Json(find_signoff(&state, &key, id).await?.view()))
}

#[utoipa::path(patch, path = "/api/v1/signoffs/{id}", tag = "maintenance", request_body = SignoffBody, params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The changed draft", body = SignoffView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "`immutable`: it is signed", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_signoff(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SignoffBody>,
) -> Result<Json<SignoffView>, ApiError> {
    key.require(Permission::Operate)?;
    let current = find_signoff(&state, &key, id).await?;
    if current.signed_at.is_some() {
        return Err(immutable(&current));
    }
    if body.sign {
        return Err(ApiError::validation(
            "sign a draft with POST /api/v1/signoffs/{id}/sign",
        ));
    }
    let checklist = body.checklist.unwrap_or(current.checklist);
    let items = match body.items {
        Some(items) => items,
        None => serde_json::from_value(current.items).map_err(ApiError::internal)?,
    };
    let notes = body.notes.unwrap_or(current.notes);
    validate_signoff(&checklist, &items, &notes)?;
    let machine = match (&body.machine, &current.machine) {
        (Some(name), _) | (None, Some(name)) => Some(machine_id(&state, &key, name).await?),
        (None, None) => None,
    };
    let updated = sqlx::query(
        "UPDATE signoffs SET checklist = $3, items = $4, notes = $5, machine_id = $6
         WHERE tenant_id = $1 AND id = $2 AND signed_at IS NULL",
    )
    .bind(key.tenant_id)
    .bind(id)
    .bind(&checklist)
    .bind(json!(items))
    .bind(&notes)
    .bind(machine)
    .execute(state.pool())
    .await?;
    let row = find_signoff(&state, &key, id).await?;
    if updated.rows_affected() == 0 {
        return Err(immutable(&row));
    }
    Ok(Json(row.view()))
}

#[utoipa::path(post, path = "/api/v1/signoffs/{id}/sign", tag = "maintenance", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The signed sign-off; from now on immutable", body = SignoffView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "`immutable`: already signed", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn sign(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<SignoffView>, ApiError> {
    key.require(Permission::Operate)?;
    find_signoff(&state, &key, id).await?;
    let updated = sqlx::query(
        "UPDATE signoffs SET signed_by = $3, signed_at = now() WHERE tenant_id = $1 AND id = $2 AND signed_at IS NULL",
    )
    .bind(key.tenant_id)
    .bind(id)
    .bind(key.actor())
    .execute(state.pool())
    .await?;
    let row = find_signoff(&state, &key, id).await?;
    if updated.rows_affected() == 0 {
        return Err(immutable(&row));
    }
    Ok(Json(row.view()))
}

#[utoipa::path(delete, path = "/api/v1/signoffs/{id}", tag = "maintenance", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 204, description = "The draft is gone"), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "`immutable`: it is signed", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_signoff(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    key.require(Permission::Operate)?;
    let current = find_signoff(&state, &key, id).await?;
    if current.signed_at.is_some() {
        return Err(immutable(&current));
    }
    let deleted =
        sqlx::query("DELETE FROM signoffs WHERE tenant_id = $1 AND id = $2 AND signed_at IS NULL")
            .bind(key.tenant_id)
            .bind(id)
            .execute(state.pool())
            .await?;
    if deleted.rows_affected() == 0 {
        return Err(immutable(&find_signoff(&state, &key, id).await?));
    }
    Ok(StatusCode::NO_CONTENT)
}
