//! Alerts: `GET /api/v1/alerts`, `GET /api/v1/alerts/{id}` with its history, and the actions
//! `POST /api/v1/alerts/{id}/ack` and `POST /api/v1/alerts/{id}/snooze`, which are events on the alert
//! actions topic (the answer is 202; the alert shows the action once projected).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_schemas::actions::{Action, AlertAction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::routes::paging::Page;
use crate::state::AppState;
use crate::time::{format_instant, parse_instant};

/// The alert routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/{id}", get(show))
        .route("/alerts/{id}/ack", post(ack))
        .route("/alerts/{id}/snooze", post(snooze))
}

/// Filters of the alert list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertFilter {
    /// Machine name.
    #[param(value_type = Option<super::bodies::MachineName>)]
    pub machine: Option<String>,
    /// `open` or `resolved`.
    #[param(value_type = Option<super::bodies::AlertState>)]
    pub state: Option<String>,
    /// `info`, `warning` or `critical`.
    #[param(value_type = Option<super::bodies::Severity>)]
    pub severity: Option<String>,
    /// Detector name.
    pub detector: Option<String>,
    /// Raised at or after (RFC 3339 or epoch ms).
    #[param(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// Raised before.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
    /// Page size (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: Uuid,
    machine: String,
    rule_id: String,
    rule_name: String,
    severity: String,
    detector: String,
    metric: String,
    state: String,
    observed: f64,
    expected: f64,
    score: f64,
    score_limit: f64,
    raised_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    acked_at: Option<DateTime<Utc>>,
    acked_by: Option<String>,
    snoozed_until: Option<DateTime<Utc>>,
    explanation: String,
    contributions: Value,
}

/// An alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: Uuid,
    /// The machine's name.
    pub machine: String,
    pub rule_id: String,
    pub rule_name: String,
    #[schema(value_type = super::bodies::Severity)]
    pub severity: String,
    pub detector: String,
    pub metric: String,
    #[schema(value_type = super::bodies::AlertState)]
    pub state: String,
    /// The value that fired it.
    pub observed: f64,
    /// The value expected.
    pub expected: f64,
    /// How unusual the value is.
    pub score: f64,
    /// The score above which the detector fires.
    pub limit: f64,
    #[schema(format = DateTime)]
    pub raised_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    #[schema(format = DateTime)]
    pub acked_at: Option<String>,
    pub acked_by: Option<String>,
    #[schema(format = DateTime)]
    pub snoozed_until: Option<String>,
    /// Which feature fired and why, in words.
    pub explanation: String,
    /// `[{feature, score}]`, strongest first; a score is -log10 of how often a reading that unusual is
    /// expected.
    #[schema(value_type = Vec<Contribution>)]
    pub contributions: Value,
}

/// One feature's part in an alert.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Contribution {
    pub feature: String,
    pub score: f64,
}

/// A page of alerts, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertView>,
    /// The offset of the next page; null on the last one.
    pub next_offset: Option<i64>,
}

/// One alert with its history and the alert engine's state for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertView,
    /// Each raise, update and resolution, oldest first.
    pub history: Vec<AlertEvent>,
    /// The escalation state; null when the alert engine has not taken the alert in.
    pub notification: Option<EscalationState>,
}

/// A raise, update or resolution of an alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertEvent {
    /// `raised`, `updated` or `resolved`.
    pub kind: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// Its own explanation and contributions, and the values then.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The alert engine's state for an alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EscalationState {
    /// The escalation's state.
    pub state: String,
    /// The escalation policy's name.
    pub policy: Option<String>,
    pub steps_fired: i32,
    #[schema(format = DateTime)]
    pub next_step_at: Option<String>,
    /// What mutes it (a silence, an inhibition, a snooze), if anything.
    #[schema(value_type = Option<Object>)]
    pub muted_by: Option<Value>,
}

