//! Reading the readings store: a range of raw rows, buckets of any width, the newest reading of each
//! metric. Shared by the readings routes and `haltless bench-queries`.
//!
//! Buckets are computed from the continuous aggregates `readings_1h` and `readings_1m` (migration 0015)
//! when `readings` is a TimescaleDB hypertable and the width is a whole number of hours or minutes, else
//! from raw rows. A bucket of the aggregates holds min, max, sum, count and the last value with its time,
//! so wider buckets made of whole ones equal those computed from raw rows; the parts of `[from, to)` that
//! do not cover a whole aggregate bucket (its ragged ends) are read raw and merged in.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A machine's readings in `[from, to)`, of one metric or all.
#[derive(Debug, Clone)]
pub struct Range {
    /// The tenant.
    pub tenant: Uuid,
    /// The machine.
    pub machine: Uuid,
    /// Only this metric; all when `None`.
    pub metric: Option<String>,
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
    /// Most rows (or buckets) returned.
    pub limit: i64,
}

/// One stored reading.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RawRow {
    /// Metric.
    pub metric: String,
    /// Event time.
    pub ts: DateTime<Utc>,
    /// Value.
    pub value: f64,
    /// Quality, when the source gave one.
    pub quality: Option<String>,
}

/// One aggregated bucket of one metric.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Bucket {
    /// Metric.
    pub metric: String,
    /// The bucket's start.
    pub bucket: DateTime<Utc>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value.
    pub avg: f64,
    /// Readings in the bucket.
    pub count: i64,
    /// The value of the bucket's newest reading.
    pub last: f64,
}

/// Where buckets are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketSource {
    /// The raw rows.
    Raw,
    /// The 1-minute continuous aggregate.
    Minutes,
    /// The 1-hour continuous aggregate.
    Hours,
}

impl BucketSource {
    /// The coarsest source whose buckets tile buckets of `seconds`: hourly for whole hours, the minute
    /// aggregate for whole minutes, else raw rows. Buckets start at whole multiples of their width since
    /// 2000-01-01 UTC, so a whole number of hours (minutes) always covers whole hours (minutes).
    pub fn for_width(seconds: i64, aggregates: bool) -> Self {
        match seconds {
            _ if !aggregates => Self::Raw,
            s if s % 3_600 == 0 => Self::Hours,
            s if s % 60 == 0 => Self::Minutes,
            _ => Self::Raw,
        }
    }

    /// The aggregate's view and its bucket width in seconds.
    fn aggregate(self) -> Option<(&'static str, i64)> {
        match self {
            Self::Raw => None,
            Self::Minutes => Some(("readings_1m", 60)),
            Self::Hours => Some(("readings_1h", 3_600)),
        }
    }
}

/// Whether the continuous aggregates exist (readings is a hypertable).
pub async fn aggregates_available(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_regclass('readings_1h') IS NOT NULL AND to_regclass('readings_1m') IS NOT NULL",
    )
    .fetch_one(pool)
    .await
}

/// The ids and metric names of the series `r` reads (migration 0029). Queries filter readings and the
/// aggregates by these ids as a constant array: a join would not reach into the aggregates' real-time part,
/// which would then aggregate every series' newest rows before joining.
async fn series_of(pool: &PgPool, r: &Range) -> Result<(Vec<i32>, Vec<String>), sqlx::Error> {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT id, metric FROM reading_series
         WHERE tenant_id = $1 AND machine_id = $2 AND ($3::text IS NULL OR metric = $3)",
    )
    .bind(r.tenant)
    .bind(r.machine)
    .bind(&r.metric)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().unzip())
}

/// The raw rows of `r`, ordered by time, then metric.
pub async fn raw(pool: &PgPool, r: &Range) -> Result<Vec<RawRow>, sqlx::Error> {
    let (ids, metrics) = series_of(pool, r).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT s.metric, r.ts, r.value, r.quality
         FROM readings r JOIN unnest($1::int[], $2::text[]) AS s (id, metric) ON s.id = r.series_id
         WHERE r.series_id = ANY($1) AND r.ts >= $3 AND r.ts < $4
         ORDER BY r.ts, s.metric LIMIT $5",
    )
    .bind(&ids)
    .bind(&metrics)
    .bind(r.from)
    .bind(r.to)
    .bind(r.limit)
    .fetch_all(pool)
    .await
}

