//! With Kafka stopped the gateway answers 503 (never 202), and 202 again once Kafka is back; every reading
//! it acknowledged is stored.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::json;

/// A second, independent broker run by the stack's own script.
struct Broker {
    instance: String,
    port: u16,
    controller_port: u16,
}

impl Broker {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../compose/lib/kafka.sh")
    }

    fn run(&self, action: &str) {
        let status = std::process::Command::new("bash")
            .arg(Self::script())
            .arg(action)
            .env("KAFKA_INSTANCE", &self.instance)
            .env("HALTLESS_KAFKA_PORT", self.port.to_string())
            .env(
                "HALTLESS_KAFKA_CONTROLLER_PORT",
                self.controller_port.to_string(),
            )
            .env("KAFKA_HEAP", "384m")
            .status()
            .expect("compose/lib/kafka.sh runs");
        assert!(status.success(), "kafka.sh {action} failed");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn gateway_answers_503_while_kafka_is_down() {
    let broker = Broker {
        instance: format!("outage-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        port: free_port(),
        controller_port: free_port(),
    };
    broker.run("start");
    let brokers = format!("127.0.0.1:{}", broker.port);
    let app = TestApp::spawn_with(&["m-1"], |s| {
        s.kafka.brokers = brokers;
        s.gateway.produce_timeout_ms = 2_000;
    })
    .await;
    let reading = |i: i64| json!({"readings": [{"machine": "m-1", "metric": "t", "ts": 1_795_687_200_000i64 + i, "value": i}]});

    assert_eq!(app.ingest(&reading(0)).await.status(), 202);
    broker.run("stop");
    let started = Instant::now();
    let r = app.ingest(&reading(1)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("unavailable"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 comes within the produce timeout"
    );
    // The outage is known: the next requests answer at once instead of each waiting the timeout.
    for i in 0..5 {
        let started = Instant::now();
        assert_eq!(app.ingest(&reading(10 + i)).await.status(), 503);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a known outage answers fast: {:?}",
            started.elapsed()
        );
    }
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["kafka"]["status"], json!("down"));

    broker.run("start");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = app.ingest(&reading(2)).await.status();
        if status == 202 {
            break;
        }
        assert_eq!(status, 503, "nothing but 202 or 503 while Kafka recovers");
        assert!(
            Instant::now() < deadline,
            "the gateway did not recover after Kafka came back"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rows = app.wait_for_readings("m-1", 2).await;
    let values: Vec<f64> = rows.iter().map(|r| r["value"].as_f64().unwrap()).collect();
    assert!(values.contains(&0.0) && values.contains(&2.0), "{values:?}");
    app.stop().await;
    broker.run("stop");
    let _ = std::fs::remove_dir_all(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../.haltless/kafka/instances/{}", broker.instance)),
    );
}
