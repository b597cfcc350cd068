//! The readings store on TimescaleDB (hypertable, continuous aggregates) and on plain partitions (users
//! without the extension): the readings query answers the same, bucket for bucket, whichever store and
//! whichever source (raw rows, the 1-minute or the 1-hour aggregate, materialized or real-time), and a
//! partitioned table with rows becomes a hypertable with the same rows.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{call_while_busy, refresh_aggregates, Isolation, Storage, TestApp};
use haltless_api::routes::series::{self, BucketSource, Range};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// 2026-11-20T00:07:13Z: the data starts off the hour and off the minute.
const T0_MS: i64 = 1_795_133_233_000;
const STEP_MS: i64 = 10_000;
/// Three days of a reading every 10 s, per metric.
const PER_METRIC: i64 = 3 * 8_640;
const METRICS: [&str; 2] = ["rpm", "temp"];

/// The readings: (metric, epoch ms, value); values are quarters, so every sum is exact.
fn dataset() -> Vec<(&'static str, i64, f64)> {
    let mut rows = Vec::new();
    for (k, metric) in METRICS.iter().enumerate() {
        for i in 0..PER_METRIC {
            let value = ((i * 7 + k as i64 * 3) % 97) as f64 / 4.0 - 3.0;
            rows.push((*metric, T0_MS + i * STEP_MS, value));
        }
    }
    rows
}

async fn insert(pool: &PgPool, tenant: Uuid, machine: Uuid, rows: &[(&str, i64, f64)]) {
    let metrics: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let ts: Vec<DateTime<Utc>> = rows
        .iter()
        .map(|r| DateTime::from_timestamp_millis(r.1).unwrap())
        .collect();
    let values: Vec<f64> = rows.iter().map(|r| r.2).collect();
    sqlx::query(
        "INSERT INTO named_readings (tenant_id, machine_id, metric, ts, value, quality, ingested_at)
         SELECT $1, $2, m, t, v, NULL, now() FROM unnest($3::text[], $4::timestamptz[], $5::float8[]) AS r(m, t, v)",
    )
    .bind(tenant)
    .bind(machine)
    .bind(&metrics)
    .bind(&ts)
    .bind(&values)
    .execute(pool)
    .await
    .unwrap();
}

/// A bucket as (start ms, metric, min, max, avg, count, last).
type BucketTuple = (i64, String, f64, f64, f64, i64, f64);
/// A bucket being summed up: (min, max, sum, count, newest ms, its value).
type Partial = (f64, f64, f64, i64, i64, f64);

/// The buckets of `width_s` over `[from_ms, to_ms)`, computed here from the dataset.
fn expected(
    rows: &[(&str, i64, f64)],
    width_s: i64,
    from_ms: i64,
    to_ms: i64,
    metric: Option<&str>,
) -> Vec<BucketTuple> {
    const ORIGIN_MS: i64 = 946_684_800_000; // 2000-01-01T00:00:00Z, the API's bucket origin
    let w = width_s * 1_000;
    let mut acc: BTreeMap<(i64, String), Partial> = BTreeMap::new();
    for &(m, ts, v) in rows {
        if ts < from_ms || ts >= to_ms || metric.is_some_and(|want| want != m) {
            continue;
        }
        let bucket = ORIGIN_MS + (ts - ORIGIN_MS).div_euclid(w) * w;
        let e = acc.entry((bucket, m.to_owned())).or_insert((
            f64::MAX,
            f64::MIN,
            0.0,
            0,
            i64::MIN,
            0.0,
        ));
        e.0 = e.0.min(v);
        e.1 = e.1.max(v);
        e.2 += v;
        e.3 += 1;
        if ts > e.4 {
            (e.4, e.5) = (ts, v);
        }
    }
    acc.into_iter()
        .map(|((b, m), (min, max, sum, n, _, last))| (b, m, min, max, sum / n as f64, n, last))
        .collect()
}

