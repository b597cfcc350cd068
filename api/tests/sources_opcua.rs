//! OPC-UA sources end to end against an asyncua server with known, changing values: periodic reads,
//! a subscription with monitored items and a user login, read back through the query API.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::TestApp;
use serde_json::{json, Value};

async fn create(app: &TestApp, body: Value) -> String {
    let r = app
        .client
        .post(format!("{}/api/v1/sources", app.url))
        .bearer_auth(&app.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn points(machine: &str) -> Value {
    let p = |metric: &str, node: &str, extra: Value| {
        let mut v = json!({"machine": machine, "metric": metric, "node_id": format!("ns=2;s=Press.{node}")});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    json!([
        p("temp", "Temp", json!({})),
        p("count", "Count", json!({})),
        p("pressure", "Pressure", json!({"scale": 0.1})),
        p("level", "Level", json!({})),
        p("running", "Running", json!({})),
    ])
}

/// Checks that every timestamp carries one consistent step k of the server and that k changed.
fn check_consistent(rows: &[Value], started: i64) -> BTreeSet<i64> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut by_ts: std::collections::BTreeMap<String, Vec<(String, f64)>> = Default::default();
    for r in rows {
        by_ts
            .entry(r["ts"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                r["metric"].as_str().unwrap().to_owned(),
                r["value"].as_f64().unwrap(),
            ));
    }
    let mut steps = BTreeSet::new();
    for (ts, values) in &by_ts {
        let ms = chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .timestamp_millis();
        assert!(
            (started - 2_000..=now).contains(&ms),
            "source timestamp {ts} outside the test"
        );
        let get = |m: &str| values.iter().find(|(n, _)| n == m).map(|(_, v)| *v);
        let Some(count) = get("count") else { continue };
        assert_eq!(count.fract(), 0.0);
        steps.insert(count as i64);
        if let Some(temp) = get("temp") {
            assert_eq!(temp, 20.5 + count, "Double at {ts}");
        }
        if let Some(pressure) = get("pressure") {
            assert!(
                (pressure - (-10.0 - 0.1 * count)).abs() < 1e-9,
                "Int16 scaled at {ts}: {pressure}"
            );
        }
        if let Some(level) = get("level") {
            assert_eq!(level, 0.25 * count, "Float at {ts}");
        }
        if let Some(running) = get("running") {
            assert_eq!(running, (count as i64 % 2) as f64, "Boolean at {ts}");
        }
    }
    steps
}

#[tokio::test]
async fn opcua_reads_arrive_with_type_scale_and_source_time() {
    let app = TestApp::spawn_polling(&["press-01", "press-02"]).await;
    let server = Peer::opcua(free_port(), &["--period", "0.4"]).await;
    let started = chrono::Utc::now().timestamp_millis();
    let endpoint = format!("opc.tcp://127.0.0.1:{}/haltless", server.port);
    create(
        &app,
        json!({"name": "press-ua", "protocol": "opcua", "endpoint": endpoint,
               "poll_interval_ms": 200, "timeout_ms": 3000, "points": points("press-01")}),
    )
    .await;
    // A map naming a node the server lacks: a clear error, and the other node is still read.
    let wrong = create(
        &app,
        json!({"name": "wrong-map", "protocol": "opcua", "endpoint": endpoint, "poll_interval_ms": 200,
               "points": [{"machine": "press-02", "metric": "count", "node_id": "ns=2;s=Press.Count"},
                          {"machine": "press-02", "metric": "ghost", "node_id": "ns=2;s=Press.Nope"}]}),
    )
    .await;
    let rows = app.wait_for_readings("press-01", 5 * 5).await;
    let steps = check_consistent(&rows, started);
    assert!(steps.len() >= 3, "values changed: {steps:?}");
    let sources: Vec<String> = common::peers::sources_on_topic(&app.iso)
        .into_iter()
        .collect();
    assert_eq!(sources, ["opcua"]);
    // Polling faster than the server changes reads the same source timestamp twice: stored once.
    let mut seen = BTreeSet::new();
    for r in &rows {
        assert!(
            seen.insert((r["metric"].to_string(), r["ts"].to_string())),
            "duplicate {r}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = app.get(&format!("/api/v1/sources/{wrong}/status")).await;
        if status["state"] == "error" {
            let message = status["last_error"].as_str().unwrap();
            assert!(
                message.contains("press-02/ghost (ns=2;s=Press.Nope)")
                    && message.contains("BadNodeIdUnknown"),
                "{message}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wrong node never showed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = app.wait_for_readings("press-02", 3).await;
    assert!(rows.iter().all(|r| r["metric"] == "count"));
    server.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn opcua_subscription_with_a_user_login_and_a_refused_password() {
    let app = TestApp::spawn_polling(&["press-01", "press-02"]).await;
    let server = Peer::opcua(
        free_port(),
        &["--period", "0.3", "--user", "plant", "--password", "s3cret"],
    )
    .await;
    let started = chrono::Utc::now().timestamp_millis();
    let endpoint = format!("opc.tcp://127.0.0.1:{}/haltless", server.port);
    create(
        &app,
        json!({"name": "press-sub", "protocol": "opcua", "endpoint": endpoint, "poll_interval_ms": 100,
               "opcua": {"subscribe": true, "auth": {"type": "user_password", "username": "plant", "password": "s3cret"}},
               "points": points("press-01")}),
    )
    .await;
    let bad = create(
        &app,
        json!({"name": "press-badpw", "protocol": "opcua", "endpoint": endpoint, "poll_interval_ms": 100,
               "opcua": {"auth": {"type": "user_password", "username": "plant", "password": "wrong"}},
               "points": points("press-02")}),
    )
    .await;
    let rows = app.wait_for_readings("press-01", 5 * 5).await;
    let steps = check_consistent(&rows, started);
    assert!(
        steps.len() >= 3,
        "changes arrived through the subscription: {steps:?}"
    );
    let (_, source) = app.get("/api/v1/sources").await;
    let shown = source.to_string();
    assert!(
        !shown.contains("s3cret"),
        "the password is never shown: {shown}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = app.get(&format!("/api/v1/sources/{bad}/status")).await;
        if status["state"] == "error" {
            assert!(
                status["last_error"].as_str().unwrap().contains("127.0.0.1"),
                "{status}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a refused login never showed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, rows) = app.get("/api/v1/machines/press-02/readings").await;
    assert_eq!(rows["readings"], json!([]));
    server.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn an_opcua_server_down_and_back_shows_on_the_status_and_recovers() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let port = free_port();
    let server = Peer::opcua(port, &["--period", "0.3"]).await;
    let id = create(
        &app,
        json!({"name": "press-ua", "protocol": "opcua", "endpoint": format!("opc.tcp://127.0.0.1:{port}/haltless"),
               "poll_interval_ms": 200, "timeout_ms": 1000, "points": points("press-01")}),
    )
    .await;
    let status = |want: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, s) = app.get(&format!("/api/v1/sources/{id}/status")).await;
                if s["state"] == want {
                    return s;
                }
                assert!(Instant::now() < deadline, "never {want}: {s}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    status("ok").await;
    server.stop().await;
    let down = status("error").await;
    assert!(
        down["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{down}"
    );
    let server = Peer::opcua(port, &["--period", "0.3"]).await;
    let before = app.wait_for_readings("press-01", 1).await.len();
    let back = status("ok").await;
    assert!(
        back["last_success_at"].as_str() > down["last_error_at"].as_str(),
        "{back}"
    );
    // Readings flow again after the restart (the server's counter starts from 0 again).
    app.wait_for_readings("press-01", before + 10).await;
    server.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn opcua_with_basic256sha256_sign_and_encrypt() {
    let app = TestApp::spawn_polling(&["press-01", "press-02"]).await;
    let server = Peer::opcua(free_port(), &["--period", "0.3", "--secure"]).await;
    let started = chrono::Utc::now().timestamp_millis();
    let endpoint = format!("opc.tcp://127.0.0.1:{}/haltless", server.port);
    create(
        &app,
        json!({"name": "secure", "protocol": "opcua", "endpoint": endpoint, "poll_interval_ms": 200,
               "opcua": {"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt"},
               "points": points("press-01")}),
    )
    .await;
    let plain = create(
        &app,
        json!({"name": "plain", "protocol": "opcua", "endpoint": endpoint, "poll_interval_ms": 200,
               "points": points("press-02")}),
    )
    .await;
    let rows = app.wait_for_readings("press-01", 5 * 5).await;
    assert!(check_consistent(&rows, started).len() >= 2);
    // Asking for no security from a server that only offers encryption says what it offers.
    let status = app
        .wait_source_status(&plain, 30, |s| s["state"] == "error")
        .await;
    let message = status["last_error"].as_str().unwrap();
    assert!(
        message.contains("no endpoint with security policy None")
            && message.contains("Basic256Sha256 SignAndEncrypt"),
        "{message}"
    );
    server.stop().await;
    app.stop().await;
}
