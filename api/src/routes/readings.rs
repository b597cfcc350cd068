//! `GET /api/v1/machines/{machine}/readings`: raw readings or time-bucketed aggregates, the same as CSV
//! (`readings.csv`), and the newest reading of each metric (`latest`).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::routes::paging::{instant, machine_id, CsvDocument};
use crate::routes::series::{self, Bucket, BucketSource, Range, RawRow};
use crate::state::AppState;
use crate::time::format_instant;

/// The readings route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/machines/{machine}/readings", get(query))
        .route("/machines/{machine}/readings.csv", get(export_csv))
        .route("/machines/{machine}/latest", get(latest))
}

/// Query string of the readings query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadingsQuery {
    /// Only this metric; all metrics when absent.
    pub metric: Option<String>,
    /// Inclusive lower bound (RFC 3339 or epoch ms).
    #[param(value_type = Option<super::bodies::Instant>)]
    pub from: Option<String>,
    /// Exclusive upper bound (RFC 3339 or epoch ms).
    #[param(value_type = Option<super::bodies::Instant>)]
    pub to: Option<String>,
    /// Bucket width such as `30s`, `1m`, `15m`, `1h`, `1d`: aggregates instead of raw rows.
    pub bucket: Option<String>,
    /// Most rows (or buckets) returned.
    pub limit: Option<i64>,
}

/// The answer to the readings query: raw readings, or buckets when `bucket` is given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Readings {
    Raw(RawPage),
    Buckets(BucketPage),
}

/// Raw readings, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RawPage {
    pub readings: Vec<RawReading>,
    /// The limit cut the rows.
    pub truncated: bool,
}

/// One reading.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RawReading {
    pub metric: String,
    /// Event time (RFC 3339).
    #[schema(format = DateTime)]
    pub ts: String,
    pub value: f64,
    /// The source's quality flag (`good`, `uncertain`, `bad`); absent when the reading has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub quality: Option<String>,
}

/// Buckets of readings, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BucketPage {
    pub buckets: Vec<BucketView>,
    /// The width of a bucket.
    pub bucket_seconds: i64,
    /// The limit cut the buckets.
    pub truncated: bool,
}

/// One metric's readings over one bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BucketView {
    pub metric: String,
    /// The bucket's start (RFC 3339).
    #[schema(format = DateTime)]
    pub ts: String,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub count: i64,
    /// The newest reading's value.
    pub last: f64,
}

/// The newest reading of each metric of a machine.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Latest {
    /// The machine's name.
    pub machine: String,
    pub metrics: Vec<LatestReading>,
}

/// A metric's newest reading.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LatestReading {
    pub metric: String,
    /// Event time (RFC 3339).
    #[schema(format = DateTime)]
    pub ts: String,
    pub value: f64,
    /// The source's quality flag; null when the reading has none.
    pub quality: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/machines/{machine}/readings", tag = "machines", params(("machine" = String, Path, description = "Machine name"), ReadingsQuery), responses((status = 200, description = "Raw readings or buckets", body = Readings), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn query(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> Result<Json<Readings>, ApiError> {
    let request = resolve(&state, &key, &machine, &q).await?;
    let (rows, truncated) = fetch(&state, key.tenant_id, &request).await?;
    Ok(Json(match rows {
        Rows::Raw(rows) => Readings::Raw(RawPage {
            readings: rows
                .into_iter()
                .map(|r| RawReading {
                    metric: r.metric,
                    ts: format_instant(r.ts),
                    value: r.value,
                    quality: r.quality,
                })
                .collect(),
            truncated,
        }),
        Rows::Buckets(rows, seconds) => Readings::Buckets(BucketPage {
            buckets: rows
                .into_iter()
                .map(|b| BucketView {
                    metric: b.metric,
                    ts: format_instant(b.bucket),
                    min: b.min,
                    max: b.max,
                    avg: b.avg,
                    count: b.count,
                    last: b.last,
                })
                .collect(),
            bucket_seconds: seconds,
            truncated,
        }),
    }))
}