fn iso_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn as_tuples(body: &Value) -> Vec<BucketTuple> {
    body["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets: {body}"))
        .iter()
        .map(|b| {
            let ts = DateTime::parse_from_rfc3339(b["ts"].as_str().unwrap()).unwrap();
            (
                ts.timestamp_millis(),
                b["metric"].as_str().unwrap().to_owned(),
                b["min"].as_f64().unwrap(),
                b["max"].as_f64().unwrap(),
                b["avg"].as_f64().unwrap(),
                b["count"].as_i64().unwrap(),
                b["last"].as_f64().unwrap(),
            )
        })
        .collect()
}

async fn stored_as(pool: &PgPool) -> (bool, bool) {
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                        WHERE c.relname = 'readings'),
                to_regclass('readings_1h') IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Whether `readings` has its BRIN index on time (migration 0027), which the aggregates' refresh scans.
async fn has_time_index(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                        JOIN pg_am a ON a.oid = c.relam
                        WHERE i.indrelid = 'readings'::regclass AND a.amname = 'brin')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn readings_queries_answer_the_same_on_timescaledb() {
    readings_queries_answer_the_same(Storage::Default).await;
}

#[tokio::test]
async fn readings_queries_answer_the_same_on_plain_partitions() {
    readings_queries_answer_the_same(Storage::Partitions).await;
}

