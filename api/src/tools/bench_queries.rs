//! `haltless bench-queries`: the readings queries the API serves, on a month of 1 Hz data of one machine
//! with 5 metrics (12,960,000 readings by default), loaded with `COPY` into a throw-away database of the
//! configured PostgreSQL (removed afterwards).
//!
//! It prints p50 and p99 latencies of a raw range (one metric, one hour), 1-minute buckets (all metrics,
//! one day), 1-hour buckets (all metrics, the month) and the latest values, in up to four states: raw rows
//! only (before continuous aggregates), with the aggregates materialized, and with chunks older than 3 days
//! compressed as the compression policy leaves them; and the bytes per reading on disk (table and indexes)
//! uncompressed and compressed. With `--storage partitions` it measures the natively partitioned table.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use haltless_processors::projection::readings::SeriesIds;
use sqlx::PgPool;
use uuid::Uuid;

use crate::app::MIGRATOR;
use crate::config::Settings;
use crate::routes::series::{self, BucketSource, Range};
use crate::tools::scratch::ScratchDatabase;

/// Parameters of the query benchmark.
#[derive(Debug, Clone)]
pub struct QueryBenchConfig {
    /// Days of data.
    pub days: u32,
    /// Metrics of the machine, each a reading per second.
    pub metrics: usize,
    /// Runs of each query.
    pub runs: usize,
    /// Store readings in natively partitioned tables instead of TimescaleDB.
    pub partitions: bool,
}

const METRICS: [&str; 8] = [
    "spindle_temp",
    "vibration",
    "rpm",
    "current",
    "pressure",
    "flow",
    "torque",
    "humidity",
];

/// Runs the benchmark and prints its figures; the database it made is removed whatever happens.
pub async fn run(settings: &Settings, config: QueryBenchConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=METRICS.len()).contains(&config.metrics),
        "--metrics must lie between 1 and {}",
        METRICS.len()
    );
    let name = format!("bench_queries_{}", Uuid::new_v4().simple());
    let options: &[(&str, &str)] = if config.partitions {
        &[("haltless.readings_storage", "partitions")]
    } else {
        &[]
    };
    let db = ScratchDatabase::create(settings, &name, options).await?;
    let result = measure(&db.pool, &config).await;
    db.remove().await?;
    result
}