/// The buckets of `seconds` over `r` from `source`, ordered by bucket, then metric.
pub async fn buckets(
    pool: &PgPool,
    r: &Range,
    seconds: i64,
    source: BucketSource,
) -> Result<Vec<Bucket>, sqlx::Error> {
    let (ids, metrics) = series_of(pool, r).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let named = "JOIN unnest($1::int[], $2::text[]) AS s (id, metric) ON s.id = r.series_id";
    let Some((view, (inner_from, inner_to))) = source
        .aggregate()
        .and_then(|(view, width)| Some((view, whole_buckets(r.from, r.to, width)?)))
    else {
        // date_bin works on plain PostgreSQL and TimescaleDB alike (time_bucket would not).
        return sqlx::query_as(&format!(
            "SELECT s.metric, date_bin(make_interval(secs => $5), r.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
                    min(r.value) AS min, max(r.value) AS max, avg(r.value) AS avg, count(*) AS count,
                    (array_agg(r.value ORDER BY r.ts DESC))[1] AS last
             FROM readings r {named}
             WHERE r.series_id = ANY($1) AND r.ts >= $3 AND r.ts < $4
             GROUP BY s.metric, bucket ORDER BY bucket, s.metric LIMIT $6",
        ))
        .bind(&ids)
        .bind(&metrics)
        .bind(r.from)
        .bind(r.to)
        .bind(seconds as f64)
        .bind(r.limit)
        .fetch_all(pool)
        .await;
    };
    // The aggregate's whole buckets in [inner_from, inner_to), the raw rows of the two ragged ends.
    sqlx::query_as(&format!(
        "WITH parts AS (
             SELECT s.metric, r.bucket AS ts, r.min, r.max, r.sum, r.count, r.last, r.last_ts FROM {view} r {named}
             WHERE r.series_id = ANY($1) AND r.bucket >= $3 AND r.bucket < $4
             UNION ALL
             SELECT s.metric, r.ts, r.value, r.value, r.value, 1::bigint, r.value, r.ts FROM readings r {named}
             WHERE r.series_id = ANY($1) AND r.ts >= $5 AND r.ts < $3
             UNION ALL
             SELECT s.metric, r.ts, r.value, r.value, r.value, 1::bigint, r.value, r.ts FROM readings r {named}
             WHERE r.series_id = ANY($1) AND r.ts >= $4 AND r.ts < $6
         )
         SELECT metric, date_bin(make_interval(secs => $7), ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
                min(min) AS min, max(max) AS max, sum(sum) / sum(count)::float8 AS avg,
                sum(count)::bigint AS count, (array_agg(last ORDER BY last_ts DESC))[1] AS last
         FROM parts GROUP BY metric, bucket ORDER BY bucket, metric LIMIT $8"
    ))
    .bind(&ids)
    .bind(&metrics)
    .bind(inner_from)
    .bind(inner_to)
    .bind(r.from)
    .bind(r.to)
    .bind(seconds as f64)
    .bind(r.limit)
    .fetch_all(pool)
    .await
}

/// The newest reading of each metric of a machine, by event time, ordered by metric.
pub async fn latest(
    pool: &PgPool,
    tenant: Uuid,
    machine: Uuid,
) -> Result<Vec<RawRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT metric, ts, value, quality FROM haltless_latest_readings($1, $2) ORDER BY metric",
    )
    .bind(tenant)
    .bind(machine)
    .fetch_all(pool)
    .await
}

/// The part of `[from, to)` made of whole buckets of `width` seconds, if any.
fn whole_buckets(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    width: i64,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = from.timestamp();
    let ragged = start.rem_euclid(width) != 0 || from.timestamp_subsec_nanos() != 0;
    let first = (start.div_euclid(width) + i64::from(ragged)) * width;
    let end = to.timestamp().div_euclid(width) * width;
    (first < end).then(|| {
        Some((
            DateTime::from_timestamp(first, 0)?,
            DateTime::from_timestamp(end, 0)?,
        ))
    })?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn picks_the_coarsest_aggregate_that_tiles_the_width() {
        let pick = |s| BucketSource::for_width(s, true);
        assert_eq!(pick(3_600), BucketSource::Hours);
        assert_eq!(pick(86_400), BucketSource::Hours);
        assert_eq!(pick(5_400), BucketSource::Minutes, "90 minutes");
        assert_eq!(pick(60), BucketSource::Minutes);
        assert_eq!(pick(900), BucketSource::Minutes);
        assert_eq!(pick(90), BucketSource::Raw, "90 seconds");
        assert_eq!(pick(30), BucketSource::Raw);
        assert_eq!(BucketSource::for_width(3_600, false), BucketSource::Raw);
    }

    #[test]
    fn whole_buckets_leave_out_the_ragged_ends() {
        assert_eq!(
            whole_buckets(
                at("2026-11-01T10:20:00Z"),
                at("2026-11-03T07:59:59Z"),
                3_600
            ),
            Some((at("2026-11-01T11:00:00Z"), at("2026-11-03T07:00:00Z")))
        );
        assert_eq!(
            whole_buckets(
                at("2026-11-01T10:00:00Z"),
                at("2026-11-01T12:00:00Z"),
                3_600
            ),
            Some((at("2026-11-01T10:00:00Z"), at("2026-11-01T12:00:00Z")))
        );
        assert_eq!(
            whole_buckets(
                at("2026-11-01T10:00:00.001Z"),
                at("2026-11-01T10:02:00Z"),
                60
            ),
            Some((at("2026-11-01T10:01:00Z"), at("2026-11-01T10:02:00Z")))
        );
        assert_eq!(
            whole_buckets(
                at("2026-11-01T10:20:00Z"),
                at("2026-11-01T10:50:00Z"),
                3_600
            ),
            None
        );
        assert_eq!(
            whole_buckets(DateTime::UNIX_EPOCH, DateTime::<Utc>::MAX_UTC, 3_600).map(|w| w.0),
            Some(DateTime::UNIX_EPOCH)
        );
    }
}
