//! The fleet: every active machine's status and the tenant's KPIs.
//!
//! A machine is `alerting` while it has open alerts, else `silent` when its newest reading (by event time)
//! is older than the tenant's `silent_after_minutes` (or it has none), else `running`.
//!
//! KPIs over a window `[from, to)` (default: the last 30 days):
//! - **failures**: alerts of severity warning or critical raised in the window;
//! - **MTBF** = machine-hours observed in the window (each active machine from the later of `from` and its
//!   registration, to `to`) ÷ failures; `null` without failures;
//! - **MTTR** = the mean, over work orders done in the window, of (done − start), where start is the
//!   earliest raise of the order's linked alerts, or the order's creation when it links none; `null`
//!   without such orders;
//! - **freshness**: the age of each machine's newest reading; the fleet's median and maximum, and how many
//!   machines have none.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Query};
use crate::routes::paging::{instant, one_of, Page};
use crate::routes::settings::TenantSettings;
use crate::state::AppState;
use crate::time::format_instant;

/// The fleet routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fleet/status", get(status))
        .route("/fleet/kpis", get(kpis))
}

/// Filters of the fleet status.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusFilter {
    /// `running`, `alerting` or `silent`.
    #[param(value_type = Option<super::bodies::FleetStatus>)]
    pub status: Option<String>,
    /// Machines of this site.
    pub site: Option<String>,
    /// Machines carrying this tag.
    pub tag: Option<String>,
    /// Page size (default 500, at most 10,000).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// `GET /api/v1/fleet/status`: a page of machines with their statuses, and the counts over all of them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FleetStatusPage {
    /// The page, ordered by name.
    pub machines: Vec<MachineStatus>,
    /// Every machine (not only the page's) by status.
    pub counts: MachineCounts,
    /// The tenant's setting: minutes without readings after which a machine is `silent`.
    pub silent_after_minutes: u32,
    /// The offset of the next page; null on the last one.
    pub next_offset: Option<i64>,
}

/// Machines by status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MachineCounts {
    pub running: usize,
    pub alerting: usize,
    pub silent: usize,
    pub total: usize,
}

/// One machine's status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MachineStatus {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Site.
    pub site: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// `running`, `alerting` or `silent`.
    #[schema(value_type = super::bodies::FleetStatus)]
    pub status: &'static str,
    /// Open alerts.
    pub open_alerts: i64,
    /// The most severe open alert's severity.
    pub worst_severity: Option<String>,
    /// Newest reading's event time (RFC 3339).
    #[schema(format = DateTime)]
    pub last_reading_at: Option<String>,
    /// Seconds since then.
    pub age_secs: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    site: Option<String>,
    tags: Vec<String>,
    open_alerts: i64,
    worst: Option<i32>,
    last_reading_at: Option<DateTime<Utc>>,
}

/// Open alerts of the machine, of the active detection generation where there are several.
const OPEN_ALERTS: &str =
    "alerts a WHERE a.generation = active_generation() AND a.tenant_id = m.tenant_id
    AND a.machine_id = m.id AND a.state = 'open'";

/// Every active machine of the caller's tenant with its status, ordered by name.
pub async fn statuses(state: &AppState, key: &Caller) -> Result<Vec<MachineStatus>, ApiError> {
    statuses_of(state, key.tenant_id, key.machine_restriction()).await
}

