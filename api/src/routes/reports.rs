//! Reports: CSV and PDF exports of machines, alerts and work orders (with the list endpoints' filters, up to
//! 10,000 rows), and a fleet summary PDF with its KPIs and charts (open alerts by severity, machines by
//! status, age of each machine's newest reading).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Query};
use crate::pdf::{colours, Bar, Report};
use crate::routes::fleet::{compute, KpiWindow};
use crate::routes::machines::{self, MachineFilter};
use crate::routes::paging::{instant, one_of, CsvDocument, Page};
use crate::routes::readings::csv_response;
use crate::routes::work_orders::{query_views, WorkOrderFilter};
use crate::state::AppState;
use crate::time::format_instant;

/// Most rows in one report.
const MAX_ROWS: i64 = 10_000;

/// The report routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports/machines.csv", get(machines_csv))
        .route("/reports/machines.pdf", get(machines_pdf))
        .route("/reports/alerts.csv", get(alerts_csv))
        .route("/reports/alerts.pdf", get(alerts_pdf))
        .route("/reports/work-orders.csv", get(work_orders_csv))
        .route("/reports/work-orders.pdf", get(work_orders_pdf))
        .route("/reports/fleet.pdf", get(fleet_pdf))
}

/// A table: column headers with their relative widths in a PDF, and rows.
struct Table {
    title: &'static str,
    columns: &'static [(&'static str, f32)],
    rows: Vec<Vec<String>>,
}

impl Table {
    fn csv(&self, filename: &str) -> Response {
        let mut out = CsvDocument::default();
        out.row(self.columns.iter().map(|c| c.0));
        for row in &self.rows {
            out.row(row);
        }
        csv_response(out.finish(), filename)
    }

    fn pdf(&self, filename: &str) -> Response {
        let mut report = Report::new(self.title, true);
        report.heading(self.title, 16.0);
        report.text(&format!(
            "{} rows, generated {}",
            self.rows.len(),
            format_instant(Utc::now())
        ));
        report.gap(6.0);
        report.table(self.columns, &self.rows);
        pdf_response(report.finish(), filename)
    }
}

