//! Silences and the delivery log.
//!
//! - `GET/POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`: alerts whose labels meet a silence's
//!   matchers notify nobody between its start and end (they are still raised, shown and resolved, and
//!   show what muted them); ending a silence early is deleting it.
//! - `GET /api/v1/notifications`, `GET /api/v1/notifications/{id}`: every notification with its status
//!   and, one by one, the attempts to deliver it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_processors::alerting::policy::Matchers;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::routes::paging::{delete_owned, instant, one_of, Page};
use crate::state::AppState;
use crate::time::{format_instant, parse_instant};

/// The silence and delivery-log routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/silences", get(list_silences).post(create_silence))
        .route("/silences/{id}", axum::routing::delete(delete_silence))
        .route("/notifications", get(list_notifications))
        .route("/notifications/{id}", get(show_notification))
}

/// Body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Which alerts it mutes (all of the tenant's when empty).
    #[serde(default)]
    pub matchers: Matchers,
    /// From when (RFC 3339 or epoch ms; default now).
    #[schema(value_type = Option<super::bodies::Instant>)]
    pub starts_at: Option<String>,
    /// Until when: after the start and at most 366 days from now (rules a schema cannot say).
    #[schema(value_type = super::bodies::Instant)]
    pub ends_at: String,
    /// Why, up to 1,000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub comment: String,
}

#[derive(Debug, sqlx::FromRow)]
struct SilenceRow {
    id: Uuid,
    matchers: sqlx::types::Json<Matchers>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    comment: String,
    created_by: String,
    created_at: DateTime<Utc>,
}

/// A silence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SilenceView {
    pub id: Uuid,
    pub matchers: Matchers,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    pub comment: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// It mutes now.
    pub active: bool,
}

/// `GET /api/v1/silences`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SilenceList {
    pub silences: Vec<SilenceView>,
}

fn silence_view(r: &SilenceRow) -> SilenceView {
    let now = Utc::now();
    SilenceView {
        id: r.id,
        matchers: r.matchers.0.clone(),
        starts_at: format_instant(r.starts_at),
        ends_at: format_instant(r.ends_at),
        comment: r.comment.clone(),
        created_by: r.created_by.clone(),
        created_at: format_instant(r.created_at),
        active: r.starts_at <= now && now < r.ends_at,
    }
}

