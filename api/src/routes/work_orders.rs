//! Work orders: `open → in_progress → done | cancelled` (an open order may be cancelled too), with an
//! assignee, a due date, linked machines and alerts, and every change in a history returned with the order.
//! Done and cancelled orders are closed: further changes answer 409.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::routes::paging::{machine_ids, one_of, refuse_unknown, Page};
use crate::state::AppState;
use crate::time::format_instant;

/// The work order routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/work-orders", get(list).post(create))
        .route("/work-orders/{id}", get(show).patch(update))
}

/// The statuses, in lifecycle order.
pub const STATUSES: [&str; 4] = ["open", "in_progress", "done", "cancelled"];

/// The statuses `from` may move to.
pub fn next_statuses(from: &str) -> &'static [&'static str] {
    match from {
        "open" => &["in_progress", "cancelled"],
        "in_progress" => &["done", "cancelled"],
        _ => &[],
    }
}

/// Body of `POST /api/v1/work-orders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkOrder {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// A user of the tenant.
    pub assignee: Option<Uuid>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<super::bodies::Date>)]
    pub due_date: Option<String>,
    /// Names of the tenant's machines.
    #[serde(default)]
    #[schema(value_type = Vec<super::bodies::MachineName>)]
    pub machines: Vec<String>,
    /// Ids of the tenant's alerts.
    #[serde(default)]
    pub alerts: Vec<Uuid>,
}

/// Body of `PATCH /api/v1/work-orders/{id}`: only the given fields change; `null` clears `assignee` or
/// `due_date`. `status` moves the order along its lifecycle; `note` goes into the history entry.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderChange {
    /// New title.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// A user of the tenant, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee: Option<Option<Uuid>>,
    /// `YYYY-MM-DD`, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<super::bodies::Date>)]
    pub due_date: Option<Option<String>>,
    /// Replaces the linked machines.
    #[schema(value_type = Option<Vec<super::bodies::MachineName>>)]
    pub machines: Option<Vec<String>>,
    /// Replaces the linked alerts.
    pub alerts: Option<Vec<Uuid>>,
    /// `in_progress`, `done` or `cancelled`, as the lifecycle allows.
    #[schema(value_type = Option<super::bodies::WorkOrderStatus>)]
    pub status: Option<String>,
    /// Why, for the history.
    pub note: Option<String>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Filters of the work order list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkOrderFilter {
    /// `open`, `in_progress`, `done` or `cancelled`.
    #[param(value_type = Option<super::bodies::WorkOrderStatus>)]
    pub status: Option<String>,
    /// Assigned to this user.
    pub assignee: Option<Uuid>,
    /// Linked to this machine (name).
    #[param(value_type = Option<super::bodies::MachineName>)]
    pub machine: Option<String>,
    /// Due on or before this date (`YYYY-MM-DD`).
    #[param(value_type = Option<super::bodies::Date>)]
    pub due_before: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    title: String,
    description: String,
    status: String,
    assignee: Option<Uuid>,
    assignee_email: Option<String>,
    due_date: Option<NaiveDate>,
    machines: Vec<String>,
    alert_ids: Vec<Uuid>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
}

/// A work order (documentation of the JSON [`Row::view`] builds; `GET`, `POST` and `PATCH` on one work
/// order add its `history`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WorkOrderView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    #[schema(value_type = super::bodies::WorkOrderStatus)]
    pub status: String,
    /// The assigned user's id.
    pub assignee: Option<Uuid>,
    pub assignee_email: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub due_date: Option<String>,
    /// Machine names.
    pub machines: Vec<String>,
    /// Linked alerts' ids.
    pub alerts: Vec<Uuid>,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    /// The statuses it may move to.
    #[schema(value_type = Vec<super::bodies::WorkOrderStatus>)]
    pub next_statuses: Vec<String>,
    /// Every change, oldest first (on one work order's answers, not in the list).
    pub history: Option<Vec<WorkOrderHistoryEntry>>,
}

/// One change of a work order.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WorkOrderHistoryEntry {
    #[schema(format = DateTime)]
    pub at: String,
    /// Who made it.
    pub by: String,
    /// `{"created": {...}}`, or the changed fields as `{field: {from, to}}`.
    #[schema(value_type = Object)]
    pub change: (),
}