/// A PDF attachment named `filename`.
fn pdf_response(body: Vec<u8>, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

async fn machines_table(
    state: &AppState,
    key: &Caller,
    f: &MachineFilter,
) -> Result<Table, ApiError> {
    key.require(Permission::Read)?;
    one_of("status", f.status.as_deref(), &["active", "retired"])?;
    let page = Page::new(f.limit.or(Some(MAX_ROWS)), f.offset, MAX_ROWS, MAX_ROWS)?;
    let mut rows = machines::query(state, key, f, page).await?;
    page.cut(&mut rows);
    Ok(Table {
        title: "Machines",
        columns: &[
            ("name", 2.0),
            ("status", 1.0),
            ("site", 1.5),
            ("tags", 2.0),
            ("description", 3.0),
            ("created_at", 2.0),
            ("retired_at", 2.0),
        ],
        rows: rows
            .into_iter()
            .map(|m| {
                vec![
                    m.name,
                    m.status,
                    m.site.unwrap_or_default(),
                    m.tags.join(" "),
                    m.description.unwrap_or_default(),
                    format_instant(m.created_at),
                    m.retired_at.map(format_instant).unwrap_or_default(),
                ]
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/reports/machines.csv", tag = "reports", params(MachineFilter), responses((status = 200, description = "The machines as CSV", body = super::bodies::Csv, content_type = "text/csv"), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn machines_csv(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<MachineFilter>,
) -> Result<Response, ApiError> {
    Ok(machines_table(&state, &key, &f).await?.csv("machines.csv"))
}

#[utoipa::path(get, path = "/api/v1/reports/machines.pdf", tag = "reports", params(MachineFilter), responses((status = 200, description = "The machines as PDF", body = super::bodies::Pdf, content_type = "application/pdf"), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn machines_pdf(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<MachineFilter>,
) -> Result<Response, ApiError> {
    Ok(machines_table(&state, &key, &f).await?.pdf("machines.pdf"))
}

/// Filters of the alerts report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertReportFilter {
    /// Machine name.
    #[param(value_type = Option<super::bodies::MachineName>)]
    pub machine: Option<String>,
    /// `open` or `resolved`.
    #[param(value_type = Option<super::bodies::AlertState>)]
    pub state: Option<String>,
    /// `info`, `warning` or `critical`.
    #[param(value_type = Option<super::bodies::Severity>)]
    pub severity: Option<String>,
    /// Raised at or after (RFC 3339 or epoch ms).
    #[param(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// Raised before.
    #[param(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
    /// Most rows (default and at most 10,000).
    pub limit: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: Uuid,
    machine: String,
    severity: String,
    state: String,
    rule_name: String,
    detector: String,
    metric: String,
    observed: f64,
    raised_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    acked_by: Option<String>,
}

async fn alerts_table(
    state: &AppState,
    key: &Caller,
    f: &AlertReportFilter,
) -> Result<Table, ApiError> {
    key.require(Permission::Read)?;
    one_of("state", f.state.as_deref(), &["open", "resolved"])?;
    one_of(
        "severity",
        f.severity.as_deref(),
        &["info", "warning", "critical"],
    )?;
    let (from, to) = (
        instant("from", f.from.as_deref())?,
        instant("to", f.to.as_deref())?,
    );
    let page = Page::new(f.limit, None, MAX_ROWS, MAX_ROWS)?;
    let rows: Vec<AlertRow> = sqlx::query_as(
        "SELECT id, machine, severity, state, rule_name, detector, metric, observed, raised_at, resolved_at, acked_by
         FROM alerts
         WHERE generation = active_generation() AND tenant_id = $1 AND ($2::text IS NULL OR machine = $2)
           AND ($3::text IS NULL OR state = $3)
           AND ($4::text IS NULL OR severity = $4) AND ($5::timestamptz IS NULL OR raised_at >= $5)
           AND ($6::timestamptz IS NULL OR raised_at < $6) AND ($7::uuid[] IS NULL OR machine_id = ANY($7))
         ORDER BY raised_at DESC, id LIMIT $8",
    )
    .bind(key.tenant_id)
    .bind(&f.machine)
    .bind(&f.state)
    .bind(&f.severity)
    .bind(from)
    .bind(to)
    .bind(key.machine_restriction())
    .bind(page.limit)
    .fetch_all(state.pool())
    .await?;
    Ok(Table {
        title: "Alerts",
        columns: &[
            ("raised_at", 2.0),
            ("machine", 1.5),
            ("severity", 1.0),
            ("state", 1.0),
            ("rule", 2.0),
            ("detector", 1.0),
            ("metric", 1.5),
            ("observed", 1.0),
            ("resolved_at", 2.0),
            ("acked_by", 1.5),
            ("id", 3.0),
        ],
        rows: rows
            .into_iter()
            .map(|a| {
                vec![
                    format_instant(a.raised_at),
                    a.machine,
                    a.severity,
                    a.state,
                    a.rule_name,
                    a.detector,
                    a.metric,
                    a.observed.to_string(),
                    a.resolved_at.map(format_instant).unwrap_or_default(),
                    a.acked_by.unwrap_or_default(),
                    a.id.to_string(),
                ]
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/reports/alerts.csv", tag = "reports", params(AlertReportFilter), responses((status = 200, description = "The alerts as CSV, newest first", body = super::bodies::Csv, content_type = "text/csv"), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn alerts_csv(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<AlertReportFilter>,
) -> Result<Response, ApiError> {
    Ok(alerts_table(&state, &key, &f).await?.csv("alerts.csv"))
}

#[utoipa::path(get, path = "/api/v1/reports/alerts.pdf", tag = "reports", params(AlertReportFilter), responses((status = 200, description = "The alerts as PDF, newest first", body = super::bodies::Pdf, content_type = "application/pdf"), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn alerts_pdf(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<AlertReportFilter>,
) -> Result<Response, ApiError> {
    Ok(alerts_table(&state, &key, &f).await?.pdf("alerts.pdf"))
}

async fn work_orders_table(
    state: &AppState,
    key: &Caller,
    f: &WorkOrderFilter,
) -> Result<Table, ApiError> {
    key.require(Permission::Read)?;
    let page = Page::new(f.limit.or(Some(MAX_ROWS)), f.offset, MAX_ROWS, MAX_ROWS)?;
    let mut rows = query_views(state, key, f, page).await?;
    page.cut(&mut rows);
    let fields = [
        "title",
        "status",
        "assignee_email",
        "due_date",
        "machines",
        "created_at",
        "closed_at",
        "id",
    ];
    Ok(Table {
        title: "Work orders",
        columns: &[
            ("title", 3.0),
            ("status", 1.2),
            ("assignee", 2.0),
            ("due_date", 1.2),
            ("machines", 2.0),
            ("created_at", 2.0),
            ("closed_at", 2.0),
            ("id", 3.0),
        ],
        rows: rows
            .iter()
            .map(|o| fields.iter().map(|f| text(&o[*f])).collect())
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/reports/work-orders.csv", tag = "reports", params(WorkOrderFilter), responses((status = 200, description = "The work orders as CSV, newest first", body = super::bodies::Csv, content_type = "text/csv"), (status = 404, description = "No such machine in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn work_orders_csv(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<WorkOrderFilter>,
) -> Result<Response, ApiError> {
    Ok(work_orders_table(&state, &key, &f)
        .await?
        .csv("work-orders.csv"))
}

#[utoipa::path(get, path = "/api/v1/reports/work-orders.pdf", tag = "reports", params(WorkOrderFilter), responses((status = 200, description = "The work orders as PDF, newest first", body = super::bodies::Pdf, content_type = "application/pdf"), (status = 404, description = "No such machine in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn work_orders_pdf(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<WorkOrderFilter>,
) -> Result<Response, ApiError> {
    Ok(work_orders_table(&state, &key, &f)
        .await?
        .pdf("work-orders.pdf"))
}

fn hours(v: Option<f64>) -> String {
    v.map(|h| format!("{h:.1} h"))
        .unwrap_or_else(|| "n/a".into())
}

#[utoipa::path(get, path = "/api/v1/reports/fleet.pdf", tag = "reports", params(KpiWindow), responses((status = 200, description = "The fleet summary: KPIs, a chart of open alerts by severity, machines by status, and the age of each machine's newest reading", body = super::bodies::Pdf, content_type = "application/pdf"), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn fleet_pdf(
    State(state): State<AppState>,
    key: Caller,
    Query(window): Query<KpiWindow>,
) -> Result<Response, ApiError> {
    key.require(Permission::Read)?;
    let (k, machines) = compute(&state, &key, &window).await?;
    let mut r = Report::new("Fleet summary", false);
    r.heading("Fleet summary", 20.0);
    r.text(&format!(
        "Window {} to {}; generated {}",
        k.from,
        k.to,
        format_instant(Utc::now())
    ));
    r.gap(4.0);
    r.text(&format!(
        "Machines: {} (running {}, alerting {}, silent {})",
        k.machines.total, k.machines.running, k.machines.alerting, k.machines.silent
    ));
    r.text(&format!(
        "Open alerts: {} (critical {}, warning {}, info {})",
        k.open_alerts.total, k.open_alerts.critical, k.open_alerts.warning, k.open_alerts.info
    ));
    r.text(&format!(
        "Failures in the window: {}; MTBF {}; repairs: {}; MTTR {}",
        k.failures,
        hours(k.mtbf_hours),
        k.repairs,
        hours(k.mttr_hours)
    ));
    r.text(&format!(
        "Data freshness: median {}, oldest {}, {} machine(s) without data",
        k.freshness
            .median_age_secs
            .map(|s| format!("{:.1} min", s as f64 / 60.0))
            .unwrap_or_else(|| "n/a".into()),
        k.freshness
            .max_age_secs
            .map(|s| format!("{:.1} min", s as f64 / 60.0))
            .unwrap_or_else(|| "n/a".into()),
        k.freshness.machines_without_data
    ));
    r.gap(10.0);
    let bar = |label: &str, value: f64, colour| Bar {
        label: label.into(),
        value,
        colour,
        caption: None,
    };
    r.column_chart(
        "Open alerts by severity",
        &[
            bar("critical", k.open_alerts.critical as f64, colours::RED),
            bar("warning", k.open_alerts.warning as f64, colours::AMBER),
            bar("info", k.open_alerts.info as f64, colours::BLUE),
        ],
    );
    let count = |s: &str| machines.iter().filter(|m| m.status == s).count() as f64;
    r.column_chart(
        "Machines by status",
        &[
            bar("running", count("running"), colours::GREEN),
            bar("alerting", count("alerting"), colours::RED),
            bar("silent", count("silent"), colours::GREY),
        ],
    );
    // The stalest first: those are the ones to look at.
    let mut fresh: Vec<Bar> = machines
        .iter()
        .map(|m| Bar {
            label: match m.age_secs {
                Some(_) => m.name.clone(),
                None => format!("{} (no data)", m.name),
            },
            value: m.age_secs.map(|s| s as f64 / 60.0).unwrap_or(0.0),
            caption: m.age_secs.is_none().then(|| "no data".to_owned()),
            colour: match m.status {
                "running" => colours::GREEN,
                "alerting" => colours::RED,
                _ => colours::GREY,
            },
        })
        .collect();
    fresh.sort_by(|a, b| b.value.total_cmp(&a.value));
    let shown = fresh.len().min(40);
    r.bar_chart(
        "Minutes since the newest reading, per machine",
        &fresh[..shown],
        "min",
    );
    if fresh.len() > shown {
        r.text(&format!("... and {} more machines", fresh.len() - shown));
    }
    let without: Vec<&str> = machines
        .iter()
        .filter(|m| m.age_secs.is_none())
        .map(|m| m.name.as_str())
        .collect();
    if !without.is_empty() {
        r.text(&format!("Never sent data: {}", without.join(", ")));
    }
    Ok(pdf_response(r.finish(), "fleet-summary.pdf"))
}