#[utoipa::path(get, path = "/api/v1/silences", tag = "alerting", responses((status = 200, description = "`{\"silences\": [...]}`: those not yet ended, soonest ending first", body = SilenceList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_silences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SilenceList>, ApiError> {
    caller.require(Permission::Read)?;
    let rows = sqlx::query_as::<_, SilenceRow>(
        "SELECT id, matchers, starts_at, ends_at, comment, created_by, created_at FROM silences
         WHERE tenant_id = $1 AND ends_at > now() ORDER BY ends_at, id",
    )
    .bind(caller.tenant_id)
    .fetch_all(state.pool())
    .await?;
    Ok(Json(SilenceList {
        silences: rows.iter().map(silence_view).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/silences", tag = "alerting", request_body = NewSilence, responses((status = 201, description = "The silence", body = SilenceView), (status = 422, description = "Invalid matchers or times", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewSilence>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    caller.require(Permission::Operate)?;
    body.matchers.check().map_err(ApiError::validation)?;
    let now = Utc::now();
    let starts = match &body.starts_at {
        Some(s) => parse_instant(s).map_err(|e| ApiError::validation(format!("starts_at: {e}")))?,
        None => now,
    };
    let ends =
        parse_instant(&body.ends_at).map_err(|e| ApiError::validation(format!("ends_at: {e}")))?;
    if ends <= starts || ends > now + chrono::Duration::days(366) {
        return Err(ApiError::validation(
            "ends_at must lie after starts_at and at most a year ahead",
        ));
    }
    if body.comment.chars().count() > 1000 {
        return Err(ApiError::validation("comment: at most 1000 characters"));
    }
    let row = sqlx::query_as::<_, SilenceRow>(
        "INSERT INTO silences (id, tenant_id, matchers, starts_at, ends_at, comment, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, matchers, starts_at, ends_at, comment, created_by, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(caller.tenant_id)
    .bind(sqlx::types::Json(&body.matchers))
    .bind(starts)
    .bind(ends)
    .bind(&body.comment)
    .bind(caller.actor())
    .fetch_one(state.pool())
    .await?;
    Ok((StatusCode::CREATED, Json(silence_view(&row))))
}

#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Silence id")), responses((status = 204, description = "Deleted: muted alerts notify again within seconds"), (status = 404, description = "No such silence in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_silence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Operate)?;
    delete_owned(&state, &caller, "silences", "silence", id).await?;
    // Alerts it muted are looked at again now rather than at their next recheck.
    sqlx::query(
        "UPDATE alert_escalations SET next_at = now() WHERE tenant_id = $1 AND state = 'escalating'
         AND muted_by->>'kind' = 'silence' AND muted_by->>'id' = $2",
    )
    .bind(caller.tenant_id)
    .bind(id.to_string())
    .execute(state.pool())
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationFilter {
    /// Notifications listing this alert.
    pub alert: Option<Uuid>,
    /// Notifications to this channel.
    pub channel: Option<Uuid>,
    /// pending, sending, delivered or failed.
    pub status: Option<String>,
    /// alert, resolved or test.
    pub kind: Option<String>,
    /// Created at or after.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// Created before.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows skipped.
    pub offset: Option<i64>,
}

#[derive(Debug, sqlx::FromRow)]
struct NotificationRow {
    id: Uuid,
    channel_id: Uuid,
    channel: String,
    kind: String,
    step: Option<i32>,
    alert_ids: Vec<Uuid>,
    status: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

/// A notification: one message to one channel, and how its delivery goes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    /// Also the Idempotency-Key of its deliveries.
    pub id: Uuid,
    pub channel_id: Uuid,
    /// The channel's name.
    pub channel: String,
    /// What it says: `raised`, `escalated`, `resolved`, `test`...
    pub kind: String,
    /// The escalation step that sent it, if any.
    pub step: Option<i32>,
    /// The alerts it is about.
    pub alerts: Vec<Uuid>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due; null unless pending.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// The message (only in `GET /notifications/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub message: Option<Value>,
    /// Every attempt, oldest first (only in `GET /notifications/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub attempt_log: Option<Vec<AttemptView>>,
}

/// One delivery attempt of a notification.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    #[schema(format = DateTime)]
    pub at: String,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A page of notifications.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
    /// The offset of the next page; null on the last one.
    pub next_offset: Option<i64>,
}

fn notification_view(r: &NotificationRow) -> NotificationView {
    NotificationView {
        id: r.id,
        channel_id: r.channel_id,
        channel: r.channel.clone(),
        kind: r.kind.clone(),
        step: r.step,
        alerts: r.alert_ids.clone(),
        status: r.status.clone(),
        attempts: r.attempts,
        next_attempt_at: (r.status == "pending").then(|| format_instant(r.next_attempt_at)),
        last_error: r.last_error.clone(),
        created_at: format_instant(r.created_at),
        delivered_at: r.delivered_at.map(format_instant),
        message: None,
        attempt_log: None,
    }
}

const NOTIFICATION_SELECT: &str =
    "SELECT n.id, n.channel_id, c.name AS channel, n.kind, n.step, n.alert_ids,
    n.status, n.attempts, n.next_attempt_at, n.last_error, n.created_at, n.delivered_at
    FROM notifications n JOIN notification_channels c ON c.id = n.channel_id";

/// A key restricted to machines sees the notifications about those machines' alerts only (`$R`: the
/// machines, or NULL for every caller that is not restricted).
const RESTRICTED: &str = "($R::uuid[] IS NULL OR (n.kind <> 'test' AND NOT EXISTS (
    SELECT 1 FROM alert_escalations e WHERE e.tenant_id = n.tenant_id AND e.alert_id = ANY(n.alert_ids)
      AND NOT e.machine_id = ANY($R::uuid[]))))";