impl AlertRow {
    fn view(&self) -> AlertView {
        AlertView {
            id: self.id,
            machine: self.machine.clone(),
            rule_id: self.rule_id.clone(),
            rule_name: self.rule_name.clone(),
            severity: self.severity.clone(),
            detector: self.detector.clone(),
            metric: self.metric.clone(),
            state: self.state.clone(),
            observed: self.observed,
            expected: self.expected,
            score: self.score,
            limit: self.score_limit,
            raised_at: format_instant(self.raised_at),
            updated_at: format_instant(self.updated_at),
            resolved_at: self.resolved_at.map(format_instant),
            acked_at: self.acked_at.map(format_instant),
            acked_by: self.acked_by.clone(),
            snoozed_until: self.snoozed_until.map(format_instant),
            explanation: self.explanation.clone(),
            contributions: self.contributions.clone(),
        }
    }
}

const COLUMNS: &str =
    "id, machine, rule_id, rule_name, severity, detector, metric, state, observed, expected, score,
    score_limit, raised_at, updated_at, resolved_at, acked_at, acked_by, snoozed_until, explanation, contributions";

fn one_of(name: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::validation(format!(
            "{name} must be one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertFilter), responses((status = 200, description = "A page of alerts: `{alerts, next_offset}`. Each alert has `explanation` (which feature fired and why, in words: \"spindle_temp 40.1 at 14:00 UTC, usually 80 ± 2 at this hour on weekdays; about 1 in 100,000 readings\") and `contributions` (`[{feature, score}]`, strongest first; a score is -log10 of how often a reading that unusual is expected)", body = AlertList), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<AlertFilter>,
) -> Result<Json<AlertList>, ApiError> {
    key.require(Permission::Read)?;
    one_of("state", &f.state, &["open", "resolved"])?;
    one_of("severity", &f.severity, &["info", "warning", "critical"])?;
    let bound = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_instant(s).map_err(|e| ApiError::validation(format!("{name}: {e}"))))
            .transpose()
    };
    let (from, to) = (bound("from", &f.from)?, bound("to", &f.to)?);
    let page = Page::new(f.limit, f.offset, 50, 500)?;
    let mut rows: Vec<AlertRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alerts
         WHERE generation = active_generation() AND tenant_id = $1 AND ($2::text IS NULL OR machine = $2) AND ($3::text IS NULL OR state = $3)
           AND ($4::text IS NULL OR severity = $4) AND ($5::text IS NULL OR detector = $5)
           AND ($6::timestamptz IS NULL OR raised_at >= $6) AND ($7::timestamptz IS NULL OR raised_at < $7)
           AND ($10::uuid[] IS NULL OR machine_id = ANY($10))
         ORDER BY raised_at DESC, id LIMIT $8 OFFSET $9"
    ))
    .bind(key.tenant_id)
    .bind(&f.machine)
    .bind(&f.state)
    .bind(&f.severity)
    .bind(&f.detector)
    .bind(from)
    .bind(to)
    .bind(page.fetch())
    .bind(page.offset)
    .bind(key.machine_restriction())
    .fetch_all(state.pool())
    .await?;
    // The next page's offset saturates: an offset near i64::MAX once overflowed here.
    let next_offset = page.cut(&mut rows);
    Ok(Json(AlertList {
        alerts: rows.iter().map(AlertRow::view).collect(),
        next_offset,
    }))
}

async fn find(db: &mut sqlx::PgConnection, key: &Caller, id: Uuid) -> Result<AlertRow, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE generation = active_generation() AND tenant_id = $1 AND id = $2
         AND ($3::uuid[] IS NULL OR machine_id = ANY($3))"
    ))
    .bind(key.tenant_id)
    .bind(id)
    .bind(key.machine_restriction())
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))
}