#[utoipa::path(get, path = "/api/v1/machines/{machine}/readings.csv", tag = "machines", params(("machine" = String, Path, description = "Machine name"), ReadingsQuery), responses((status = 200, description = "The same rows as the readings query, as CSV (`metric,ts,value,quality` or `metric,ts,min,max,avg,count,last`); `X-Truncated: true` when the limit cut them", body = super::bodies::Csv, content_type = "text/csv"), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn export_csv(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> Result<Response, ApiError> {
    let request = resolve(&state, &key, &machine, &q).await?;
    let (rows, truncated) = fetch(&state, key.tenant_id, &request).await?;
    let mut out = CsvDocument::default();
    match rows {
        Rows::Raw(rows) => {
            out.row(["metric", "ts", "value", "quality"]);
            for r in rows {
                out.row([
                    r.metric,
                    format_instant(r.ts),
                    r.value.to_string(),
                    r.quality.unwrap_or_default(),
                ]);
            }
        }
        Rows::Buckets(rows, _) => {
            out.row(["metric", "ts", "min", "max", "avg", "count", "last"]);
            for b in rows {
                out.row([
                    b.metric,
                    format_instant(b.bucket),
                    b.min.to_string(),
                    b.max.to_string(),
                    b.avg.to_string(),
                    b.count.to_string(),
                    b.last.to_string(),
                ]);
            }
        }
    }
    let mut response = csv_response(out.finish(), &format!("{machine}-readings.csv"));
    if truncated {
        response
            .headers_mut()
            .insert("x-truncated", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A CSV attachment named `filename`.
pub fn csv_response(body: String, filename: &str) -> Response {
    let disposition = format!(
        "attachment; filename=\"{}\"",
        filename.replace(
            |c: char| !c.is_ascii_alphanumeric() && !"._-".contains(c),
            "_"
        )
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/machines/{machine}/latest", tag = "machines", params(("machine" = String, Path, description = "Machine name")), responses((status = 200, description = "`{\"machine\", \"metrics\": [{\"metric\", \"ts\", \"value\", \"quality\"}]}`: the newest reading of each metric, by event time", body = Latest), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn latest(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
) -> Result<Json<Latest>, ApiError> {
    key.require(Permission::Read)?;
    let machine_id = machine_id(&state, &key, &machine).await?;
    let rows = series::latest(state.pool(), key.tenant_id, machine_id).await?;
    let metrics = rows
        .into_iter()
        .map(|r| LatestReading {
            metric: r.metric,
            ts: format_instant(r.ts),
            value: r.value,
            quality: r.quality,
        })
        .collect();
    Ok(Json(Latest { machine, metrics }))
}

/// A validated readings request.
struct Request {
    machine_id: Uuid,
    metric: Option<String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_seconds: Option<i64>,
    limit: i64,
}

async fn resolve(
    state: &AppState,
    key: &Caller,
    machine: &str,
    q: &ReadingsQuery,
) -> Result<Request, ApiError> {
    key.require(Permission::Read)?;
    let machine_id = machine_id(state, key, machine).await?;
    let from = instant("from", q.from.as_deref())?.unwrap_or(DateTime::UNIX_EPOCH);
    let to = instant("to", q.to.as_deref())?.unwrap_or(DateTime::<Utc>::MAX_UTC);
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
    let bucket_seconds = q
        .bucket
        .as_deref()
        .map(|w| parse_bucket(w).map_err(ApiError::validation))
        .transpose()?;
    Ok(Request {
        machine_id,
        metric: q.metric.clone(),
        from,
        to,
        bucket_seconds,
        limit,
    })
}

enum Rows {
    Raw(Vec<RawRow>),
    Buckets(Vec<Bucket>, i64),
}

/// The rows of `r` and whether the limit cut them. Buckets come from the continuous aggregates where the
/// width allows (see [`series`]).
async fn fetch(state: &AppState, tenant: Uuid, r: &Request) -> Result<(Rows, bool), ApiError> {
    let pool = state.pool();
    let range = Range {
        tenant,
        machine: r.machine_id,
        metric: r.metric.clone(),
        from: r.from,
        to: r.to,
        limit: r.limit + 1,
    };
    let limit = r.limit as usize;
    match r.bucket_seconds {
        None => {
            let mut rows = series::raw(pool, &range).await?;
            let truncated = rows.len() > limit;
            rows.truncate(limit);
            Ok((Rows::Raw(rows), truncated))
        }
        Some(seconds) => {
            let source =
                BucketSource::for_width(seconds, series::aggregates_available(pool).await?);
            let mut rows = series::buckets(pool, &range, seconds, source).await?;
            let truncated = rows.len() > limit;
            rows.truncate(limit);
            Ok((Rows::Buckets(rows, seconds), truncated))
        }
    }
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