/// A notification as the list shows it, with the machines of its alerts (none for a channel test), for
/// the dashboard sockets; `None` when it is gone.
pub(crate) async fn notification_for_live(
    pool: &sqlx::PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<(Vec<Uuid>, Value)>, sqlx::Error> {
    let Some(row) = sqlx::query_as::<_, NotificationRow>(&format!(
        "{NOTIFICATION_SELECT} WHERE n.id = $1 AND n.tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let machines: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT machine_id FROM alert_escalations WHERE tenant_id = $1 AND alert_id = ANY($2)",
    )
    .bind(tenant)
    .bind(&row.alert_ids)
    .fetch_all(pool)
    .await?;
    let view = serde_json::to_value(notification_view(&row)).unwrap_or_default();
    Ok(Some((machines, view)))
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "alerting", params(NotificationFilter), responses((status = 200, description = "`{\"notifications\": [...], \"next_offset\"}`, newest first", body = NotificationList), (status = 422, description = "Invalid filter", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<NotificationFilter>,
) -> Result<Json<NotificationList>, ApiError> {
    caller.require(Permission::Read)?;
    one_of(
        "status",
        f.status.as_deref(),
        &["pending", "sending", "delivered", "failed"],
    )?;
    one_of("kind", f.kind.as_deref(), &["alert", "resolved", "test"])?;
    let from = instant("from", f.from.as_deref())?;
    let to = instant("to", f.to.as_deref())?;
    let page = Page::new(f.limit, f.offset, 50, 500)?;
    let mut rows = sqlx::query_as::<_, NotificationRow>(&format!(
        "{NOTIFICATION_SELECT} WHERE n.tenant_id = $1
           AND ($2::uuid IS NULL OR n.alert_ids @> ARRAY[$2::uuid])
           AND ($3::uuid IS NULL OR n.channel_id = $3) AND ($4::text IS NULL OR n.status = $4)
           AND ($5::text IS NULL OR n.kind = $5)
           AND ($6::timestamptz IS NULL OR n.created_at >= $6) AND ($7::timestamptz IS NULL OR n.created_at < $7)
           AND {}
         ORDER BY n.created_at DESC, n.id LIMIT $8 OFFSET $9",
        RESTRICTED.replace("$R", "$10")
    ))
    .bind(caller.tenant_id)
    .bind(f.alert)
    .bind(f.channel)
    .bind(&f.status)
    .bind(&f.kind)
    .bind(from)
    .bind(to)
    .bind(page.fetch())
    .bind(page.offset)
    .bind(caller.machine_restriction())
    .fetch_all(state.pool())
    .await?;
    let next = page.cut(&mut rows);
    Ok(Json(NotificationList {
        notifications: rows.iter().map(notification_view).collect(),
        next_offset: next,
    }))
}

#[utoipa::path(get, path = "/api/v1/notifications/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Notification id (its Idempotency-Key)")), responses((status = 200, description = "The notification, its message and every attempt", body = NotificationView), (status = 404, description = "No such notification in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show_notification(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<NotificationView>, ApiError> {
    caller.require(Permission::Read)?;
    let row = sqlx::query_as::<_, NotificationRow>(&format!(
        "{NOTIFICATION_SELECT} WHERE n.id = $1 AND n.tenant_id = $2 AND {}",
        RESTRICTED.replace("$R", "$3")
    ))
    .bind(id)
    .bind(caller.tenant_id)
    .bind(caller.machine_restriction())
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no notification {id}")))?;
    let message: Value = sqlx::query_scalar("SELECT message FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_one(state.pool())
        .await?;
    /// (attempt, at, outcome, status code, error, duration ms)
    type Attempt = (i32, DateTime<Utc>, String, Option<i32>, Option<String>, i32);
    let attempts: Vec<Attempt> = sqlx::query_as(
        "SELECT attempt, at, outcome, status_code, error, duration_ms FROM notification_attempts
         WHERE notification_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(state.pool())
    .await?;
    let attempt_log = attempts
        .into_iter()
        .map(
            |(attempt, at, outcome, status_code, error, duration_ms)| AttemptView {
                attempt,
                at: format_instant(at),
                outcome,
                status_code,
                error,
                duration_ms,
            },
        )
        .collect();
    Ok(Json(NotificationView {
        message: Some(message),
        attempt_log: Some(attempt_log),
        ..notification_view(&row)
    }))
}