/// A page of work orders.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WorkOrderList {
    pub work_orders: Vec<WorkOrderView>,
    /// The offset of the next page; null on the last one.
    pub next_offset: Option<i64>,
}

impl Row {
    fn view(&self) -> Value {
        json!({
            "id": self.id, "title": self.title, "description": self.description, "status": self.status,
            "assignee": self.assignee, "assignee_email": self.assignee_email,
            "due_date": self.due_date.map(|d| d.to_string()), "machines": self.machines,
            "alerts": self.alert_ids, "created_by": self.created_by,
            "created_at": format_instant(self.created_at), "updated_at": format_instant(self.updated_at),
            "started_at": self.started_at.map(format_instant), "closed_at": self.closed_at.map(format_instant),
            "next_statuses": next_statuses(&self.status),
        })
    }
}

const SELECT: &str = "SELECT w.id, w.title, w.description, w.status, w.assignee, u.email AS assignee_email,
        w.due_date, array(SELECT m.name FROM machines m WHERE m.id = ANY(w.machine_ids) ORDER BY m.name) AS machines,
        w.alert_ids, w.created_by, w.created_at, w.updated_at, w.started_at, w.closed_at
    FROM work_orders w LEFT JOIN users u ON u.id = w.assignee";

fn parse_date(value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::validation(format!("due_date `{value}` must be YYYY-MM-DD")))
}

fn validate_title(title: &str) -> Result<(), ApiError> {
    if (1..=200).contains(&title.trim().chars().count()) && title.chars().count() <= 200 {
        Ok(())
    } else {
        Err(ApiError::validation("title must be 1 to 200 characters"))
    }
}

async fn check_assignee(state: &AppState, key: &Caller, user: Uuid) -> Result<(), ApiError> {
    let found: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(key.tenant_id)
            .bind(user)
            .fetch_optional(state.pool())
            .await?;
    found.map(|_| ()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_user",
            format!("assignee {user} is not a user of this tenant"),
        )
    })
}

async fn check_alerts(
    state: &AppState,
    key: &Caller,
    alerts: &[Uuid],
) -> Result<Vec<Uuid>, ApiError> {
    let found: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM alerts WHERE generation = active_generation() AND tenant_id = $1 AND id = ANY($2)")
            .bind(key.tenant_id)
            .bind(alerts)
            .fetch_all(state.pool())
            .await?;
    let unknown: Vec<&Uuid> = alerts.iter().filter(|a| !found.contains(a)).collect();
    refuse_unknown(&unknown, "unknown_alert", "alert", "alerts")?;
    let mut ids = alerts.to_vec();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

async fn load(state: &AppState, key: &Caller, id: Uuid) -> Result<Row, ApiError> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE w.tenant_id = $1 AND w.id = $2 AND ($3::uuid[] IS NULL OR w.machine_ids && $3)"
    ))
    .bind(key.tenant_id)
    .bind(id)
    .bind(key.machine_restriction())
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no work order {id}")))
}

async fn with_history(state: &AppState, key: &Caller, row: Row) -> Result<Json<Value>, ApiError> {
    let history: Vec<(DateTime<Utc>, String, Value)> = sqlx::query_as(
        "SELECT at, by, change FROM work_order_history WHERE tenant_id = $1 AND work_order_id = $2 ORDER BY seq",
    )
    .bind(key.tenant_id)
    .bind(row.id)
    .fetch_all(state.pool())
    .await?;
    let mut body = row.view();
    body["history"] = history
        .into_iter()
        .map(|(at, by, change)| json!({ "at": format_instant(at), "by": by, "change": change }))
        .collect();
    Ok(Json(body))
}

