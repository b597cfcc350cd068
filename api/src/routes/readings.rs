//! `GET /api/v1/machines/{machine}/readings`: raw readings or time-bucketed aggregates.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::time::{format_instant, parse_instant};

/// The readings route.
pub fn router() -> Router<AppState> {
    Router::new().route("/machines/{machine}/readings", get(query))
}

/// Query string of the readings query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadingsQuery {
    /// Only this metric; all metrics when absent.
    pub metric: Option<String>,
    /// Inclusive lower bound (RFC 3339 or epoch ms).
    pub from: Option<String>,
    /// Exclusive upper bound (RFC 3339 or epoch ms).
    pub to: Option<String>,
    /// Bucket width such as `30s`, `1m`, `15m`, `1h`, `1d`: aggregates instead of raw rows.
    pub bucket: Option<String>,
    /// Most rows (or buckets) returned.
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/machines/{machine}/readings", tag = "machines", params(("machine" = String, Path, description = "Machine name"), ReadingsQuery), responses((status = 200, description = "Raw readings or buckets"), (status = 404, description = "Not in the caller's tenant", body = crate::openapi::ErrorBody), (status = 422, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::openapi::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn query(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Read)?;
    let machine_id: Uuid =
        sqlx::query_scalar("SELECT id FROM machines WHERE tenant_id = $1 AND name = $2")
            .bind(key.tenant_id)
            .bind(&machine)
            .fetch_optional(state.pool())
            .await?
            .filter(|id| key.may_access(*id))
            .ok_or_else(|| ApiError::not_found(format!("no machine named `{machine}`")))?;
    let bound = |name: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        v.as_deref()
            .map(|s| parse_instant(s).map_err(|e| ApiError::validation(format!("{name}: {e}"))))
            .transpose()
    };
    let from = bound("from", &q.from)?.unwrap_or(DateTime::UNIX_EPOCH);
    let to = bound("to", &q.to)?.unwrap_or(DateTime::<Utc>::MAX_UTC);
    if from >= to {
        return Err(ApiError::validation("`from` must lie before `to`"));
    }
    let limits = &state.settings().query;
    let limit = q.limit.unwrap_or(limits.default_limit);
    if !(1..=limits.max_limit).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit must lie between 1 and {}",
            limits.max_limit
        )));
    }
    match q.bucket.as_deref() {
        None => {
            raw(
                &state,
                key.tenant_id,
                machine_id,
                q.metric.as_deref(),
                from,
                to,
                limit,
            )
            .await
        }
        Some(width) => {
            let seconds = parse_bucket(width).map_err(ApiError::validation)?;
            bucketed(
                &state,
                key.tenant_id,
                machine_id,
                q.metric.as_deref(),
                from,
                to,
                seconds,
                limit,
            )
            .await
        }
    }
}

async fn raw(
    state: &AppState,
    tenant: Uuid,
    machine: Uuid,
    metric: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Json<Value>, ApiError> {
    let rows: Vec<(String, DateTime<Utc>, f64, Option<String>)> = sqlx::query_as(
        "SELECT metric, ts, value, quality FROM readings
         WHERE tenant_id = $1 AND machine_id = $2 AND ($3::text IS NULL OR metric = $3)
           AND ts >= $4 AND ts < $5
         ORDER BY ts, metric LIMIT $6",
    )
    .bind(tenant)
    .bind(machine)
    .bind(metric)
    .bind(from)
    .bind(to)
    .bind(limit + 1)
    .fetch_all(state.pool())
    .await?;
    let truncated = rows.len() as i64 > limit;
    let readings: Vec<Value> = rows
        .into_iter()
        .take(limit as usize)
        .map(|(metric, ts, value, quality)| {
            let mut row = json!({ "metric": metric, "ts": format_instant(ts), "value": value });
            if let Some(q) = quality {
                row["quality"] = json!(q);
            }
            row
        })
        .collect();
    Ok(Json(
        json!({ "readings": readings, "truncated": truncated }),
    ))
}

/// One aggregated bucket of one metric.
#[derive(sqlx::FromRow)]
struct Bucket {
    metric: String,
    bucket: DateTime<Utc>,
    min: f64,
    max: f64,
    avg: f64,
    count: i64,
    last: f64,
}

#[allow(clippy::too_many_arguments)]
async fn bucketed(
    state: &AppState,
    tenant: Uuid,
    machine: Uuid,
    metric: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    seconds: i64,
    limit: i64,
) -> Result<Json<Value>, ApiError> {
    // date_bin works on plain PostgreSQL and TimescaleDB alike (time_bucket would not).
    let rows: Vec<Bucket> = sqlx::query_as(
        "SELECT metric, date_bin(make_interval(secs => $6), ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
                min(value) AS min, max(value) AS max, avg(value) AS avg, count(*) AS count,
                (array_agg(value ORDER BY ts DESC))[1] AS last
         FROM readings
         WHERE tenant_id = $1 AND machine_id = $2 AND ($3::text IS NULL OR metric = $3)
           AND ts >= $4 AND ts < $5
         GROUP BY metric, bucket ORDER BY bucket, metric LIMIT $7",
    )
    .bind(tenant)
    .bind(machine)
    .bind(metric)
    .bind(from)
    .bind(to)
    .bind(seconds as f64)
    .bind(limit + 1)
    .fetch_all(state.pool())
    .await?;
    let truncated = rows.len() as i64 > limit;
    let buckets: Vec<Value> = rows
        .into_iter()
        .take(limit as usize)
        .map(|b| {
            json!({ "metric": b.metric, "ts": format_instant(b.bucket), "min": b.min, "max": b.max,
                    "avg": b.avg, "count": b.count, "last": b.last })
        })
        .collect();
    Ok(Json(
        json!({ "buckets": buckets, "bucket_seconds": seconds, "truncated": truncated }),
    ))
}

/// Parses a bucket width: a positive whole number with unit `s`, `m`, `h` or `d`.
pub fn parse_bucket(s: &str) -> Result<i64, String> {
    let err =
        || format!("bucket `{s}` must be a positive number followed by s, m, h or d (e.g. 1m)");
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?);
    let n: i64 = digits.parse().map_err(|_| err())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    match n.checked_mul(unit) {
        Some(secs) if secs > 0 && secs <= 366 * 86_400 => Ok(secs),
        _ => Err(err()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_bucket;

    #[test]
    fn parses_bucket_widths() {
        assert_eq!(parse_bucket("30s"), Ok(30));
        assert_eq!(parse_bucket("1m"), Ok(60));
        assert_eq!(parse_bucket("2h"), Ok(7_200));
        assert_eq!(parse_bucket("1d"), Ok(86_400));
        for bad in ["", "m", "0m", "1w", "1.5m", "-1m", "99999d"] {
            assert!(parse_bucket(bad).is_err(), "{bad}");
        }
    }
}
