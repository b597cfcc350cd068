//! The end-to-end ingest benchmark: readings/s through gateway → Kafka → projection on this machine, and
//! the raw `COPY` rate into an identical table as the ceiling, in one run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use haltless_processors::projection::readings::{copy_rows, copy_statement, SeriesIds};
use haltless_schemas::{Reading, ReadingBatch, Source};
use sqlx::{Connection as _, PgPool};
use uuid::Uuid;

use crate::auth::Scope;
use crate::tenants::{create_api_key, create_tenant, Tier};

/// Benchmark parameters.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Base URL of a running platform (`haltless all`).
    pub url: String,
    /// Total readings to send.
    pub readings: usize,
    /// Readings per request.
    pub batch: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Machines the readings are spread over.
    pub machines: usize,
    /// The platform's process, whose memory is reported (same machine only).
    pub pid: Option<u32>,
    /// Measure the gateway only: do not wait for the projection nor time the `COPY` ceiling.
    pub gateway_only: bool,
    /// The readings projection's writers (`projection.writers` of the settings the bench runs with): the
    /// second ceiling is as many `COPY`s at once.
    pub writers: usize,
}

/// Runs the benchmark against the platform at `config.url` and the database behind it, printing results.
/// The benchmark's tenant and its rows are removed afterwards.
pub async fn run(pool: &PgPool, config: BenchConfig) -> anyhow::Result<()> {
    with_tenant(pool, config.machines, |tenant| async move {
        measure(pool, &tenant, &config).await
    })
    .await
}

/// The benchmark's throw-away tenant: an ingest key and registered machines, and no rate or machine limit
/// (the benchmark measures ingest, not the tier).
pub(super) struct BenchTenant {
    /// The tenant.
    pub id: Uuid,
    /// Its API key's secret (scopes ingest and read).
    pub key: String,
    /// Its machines: id and name.
    pub machines: Vec<(Uuid, String)>,
}

/// Runs `work` with a new [`BenchTenant`] of `machines` machines, then removes the tenant and its rows
/// whatever the outcome.
pub(super) async fn with_tenant<F, Fut>(
    pool: &PgPool,
    machines: usize,
    work: F,
) -> anyhow::Result<()>
where
    F: FnOnce(BenchTenant) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // Dead rows of an earlier run's clean-up would be vacuumed by autovacuum while this one measures.
    settle(pool).await?;
    let id = create_tenant(pool, &format!("bench-{}", Uuid::new_v4()), Tier::Enterprise).await?;
    let result = match prepare(pool, id, machines).await {
        Ok(tenant) => work(tenant).await,
        Err(e) => Err(e),
    };
    // Tens of millions of rows after a long paced run: their removal may take longer than the pool's
    // `statement_timeout`.
    let mut tx = unbounded(pool).await?;
    sqlx::query(
        "DELETE FROM readings WHERE series_id IN (SELECT id FROM reading_series WHERE tenant_id = $1)",
    )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    result
}

/// Vacuums `readings`, so that the rows an earlier run's clean-up deleted are not vacuumed by autovacuum
/// while this run measures (an ingest-only workload leaves no dead rows; retention drops whole chunks).
/// Waits for an autovacuum already at work on the table, ten minutes at most.
async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    // VACUUM cannot run in a transaction, so its deadline is set for the session, on a connection taken
    // off the pool and closed after it rather than returned with that setting.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("SET statement_timeout = '10min'")
        .execute(&mut conn)
        .await?;
    sqlx::query("VACUUM (ANALYZE) readings")
        .execute(&mut conn)
        .await
        .context("vacuuming readings before the run (ten minutes at most)")?;
    conn.close().await?;
    tracing::info!(secs = started.elapsed().as_secs_f64(), "readings vacuumed");
    Ok(())
}