async fn record(
    tx: &mut sqlx::PgConnection,
    key: &Caller,
    id: Uuid,
    change: Value,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO work_order_history (tenant_id, work_order_id, by, change) VALUES ($1, $2, $3, $4)")
        .bind(key.tenant_id)
        .bind(id)
        .bind(key.actor())
        .bind(change)
        .execute(tx)
        .await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/work-orders", tag = "maintenance", request_body = NewWorkOrder, responses((status = 201, description = "The open work order with its history", body = WorkOrderView), (status = 422, description = "Invalid input, an unknown machine, alert or assignee", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<NewWorkOrder>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    key.require(Permission::Operate)?;
    validate_title(&body.title)?;
    let due = body.due_date.as_deref().map(parse_date).transpose()?;
    if let Some(user) = body.assignee {
        check_assignee(&state, &key, user).await?;
    }
    let machines = machine_ids(&state, &key, &body.machines).await?;
    let alerts = check_alerts(&state, &key, &body.alerts).await?;
    let id = Uuid::new_v4();
    let mut tx = state.pool().begin().await?;
    sqlx::query(
        "INSERT INTO work_orders (id, tenant_id, title, description, assignee, due_date, machine_ids, alert_ids, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(key.tenant_id)
    .bind(&body.title)
    .bind(&body.description)
    .bind(body.assignee)
    .bind(due)
    .bind(&machines)
    .bind(&alerts)
    .bind(key.actor())
    .execute(&mut *tx)
    .await?;
    let created = json!({ "created": { "title": body.title, "status": "open", "assignee": body.assignee,
        "due_date": due.map(|d| d.to_string()), "machines": body.machines, "alerts": alerts } });
    record(&mut tx, &key, id, created).await?;
    tx.commit().await?;
    let row = load(&state, &key, id).await?;
    Ok((StatusCode::CREATED, with_history(&state, &key, row).await?))
}

#[utoipa::path(get, path = "/api/v1/work-orders", tag = "maintenance", params(WorkOrderFilter), responses((status = 200, description = "`{\"work_orders\": [...], \"next_offset\"}`, newest first", body = WorkOrderList), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<WorkOrderFilter>,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Read)?;
    let page = Page::new(f.limit, f.offset, 50, 500)?;
    let mut rows = query(&state, &key, &f, page).await?;
    let next = page.cut(&mut rows);
    let orders: Vec<Value> = rows.iter().map(Row::view).collect();
    Ok(Json(json!({ "work_orders": orders, "next_offset": next })))
}

/// The caller's work orders matching `f` as JSON views (one page plus one row), newest first.
pub async fn query_views(
    state: &AppState,
    key: &Caller,
    f: &WorkOrderFilter,
    page: Page,
) -> Result<Vec<Value>, ApiError> {
    Ok(query(state, key, f, page)
        .await?
        .iter()
        .map(Row::view)
        .collect())
}

async fn query(
    state: &AppState,
    key: &Caller,
    f: &WorkOrderFilter,
    page: Page,
) -> Result<Vec<Row>, ApiError> {
    one_of("status", f.status.as_deref(), &STATUSES)?;
    let due = f.due_before.as_deref().map(parse_date).transpose()?;
    let machine = match &f.machine {
        Some(name) => Some(crate::routes::paging::machine_id(state, key, name).await?),
        None => None,
    };
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE w.tenant_id = $1 AND ($2::text IS NULL OR w.status = $2)
           AND ($3::uuid IS NULL OR w.assignee = $3) AND ($4::uuid IS NULL OR $4 = ANY(w.machine_ids))
           AND ($5::date IS NULL OR w.due_date <= $5) AND ($6::uuid[] IS NULL OR w.machine_ids && $6)
         ORDER BY w.created_at DESC, w.id LIMIT $7 OFFSET $8"
    ))
    .bind(key.tenant_id)
    .bind(&f.status)
    .bind(f.assignee)
    .bind(machine)
    .bind(due)
    .bind(key.machine_restriction())
    .bind(page.fetch())
    .bind(page.offset)
    .fetch_all(state.pool())
    .await?)
}

#[utoipa::path(get, path = "/api/v1/work-orders/{id}", tag = "maintenance", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The work order with its history", body = WorkOrderView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Read)?;
    let row = load(&state, &key, id).await?;
    with_history(&state, &key, row).await
}

/// Refuses changes of a closed order (409 `closed`) and moves the lifecycle does not allow (409
/// `invalid_transition`, with the allowed moves); 422 for an unknown status.
fn check_transition(from: &str, to: Option<&str>) -> Result<(), ApiError> {
    let allowed = next_statuses(from);
    if allowed.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "closed",
            format!("this work order is {from} and can no longer change"),
        )
        .with_details(json!({ "status": from })));
    }
    let Some(to) = to else { return Ok(()) };
    one_of("status", Some(to), &STATUSES)?;
    if allowed.contains(&to) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "invalid_transition",
        format!(
            "a work order that is {from} can move to {}, not to {to}",
            allowed.join(" or ")
        ),
    )
    .with_details(json!({ "from": from, "to": to, "allowed": allowed })))
}

