//! The end-to-end ingest benchmark: readings/s through gateway → Kafka → projection on this machine, and
//! the raw `COPY` rate into an identical table as the ceiling, in one run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use haltless_processors::projection::readings::copy_text_rows;
use haltless_schemas::{Reading, ReadingBatch, Source};
use serde_json::json;
use sqlx::PgPool;
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
}

/// Runs the benchmark against the platform at `config.url` and the database behind it, printing results.
/// The benchmark's tenant and its rows are removed afterwards.
pub async fn run(pool: &PgPool, config: BenchConfig) -> anyhow::Result<()> {
    let tenant =
        create_tenant(pool, &format!("bench-{}", Uuid::new_v4()), Tier::Enterprise).await?;
    let result = measure(pool, tenant, &config).await;
    sqlx::query("DELETE FROM readings WHERE tenant_id = $1")
        .bind(tenant)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(tenant)
        .execute(pool)
        .await?;
    result
}

async fn measure(pool: &PgPool, tenant: Uuid, config: &BenchConfig) -> anyhow::Result<()> {
    let key = create_api_key(pool, tenant, "bench", &[Scope::Ingest, Scope::Read]).await?;
    let client = reqwest::Client::new();
    let base = config.url.trim_end_matches('/').to_owned();
    let machines: Vec<String> = (0..config.machines)
        .map(|i| format!("bench-{i:03}"))
        .collect();
    // The benchmark measures ingest, not the tier: its throw-away tenant has no rate or machine limit.
    sqlx::query(
        "UPDATE tenants SET writes_per_minute = 2147483647, reads_per_minute = 2147483647,
             max_machines = 2147483647 WHERE id = $1",
    )
    .bind(tenant)
    .execute(pool)
    .await?;
    for m in &machines {
        sqlx::query("INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, $3)")
            .bind(Uuid::new_v4())
            .bind(tenant)
            .bind(m)
            .execute(pool)
            .await
            .context("registering bench machines")?;
    }
    let requests = config.readings.div_ceil(config.batch);
    let start_ms = crate::time::now_ms() - config.readings as i64 * 10;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..config.concurrency {
        let (client, base, secret, machines, next, config) = (
            client.clone(),
            base.clone(),
            key.secret.clone(),
            machines.clone(),
            next.clone(),
            config.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let readings: Vec<_> = (r * config.batch
                    ..((r + 1) * config.batch).min(config.readings))
                    .map(|i| {
                        json!({"machine": machines[i % machines.len()], "metric": "load",
                               "ts": start_ms + i as i64, "value": (i % 1000) as f64 / 10.0})
                    })
                    .collect();
                let t = Instant::now();
                let response = client
                    .post(format!("{base}/api/v1/ingest"))
                    .header("x-api-key", &secret)
                    .json(&json!({ "readings": readings }))
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().as_u16() == 202,
                    "ingest answered {}",
                    response.status()
                );
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    let accepted_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM readings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(pool)
            .await?;
        if count as usize >= config.readings {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "projection stalled at {count} rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored_in = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let copy = copy_ceiling(pool, config.readings).await?;
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
    println!(
        "  request latency:                  p50 {:.1} ms, p99 {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    println!("  gateway → Kafka → projection:     {:>10.0} readings/s  ({:.2} s until the last row was queryable)",
        n / stored_in.as_secs_f64(), stored_in.as_secs_f64());
    println!(
        "  ceiling: raw COPY, same table:    {:>10.0} readings/s  ({:.2} s)",
        n / copy.as_secs_f64(),
        copy.as_secs_f64()
    );
    Ok(())
}

/// Times a plain `COPY` of `n` readings into a table with the same columns and key as `readings`.
async fn copy_ceiling(pool: &PgPool, n: usize) -> anyhow::Result<Duration> {
    let batch = ReadingBatch {
        tenant_id: Uuid::new_v4(),
        machine_id: Uuid::new_v4(),
        machine: "ceiling".into(),
        source: Source::Gateway,
        ingest_time_ms: crate::time::now_ms(),
        readings: (0..n)
            .map(|i| Reading {
                metric: "load".into(),
                event_time_ms: 1_700_000_000_000 + i as i64,
                value: i as f64,
                quality: None,
            })
            .collect(),
    };
    let rows = copy_text_rows(&[batch]);
    let mut conn = pool.acquire().await?;
    sqlx::query("CREATE TEMP TABLE bench_ceiling (LIKE readings INCLUDING ALL)")
        .execute(&mut *conn)
        .await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY bench_ceiling (tenant_id, machine_id, metric, ts, value, quality, ingested_at) FROM STDIN")
        .await?;
    copy.send(rows.as_bytes()).await?;
    copy.finish().await?;
    let elapsed = started.elapsed();
    sqlx::query("DROP TABLE bench_ceiling")
        .execute(&mut *conn)
        .await?;
    Ok(elapsed)
}

/// Parameters of the detector benchmark.
#[derive(Debug, Clone)]
pub struct DetectBenchConfig {
    /// Readings to push through the detectors.
    pub readings: usize,
    /// Readings per Kafka message (one machine each).
    pub per_message: usize,
    /// Machines the readings are spread over.
    pub machines: usize,
    /// Alerts to time for the latency figures.
    pub alerts: usize,
}

/// Readings/s through the detectors with exactly-once on, and reading-to-alert latency, on throw-away topics
/// of the configured Kafka.
pub async fn run_detect(
    settings: &crate::config::Settings,
    config: DetectBenchConfig,
) -> anyhow::Result<()> {
    use haltless_connectors::gateway::ReadingsSink;
    use haltless_connectors::kafka::{producer_config, Delivery};
    use haltless_processors::detection::processor::{
        DetectorConfig, DetectorRuntime, DetectorTopics, RuleChange,
    };
    use haltless_processors::runtime::kafka::{admin_config, reader_config};
    use haltless_processors::runtime::topics::{ensure_topics, TopicSpec};
    use haltless_schemas::{AlertRecord, WireFormat};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let brokers = settings.kafka.brokers.clone();
    let run = Uuid::new_v4().simple().to_string();
    let topics = DetectorTopics {
        readings: format!("bench.readings.{run}"),
        alerts: format!("bench.alerts.{run}"),
        changelog: format!("bench.detector-state.{run}"),
        rules: format!("bench.rules.{run}"),
    };
    let partitions = settings.kafka.partitions;
    let spec = |name: &str, p: i32, compact: bool| TopicSpec {
        name: name.to_owned(),
        partitions: p,
        replication: settings.kafka.replication,
        config: if compact {
            vec![("cleanup.policy".into(), "compact".into())]
        } else {
            vec![]
        },
    };
    ensure_topics(
        &brokers,
        &[
            spec(&topics.readings, partitions, false),
            spec(&topics.alerts, partitions, false),
            spec(&topics.changelog, partitions, true),
            spec(&topics.rules, 1, true),
        ],
    )
    .await?;
    let codec = ReadingBatch::codec(WireFormat::SingleObject)?;
    let sink = ReadingsSink::new(
        &brokers,
        &topics.readings,
        codec.clone(),
        Duration::from_secs(30),
    )?;
    let tenant = Uuid::new_v4();
    let machines: Vec<Uuid> = (0..config.machines).map(|_| Uuid::new_v4()).collect();
    let start = crate::time::now_ms() - 86_400_000;
    let messages = config.readings.div_ceil(config.per_message);
    let mut batches = Vec::with_capacity(messages);
    for m in 0..messages {
        let machine = m % machines.len();
        let round = (m / machines.len()) * config.per_message;
        batches.push(ReadingBatch {
            tenant_id: tenant,
            machine_id: machines[machine],
            machine: format!("bench-{machine}"),
            source: Source::Gateway,
            ingest_time_ms: crate::time::now_ms(),
            readings: (0..config.per_message)
                .map(|i| Reading {
                    metric: "temp".into(),
                    event_time_ms: start + (round + i) as i64 * 1_000,
                    value: 50.0 + ((round + i) as f64 / 30.0).sin(),
                    quality: None,
                })
                .collect(),
        });
    }
    for chunk in batches.chunks(500) {
        sink.write(chunk).await?;
    }
    let detector = DetectorConfig {
        group: format!("bench-detectors-{run}"),
        instance: "bench".into(),
        ..DetectorConfig::default()
    };
    let group = detector.group.clone();
    let runtime = DetectorRuntime::new(
        &brokers,
        topics.clone(),
        detector,
        codec.clone(),
        AlertRecord::codec(WireFormat::SingleObject)?,
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(runtime.run(shutdown.clone()));

    // Throughput: until the group's committed offsets reach the end of every partition.
    let watcher: BaseConsumer = reader_config(&brokers, &group).create()?;
    let mut ends = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = watcher.fetch_watermarks(&topics.readings, p, Duration::from_secs(10))?;
        ends.add_partition_offset(&topics.readings, p, Offset::Offset(high))?;
    }
    loop {
        let committed = watcher.committed_offsets(ends.clone(), Duration::from_secs(10))?;
        let done = ends.elements().iter().all(|e| {
            committed
                .find_partition(e.topic(), e.partition())
                .map(|c| c.offset())
                == Some(e.offset())
                || e.offset() == Offset::Offset(0)
        });
        if done {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "the detectors did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let throughput_in = started.elapsed();

    // Latency: a threshold rule, then one violating reading at a time, timed until its alert is committed.
    let rule: haltless_processors::detection::logic::rules::Rule = serde_json::from_value(
        serde_json::json!({
        "id": "hot", "when": {"metric": "probe", "detector": "above", "value": 100}, "clear_after": 1}),
    )?;
    let change = RuleChange {
        tenant_id: tenant,
        version: 1,
        effective_from_ms: 0,
        machines: vec![],
        rule,
        deleted: false,
    };
    let producer: FutureProducer = producer_config(
        &brokers,
        Delivery::AtLeastOnceIdempotent,
        Duration::from_secs(10),
    )
    .create()?;
    producer
        .send(
            FutureRecord::to(&topics.rules)
                .key(&change.key())
                .payload(&change.encode(&RuleChange::codec()?)?),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    let alerts: BaseConsumer = reader_config(&brokers, &format!("bench-alerts-{run}"))
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    alerts.subscribe(&[&topics.alerts])?;
    let alert_codec = AlertRecord::codec(WireFormat::SingleObject)?;
    let mut latencies = Vec::new();
    let mut ts = crate::time::now_ms();
    let mut tries = 0;
    while latencies.len() < config.alerts && tries < config.alerts * 4 {
        tries += 1;
        for value in [150.0, 20.0] {
            ts += 1_000;
            let batch = ReadingBatch {
                tenant_id: tenant,
                machine_id: machines[0],
                machine: "bench-0".into(),
                source: Source::Gateway,
                ingest_time_ms: ts,
                readings: vec![Reading {
                    metric: "probe".into(),
                    event_time_ms: ts,
                    value,
                    quality: None,
                }],
            };
            let sent = Instant::now();
            sink.write(std::slice::from_ref(&batch)).await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let alerts_ref = &alerts;
            let found = tokio::task::block_in_place(|| -> anyhow::Result<bool> {
                while Instant::now() < deadline {
                    if let Some(msg) = alerts_ref.poll(Duration::from_millis(5)) {
                        let a =
                            AlertRecord::decode(&alert_codec, msg?.payload().unwrap_or_default())?;
                        if a.event_time_ms == ts && a.rule_id == "hot" {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            })?;
            if found && value > 100.0 {
                latencies.push(sent.elapsed());
            }
        }
    }
    shutdown.cancel();
    let _ = task.await;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let n = (messages * config.per_message) as f64;
    println!("detector benchmark: {} readings in {messages} messages over {} machines, {partitions} partitions, exactly once", n, config.machines);
    println!("  readings through the detectors: {:>10.0} readings/s ({:.2} s until every offset was committed)", n / throughput_in.as_secs_f64(), throughput_in.as_secs_f64());
    println!("  reading → committed alert:      p50 {:.1} ms, p99 {:.1} ms over {} alerts, one reading in flight",
        pct(0.5).as_secs_f64() * 1e3, pct(0.99).as_secs_f64() * 1e3, latencies.len());
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        admin_config(&brokers).create()?;
    let names = [
        &topics.readings,
        &topics.alerts,
        &topics.changelog,
        &topics.rules,
    ];
    let names: Vec<&str> = names.iter().map(|t| t.as_str()).collect();
    let _ = admin
        .delete_topics(&names, &rdkafka::admin::AdminOptions::new())
        .await;
    Ok(())
}