#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The alert (with `explanation` and `contributions`, as in the list) with its history (each raise, update and resolution with its own explanation and contributions in `details`) and `notification`: the alert engine's state for it (escalation state, policy, steps fired, next step, what mutes it)", body = AlertDetail), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<AlertDetail>, ApiError> {
    key.require(Permission::Read)?;
    // The row and its history from one snapshot: an ack is written to both in one transaction, and two
    // separate reads could show it in the history but not on the alert.
    let mut tx = state.pool().begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let alert = find(&mut tx, &key, id).await?;
    let history: Vec<(String, DateTime<Utc>, Value)> = sqlx::query_as(
        r#"SELECT kind, at, details FROM alert_events
           WHERE generation = active_generation() AND tenant_id = $1 AND alert_id = $2
           ORDER BY at, topic, partition, "offset""#,
    )
    .bind(key.tenant_id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let history = history
        .into_iter()
        .map(|(kind, at, details)| AlertEvent {
            kind,
            at: format_instant(at),
            details,
        })
        .collect();
    Ok(Json(AlertDetail {
        alert: alert.view(),
        history,
        notification: notification_state(&state, &key, id).await?,
    }))
}

/// Where the alert engine stands with an alert: its escalation state (`escalating`, `done`, `acked`,
/// `snoozed`, `resolved`, `unrouted` when no policy took it, `history` when it was raised before the
/// engine took its generation in), the policy, the steps fired, and what mutes it; `null` before the engine
/// took it in.
async fn notification_state(
    state: &AppState,
    key: &Caller,
    id: Uuid,
) -> Result<Option<EscalationState>, ApiError> {
    /// (state, policy, steps fired, next step at, muted by)
    type Row = (
        String,
        Option<String>,
        i32,
        Option<DateTime<Utc>>,
        Option<Value>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT e.state, p.name, e.firings, e.next_at, e.muted_by FROM alert_escalations e
         LEFT JOIN escalation_policies p ON p.id = e.policy_id WHERE e.tenant_id = $1 AND e.alert_id = $2",
    )
    .bind(key.tenant_id)
    .bind(id)
    .fetch_optional(state.pool())
    .await?;
    Ok(
        row.map(|(status, policy, fired, next, muted_by)| EscalationState {
            state: status,
            policy,
            steps_fired: fired,
            next_step_at: next.map(format_instant),
            muted_by,
        }),
    )
}

/// The answer to an acknowledgement or a snooze: published, applied by the alert engine shortly after.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionAccepted {
    /// Always `accepted`.
    pub status: &'static str,
    /// The alert's id.
    pub alert: Uuid,
}

async fn act(
    state: &AppState,
    key: &Caller,
    id: Uuid,
    action: Action,
) -> Result<(StatusCode, Json<ActionAccepted>), ApiError> {
    key.require(Permission::Operate)?;
    find(&mut *state.pool().acquire().await?, key, id).await?;
    let event = AlertAction {
        tenant_id: key.tenant_id,
        alert_id: id,
        by: key.actor(),
        at_ms: crate::time::now_ms(),
        action,
    };
    let topic = &state.settings().kafka.alert_actions_topic;
    let codec = AlertAction::codec().map_err(ApiError::internal)?;
    let payload = event.encode(&codec).map_err(ApiError::internal)?;
    state
        .events()
        .publish(topic, &event.key(), &payload)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ActionAccepted {
            status: "accepted",
            alert: id,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", tag = "alerts", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 202, description = "The acknowledgement is published", body = ActionAccepted), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn ack(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<ActionAccepted>), ApiError> {
    act(&state, &key, id, Action::Ack).await
}

/// Body of `POST /api/v1/alerts/{id}/snooze`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Snooze {
    /// End of the snooze (RFC 3339 or epoch ms); it must lie in the future, which a schema cannot say.
    #[schema(value_type = super::bodies::Instant)]
    pub until: String,
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/snooze", tag = "alerts", request_body = Snooze, params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 202, description = "The snooze is published", body = ActionAccepted), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn snooze(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<Snooze>,
) -> Result<(StatusCode, Json<ActionAccepted>), ApiError> {
    let until =
        parse_instant(&body.until).map_err(|e| ApiError::validation(format!("until: {e}")))?;
    if until <= Utc::now() {
        return Err(ApiError::validation("until must lie in the future"));
    }
    act(
        &state,
        &key,
        id,
        Action::Snooze {
            until_ms: until.timestamp_millis(),
        },
    )
    .await
}