/// A validated change: the changed fields' old and new values, and the new values to store.
struct Resolved {
    fields: Map<String, Value>,
    due: Option<Option<NaiveDate>>,
    machines: Option<Vec<Uuid>>,
    alerts: Option<Vec<Uuid>>,
}

async fn resolve(
    state: &AppState,
    key: &Caller,
    current: &Row,
    body: &WorkOrderChange,
) -> Result<Resolved, ApiError> {
    let mut fields = Map::new();
    let mut diff = |name: &str, from: Value, to: Value| {
        if from != to {
            fields.insert(name.to_owned(), json!({ "from": from, "to": to }));
        }
    };
    if let Some(title) = &body.title {
        validate_title(title)?;
        diff("title", json!(current.title), json!(title));
    }
    if let Some(d) = &body.description {
        diff("description", json!(current.description), json!(d));
    }
    if let Some(assignee) = body.assignee {
        if let Some(user) = assignee {
            check_assignee(state, key, user).await?;
        }
        diff("assignee", json!(current.assignee), json!(assignee));
    }
    let due = match &body.due_date {
        Some(Some(d)) => Some(Some(parse_date(d)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(d) = due {
        diff(
            "due_date",
            json!(current.due_date.map(|d| d.to_string())),
            json!(d.map(|d| d.to_string())),
        );
    }
    let machines = match &body.machines {
        Some(names) => {
            let ids = machine_ids(state, key, names).await?;
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            diff("machines", json!(current.machines), json!(sorted));
            Some(ids)
        }
        None => None,
    };
    let alerts = match &body.alerts {
        Some(a) => {
            let ids = check_alerts(state, key, a).await?;
            diff("alerts", json!(current.alert_ids), json!(ids));
            Some(ids)
        }
        None => None,
    };
    Ok(Resolved {
        fields,
        due,
        machines,
        alerts,
    })
}

#[utoipa::path(patch, path = "/api/v1/work-orders/{id}", tag = "maintenance", request_body = WorkOrderChange, params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The changed work order with its history", body = WorkOrderView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "`invalid_transition` (details: from, to, allowed) or `closed` (done and cancelled orders do not change)", body = crate::error::ErrorBody), (status = 422, description = "Invalid input, an unknown machine, alert, assignee or status", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<WorkOrderChange>,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Operate)?;
    let current = load(&state, &key, id).await?;
    check_transition(&current.status, body.status.as_deref())?;
    let Resolved {
        fields,
        due,
        machines,
        alerts,
    } = resolve(&state, &key, &current, &body).await?;
    let mut change = Map::new();
    if !fields.is_empty() {
        change.insert("fields".into(), Value::Object(fields));
    }
    if let Some(to) = &body.status {
        change.insert("status".into(), json!({ "from": current.status, "to": to }));
    }
    if change.is_empty() {
        return with_history(&state, &key, current).await;
    }
    if let Some(note) = &body.note {
        change.insert("note".into(), json!(note));
    }
    let mut tx = state.pool().begin().await?;
    // The status condition makes two concurrent transitions from the same state collide: one wins.
    let updated = sqlx::query(
        "UPDATE work_orders SET
            title = coalesce($4, title), description = coalesce($5, description),
            assignee = CASE WHEN $6 THEN $7 ELSE assignee END,
            due_date = CASE WHEN $8 THEN $9 ELSE due_date END,
            machine_ids = coalesce($10, machine_ids), alert_ids = coalesce($11, alert_ids),
            status = coalesce($12, status),
            started_at = CASE WHEN $12 = 'in_progress' THEN now() ELSE started_at END,
            closed_at = CASE WHEN $12 IN ('done', 'cancelled') THEN now() ELSE closed_at END,
            updated_at = now()
         WHERE tenant_id = $1 AND id = $2 AND status = $3",
    )
    .bind(key.tenant_id)
    .bind(id)
    .bind(&current.status)
    .bind(&body.title)
    .bind(&body.description)
    .bind(body.assignee.is_some())
    .bind(body.assignee.flatten())
    .bind(due.is_some())
    .bind(due.flatten())
    .bind(machines)
    .bind(alerts)
    .bind(&body.status)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the work order changed meanwhile; read it again and retry",
        ));
    }
    record(&mut tx, &key, id, Value::Object(change)).await?;
    tx.commit().await?;
    let row = load(&state, &key, id).await?;
    with_history(&state, &key, row).await
}
