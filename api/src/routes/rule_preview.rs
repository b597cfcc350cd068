//! `POST /api/v1/machines/{machine}/preview-rule`: a rule, before it is saved, run over a machine's stored
//! readings: the alerts it would have raised and when they would have resolved. Nothing is stored or
//! published; the detectors start from nothing at the window's start, as a new rule does.

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use haltless_processors::detection::logic::engine::{Input, MachineState};
use haltless_processors::detection::logic::lifecycle::Transition;
use haltless_processors::detection::logic::rules::Rule;
use haltless_processors::detection::logic::Sample;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path};
use crate::routes::paging::{instant, machine_id};
use crate::routes::rules::rule_from;
use crate::state::AppState;
use crate::time::format_instant;

/// The preview route.
pub fn router() -> Router<AppState> {
    Router::new().route("/machines/{machine}/preview-rule", post(preview))
}

/// The longest history a preview reads.
const MAX_DAYS: i64 = 90;

/// Body of a preview: the rule as it would be saved, and the window of history (default: the last 7 days).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// The rule (its `id` may be left out).
    #[schema(value_type = haltless_processors::detection::logic::rules::Rule)]
    pub rule: Value,
    /// Start of the history, inclusive (RFC 3339 or epoch ms); default 7 days before `to`.
    #[schema(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// End, exclusive; default now. At most 90 days after `from`.
    #[schema(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
}

/// One alert the rule would have raised.
#[derive(Debug, Default)]
struct Would {
    raised_at: i64,
    resolved_at: Option<i64>,
    updates: u32,
    metric: String,
    detector: String,
    observed: f64,
    expected: f64,
    score: f64,
    limit: f64,
    explanation: String,
}

/// One alert the rule would have raised.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WouldRaise {
    /// RFC 3339 (event time of the reading that raised it).
    #[schema(format = DateTime)]
    pub raised_at: Option<String>,
    /// RFC 3339; null when it would still be open at the window's end.
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    /// Updates while it was open.
    pub updates: u32,
    /// The metric that raised it.
    pub metric: String,
    /// The detector that fired.
    pub detector: String,
    /// The value seen.
    pub observed: f64,
    /// The value expected.
    pub expected: f64,
    /// The detector's score.
    pub score: f64,
    /// The limit the score crossed.
    pub limit: f64,
    /// Which feature fired and why, in words.
    pub explanation: String,
}

/// The answer of a preview.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// The machine's name.
    pub machine: String,
    /// Start of the history read (RFC 3339).
    #[schema(format = DateTime)]
    pub from: String,
    /// End of the history read (RFC 3339).
    #[schema(format = DateTime)]
    pub to: String,
    /// Readings the rule ran over.
    pub readings: usize,
    /// True when the oldest readings beyond the query limit were left out.
    pub truncated: bool,
    /// The alerts it would have raised, oldest first.
    pub alerts: Vec<WouldRaise>,
}

impl Would {
    fn view(&self) -> WouldRaise {
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).map(format_instant);
        WouldRaise {
            raised_at: at(self.raised_at),
            resolved_at: self.resolved_at.and_then(at),
            updates: self.updates,
            metric: self.metric.clone(),
            detector: self.detector.clone(),
            observed: self.observed,
            expected: self.expected,
            score: self.score,
            limit: self.limit,
            explanation: self.explanation.clone(),
        }
    }
}

/// Runs `rule` over `rows` (metric, ms, value), in time order, from empty detector state.
fn run(tenant: &str, machine: &str, rule: &Rule, rows: &[(String, i64, f64)]) -> Vec<Would> {
    let mut state = MachineState::default();
    let rules = std::slice::from_ref(rule);
    let mut alerts: Vec<Would> = Vec::new();
    for (metric, ts_ms, value) in rows {
        let input = Input {
            metric,
            sample: Sample {
                ts_ms: *ts_ms,
                value: *value,
            },
            offset: None,
        };
        for event in state.observe(tenant, machine, rules, input) {
            match event.transition {
                Transition::Raised => alerts.push(Would {
                    raised_at: event.event_time_ms,
                    metric: event.metric,
                    detector: event.detector,
                    observed: event.observed,
                    expected: event.expected,
                    score: event.score,
                    limit: event.limit,
                    explanation: event.explanation,
                    ..Would::default()
                }),
                Transition::Updated => {
                    if let Some(open) = alerts.last_mut() {
                        open.updates += 1;
                    }
                }
                Transition::Resolved => {
                    if let Some(open) = alerts.last_mut() {
                        open.resolved_at = Some(event.event_time_ms);
                    }
                }
            }
        }
    }
    alerts
}

