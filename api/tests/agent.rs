//! The edge agent against a pymodbus device and the real platform, with the cloud cut off for a while
//! and the agent restarted during the outage: every reading arrives, once.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::TestApp;
use haltless_connectors::agent::AgentConfig;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A TCP relay to the cloud that the test can cut: while down, connections are refused and open ones die.
struct Link {
    port: u16,
    upstream: u16,
    stop: CancellationToken,
}

impl Link {
    async fn up(port: u16, upstream: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        conns.spawn(async move {
                            if let Ok(mut out) = TcpStream::connect(("127.0.0.1", upstream)).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        });
                    }
                }
            }
            conns.abort_all();
        });
        Self {
            port,
            upstream,
            stop,
        }
    }

    fn down(self) -> (u16, u16) {
        self.stop.cancel();
        (self.port, self.upstream)
    }
}

fn site(cloud_port: u16, key: &str, buffer: &Path, device: u16) -> AgentConfig {
    AgentConfig::parse(&format!(
        r#"
        [cloud]
        url = "http://127.0.0.1:{cloud_port}"
        api_key = "{key}"
        push_interval_ms = 100
        min_backoff_ms = 100
        max_backoff_ms = 400
        timeout_ms = 2000
        [buffer]
        dir = "{}"
        [http]
        bind = "127.0.0.1:0"
        [[sources]]
        name = "press-plc"
        protocol = "modbus_tcp"
        endpoint = "127.0.0.1:{device}"
        poll_interval_ms = 100
        [[sources.points]]
        machine = "press-01"
        metric = "count"
        register = "holding"
        address = 3
        data_type = "u16"
        [[sources.points]]
        machine = "press-01"
        metric = "temp"
        register = "holding"
        address = 0
        data_type = "f32"
        "#,
        buffer.display()
    ))
    .unwrap()
}

/// The process's metrics, as `haltless agent` serves them.
fn metrics() -> haltless_connectors::agent::server::RenderMetrics {
    let prometheus = haltless_api::telemetry::prometheus();
    std::sync::Arc::new(move || prometheus.render())
}

async fn health(port: u16) -> Value {
    reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_health(port: u16, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(port).await;
        if done(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_agent_loses_and_duplicates_nothing_through_a_cloud_outage_and_a_restart() {
    let app = TestApp::spawn(&["press-01"]).await;
    let cloud_port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let device = Peer::modbus(free_port(), &["--period", "0.5"]).await;
    let link = Link::up(free_port(), cloud_port).await;
    let buffer = std::env::temp_dir().join(format!("haltless-agent-test-{}", uuid::Uuid::new_v4()));
    let config = site(link.port, &app.key, &buffer, device.port);

    let first = CancellationToken::new();
    let agent = haltless_connectors::agent::server::start(config.clone(), metrics(), first.clone())
        .await
        .unwrap();
    app.wait_for_readings("press-01", 10).await;
    wait_health(agent.port, "a push", |h| {
        h["push"]["pushed"].as_u64() > Some(0)
    })
    .await;

    // The cloud goes away; the agent keeps reading into its buffer.
    let (link_port, upstream) = link.down();
    let outage_started = Instant::now();
    let h = wait_health(agent.port, "buffering", |h| {
        h["buffered_readings"].as_u64() > Some(20)
    })
    .await;
    assert!(h["push"]["last_error"].as_str().is_some(), "{h}");
    let (_, before) = app
        .get("/api/v1/machines/press-01/readings?limit=100000")
        .await;
    let stored_during_outage = before["readings"].as_array().unwrap().len();

    // The agent restarts during the outage.
    let restart_began = Instant::now();
    first.cancel();
    agent.task.await.unwrap().unwrap();
    let final_first = serde_json::to_value(agent.agent.health()).unwrap();
    let read_by_first = final_first["sources"][0]["readings_total"]
        .as_u64()
        .unwrap();
    assert!(read_by_first >= h["sources"][0]["readings_total"].as_u64().unwrap());
    let second = CancellationToken::new();
    let agent =
        haltless_connectors::agent::server::start(config.clone(), metrics(), second.clone())
            .await
            .unwrap();
    let restart = restart_began.elapsed();
    let h = wait_health(agent.port, "more buffering", |h| {
        h["sources"][0]["readings_total"].as_u64() > Some(20)
    })
    .await;
    assert!(
        h["buffered_readings"].as_u64().unwrap() > 20,
        "the first run's buffer is still there: {h}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, during) = app
        .get("/api/v1/machines/press-01/readings?limit=100000")
        .await;
    assert_eq!(
        during["readings"].as_array().unwrap().len(),
        stored_during_outage,
        "nothing got through the cut"
    );

    // The outage lasts a minute in all (HALTLESS_TEST_OUTAGE_SECS shortens it while iterating).
    let outage: u64 = std::env::var("HALTLESS_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    tokio::time::sleep(outage_left(outage_started, outage)).await;
    let h = health(agent.port).await;
    assert_eq!(
        h["sources"][0]["healthy"], true,
        "the agent kept reading: {h}"
    );

    // The cloud comes back: the buffer drains.
    let link = Link::up(link_port, upstream).await;
    wait_health(agent.port, "draining", |h| h["buffered_readings"] == 0).await;
    // The device stops, so that the agent's last readings are pushed before it stops too.
    device.stop().await;
    wait_health(agent.port, "the device gone", |h| {
        h["sources"][0]["healthy"] == false
    })
    .await;
    wait_health(agent.port, "the last push", |h| h["buffered_readings"] == 0).await;
    second.cancel();
    agent.task.await.unwrap().unwrap();
    let last = serde_json::to_value(agent.agent.health()).unwrap();
    assert_eq!(
        last["buffered_readings"], 0,
        "nothing was read after the last push: {last}"
    );
    let read_by_second = last["sources"][0]["readings_total"].as_u64().unwrap();
    let read = read_by_first + read_by_second;
    assert_eq!(last["dropped_readings"], 0);

    // Every reading either run read is stored, exactly once.
    let rows = app.wait_for_readings("press-01", read as usize).await;
    assert_eq!(
        rows.len() as u64,
        read,
        "read {read}, stored {}",
        rows.len()
    );
    let mut keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["metric"].to_string(), r["ts"].to_string()))
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), rows.len());
    // The device's counter (one step per 0.5 s) has no gap longer than the restart (however long a loaded
    // machine made it) and a poll or two: the agent kept reading through the outage.
    let longest = 2 + (restart.as_secs_f64() / 0.5).ceil() as i64;
    let counts: Vec<i64> = rows
        .iter()
        .filter(|r| r["metric"] == "count")
        .map(|r| r["value"].as_f64().unwrap() as i64)
        .collect();
    for pair in counts.windows(2) {
        assert!(
            pair[1] - pair[0] <= longest && pair[1] >= pair[0],
            "a gap in the device's counter: {pair:?} (the restart took {restart:?})"
        );
    }
    assert_eq!(
        common::peers::sources_on_topic(&app.iso)
            .into_iter()
            .collect::<Vec<_>>(),
        ["agent"],
        "the agent's pushes are labelled as such on the topic"
    );
    link.down();
    std::fs::remove_dir_all(&buffer).ok();
    app.stop().await;
}

/// What remains of an outage of `secs` that began at `started`.
fn outage_left(started: Instant, secs: u64) -> Duration {
    Duration::from_secs(secs).saturating_sub(started.elapsed())
}
