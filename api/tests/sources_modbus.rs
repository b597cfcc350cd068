//! Modbus TCP sources end to end: a pymodbus device with known, changing values, a source created
//! through the API, the values read back through the query API; and the faults a plant brings.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::TestApp;
use serde_json::{json, Value};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, format!("{}/api/v1{path}", app.url))
        .bearer_auth(&app.admin);
    if let Some(body) = body {
        request = request.json(body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, body: Value) -> String {
    let (status, created) = send(app, reqwest::Method::POST, "/sources", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn point(metric: &str, register: &str, address: u16, data_type: &str, extra: Value) -> Value {
    let mut p = json!({"machine": "press-01", "metric": metric, "register": register,
                       "address": address, "data_type": data_type});
    p.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    p
}

fn ts_ms(row: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(row["ts"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn modbus_values_arrive_with_their_type_scale_and_time() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let device = Peer::modbus(free_port(), &["--period", "0.3"]).await;
    let started = chrono::Utc::now().timestamp_millis();
    create(
        &app,
        json!({
            "name": "press-plc", "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{}", device.port),
            "poll_interval_ms": 200, "timeout_ms": 1000,
            "points": [
                point("temp", "holding", 0, "f32", json!({})),
                point("pressure", "holding", 2, "i16", json!({"scale": 0.1})),
                point("count", "holding", 3, "u16", json!({})),
                point("energy", "holding", 10, "f64", json!({"word_order": "little"})),
                point("flow", "input", 0, "u32", json!({"word_order": "little", "unit_id": 1})),
                point("torque", "input", 2, "i32", json!({"scale": 0.001, "offset": 5})),
                point("running", "coil", 0, "bool", json!({})),
                point("ready", "discrete_input", 0, "bool", json!({})),
            ]
        }),
    )
    .await;
    let rows = app.wait_for_readings("press-01", 8 * 12).await;
    let now = chrono::Utc::now().timestamp_millis();
    let of = |metric: &str| -> Vec<(i64, f64)> {
        rows.iter()
            .filter(|r| r["metric"] == metric)
            .map(|r| (ts_ms(r), r["value"].as_f64().unwrap()))
            .collect()
    };
    let step = |v: f64, base: f64, sign: f64| -> i64 {
        let k = (v - base) * sign;
        assert!(
            (k - k.round()).abs() < 1e-6 && k >= 0.0,
            "{v} is not {base} {sign:+} k"
        );
        k.round() as i64
    };
    // One request reads holding 0..=3: temp, pressure and count share a timestamp and a step.
    let temps = of("temp");
    assert!(temps.len() >= 10);
    let mut steps = std::collections::BTreeSet::new();
    for (ts, temp) in &temps {
        assert!(
            (started - 1_000..=now).contains(ts),
            "timestamp {ts} outside the test"
        );
        let k = step(*temp, 20.5, 1.0);
        steps.insert(k);
        let at = |metric: &str| {
            of(metric)
                .into_iter()
                .find(|(t, _)| t == ts)
                .map(|(_, v)| v)
        };
        assert_eq!(at("count"), Some(k as f64), "u16 at {ts}");
        let pressure = at("pressure").expect("pressure read with temp");
        assert!(
            (pressure - (-10.0 - 0.1 * k as f64)).abs() < 1e-9,
            "i16 scaled: {pressure} for k={k}"
        );
    }
    assert!(steps.len() >= 2, "the values changed: {steps:?}");
    for (_, v) in of("energy") {
        step(v, 1234.5, 1.0);
    }
    for (_, v) in of("flow") {
        step(v, 70000.0, 1.0);
    }
    for (ts, v) in of("torque") {
        let k = step((v - 5.0) / 0.001, -70000.0, -1.0);
        // Input 0..=3 is one request: flow has the same step.
        let flow = of("flow").into_iter().find(|(t, _)| *t == ts).unwrap().1;
        assert_eq!(flow, 70000.0 + k as f64);
    }
    for metric in ["running", "ready"] {
        let values: std::collections::BTreeSet<i64> =
            of(metric).iter().map(|(_, v)| *v as i64).collect();
        assert!(
            values.iter().all(|v| *v == 0 || *v == 1),
            "{metric}: {values:?}"
        );
    }
    let (_, sources) = app.get("/api/v1/sources").await;
    let status = &sources["sources"][0]["status"];
    assert_eq!(status["state"], "ok", "{sources}");
    assert!(
        status["readings_per_minute"].as_i64().unwrap() > 0,
        "{status}"
    );
    device.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_device_down_and_back_shows_on_the_status_and_recovers() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let port = free_port();
    let device = Peer::modbus(port, &[]).await;
    let id = create(
        &app,
        json!({"name": "plc", "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{port}"),
               "poll_interval_ms": 200, "timeout_ms": 500,
               "points": [point("count", "holding", 3, "u16", json!({}))]}),
    )
    .await;
    let ok = app
        .wait_source_status(&id, 30, |s| s["state"] == "ok")
        .await;
    let first_success = ok["last_success_at"].as_str().unwrap().to_owned();
    device.stop().await;
    let down = app
        .wait_source_status(&id, 30, |s| s["state"] == "error")
        .await;
    let error = down["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{port}")),
        "names the endpoint: {error}"
    );
    let device = Peer::modbus(port, &[]).await;
    let back = app
        .wait_source_status(&id, 30, |s| {
            s["state"] == "ok"
                && s["last_success_at"].as_str() > Some(s["last_error_at"].as_str().unwrap_or(""))
        })
        .await;
    assert!(back["last_success_at"].as_str().unwrap() > first_success.as_str());
    let kept = back["last_error"].as_str().unwrap_or_default();
    assert!(
        kept.contains(&format!("127.0.0.1:{port}")),
        "the last error stays readable: {back}"
    );
    device.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_slow_device_and_a_wrong_map_stall_nobody_and_say_why() {
    let app = TestApp::spawn_polling(&["press-01", "slow-02", "wrong-03"]).await;
    let good = Peer::modbus(free_port(), &[]).await;
    let slow = Peer::modbus(free_port(), &["--delay-ms", "3000"]).await;
    let slow_id = create(
        &app,
        json!({"name": "slow", "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{}", slow.port),
               "poll_interval_ms": 200, "timeout_ms": 300,
               "points": [{"machine": "slow-02", "metric": "count", "register": "holding", "address": 3, "data_type": "u16"}]}),
    )
    .await;
    let wrong_id = create(
        &app,
        json!({"name": "wrong", "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{}", good.port),
               "poll_interval_ms": 200,
               "points": [
                   {"machine": "wrong-03", "metric": "count", "register": "holding", "address": 3, "data_type": "u16"},
                   {"machine": "wrong-03", "metric": "ghost", "register": "holding", "address": 500, "data_type": "f32"}
               ]}),
    )
    .await;
    let good_id = create(
        &app,
        json!({"name": "good", "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{}", good.port),
               "poll_interval_ms": 100,
               "points": [point("count", "holding", 3, "u16", json!({}))]}),
    )
    .await;
    // The healthy source keeps its pace (10 polls a second) while the slow one times out.
    let t = Instant::now();
    app.wait_for_readings("press-01", 30).await;
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "the good source was held up: {:?}",
        t.elapsed()
    );
    let slow_status = app
        .wait_source_status(&slow_id, 30, |s| s["state"] == "error")
        .await;
    assert!(
        slow_status["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer"),
        "{slow_status}"
    );
    let wrong = app
        .wait_source_status(&wrong_id, 30, |s| s["state"] == "error")
        .await;
    let message = wrong["last_error"].as_str().unwrap();
    assert!(
        message.contains("holding registers 500..=501") && message.contains("IllegalDataAddress"),
        "a clear error: {message}"
    );
    // The points that exist on that device are still read.
    app.wait_for_readings("wrong-03", 3).await;
    let (_, rows) = app.get("/api/v1/machines/wrong-03/readings").await;
    assert!(rows["readings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["metric"] == "count"));
    app.wait_source_status(&good_id, 10, |s| s["state"] == "ok")
        .await;
    good.stop().await;
    slow.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn changes_to_a_source_apply_without_a_restart() {
    use reqwest::Method;
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let device = Peer::modbus(free_port(), &[]).await;
    let body = |port: u16| {
        json!({"name": "plc", "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{port}"),
               "poll_interval_ms": 100, "timeout_ms": 300,
               "points": [point("count", "holding", 3, "u16", json!({}))]})
    };
    // Pointed at nothing first: an error.
    let id = create(&app, body(free_port())).await;
    app.wait_source_status(&id, 30, |s| s["state"] == "error")
        .await;
    // Corrected through the API: the running poller follows.
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/sources/{id}"),
        Some(&body(device.port)),
    )
    .await;
    assert_eq!(status, 200);
    app.wait_source_status(&id, 30, |s| {
        s["state"] == "ok" && s["definition_version"] == 2
    })
    .await;
    app.wait_for_readings("press-01", 5).await;
    // Disabled: polling stops.
    let (status, _) = send(&app, Method::POST, &format!("/sources/{id}/disable"), None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, before) = app
        .get("/api/v1/machines/press-01/readings?limit=100000")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = app
        .get("/api/v1/machines/press-01/readings?limit=100000")
        .await;
    assert_eq!(
        before["readings"].as_array().unwrap().len(),
        after["readings"].as_array().unwrap().len(),
        "no polls after disable"
    );
    // Enabled again: polling resumes.
    send(&app, Method::POST, &format!("/sources/{id}/enable"), None).await;
    let n = after["readings"].as_array().unwrap().len();
    app.wait_for_readings("press-01", n + 5).await;
    device.stop().await;
    app.stop().await;
}