async fn readings_queries_answer_the_same(storage: Storage) {
    let app = TestApp::spawn_storage(storage, &["m-1"], |_| {}).await;
    let pool = &app.iso.pool;
    let (partitioned, aggregates) = stored_as(pool).await;
    assert_eq!(
        (partitioned, aggregates),
        match storage {
            Storage::Default => (false, true),
            Storage::Partitions => (true, false),
        },
        "compose/ installs TimescaleDB, so the default store is the hypertable with its aggregates"
    );
    assert!(has_time_index(pool).await, "readings has its index on time");
    let machine: Uuid = sqlx::query_scalar("SELECT id FROM machines WHERE tenant_id = $1")
        .bind(app.tenant)
        .fetch_one(pool)
        .await
        .unwrap();
    if storage == Storage::Default {
        // Only this test's refreshes change the aggregates: the refresh policies wait.
        sqlx::query(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
             WHERE proc_name = 'haltless_refresh_readings_aggregate'",
        )
        .execute(pool)
        .await
        .unwrap();
    }
    let rows = dataset();
    insert(pool, app.tenant, machine, &rows).await;
    // Another tenant's readings of a machine with the same id must never count.
    insert(pool, Uuid::new_v4(), machine, &rows[..1_000]).await;
    if storage == Storage::Default {
        // The first two days materialized, the third only seen through real-time aggregation.
        refresh_aggregates(pool, "'2026-11-22T00:00:00Z'").await;
    }

    let end = T0_MS + PER_METRIC * STEP_MS;
    let ragged_from = T0_MS + 17 * 60_000 + 23_500;
    let ragged_to = T0_MS + 2 * 86_400_000 + 5 * 3_600_000 + 187_000;
    let cases: Vec<(&str, i64, i64, i64, Option<&str>)> = vec![
        ("1h", 3_600, 0, i64::MAX, None),
        ("1h", 3_600, ragged_from, ragged_to, None),
        ("1d", 86_400, ragged_from, ragged_to, Some("temp")),
        ("2h", 7_200, T0_MS - 3_600_000, end + 3_600_000, None),
        ("90m", 5_400, ragged_from, ragged_to, None),
        ("15m", 900, 0, i64::MAX, Some("rpm")),
        ("1m", 60, ragged_from, ragged_from + 3 * 3_600_000, None),
        ("30s", 30, ragged_from, ragged_from + 3_600_000, None),
    ];
    for (bucket, width, from, to, metric) in cases {
        let mut q = format!("/api/v1/machines/m-1/readings?bucket={bucket}&limit=100000");
        if from > 0 {
            q += &format!("&from={}&to={}", iso_ms(from), iso_ms(to));
        }
        if let Some(m) = metric {
            q += &format!("&metric={m}");
        }
        let (status, body) = app.get(&q).await;
        assert_eq!(status, 200, "{q}: {body}");
        let want = expected(&rows, width, from, to, metric);
        assert!(!want.is_empty());
        assert_eq!(as_tuples(&body), want, "{q}");
    }

    let (_, latest) = app.get("/api/v1/machines/m-1/latest").await;
    let last = |m: &str| {
        let r = rows
            .iter()
            .filter(|r| r.0 == m)
            .max_by_key(|r| r.1)
            .unwrap();
        (iso_ms(r.1), r.2)
    };
    for m in latest["metrics"].as_array().unwrap() {
        let (ts, value) = last(m["metric"].as_str().unwrap());
        assert_eq!(
            (m["ts"].as_str().unwrap(), m["value"].as_f64().unwrap()),
            (ts.as_str(), value)
        );
    }
    assert_eq!(latest["metrics"].as_array().unwrap().len(), 2);

    if storage == Storage::Default {
        // The hourly buckets really come from the aggregate: raw rows deleted behind its back (no
        // refresh) still count there, until a refresh recomputes the changed hour.
        let hour = "from=2026-11-20T05:00:00Z&to=2026-11-20T06:00:00Z";
        sqlx::query(
            "DELETE FROM readings WHERE series_id IN (SELECT id FROM reading_series WHERE tenant_id = $1)
               AND ts >= '2026-11-20T05:00:00Z' AND ts < '2026-11-20T06:00:00Z'",
        )
        .bind(app.tenant)
        .execute(pool)
        .await
        .unwrap();
        let count = |body: &Value| -> i64 {
            body["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["count"].as_i64().unwrap())
                .sum()
        };
        let (_, hourly) = app
            .get(&format!("/api/v1/machines/m-1/readings?bucket=1h&{hour}"))
            .await;
        assert_eq!(
            count(&hourly),
            720,
            "2 metrics × 360 readings, from the aggregate"
        );
        let (_, raw) = app
            .get(&format!("/api/v1/machines/m-1/readings?bucket=30s&{hour}"))
            .await;
        assert_eq!(count(&raw), 0, "the raw path sees the deletion");
        refresh_aggregates(pool, "'2026-11-22T00:00:00Z'").await;
        let (_, hourly) = app
            .get(&format!("/api/v1/machines/m-1/readings?bucket=1h&{hour}"))
            .await;
        assert_eq!(count(&hourly), 0, "a refresh recomputes the hour");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_partitioned_table_with_rows_becomes_a_hypertable_with_the_same_rows() {
    let iso = Isolation::create_with_storage(Storage::Partitions).await;
    let pool = &iso.pool;
    assert_eq!(stored_as(pool).await, (true, false));
    let (tenant, machine) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = dataset();
    insert(pool, tenant, machine, &rows).await;
    let range = Range {
        tenant,
        machine,
        metric: None,
        from: DateTime::UNIX_EPOCH,
        to: DateTime::<Utc>::MAX_UTC,
        limit: 100_000,
    };
    let raw_before = series::raw(pool, &range).await.unwrap();
    let hours_before = series::buckets(pool, &range, 3_600, BucketSource::Raw)
        .await
        .unwrap();
    assert_eq!(raw_before.len(), rows.len());

    // What migration 0014 does on a database made before TimescaleDB was installed.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET haltless.readings_storage = 'timescaledb'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let (storage, aggregates): (String, bool) =
        sqlx::query_as("SELECT haltless_readings_storage(), haltless_readings_aggregates()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    drop(conn);
    assert_eq!((storage.as_str(), aggregates), ("timescaledb", true));
    assert_eq!(stored_as(pool).await, (false, true));
    assert!(
        has_time_index(pool).await,
        "the new hypertable has the index on time too"
    );
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM show_chunks('readings')")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(chunks, 4, "1-day chunks over 3 days starting off midnight");
    assert_eq!(series::raw(pool, &range).await.unwrap(), raw_before);
    let source = BucketSource::for_width(3_600, true);
    assert_eq!(source, BucketSource::Hours);
    assert_eq!(
        series::buckets(pool, &range, 3_600, source).await.unwrap(),
        hours_before,
        "hourly buckets through real-time aggregation, before any refresh"
    );
    refresh_aggregates(pool, "'2026-11-24T00:00:00Z'").await;
    assert_eq!(
        series::buckets(pool, &range, 3_600, source).await.unwrap(),
        hours_before,
        "and materialized"
    );
    iso.drop().await;
}

#[tokio::test]
async fn the_refresh_jobs_summarize_the_time_index_and_materialize_every_bucket() {
    let iso = Isolation::create_with_storage(Storage::Default).await;
    let pool = &iso.pool;
    assert_eq!(stored_as(pool).await, (false, true));
    // Migration 0028: our job refreshes each aggregate, TimescaleDB's policy none.
    let jobs: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT proc_name::text, coalesce(config ->> 'view', hypertable_name::text), schedule_interval::text
         FROM timescaledb_information.jobs
         WHERE proc_name IN ('haltless_refresh_readings_aggregate', 'policy_refresh_continuous_aggregate')
         ORDER BY 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let job = |view: &str, every: &str| {
        (
            "haltless_refresh_readings_aggregate".to_owned(),
            view.to_owned(),
            every.to_owned(),
        )
    };
    assert_eq!(
        jobs,
        vec![
            job("readings_1h", "00:10:00"),
            job("readings_1m", "00:01:00")
        ]
    );
    // Only this test's runs refresh.
    sqlx::query(
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
         WHERE proc_name = 'haltless_refresh_readings_aggregate'",
    )
    .execute(pool)
    .await
    .unwrap();

    let (tenant, machine) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = dataset();
    insert(pool, tenant, machine, &rows).await;
    let unsummarized = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(brin_summarize_new_values(i.indexrelid::regclass)), 0)::bigint
             FROM pg_inherits h JOIN pg_index i ON i.indrelid = h.inhrelid
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam AND a.amname = 'brin'
             WHERE h.inhparent = 'readings'::regclass",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    // Materialized rows, read from each aggregate's own hypertable (its view adds the raw rows above the
    // watermark, so it answers the same before and after a refresh).
    let materialized = |view: &'static str| async move {
        let table: String = sqlx::query_scalar(
            "SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
             FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
        )
        .bind(view)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query_scalar::<_, Option<i64>>(&format!(
            "SELECT sum(count)::bigint FROM {table}
             WHERE series_id IN (SELECT id FROM reading_series WHERE tenant_id = $1)"
        ))
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap()
        .unwrap_or(0)
    };
    assert_eq!(materialized("readings_1m").await, 0);

    for view in ["readings_1m", "readings_1h"] {
        let job: i32 = sqlx::query_scalar(
            "SELECT job_id FROM timescaledb_information.jobs
             WHERE proc_name = 'haltless_refresh_readings_aggregate' AND config ->> 'view' = $1",
        )
        .bind(view)
        .fetch_one(pool)
        .await
        .unwrap();
        // A scheduled run that began before the jobs were paused may hold the aggregate.
        call_while_busy(pool, &format!("CALL run_job({job})")).await;
    }
    assert_eq!(
        unsummarized().await,
        0,
        "the job summarized every page range of the index on time"
    );
    let all = rows.len() as i64;
    assert_eq!(
        materialized("readings_1m").await,
        all,
        "every reading of the past is in a materialized minute"
    );
    assert_eq!(
        materialized("readings_1h").await,
        all,
        "and in a materialized hour"
    );
    iso.drop().await;
}

#[tokio::test]
async fn a_hypertable_made_plain_partitions_again_keeps_no_refresh_job() {
    let iso = Isolation::create_with_storage(Storage::Default).await;
    let pool = &iso.pool;
    let jobs = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM timescaledb_information.jobs
             WHERE proc_name = 'haltless_refresh_readings_aggregate'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    assert_eq!(jobs().await, 2);
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET haltless.readings_storage = 'partitions'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let storage: String = sqlx::query_scalar("SELECT haltless_readings_storage()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(storage, "partitions");
    assert_eq!(stored_as(pool).await, (true, false));
    assert_eq!(
        jobs().await,
        0,
        "the aggregates went, and their refresh jobs with them"
    );
    iso.drop().await;
}
