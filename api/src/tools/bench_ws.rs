//! `haltless bench-ws`: many dashboard sockets on one API instance while machines send readings at 1 Hz.
//!
//! Starts the gateway and the API in this process on a throw-away database and topics of the configured
//! services (removed afterwards), registers the machines, signs a user in, opens the sockets (each
//! subscribed to every machine), then posts one reading per series every second. Measures, per reading a
//! socket receives, the time from the ingest request's 202 to the socket's receipt (0 when the socket had
//! it before the 202 reached the benchmark), the readings each socket got against those posted, and the
//! process's resident memory (the sockets' client side included) before and after.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use haltless_processors::runtime::topics::delete_topics;
use haltless_schemas::tier::Tier;
use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::{Application, Roles};
use crate::auth::Scope;
use crate::config::Settings;
use crate::tools::bench_alerts::rss_mib;
use crate::tools::scratch::ScratchDatabase;

/// Parameters of the socket benchmark.
#[derive(Debug, Clone)]
pub struct WsBenchConfig {
    /// Sockets.
    pub clients: usize,
    /// Machines.
    pub machines: usize,
    /// Metrics per machine.
    pub metrics: usize,
    /// Seconds of readings.
    pub secs: u32,
}

#[derive(Deserialize)]
struct Batch {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    readings: Vec<Value>,
}

#[derive(Deserialize)]
struct Value {
    value: f64,
}

/// What every socket shares: when each second's readings were acknowledged (µs since the start, 0 while
/// not yet), and the latencies measured.
struct Clock {
    start: Instant,
    acked: Vec<AtomicU64>,
    ready: AtomicUsize,
}