/// A transaction without the pool's `statement_timeout` (which guards requests), for a benchmark's own
/// statements over all of a long run's rows: its check and its clean-up.
pub(super) async fn unbounded(
    pool: &PgPool,
) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn prepare(pool: &PgPool, id: Uuid, machines: usize) -> anyhow::Result<BenchTenant> {
    let key = create_api_key(pool, id, "bench", &[Scope::Ingest, Scope::Read]).await?;
    let machines: Vec<(Uuid, String)> = (0..machines)
        .map(|i| (Uuid::new_v4(), format!("bench-{i:03}")))
        .collect();
    sqlx::query(
        "UPDATE tenants SET writes_per_minute = 2147483647, reads_per_minute = 2147483647,
             max_machines = 2147483647 WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    for (machine, name) in &machines {
        sqlx::query("INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, $3)")
            .bind(machine)
            .bind(id)
            .bind(name)
            .execute(pool)
            .await
            .context("registering bench machines")?;
    }
    Ok(BenchTenant {
        id,
        key: key.secret,
        machines,
    })
}

async fn measure(pool: &PgPool, bench: &BenchTenant, config: &BenchConfig) -> anyhow::Result<()> {
    let (tenant, machines) = (bench.id, &bench.machines);
    let client = reqwest::Client::new();
    let base = config.url.trim_end_matches('/').to_owned();
    let requests = config.readings.div_ceil(config.batch);
    let start_ms = crate::time::now_ms() - config.readings as i64 * 10;
    let names: Arc<Vec<String>> = Arc::new(machines.iter().map(|(_, n)| n.clone()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..config.concurrency {
        let (client, base, secret, names, next, config) = (
            client.clone(),
            base.clone(),
            bench.key.clone(),
            names.clone(),
            next.clone(),
            config.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let url = format!("{base}/api/v1/ingest");
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let range = r * config.batch..((r + 1) * config.batch).min(config.readings);
                let body = bytes::Bytes::from(body(&names, start_ms, range));
                // A shed request (503, 429) is retried after its Retry-After, as a client should.
                loop {
                    let t = Instant::now();
                    let response = client
                        .post(&url)
                        .header("x-api-key", &secret)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    match response.status().as_u16() {
                        202 => {
                            latencies.accepted.push(t.elapsed());
                            break;
                        }
                        503 | 429 => {
                            latencies.shed.push(t.elapsed());
                            let wait = response
                                .headers()
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                                .unwrap_or(1);
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                        }
                        other => anyhow::bail!("ingest answered {other}"),
                    }
                }
            }
        }));
    }
    let server_memory_before = config.pid.map(memory_of).transpose()?;
    let mut latencies = Latencies::default();
    for w in workers {
        let l = w.await??;
        latencies.accepted.extend(l.accepted);
        latencies.shed.extend(l.shed);
    }
    let accepted_in = started.elapsed();
    let n = config.readings as f64;
    println!(
        "end-to-end ingest benchmark: {} readings, {} per request, {} in flight, {} machines",
        config.readings, config.batch, config.concurrency, config.machines
    );
    println!(
        "  gateway accepted (202, acks=all): {:>10.0} readings/s  ({:.2} s)",
        n / accepted_in.as_secs_f64(),
        accepted_in.as_secs_f64()
    );
    let (p50, p99) = percentiles(&mut latencies.accepted);
    println!("  request latency (202):            p50 {p50:.1} ms, p99 {p99:.1} ms");
    if !latencies.shed.is_empty() {
        let (p50, p99) = percentiles(&mut latencies.shed);
        println!(
            "  shed (503/429, retried):          {} answers, p50 {p50:.1} ms, p99 {p99:.1} ms",
            latencies.shed.len()
        );
    }
    if config.gateway_only {
        if let Some(pid) = config.pid {
            let (resident, peak) = memory_of(pid)?;
            println!(
                "  server memory (pid {pid}):         resident {:.0} MiB, peak {:.0} MiB",
                mib(resident),
                mib(peak)
            );
        }
        return Ok(());
    }
    // Rows stored when the last reading was acknowledged: what the projection still had to do alone.
    let stored_at_accept = stored(pool, tenant).await? as usize;
    let last = last_readings(machines, start_ms, config.readings);
    let deadline = Instant::now() + Duration::from_secs(600);
    // Done when every machine's last reading is stored: the projection commits each partition in order,
    // so a machine's earlier readings are stored by then (the full count below checks it). This costs a
    // few index lookups a poll, where counting the tenant's rows each time would load the database it
    // measures.
    while !all_stored(pool, tenant, &last).await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "projection stalled: the last readings are not stored after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored_in = started.elapsed();
    let server_memory_after = config.pid.map(memory_of).transpose()?;
    let count = stored(pool, tenant).await? as usize;
    anyhow::ensure!(
        count == config.readings,
        "{count} readings stored of {} acknowledged",
        config.readings
    );
    let copy = copy_ceiling(pool, tenant, config.readings, 1).await?;
    let writers = config.writers.max(1);
    let copy_parallel = copy_ceiling(pool, tenant, config.readings, writers).await?;
    if let (Some(before), Some(after)) = (server_memory_before, server_memory_after) {
        println!(
            "  server memory (pid {}):         resident {:.0} MiB after sending, peak {:.0} MiB (was {:.0} MiB, peak {:.0} MiB, before)",
            config.pid.unwrap_or_default(),
            mib(after.0), mib(after.1),
            mib(before.0), mib(before.1)
        );
    }
    println!("  gateway → Kafka → projection:     {:>10.0} readings/s  ({:.2} s until the last row was queryable; every reading stored once)",
        n / stored_in.as_secs_f64(), stored_in.as_secs_f64());
    let backlog = config.readings - stored_at_accept.min(config.readings);
    let drain = stored_in - accepted_in;
    // Only a backlog of some size says how fast the projection goes once the gateway is quiet.
    let drain_rate =
        (backlog * 10 >= config.readings).then(|| backlog as f64 / drain.as_secs_f64().max(1e-3));
    if let Some(rate) = drain_rate {
        println!(
            "  projection alone (its backlog):   {rate:>10.0} readings/s  ({backlog} readings in {:.2} s after the last 202)",
            drain.as_secs_f64()
        );
    }
    let ceiling = n / copy.as_secs_f64();
    let ceiling_parallel = n / copy_parallel.as_secs_f64();
    println!(
        "  ceiling: raw COPY, same table:    {ceiling:>10.0} readings/s  ({:.2} s, one COPY)",
        copy.as_secs_f64(),
    );
    println!(
        "  ceiling: raw COPY, {writers} at once:     {ceiling_parallel:>10.0} readings/s  ({:.2} s, as the projection's {writers} writers)",
        copy_parallel.as_secs_f64(),
    );
    print!(
        "  end to end / ceiling: {:.0} % (of {writers} COPYs: {:.0} %)",
        100.0 * copy.as_secs_f64() / stored_in.as_secs_f64(),
        100.0 * copy_parallel.as_secs_f64() / stored_in.as_secs_f64()
    );
    match drain_rate {
        Some(rate) => println!(
            "; projection alone / ceiling: {:.0} % (of {writers} COPYs: {:.0} %)",
            100.0 * rate / ceiling,
            100.0 * rate / ceiling_parallel
        ),
        None => println!(" (the projection kept up: no backlog to time it alone)"),
    }
    Ok(())
}