/// Every active machine of `tenant` (of `only` these, when given) with its status, ordered by name; the
/// dashboard socket follows the same statuses.
pub async fn statuses_of(
    state: &AppState,
    tenant: Uuid,
    only: Option<&[Uuid]>,
) -> Result<Vec<MachineStatus>, ApiError> {
    let settings = TenantSettings::load(state.pool(), tenant).await?;
    let now = Utc::now();
    let silent_after = Duration::minutes(i64::from(settings.silent_after_minutes));
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT m.id, m.name, m.site, m.tags,
            (SELECT count(*) FROM {OPEN_ALERTS}) AS open_alerts,
            (SELECT max(CASE a.severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END) FROM {OPEN_ALERTS}) AS worst,
            (SELECT max(l.ts) FROM haltless_latest_readings(m.tenant_id, m.id) l) AS last_reading_at
         FROM machines m
         WHERE m.tenant_id = $1 AND m.status = 'active' AND ($2::uuid[] IS NULL OR m.id = ANY($2))
         ORDER BY m.name"
    ))
    .bind(tenant)
    .bind(only)
    .fetch_all(state.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let status = if r.open_alerts > 0 {
                "alerting"
            } else if r.last_reading_at.is_none_or(|t| now - t > silent_after) {
                "silent"
            } else {
                "running"
            };
            MachineStatus {
                id: r.id,
                name: r.name,
                site: r.site,
                tags: r.tags,
                status,
                open_alerts: r.open_alerts,
                worst_severity: r.worst.map(|w| {
                    match w {
                        3 => "critical",
                        2 => "warning",
                        _ => "info",
                    }
                    .to_owned()
                }),
                last_reading_at: r.last_reading_at.map(format_instant),
                age_secs: r.last_reading_at.map(|t| (now - t).num_seconds().max(0)),
            }
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/fleet/status", tag = "fleet", params(StatusFilter), responses((status = 200, description = "`{\"machines\": [{\"name\", \"status\", \"open_alerts\", \"worst_severity\", \"last_reading_at\", \"age_secs\", ...}], \"counts\", \"silent_after_minutes\", \"next_offset\"}`", body = FleetStatusPage), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn status(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<StatusFilter>,
) -> Result<Json<FleetStatusPage>, ApiError> {
    key.require(Permission::Read)?;
    one_of(
        "status",
        f.status.as_deref(),
        &["running", "alerting", "silent"],
    )?;
    let page = Page::new(f.limit, f.offset, 500, 10_000)?;
    let all = statuses(&state, &key).await?;
    let count = |s: &str| all.iter().filter(|m| m.status == s).count();
    let counts = MachineCounts {
        running: count("running"),
        alerting: count("alerting"),
        silent: count("silent"),
        total: all.len(),
    };
    let mut machines: Vec<MachineStatus> = all
        .into_iter()
        .filter(|m| f.status.as_deref().is_none_or(|s| m.status == s))
        .filter(|m| f.site.is_none() || m.site == f.site)
        .filter(|m| f.tag.as_ref().is_none_or(|t| m.tags.contains(t)))
        .skip(page.offset as usize)
        .take(page.fetch() as usize)
        .collect();
    let next = page.cut(&mut machines);
    let settings = TenantSettings::load(state.pool(), key.tenant_id).await?;
    Ok(Json(FleetStatusPage {
        machines,
        counts,
        silent_after_minutes: settings.silent_after_minutes,
        next_offset: next,
    }))
}

/// Window of the KPIs.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KpiWindow {
    /// Start (RFC 3339 or epoch ms); default 30 days before `to`.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// End; default now.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
}

/// The fleet's KPIs over a window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Kpis {
    /// Window start (RFC 3339).
    #[schema(format = DateTime)]
    pub from: String,
    /// Window end (RFC 3339).
    #[schema(format = DateTime)]
    pub to: String,
    /// Open alerts by severity, now.
    pub open_alerts: OpenAlerts,
    /// Machines by status, now.
    pub machines: MachineCounts,
    /// Warning and critical alerts raised in the window.
    pub failures: i64,
    /// Machine-hours observed in the window.
    pub operating_hours: f64,
    /// Mean time between failures, hours.
    pub mtbf_hours: Option<f64>,
    /// Work orders done in the window.
    pub repairs: i64,
    /// Mean time to repair, hours.
    pub mttr_hours: Option<f64>,
    /// Data freshness.
    pub freshness: Freshness,
}

/// Open alerts by severity.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct OpenAlerts {
    /// Info.
    pub info: i64,
    /// Warning.
    pub warning: i64,
    /// Critical.
    pub critical: i64,
    /// All.
    pub total: i64,
}

/// How recent the fleet's data is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Freshness {
    /// Median age of the machines' newest readings, seconds.
    pub median_age_secs: Option<i64>,
    /// The oldest of them.
    pub max_age_secs: Option<i64>,
    /// Active machines that never sent a reading.
    pub machines_without_data: usize,
}

