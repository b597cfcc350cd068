//! The one admission path of readings, seen from the pollers: a retired machine's polled readings are
//! refused and counted, and polled deliveries count against the tenant's API writes per minute, the same
//! budget its HTTP writes use.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::TestApp;
use reqwest::Method;
use serde_json::json;

/// A Modbus source reading one register of `machine` every 100 ms; returns its id.
async fn modbus_source(app: &TestApp, device: &Peer, machine: &str) -> String {
    let body = json!({
        "name": "plc", "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{}", device.port),
        "poll_interval_ms": 100, "timeout_ms": 1000,
        "points": [{"machine": machine, "metric": "temp", "register": "holding", "address": 0,
                    "data_type": "f32"}]
    });
    let (status, created) = app
        .call(Method::POST, "/api/v1/sources", &app.admin, Some(&body))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// The value of the rejected-readings counter with these labels on `/metrics` (0 when absent).
async fn rejected(app: &TestApp, reason: &str, source: &str) -> f64 {
    app.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("haltless_gateway_readings_rejected_total{"))
        .filter(|l| {
            l.contains(&format!("reason=\"{reason}\""))
                && l.contains(&format!("source=\"{source}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn stored(app: &TestApp, machine: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM named_readings r JOIN machines m ON m.id = r.machine_id WHERE m.name = $1",
    )
    .bind(machine)
    .fetch_one(&app.iso.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_retired_machines_polled_readings_are_refused_and_counted() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let device = Peer::modbus(free_port(), &["--period", "0.3"]).await;
    let id = modbus_source(&app, &device, "press-01").await;
    app.wait_for_readings("press-01", 3).await;

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/machines/press-01/retire",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let refused = app
        .wait_source_status(&id, 20, |s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("retired") && e.contains("press-01"))
        })
        .await;
    assert_eq!(refused["state"], "error", "{refused}");

    // Nothing polled after the retirement reaches the store: the count settles and stays.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = stored(&app, "press-01").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stored(&app, "press-01").await, settled);
    assert!(rejected(&app, "retired_machine", "modbus").await >= 1.0);

    device.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn polled_deliveries_count_against_the_tenants_writes_per_minute() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    sqlx::query("UPDATE tenants SET writes_per_minute = 5 WHERE id = $1")
        .bind(app.tenant)
        .execute(&app.iso.pool)
        .await
        .unwrap();
    let device = Peer::modbus(free_port(), &["--period", "0.3"]).await;
    let id = modbus_source(&app, &device, "press-01").await;

    // Ten polls a second against five writes a minute: the pollers run out and are refused.
    let limited = app
        .wait_source_status(&id, 20, |s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("5 API writes per minute"))
        })
        .await;
    assert_eq!(limited["state"], "error", "{limited}");
    assert!(rejected(&app, "rate_limited", "modbus").await >= 1.0);

    // The pollers spend the budget the tenant's HTTP writes use: an ingest request is refused too. (A
    // new minute can open between two requests; the pollers use it up again within a second or two.)
    let reading = json!({"readings": [{"machine": "press-01", "metric": "manual",
                                       "ts": chrono::Utc::now().timestamp_millis(), "value": 1.0}]});
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = app.ingest(&reading).await;
        if r.status().as_u16() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            break;
        }
        assert!(Instant::now() < deadline, "ingest was never rate limited");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // At most the limit's worth of deliveries are stored per minute window (one reading each), plus those
    // of the window the test may have crossed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(stored(&app, "press-01").await <= 10);

    device.stop().await;
    app.stop().await;
}