/// A request body of the readings in `range` (the i-th reading goes to machine `i % machines`, at
/// `start_ms + i`), written directly: the load generator shares the machine it measures, so it spends as
/// little as it can.
pub(super) fn body(machines: &[String], start_ms: i64, range: std::ops::Range<usize>) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(16 + range.len() * 80);
    out.extend_from_slice(br#"{"readings":["#);
    for (k, i) in range.enumerate() {
        if k > 0 {
            out.push(b',');
        }
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"machine":"{}","metric":"load","ts":{},"value":{}}}"#,
            machines[i % machines.len()],
            start_ms + i as i64,
            (i % 1000) as f64 / 10.0
        );
    }
    out.extend_from_slice(b"]}");
    out
}

/// Per machine, the (id, event time) of its last reading in the run.
fn last_readings(machines: &[(Uuid, String)], start_ms: i64, n: usize) -> Vec<(Uuid, i64)> {
    (n.saturating_sub(machines.len())..n)
        .map(|i| (machines[i % machines.len()].0, start_ms + i as i64))
        .collect()
}

/// Whether every reading of `last` is stored.
pub(super) async fn all_stored(
    pool: &PgPool,
    tenant: Uuid,
    last: &[(Uuid, i64)],
) -> anyhow::Result<bool> {
    let (ids, times): (Vec<Uuid>, Vec<chrono::DateTime<chrono::Utc>>) = last
        .iter()
        .map(|(id, ms)| {
            (
                *id,
                chrono::DateTime::from_timestamp_millis(*ms).unwrap_or_default(),
            )
        })
        .unzip();
    let found: i64 = sqlx::query_scalar(
        // One primary-key lookup per machine: the lateral form keeps the planner from anything else (as a
        // semi-join it once chose plans that took seconds a poll and loaded the database being measured).
        "SELECT count(*) FROM unnest($2::uuid[], $3::timestamptz[]) AS l (machine_id, ts)
         CROSS JOIN LATERAL (SELECT 1 FROM named_readings r WHERE r.tenant_id = $1 AND r.machine_id = l.machine_id
                               AND r.metric = 'load' AND r.ts = l.ts LIMIT 1) AS found",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&times)
    .fetch_one(pool)
    .await?;
    Ok(found as usize == last.len())
}

/// The readings of `tenant` stored.
pub(super) async fn stored(pool: &PgPool, tenant: Uuid) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM named_readings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(pool)
            .await?,
    )
}