/// The KPIs of the caller's tenant over `[from, to)`, with the machine statuses they came from.
pub async fn compute(
    state: &AppState,
    key: &Caller,
    window: &KpiWindow,
) -> Result<(Kpis, Vec<MachineStatus>), ApiError> {
    let to = instant("to", window.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = match instant("from", window.from.as_deref())? {
        Some(from) => from,
        None => to
            .checked_sub_signed(Duration::days(30))
            .ok_or_else(|| ApiError::validation("`to` lies too early"))?,
    };
    if from >= to {
        return Err(ApiError::validation("`from` must lie before `to`"));
    }
    let pool = state.pool();
    let restriction = key.machine_restriction();
    let by_severity: Vec<(String, i64)> = sqlx::query_as(
        "SELECT severity, count(*) FROM alerts
         WHERE generation = active_generation() AND tenant_id = $1 AND state = 'open'
           AND ($2::uuid[] IS NULL OR machine_id = ANY($2)) GROUP BY severity",
    )
    .bind(key.tenant_id)
    .bind(restriction)
    .fetch_all(pool)
    .await?;
    let mut open = OpenAlerts::default();
    for (severity, n) in by_severity {
        match severity.as_str() {
            "critical" => open.critical = n,
            "warning" => open.warning = n,
            _ => open.info += n,
        }
        open.total += n;
    }
    let failures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts
         WHERE generation = active_generation() AND tenant_id = $1 AND severity IN ('warning', 'critical')
           AND raised_at >= $2 AND raised_at < $3 AND ($4::uuid[] IS NULL OR machine_id = ANY($4))",
    )
    .bind(key.tenant_id)
    .bind(from)
    .bind(to)
    .bind(restriction)
    .fetch_one(pool)
    .await?;
    let operating_hours: f64 = sqlx::query_scalar(
        "SELECT coalesce(sum(extract(epoch FROM ($3 - greatest($2, created_at))) / 3600.0), 0)::float8
         FROM machines WHERE tenant_id = $1 AND status = 'active' AND created_at < $3
           AND ($4::uuid[] IS NULL OR id = ANY($4))",
    )
    .bind(key.tenant_id)
    .bind(from)
    .bind(to)
    .bind(restriction)
    .fetch_one(pool)
    .await?;
    let (repairs, mttr_secs): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), avg(extract(epoch FROM (w.closed_at - coalesce(
                    (SELECT min(a.raised_at) FROM alerts a WHERE a.generation = active_generation()
                        AND a.tenant_id = w.tenant_id AND a.id = ANY(w.alert_ids)),
                    w.created_at))))::float8
         FROM work_orders w WHERE w.tenant_id = $1 AND w.status = 'done' AND w.closed_at >= $2 AND w.closed_at < $3
           AND ($4::uuid[] IS NULL OR w.machine_ids && $4)",
    )
    .bind(key.tenant_id)
    .bind(from)
    .bind(to)
    .bind(restriction)
    .fetch_one(pool)
    .await?;
    let machines = statuses(state, key).await?;
    let mut ages: Vec<i64> = machines.iter().filter_map(|m| m.age_secs).collect();
    ages.sort_unstable();
    let count = |s: &str| machines.iter().filter(|m| m.status == s).count();
    let kpis = Kpis {
        from: format_instant(from),
        to: format_instant(to),
        open_alerts: open,
        machines: MachineCounts {
            running: count("running"),
            alerting: count("alerting"),
            silent: count("silent"),
            total: machines.len(),
        },
        failures,
        operating_hours,
        mtbf_hours: (failures > 0).then(|| operating_hours / failures as f64),
        repairs,
        mttr_hours: mttr_secs.map(|s| s.max(0.0) / 3600.0),
        freshness: Freshness {
            median_age_secs: ages.get(ages.len() / 2).copied(),
            max_age_secs: ages.last().copied(),
            machines_without_data: machines.len() - ages.len(),
        },
    };
    Ok((kpis, machines))
}

#[utoipa::path(get, path = "/api/v1/fleet/kpis", tag = "fleet", params(KpiWindow), responses((status = 200, description = "Open alerts by severity, machines by status, failures, MTBF and MTTR in hours, data freshness (formulas in the README)", body = Kpis), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn kpis(
    State(state): State<AppState>,
    key: Caller,
    Query(window): Query<KpiWindow>,
) -> Result<Json<Kpis>, ApiError> {
    key.require(Permission::Read)?;
    Ok(Json(compute(&state, &key, &window).await?.0))
}