impl Clock {
    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(settings: &Settings, config: WsBenchConfig) -> anyhow::Result<()> {
    let run = format!("benchws{}", Uuid::new_v4().simple());
    let db = ScratchDatabase::create(settings, &run, &[]).await?;
    let mut s = settings.clone();
    let base = {
        use secrecy::ExposeSecret as _;
        let url = s.database.url.expose_secret().to_owned();
        url[..url.rfind('/').unwrap_or(url.len())].to_owned()
    };
    s.database.url = secrecy::SecretString::from(format!("{base}/{run}"));
    s.http.bind = "127.0.0.1:0".into();
    s.redis.key_prefix = format!("{run}:");
    s.limits.rate_limits = false;
    s.kafka.readings_topic = format!("{run}.readings");
    s.kafka.alerts_topic = format!("{run}.alerts");
    s.kafka.rules_topic = format!("{run}.rules");
    s.kafka.alert_actions_topic = format!("{run}.alert-actions");
    s.kafka.detector_changelog_topic = format!("{run}.detector-state");
    s.kafka.partitions = 3;
    let topics = [
        s.kafka.readings_topic.clone(),
        s.kafka.alerts_topic.clone(),
        s.kafka.rules_topic.clone(),
        s.kafka.alert_actions_topic.clone(),
        s.kafka.detector_changelog_topic.clone(),
    ];
    let result = measure(&s, &db, &config).await;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    delete_topics(&s.kafka.brokers, &names).await;
    db.remove().await?;
    result
}

async fn measure(s: &Settings, db: &ScratchDatabase, config: &WsBenchConfig) -> anyhow::Result<()> {
    let roles = Roles {
        gateway: true,
        api: true,
        projection: false,
        detector: false,
        connectors: false,
        alerting: false,
        predictor: false,
    };
    let app = Application::build(s.clone(), roles).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let pool = &db.pool;
    let tenant = crate::tenants::create_tenant(pool, "bench-ws", Tier::Enterprise).await?;
    let machines: Vec<String> = (0..config.machines).map(|i| format!("m-{i:04}")).collect();
    for m in &machines {
        sqlx::query("INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, $3)")
            .bind(Uuid::new_v4())
            .bind(tenant)
            .bind(m)
            .execute(pool)
            .await?;
    }
    let key = crate::tenants::create_api_key(pool, tenant, "bench", &[Scope::Ingest]).await?;
    let password = format!("pw-{}", Uuid::new_v4().simple());
    crate::tenants::upsert_user(pool, tenant, "bench@bench-ws.local", &password, "viewer").await?;
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"email": "bench@bench-ws.local", "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("the login answered no token")?
        .to_owned();

    let clock = Arc::new(Clock {
        start: Instant::now(),
        acked: (0..=config.secs).map(|_| AtomicU64::new(0)).collect(),
        ready: AtomicUsize::new(0),
    });
    let rss_before = rss_mib();
    let ws_url = format!("{}/api/v1/ws/dashboard", url.replace("http://", "ws://"));
    let stop = CancellationToken::new();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..config.clients {
        let (ws_url, token, clock, stop) =
            (ws_url.clone(), token.clone(), clock.clone(), stop.clone());
        clients.spawn(async move { client(&ws_url, &token, &clock, &stop).await });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while clock.ready.load(Ordering::Relaxed) < config.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = clock.ready.load(Ordering::Relaxed);
    let rss_connected = rss_mib();
    println!(
        "{connected} of {} sockets signed in and subscribed; resident memory {rss_before:.0} MiB before, {rss_connected:.0} MiB with them",
        config.clients
    );

    // One request per second with a reading of every series; the value is the second's number.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for second in 1..=config.secs {
        tick.tick().await;
        let ts = chrono::Utc::now().to_rfc3339();
        let readings: Vec<serde_json::Value> = machines
            .iter()
            .flat_map(|m| {
                let ts = &ts;
                (0..config.metrics).map(move |k| json!({"machine": m, "metric": format!("metric-{k}"), "ts": ts, "value": second}))
            })
            .collect();
        let r = http
            .post(format!("{url}/api/v1/ingest"))
            .header("x-api-key", &key.secret)
            .json(&json!({ "readings": readings }))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 202, "ingest answered {}", r.status());
        if let Some(slot) = clock.acked.get(second as usize) {
            slot.store(clock.micros().max(1), Ordering::Relaxed);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_end = rss_mib();
    stop.cancel();
    let mut latencies: Vec<u64> = Vec::new();
    let mut received: Vec<usize> = Vec::new();
    while let Some(done) = clients.join_next().await {
        if let Ok(Ok((mine, count))) = done {
            latencies.extend(mine);
            received.push(count);
        }
    }
    shutdown.cancel();
    let _ = server.await;
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let posted = config.machines * config.metrics * config.secs as usize;
    received.sort_unstable();
    println!(
        "{} readings posted ({} series × {} s); per socket received min {} / median {} / max {}",
        posted,
        config.machines * config.metrics,
        config.secs,
        received.first().copied().unwrap_or(0),
        received.get(received.len() / 2).copied().unwrap_or(0),
        received.last().copied().unwrap_or(0),
    );
    println!(
        "ingest 202 → socket: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} receipts",
        pct(0.50),
        pct(0.99),
        pct(1.0),
        latencies.len()
    );
    println!("resident memory at the end: {rss_end:.0} MiB (server and {connected} client sockets in one process)");
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A signed-in socket; a sign-in the server asks to repeat later (1013, as under a reconnect storm) is
/// repeated after a pause, as a browser would.
async fn sign_in(url: &str, token: &str) -> anyhow::Result<Socket> {
    for attempt in 0..20u64 {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        ws.send(Message::Text(token.to_owned().into())).await?;
        match ws.next().await {
            Some(Ok(Message::Text(_))) => return Ok(ws),
            _ => tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await,
        }
    }
    anyhow::bail!("the socket never signed in")
}

/// One socket: signs in, subscribes to every machine, and times each reading it gets.
async fn client(
    url: &str,
    token: &str,
    clock: &Clock,
    stop: &CancellationToken,
) -> anyhow::Result<(Vec<u64>, usize)> {
    let mut ws = sign_in(url, token).await?;
    ws.send(Message::Text(
        json!({"type": "subscribe", "machines": "*"})
            .to_string()
            .into(),
    ))
    .await?;
    let mut latencies = Vec::new();
    let mut count = 0;
    let mut subscribed = false;
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            m = ws.next() => m,
        };
        let Some(Ok(Message::Text(text))) = message else {
            if matches!(message, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                break;
            }
            continue;
        };
        let now = clock.micros();
        let Ok(batch) = serde_json::from_str::<Batch>(text.as_str()) else {
            continue;
        };
        match batch.kind.as_str() {
            "subscribed" if !subscribed => {
                subscribed = true;
                clock.ready.fetch_add(1, Ordering::Relaxed);
            }
            "readings" => {
                for r in batch.readings {
                    count += 1;
                    let acked = clock
                        .acked
                        .get(r.value as usize)
                        .map_or(0, |a| a.load(Ordering::Relaxed));
                    latencies.push(if acked == 0 {
                        0
                    } else {
                        now.saturating_sub(acked)
                    });
                }
            }
            _ => {}
        }
    }
    Ok((latencies, count))
}
