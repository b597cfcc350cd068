//! `haltless bench-alerts`: alert raised → webhook received, through the whole alert engine (intake from
//! Kafka, escalation, recording, delivery), on a throw-away database and topic of the configured services
//! (removed afterwards), with a local receiver in this process.
//!
//! Phase 1: one tenant's alerts at a steady rate to a receiver that answers at once: p50, p99, max.
//! Phase 2: another tenant's receiver answers after 5 s and has a backlog of queued notifications, while
//! the first tenant's alerts go on at the same rate: their latency again, and the process's resident memory
//! before and after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use haltless_connectors::kafka::{producer_config, Delivery};
use haltless_processors::alerting::channels::Outbound;
use haltless_processors::alerting::run::{run as run_engine, spawn_intake};
use haltless_processors::alerting::secrets::ChannelSecrets;
use haltless_processors::config::ProcessorsConfig;
use haltless_processors::detection::generation::Generation;
use haltless_processors::runtime::topics::{delete_topics, ensure_topics, TopicSpec};
use haltless_schemas::alerts::{Severity, Transition};
use haltless_schemas::outbound::OutboundPolicy;
use haltless_schemas::secrets::Keyring;
use haltless_schemas::{AlertRecord, WireFormat};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::MIGRATOR;
use crate::config::Settings;
use crate::tools::scratch::ScratchDatabase;

/// Parameters of the alert engine benchmark.
#[derive(Debug, Clone)]
pub struct AlertBenchConfig {
    /// Alerts per second of the timed tenant.
    pub rate: u32,
    /// Seconds each phase lasts.
    pub secs: u32,
    /// Notifications queued for the slow receiver in phase 2.
    pub backlog: usize,
}

/// When each alert was raised and when its notification arrived.
#[derive(Default)]
struct Clock {
    raised: HashMap<Uuid, Instant>,
    received: HashMap<Uuid, Instant>,
}

type Shared = Arc<Mutex<Clock>>;

async fn fast(State(clock): State<Shared>, body: axum::Json<Value>) -> StatusCode {
    let now = Instant::now();
    if let Some(alerts) = body["alerts"].as_array() {
        let mut clock = clock.lock().unwrap_or_else(|e| e.into_inner());
        for id in alerts.iter().filter_map(|a| a["id"].as_str()?.parse().ok()) {
            clock.received.entry(id).or_insert(now);
        }
    }
    StatusCode::OK
}

async fn slow(Path(_): Path<String>) -> StatusCode {
    tokio::time::sleep(Duration::from_secs(5)).await;
    StatusCode::OK
}

/// The resident memory of this process, in MiB (Linux).
pub(crate) fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Runs the benchmark and prints its figures; the database and topic it made are removed whatever happens.
pub async fn run(settings: &Settings, config: AlertBenchConfig) -> anyhow::Result<()> {
    let run = Uuid::new_v4().simple().to_string();
    let db = ScratchDatabase::create(settings, &format!("bench_alerts_{run}"), &[]).await?;
    let mut processors = settings.processors();
    processors.kafka.alerts_topic = format!("bench.alerts.{run}");
    processors.projection.group_prefix = format!("bench-alerts-{run}");
    processors.alerting.tick_ms = processors.alerting.tick_ms.min(100);
    let result = measure(&db.pool, &processors, &config).await;
    db.remove().await?;
    delete_topics(&processors.kafka.brokers, &[&processors.kafka.alerts_topic]).await;
    result
}

/// A tenant with one machine, a webhook channel to `url` and a policy sending every alert to it at once.
async fn tenant(
    pool: &PgPool,
    secrets: &ChannelSecrets,
    name: &str,
    url: &str,
) -> anyhow::Result<(Uuid, Uuid)> {
    let (tenant, machine, channel) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    sqlx::query("INSERT INTO tenants (id, name, tier) VALUES ($1, $2, 'enterprise')")
        .bind(tenant)
        .bind(name)
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, 'm-1')")
        .bind(machine)
        .bind(tenant)
        .execute(pool)
        .await?;
    let mut secret = Map::new();
    secret.insert("url".into(), json!(url));
    secret.insert("signing_secret".into(), json!("bench-signing-secret"));
    sqlx::query(
        "INSERT INTO notification_channels (id, tenant_id, name, kind, config, secret) VALUES ($1, $2, 'hook', 'webhook', '{}', $3)",
    )
    .bind(channel)
    .bind(tenant)
    .bind(secrets.seal(channel, &secret).map_err(anyhow::Error::msg)?)
    .execute(pool)
    .await?;
    let spec = json!({"name": "all", "group_by": ["rule"], "group_wait_secs": 0, "steps": [{"channels": [channel]}]});
    sqlx::query(
        "INSERT INTO escalation_policies (id, tenant_id, name, spec) VALUES ($1, $2, 'all', $3)",
    )
    .bind(Uuid::new_v4())
    .bind(tenant)
    .bind(spec)
    .execute(pool)
    .await?;
    Ok((tenant, machine))
}

