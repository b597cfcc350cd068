//! Predictions: a machine's remaining-useful-life history, and the fleet ranked by remaining life. Values
//! are in cycles, or in hours or days (the tenant's `ai.horizon_unit`) at each machine's recent pace of
//! cycles.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::routes::paging::{instant, machine_id};
use crate::routes::settings::TenantSettings;
use crate::state::AppState;
use crate::time::format_instant;

/// The prediction routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/predictions", get(fleet))
        .route("/machines/{machine}/predictions", get(history))
}

/// `GET /api/v1/machines/{machine}/predictions`: a machine's predictions, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PredictionHistory {
    /// The machine's name.
    pub machine: String,
    pub predictions: Vec<PredictionView>,
}

/// `GET /api/v1/predictions`: each machine's newest prediction, the shortest remaining life first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FleetPredictions {
    pub machines: Vec<PredictionView>,
}

/// One prediction as served.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PredictionView {
    /// The machine.
    pub machine: String,
    /// Event time of the cycle predicted after.
    pub at: String,
    /// Cycles since the start of the machine's life (its last replacement).
    pub cycle: i64,
    /// Remaining useful life, in `unit`.
    pub rul: f64,
    /// The interval's lower end, in `unit`.
    pub lower: f64,
    /// The interval's upper end, in `unit`.
    pub upper: f64,
    /// The interval's nominal coverage (0.8: from the 10th to the 90th percentile).
    pub interval: f64,
    /// `cycles`, `hours` or `days`.
    pub unit: String,
    /// 0 (at its end) to 1 (healthy).
    pub health: f64,
    /// The model.
    pub model_id: Uuid,
    /// The model's version.
    pub model_version: String,
    /// The sensors that moved the estimate most, largest first: `{"sensor", "effect"}` (effect in cycles).
    #[schema(value_type = Vec<Object>)]
    pub contributors: Value,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    machine: String,
    machine_id: Uuid,
    ts: DateTime<Utc>,
    cycle: i64,
    rul: f64,
    rul_lower: f64,
    rul_upper: f64,
    interval: f64,
    health: f64,
    model_id: Uuid,
    model_version: String,
    contributors: Value,
}

const SELECT: &str =
    "SELECT m.name AS machine, p.machine_id, p.ts, p.cycle, p.rul, p.rul_lower, p.rul_upper,
        p.interval, p.health, p.model_id, p.model_version, p.contributors
    FROM predictions p JOIN machines m ON m.id = p.machine_id AND m.tenant_id = p.tenant_id";

/// Seconds per cycle of each machine, from its recent predictions (the pace at which its cycles come).
async fn pace(
    state: &AppState,
    tenant: Uuid,
    machines: &[Uuid],
) -> Result<Vec<(Uuid, f64)>, ApiError> {
    let rows: Vec<(Uuid, Option<f64>)> = sqlx::query_as(
        "SELECT machine_id, EXTRACT(EPOCH FROM max(ts) - min(ts))::float8 / NULLIF(max(cycle) - min(cycle), 0)
         FROM (SELECT machine_id, ts, cycle, row_number() OVER (PARTITION BY machine_id ORDER BY ts DESC) AS n
               FROM predictions WHERE tenant_id = $1 AND machine_id = ANY($2)) recent
         WHERE n <= 20 GROUP BY machine_id",
    )
    .bind(tenant)
    .bind(machines)
    .fetch_all(state.pool())
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, s)| s.map(|s| (m, s)))
        .collect())
}

async fn views(
    state: &AppState,
    tenant: Uuid,
    rows: Vec<Row>,
) -> Result<Vec<PredictionView>, ApiError> {
    let unit = TenantSettings::load(state.pool(), tenant)
        .await?
        .ai
        .horizon_unit;
    let divisor = match unit.as_str() {
        "hours" => 3_600.0,
        "days" => 86_400.0,
        _ => 0.0,
    };
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.machine_id).collect();
    ids.dedup();
    let paces = if divisor > 0.0 {
        pace(state, tenant, &ids).await?
    } else {
        Vec::new()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            // A machine without a pace yet (one cycle) stays in cycles.
            let per_cycle = paces
                .iter()
                .find(|(m, _)| *m == r.machine_id)
                .map(|(_, s)| *s);
            let (scale, unit) = match per_cycle {
                Some(s) if divisor > 0.0 => (s / divisor, unit.clone()),
                _ => (1.0, "cycles".to_owned()),
            };
            PredictionView {
                machine: r.machine,
                at: format_instant(r.ts),
                cycle: r.cycle,
                rul: r.rul * scale,
                lower: r.rul_lower * scale,
                upper: r.rul_upper * scale,
                interval: r.interval,
                unit,
                health: r.health,
                model_id: r.model_id,
                model_version: r.model_version,
                contributors: r.contributors,
            }
        })
        .collect())
}

/// Filters of a machine's prediction history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryFilter {
    /// At or after (RFC 3339 or epoch ms).
    #[param(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// Before.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
    /// Most predictions, newest first (default 100, at most 5,000).
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/machines/{machine}/predictions", tag = "predictions", params(("machine" = String, Path, description = "Machine name"), HistoryFilter), responses((status = 200, description = "`{\"machine\", \"predictions\": [...]}`, newest first", body = PredictionHistory), (status = 404, description = "No such machine in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn history(
    State(state): State<AppState>,
    key: Caller,
    Path(name): Path<String>,
    Query(f): Query<HistoryFilter>,
) -> Result<Json<PredictionHistory>, ApiError> {
    key.require(Permission::Read)?;
    let (from, to) = (
        instant("from", f.from.as_deref())?,
        instant("to", f.to.as_deref())?,
    );
    let limit = f.limit.unwrap_or(100);
    if !(1..=5_000).contains(&limit) {
        return Err(ApiError::validation("limit must lie between 1 and 5000"));
    }
    let machine = machine_id(&state, &key, &name).await?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE p.tenant_id = $1 AND p.machine_id = $2
           AND ($3::timestamptz IS NULL OR p.ts >= $3) AND ($4::timestamptz IS NULL OR p.ts < $4)
         ORDER BY p.ts DESC LIMIT $5"
    ))
    .bind(key.tenant_id)
    .bind(machine)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(state.pool())
    .await?;
    let predictions = views(&state, key.tenant_id, rows).await?;
    Ok(Json(PredictionHistory {
        machine: name,
        predictions,
    }))
}

#[utoipa::path(get, path = "/api/v1/predictions", tag = "predictions", responses((status = 200, description = "`{\"machines\": [...]}`: each machine's newest prediction, the shortest remaining life first", body = FleetPredictions), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn fleet(
    State(state): State<AppState>,
    key: Caller,
) -> Result<Json<FleetPredictions>, ApiError> {
    key.require(Permission::Read)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT * FROM (
             SELECT DISTINCT ON (p.machine_id) m.name AS machine, p.machine_id, p.ts, p.cycle, p.rul, p.rul_lower,
                 p.rul_upper, p.interval, p.health, p.model_id, p.model_version, p.contributors
             FROM predictions p JOIN machines m ON m.id = p.machine_id AND m.tenant_id = p.tenant_id
             WHERE p.tenant_id = $1 AND ($2::uuid[] IS NULL OR p.machine_id = ANY($2))
             ORDER BY p.machine_id, p.ts DESC) newest
         ORDER BY rul, machine",
    )
    .bind(key.tenant_id)
    .bind(key.machine_restriction())
    .fetch_all(state.pool())
    .await?;
    let machines = views(&state, key.tenant_id, rows).await?;
    Ok(Json(FleetPredictions { machines }))
}