/// Request latencies of one run: answered 202, and shed with 503 `overloaded`.
#[derive(Default)]
pub(super) struct Latencies {
    accepted: Vec<Duration>,
    shed: Vec<Duration>,
}

/// The median and 99th percentile of `latencies`, in milliseconds.
pub(super) fn percentiles(latencies: &mut [Duration]) -> (f64, f64) {
    latencies.sort();
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    (at(0.50), at(0.99))
}

/// The resident and peak resident memory of process `pid`, in KiB (Linux `/proc`).
pub(super) fn memory_of(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the memory of process {pid}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// KiB (as `/proc` counts) in MiB, for printing.
pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Times plain `COPY`s of `n` readings of `tenant` straight into `readings` (the same hypertable, its
/// key, indexes and write-ahead log), with event times like the run's, in `streams` connections at once
/// (each `n / streams` readings of a machine of its own): the ceiling the projection is measured against.
/// The rows go with the benchmark's tenant.
async fn copy_ceiling(
    pool: &PgPool,
    tenant: Uuid,
    n: usize,
    streams: usize,
) -> anyhow::Result<Duration> {
    let streams = streams.max(1);
    let start_ms = crate::time::now_ms() - n as i64 * 10;
    // The projection's own format (binary), so that the two differ only in what the projection adds.
    let batches: Vec<ReadingBatch> = (0..streams)
        .map(|s| ReadingBatch {
            tenant_id: tenant,
            machine_id: Uuid::new_v4(),
            machine: format!("ceiling-{s}"),
            source: Source::Gateway,
            ingest_time_ms: crate::time::now_ms(),
            readings: (s..n)
                .step_by(streams)
                .map(|i| Reading {
                    metric: "load".into(),
                    event_time_ms: start_ms + i as i64,
                    value: (i % 1000) as f64 / 10.0,
                    quality: None,
                })
                .collect(),
        })
        .collect();
    let mut series = SeriesIds::default();
    let unknown = series.unknown(&batches);
    series.resolve(pool, &unknown).await?;
    let data = batches
        .iter()
        .map(|b| copy_rows(std::slice::from_ref(b), &series).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut conns = Vec::with_capacity(streams);
    for _ in 0..streams {
        conns.push(pool.acquire().await?);
    }
    let started = Instant::now();
    futures::future::try_join_all(conns.iter_mut().zip(&data).map(|(conn, rows)| async move {
        let mut copy = conn.copy_in_raw(&copy_statement("readings")).await?;
        copy.send(rows.as_slice()).await?;
        copy.finish().await
    }))
    .await?;
    Ok(started.elapsed())
}