/// Raises `n` alerts of `(tenant, machine)` at `rate` per second (all at once when `rate` is 0).
async fn raise(
    producer: &FutureProducer,
    processors: &ProcessorsConfig,
    clock: &Shared,
    (tenant, machine): (Uuid, Uuid),
    n: usize,
    rate: u32,
) -> anyhow::Result<Vec<Uuid>> {
    let codec = AlertRecord::codec(WireFormat::SingleObject)?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        if rate > 0 {
            let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
        }
        let record = AlertRecord {
            alert_id: Uuid::new_v4(),
            transition: Transition::Raised,
            tenant_id: tenant,
            machine_id: machine,
            machine: "m-1".into(),
            rule_id: format!("r{i}"),
            rule_name: format!("rule {i}"),
            severity: Severity::Critical,
            detector: "bench".into(),
            metric: "t".into(),
            observed: 1.0,
            expected: 0.0,
            score: 1.0,
            limit: 0.5,
            event_time_ms: chrono::Utc::now().timestamp_millis(),
            readings: vec![],
            explanation: String::new(),
            contributions: vec![],
        };
        let payload = record.encode(&codec)?;
        let key = record.key();
        clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .raised
            .insert(record.alert_id, Instant::now());
        producer
            .send(
                FutureRecord::to(&processors.kafka.alerts_topic)
                    .key(&key)
                    .payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(e, _)| e)?;
        ids.push(record.alert_id);
    }
    Ok(ids)
}

/// Waits for `ids` to be received (at most `patience`), then their latencies in ms, sorted; missing ones
/// are counted.
async fn latencies(clock: &Shared, ids: &[Uuid], patience: Duration) -> (Vec<f64>, usize) {
    let deadline = Instant::now() + patience;
    loop {
        let (done, lat) = {
            let c = clock.lock().unwrap_or_else(|e| e.into_inner());
            let lat: Vec<f64> = ids
                .iter()
                .filter_map(|id| {
                    Some(
                        c.received
                            .get(id)?
                            .duration_since(*c.raised.get(id)?)
                            .as_secs_f64()
                            * 1000.0,
                    )
                })
                .collect();
            (lat.len() == ids.len(), lat)
        };
        if done || Instant::now() > deadline {
            let mut lat = lat;
            lat.sort_by(f64::total_cmp);
            let missing = ids.len() - lat.len();
            return (lat, missing);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn report(what: &str, (lat, missing): &(Vec<f64>, usize)) {
    println!(
        "{what}: {} notifications, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, {missing} not received",
        lat.len(),
        quantile(lat, 0.5),
        quantile(lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
    );
}

async fn measure(
    pool: &PgPool,
    processors: &ProcessorsConfig,
    config: &AlertBenchConfig,
) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    let k = &processors.kafka;
    ensure_topics(
        &k.brokers,
        &[TopicSpec {
            name: k.alerts_topic.clone(),
            partitions: k.partitions,
            replication: k.replication,
            config: vec![],
        }],
    )
    .await?;
    let clock: Shared = Arc::default();
    let app = Router::new()
        .route("/fast", post(fast))
        .route("/slow/{n}", post(slow))
        .with_state(clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let secrets = ChannelSecrets::new(Some(Keyring::parse(&[Keyring::generate_entry("bench")?])?));
    let timed = tenant(pool, &secrets, "timed", &format!("{base}/fast")).await?;
    let slowed = tenant(pool, &secrets, "slowed", &format!("{base}/slow/1")).await?;
    let out = Outbound::new(
        OutboundPolicy::new(&["127.0.0.1"], &[]).map_err(|e| anyhow::anyhow!(e.join("; ")))?,
        Duration::from_secs(10),
    );
    let token = CancellationToken::new();
    let intake = spawn_intake(processors, pool, Generation::FIRST, &token).await?;
    let engine = tokio::spawn(run_engine(
        processors.clone(),
        pool.clone(),
        out,
        secrets,
        token.clone(),
    ));
    let producer: FutureProducer = producer_config(
        &k.brokers,
        Delivery::AtLeastOnceIdempotent,
        Duration::from_secs(5),
    )
    .create()?;
    // The engine notifies alerts written after it started.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let n = (config.rate * config.secs) as usize;
    println!(
        "alert engine: {} alerts/s for {} s per phase, one notification per alert",
        config.rate, config.secs
    );
    let ids = raise(&producer, processors, &clock, timed, n, config.rate).await?;
    report(
        "phase 1, alone",
        &latencies(&clock, &ids, Duration::from_secs(30)).await,
    );

    let before = rss_mib();
    raise(&producer, processors, &clock, slowed, config.backlog, 0).await?;
    // The backlog is queued (recorded, waiting for the slow receiver) before the timed alerts start.
    let queued = Instant::now();
    loop {
        let (recorded,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM notifications WHERE tenant_id = $1")
                .bind(slowed.0)
                .fetch_one(pool)
                .await?;
        if recorded as usize >= config.backlog || queued.elapsed() > Duration::from_secs(600) {
            println!(
                "{recorded} notifications queued for the slow receiver in {:.1} s",
                queued.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids = raise(&producer, processors, &clock, timed, n, config.rate).await?;
    report(
        &format!(
            "phase 2, beside {} notifications queued for a receiver answering in 5 s",
            config.backlog
        ),
        &latencies(&clock, &ids, Duration::from_secs(30)).await,
    );
    let (pending,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending') AND tenant_id = $1")
            .bind(slowed.0)
            .fetch_one(pool)
            .await?;
    println!(
        "resident memory: {before:.0} MiB before the backlog, {:.0} MiB with {pending} notifications still queued",
        rss_mib()
    );
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), engine).await;
    let _ = intake.await;
    Ok(())
}