#[utoipa::path(post, path = "/api/v1/machines/{machine}/preview-rule", tag = "rules", request_body = PreviewBody, params(("machine" = String, Path, description = "Machine name")), responses((status = 200, description = "`{\"machine\", \"from\", \"to\", \"readings\", \"truncated\", \"alerts\": [{\"raised_at\", \"resolved_at\", \"updates\", \"metric\", \"detector\", \"observed\", \"expected\", \"score\", \"limit\", \"explanation\"}]}`: the alerts the rule would have raised over the machine's readings of the metrics it names in `[from, to)`, its detectors starting from nothing at `from`; `truncated` when the oldest readings beyond the query limit were left out. Nothing is saved", body = Preview), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
    Json(body): Json<PreviewBody>,
) -> Result<Json<Preview>, ApiError> {
    key.require(Permission::Operate)?;
    let machine_id = machine_id(&state, &key, &machine).await?;
    let rule = rule_from(body.rule, None)?;
    let to = instant("to", body.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = instant("from", body.from.as_deref())?.unwrap_or(to - Duration::days(7));
    if from >= to {
        return Err(ApiError::validation("`from` must lie before `to`"));
    }
    if to - from > Duration::days(MAX_DAYS) {
        return Err(ApiError::validation(format!(
            "a preview reads at most {MAX_DAYS} days of history"
        )));
    }
    let metrics: Vec<String> = rule
        .when
        .conditions()
        .iter()
        .map(|c| c.metric.clone())
        .collect();
    let limit = state.settings().query.max_limit;
    // The newest readings when there are more than the limit: the detectors learn on the older part of a
    // window, and the recent past is what a rule is being tuned for.
    let mut rows: Vec<(String, DateTime<Utc>, f64)> = sqlx::query_as(
        "SELECT metric, ts, value FROM named_readings
         WHERE tenant_id = $1 AND machine_id = $2 AND metric = ANY($3) AND ts >= $4 AND ts < $5
         ORDER BY ts DESC, metric DESC LIMIT $6",
    )
    .bind(key.tenant_id)
    .bind(machine_id)
    .bind(&metrics)
    .bind(from)
    .bind(to)
    .bind(limit + 1)
    .fetch_all(state.pool())
    .await?;
    let truncated = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let rows: Vec<(String, i64, f64)> = rows
        .into_iter()
        .rev()
        .map(|(metric, ts, value)| (metric, ts.timestamp_millis(), value))
        .collect();
    let count = rows.len();
    let tenant = key.tenant_id.to_string();
    let name = machine.clone();
    // Detection is CPU work: off the async threads.
    let alerts = tokio::task::spawn_blocking(move || run(&tenant, &name, &rule, &rows))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Preview {
        machine,
        from: format_instant(from),
        to: format_instant(to),
        readings: count,
        truncated,
        alerts: alerts.iter().map(Would::view).collect(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use serde_json::json;

    use super::*;

    fn rule() -> Rule {
        rule_from(
            json!({"name": "hot", "when": {"metric": "temp", "detector": "above", "value": 90}, "clear_after": 2}),
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_threshold_rule_raises_once_per_excursion_and_resolves() {
        let values = [20.0, 95.0, 96.0, 20.0, 20.0, 20.0, 99.0, 20.0];
        let rows: Vec<(String, i64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| ("temp".to_owned(), 1_000 * i as i64, *v))
            .collect();
        let alerts = run("t", "m", &rule(), &rows);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].raised_at, 1_000);
        assert_eq!(alerts[0].resolved_at, Some(4_000));
        assert_eq!(alerts[1].raised_at, 6_000);
        assert_eq!(alerts[1].observed, 99.0);
        assert!(alerts[1].explanation.contains("temp"), "{alerts:?}");
    }
}