async fn measure(pool: &PgPool, config: &QueryBenchConfig) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations")?;
    let storage: String = sqlx::query_scalar(
        "SELECT CASE WHEN to_regclass('readings_1h') IS NULL THEN 'native partitions' ELSE 'TimescaleDB hypertable' END",
    )
    .fetch_one(pool)
    .await?;
    let aggregates = storage.starts_with("Timescale");
    if aggregates {
        // A controlled experiment: no job refreshes or compresses behind the benchmark's back.
        sqlx::query(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
             WHERE hypertable_name IS NOT NULL OR proc_name = 'haltless_refresh_readings_aggregate'",
        )
            .execute(pool)
            .await?;
    }
    let (tenant, machine) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query("INSERT INTO tenants (id, name, tier) VALUES ($1, 'bench-queries', 'enterprise')")
        .bind(tenant)
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, 'bench-1')")
        .bind(machine)
        .bind(tenant)
        .execute(pool)
        .await?;
    let end = Utc::now().duration_trunc(TimeDelta::seconds(1))?;
    let start = end - TimeDelta::days(i64::from(config.days));
    let metrics = &METRICS[..config.metrics];
    println!(
        "storage: {storage}; {} days of 1 Hz readings of one machine with {} metrics",
        config.days, config.metrics
    );

    let began = Instant::now();
    let rows = load(pool, tenant, machine, metrics, start, end).await?;
    let load_secs = began.elapsed().as_secs_f64();
    sqlx::query("ANALYZE readings").execute(pool).await?;
    println!(
        "loaded {rows} readings with COPY in {load_secs:.1} s ({:.0} readings/s)",
        rows as f64 / load_secs
    );
    let uncompressed = bytes_on_disk(pool).await?;

    let queries = Queries {
        tenant,
        machine,
        start,
        days: config.days,
        runs: config.runs,
    };
    let mut table = vec![queries.run(pool, "raw rows", false).await?];
    let mut sizes = vec![("uncompressed", uncompressed, rows)];
    if aggregates {
        let began = Instant::now();
        for view in ["readings_1m", "readings_1h"] {
            sqlx::query(&format!(
                "CALL refresh_continuous_aggregate('{view}', NULL, now(), options => '{{\"buckets_per_batch\": 0}}')"
            ))
            .execute(pool)
            .await?;
        }
        println!(
            "materialized the continuous aggregates in {:.1} s",
            began.elapsed().as_secs_f64()
        );
        table.push(queries.run(pool, "continuous aggregates", true).await?);
        let began = Instant::now();
        let chunks: i64 = sqlx::query_scalar(
            "SELECT count(compress_chunk(c)) FROM show_chunks('readings', older_than => interval '3 days') c",
        )
        .fetch_one(pool)
        .await?;
        println!(
            "compressed {chunks} chunks older than 3 days in {:.1} s",
            began.elapsed().as_secs_f64()
        );
        sqlx::query("ANALYZE readings").execute(pool).await?;
        table.push(
            queries
                .run(pool, "aggregates, chunks > 3 days compressed", true)
                .await?,
        );
        table.push(
            queries
                .run(pool, "raw rows, chunks > 3 days compressed", false)
                .await?,
        );
        sizes.push((
            "chunks > 3 days compressed",
            bytes_on_disk(pool).await?,
            rows,
        ));
        sqlx::query("SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks('readings') c")
            .fetch_one(pool)
            .await?;
        sizes.push(("all chunks compressed", bytes_on_disk(pool).await?, rows));
    }

    println!(
        "\nlatency in ms, p50 / p99 of {} runs (client side, over TCP)",
        config.runs
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>16} {:>16} {:>16} {:>16}",
        "source", "raw 1 h, 1 metric", "1-min, 1 day", "1-h, whole range", "latest values"
    );
    for row in &table {
        let _ = write!(out, "{:<40}", row.label);
        for (p50, p99) in &row.cells {
            let _ = write!(out, " {:>16}", format!("{p50:.2} / {p99:.2}"));
        }
        out.push('\n');
    }
    print!("{out}");
    println!("\nbytes per reading on disk (table, chunks and indexes)");
    for (label, bytes, rows) in sizes {
        println!(
            "{label:<40} {:>8.1} B  ({:.0} MB)",
            bytes as f64 / rows as f64,
            bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// Loads 1 Hz readings of `metrics` over `[start, end)` with `COPY`, a day per statement; returns how many.
async fn load(
    pool: &PgPool,
    tenant: Uuid,
    machine: Uuid,
    metrics: &[&str],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut series = SeriesIds::default();
    let wanted: Vec<(Uuid, Uuid, &str)> = metrics.iter().map(|m| (tenant, machine, *m)).collect();
    series.resolve(pool, &wanted).await?;
    let ids: Vec<i32> = metrics
        .iter()
        .map(|m| {
            series
                .get(tenant, machine, m)
                .context("a series without an id")
        })
        .collect::<anyhow::Result<_>>()?;
    let mut conn = pool.acquire().await?;
    let ingested = end.to_rfc3339();
    let mut rows = 0;
    let mut day = start;
    let mut noise = 0x2545_f491_4f6c_dd1d_u64;
    while day < end {
        sqlx::query("SELECT haltless_ensure_readings_partitions($1, $1)")
            .bind(day)
            .execute(&mut *conn)
            .await?;
        let until = (day + TimeDelta::days(1)).min(end);
        let mut data = String::with_capacity(90 * 86_400 * metrics.len());
        let mut t = day;
        while t < until {
            let ts = t.to_rfc3339();
            let secs = t.timestamp() as f64;
            for (k, id) in ids.iter().enumerate() {
                // A daily cycle, a slow drift and sensor noise, at a sensor's resolution (0.01).
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                let jitter = (noise % 1_000) as f64 / 1_000.0 - 0.5;
                let value = 50.0 * (k + 1) as f64
                    + 5.0 * (secs / 86_400.0 * std::f64::consts::TAU).sin()
                    + secs / 2_592_000.0
                    + jitter;
                let _ = writeln!(data, "{id}\t{ts}\t{:.2}\t\\N\t{ingested}", value);
                rows += 1;
            }
            t += TimeDelta::seconds(1);
        }
        let mut copy = conn
            .copy_in_raw("COPY readings (series_id, ts, value, quality, ingested_at) FROM STDIN")
            .await?;
        copy.send(data.as_bytes()).await?;
        copy.finish().await?;
        day = until;
    }
    Ok(rows)
}

/// The bytes `readings` takes on disk: every chunk or partition, with its indexes and TOAST (compressed
/// chunks included).
async fn bytes_on_disk(pool: &PgPool) -> anyhow::Result<i64> {
    let hypertable: bool = sqlx::query_scalar("SELECT to_regclass('readings_1h') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let sql = if hypertable {
        "SELECT hypertable_size('readings')"
    } else {
        "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits WHERE inhparent = 'readings'::regclass"
    };
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

struct Queries {
    tenant: Uuid,
    machine: Uuid,
    start: DateTime<Utc>,
    days: u32,
    runs: usize,
}

struct Row {
    label: String,
    cells: Vec<(f64, f64)>,
}

impl Queries {
    /// Each query `runs` times at spread-out positions in the data: p50 and p99 in ms.
    async fn run(&self, pool: &PgPool, label: &str, aggregates: bool) -> anyhow::Result<Row> {
        let span = i64::from(self.days) * 86_400;
        let at = |i: usize, length: i64| {
            // Positions spread over the data (the same ones in every state), whole minutes.
            let room = (span - length).max(60);
            self.start + TimeDelta::seconds((i as i64 * 7_919 * 60) % room / 60 * 60)
        };
        let range = |from: DateTime<Utc>, length: i64, metric: Option<&str>| Range {
            tenant: self.tenant,
            machine: self.machine,
            metric: metric.map(str::to_owned),
            from,
            to: from + TimeDelta::seconds(length),
            limit: 100_001,
        };
        let mut cells = Vec::new();
        let mut times = Vec::new();
        for i in 0..self.runs {
            let r = range(at(i, 3_600), 3_600, Some(METRICS[0]));
            let t = Instant::now();
            let rows = series::raw(pool, &r).await?;
            times.push(t.elapsed());
            anyhow::ensure!(rows.len() == 3_600, "raw range: {} rows", rows.len());
        }
        cells.push(percentiles(&mut times));
        for (width, length) in [(60, 86_400), (3_600, span)] {
            times.clear();
            let source = BucketSource::for_width(width, aggregates);
            for i in 0..self.runs {
                let r = range(at(i, length), length, None);
                let t = Instant::now();
                let buckets = series::buckets(pool, &r, width, source).await?;
                times.push(t.elapsed());
                anyhow::ensure!(!buckets.is_empty(), "no buckets");
            }
            cells.push(percentiles(&mut times));
        }
        times.clear();
        for _ in 0..self.runs {
            let t = Instant::now();
            let latest = series::latest(pool, self.tenant, self.machine).await?;
            times.push(t.elapsed());
            anyhow::ensure!(!latest.is_empty(), "no latest values");
        }
        cells.push(percentiles(&mut times));
        Ok(Row {
            label: label.to_owned(),
            cells,
        })
    }
}

/// p50 and p99 in milliseconds (nearest rank).
fn percentiles(times: &mut [Duration]) -> (f64, f64) {
    times.sort_unstable();
    let rank = |p: f64| {
        let i = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1_000.0
    };
    (rank(0.50), rank(0.99))
}
