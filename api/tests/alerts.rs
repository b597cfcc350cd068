//! Rules through the API, alerts from the detectors through the projection to the API, and acknowledgements
//! and snoozes as events in the alert's history; all on real Kafka and PostgreSQL.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::{json, Value};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    // Rules and alert actions need an operator or admin; API keys only ingest and read.
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(&app.admin);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn wait_for(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app.get(path).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_rule_raises_and_resolves_one_alert_and_actions_show_in_its_history() {
    let app = TestApp::spawn(&["press-07", "lathe-02"]).await;
    let rule = json!({"rule": {"id": "overheat", "name": "Spindle overheating", "severity": "critical",
        "when": {"metric": "spindle_temp", "detector": "above", "value": 90, "hysteresis": 5}},
        "machines": ["press-07"]});
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/rules",
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], json!(1));
    assert_eq!(
        send(&app, reqwest::Method::POST, "/api/v1/rules", Some(rule))
            .await
            .0,
        409
    );
    let bad = json!({"rule": {"when": {"metric": "t", "detector": "ewma", "bandd": 3}}});
    assert_eq!(
        send(&app, reqwest::Method::POST, "/api/v1/rules", Some(bad))
            .await
            .0,
        422
    );
    let ghost = json!({"rule": {"when": {"metric": "t", "detector": "above", "value": 1}}, "machines": ["ghost"]});
    assert_eq!(
        send(&app, reqwest::Method::POST, "/api/v1/rules", Some(ghost))
            .await
            .0,
        422
    );

    // Readings after the rule: heat up past 90, hover within the hysteresis, cool down.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = chrono::Utc::now().timestamp_millis();
    let temps = [80.0, 95.0, 96.0, 88.0, 91.0, 97.0, 70.0, 70.0, 70.0, 70.0];
    let readings: Vec<Value> = temps
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"machine": "press-07", "metric": "spindle_temp", "ts": t0 + i as i64 * 10, "value": v}))
        .collect();
    assert_eq!(
        app.ingest(&json!({ "readings": readings })).await.status(),
        202
    );

    let list = wait_for(&app, "/api/v1/alerts?state=resolved", |b| {
        b["alerts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let alerts = list["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "one alert, no flapping: {list}");
    let alert = &alerts[0];
    assert_eq!(alert["rule_id"], json!("overheat"));
    assert_eq!(alert["severity"], json!("critical"));
    assert_eq!(alert["machine"], json!("press-07"));
    assert_eq!(alert["detector"], json!("threshold_above"));
    let id = alert["id"].as_str().unwrap().to_owned();

    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/alerts/{id}/ack"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let until = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/alerts/{id}/snooze"),
        Some(json!({"until": until})),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/alerts/{id}/snooze"),
        Some(json!({"until": "2001-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 422);
    let detail = wait_for(&app, &format!("/api/v1/alerts/{id}"), |b| {
        b["history"].as_array().is_some_and(|h| h.len() >= 4)
    })
    .await;
    let kinds: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["raised", "resolved", "acked", "snoozed"],
        "{detail}"
    );
    assert!(
        detail["acked_at"].is_string() && detail["snoozed_until"].is_string(),
        "{detail}"
    );
    let raised = &detail["history"][0]["details"];
    assert_eq!(raised["observed"], json!(95.0));
    assert_eq!(raised["readings"].as_array().unwrap().len(), 1);
    // Every alert says why, in words and numbers, on the alert and on each step of its history.
    assert_eq!(
        detail["explanation"],
        json!("spindle_temp 95 is above the limit 90"),
        "{detail}"
    );
    assert_eq!(
        detail["contributions"][0]["feature"],
        json!("threshold_above")
    );
    assert_eq!(raised["explanation"], detail["explanation"]);
    let resolved = &detail["history"][1]["details"];
    assert_eq!(
        resolved["explanation"],
        json!("cleared (no longer unusual to the detector): spindle_temp 70, expected 90"),
        "{detail}"
    );

    // Filters, unknown ids, and another tenant.
    assert_eq!(
        app.get("/api/v1/alerts?machine=lathe-02").await.1["alerts"],
        json!([])
    );
    assert_eq!(app.get("/api/v1/alerts?severity=urgent").await.0, 422);
    assert_eq!(
        app.get(&format!("/api/v1/alerts/{}", uuid::Uuid::new_v4()))
            .await
            .0,
        404
    );
    let (_, other) = app.iso.tenant_with_machines(&["x-1"]).await;
    let r = app
        .client
        .get(format!("{}/api/v1/alerts/{id}", app.url))
        .header("x-api-key", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .client
        .get(format!("{}/api/v1/alerts", app.url))
        .header("x-api-key", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["alerts"], json!([]));

    // Changing and deleting the rule are new versions.
    let changed = json!({"rule": {"name": "Hotter", "when": {"metric": "spindle_temp", "detector": "above", "value": 99}}});
    let (status, body) = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/rules/overheat",
        Some(changed),
    )
    .await;
    assert_eq!((status, &body["version"]), (200, &json!(2)), "{body}");
    assert_eq!(
        send(
            &app,
            reqwest::Method::DELETE,
            "/api/v1/rules/overheat",
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(app.get("/api/v1/rules/overheat").await.0, 404);
    app.stop().await;
}

/// The `updated_at` of a rule change, in epoch ms: the event time from which it applies.
fn effective_ms(view: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(view["updated_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn rule_changes_apply_from_the_event_time_they_were_made() {
    let app = TestApp::spawn(&["press-07"]).await;
    let rule = |limit: i64| {
        json!({"rule": {"id": "hot", "name": format!("hot above {limit}"),
            "when": {"metric": "t", "detector": "above", "value": limit}}})
    };
    let (status, v1) = send(&app, reqwest::Method::POST, "/api/v1/rules", Some(rule(90))).await;
    assert_eq!(status, 201, "{v1}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, v2) = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/rules/hot",
        Some(rule(99)),
    )
    .await;
    assert_eq!(status, 200, "{v2}");
    let (e1, e2) = (effective_ms(&v1), effective_ms(&v2));
    assert!(e2 - e1 >= 200, "{v1} {v2}");

    // All sent after both changes; each reading meets the version in force at its own event time.
    let readings: Vec<Value> = [
        (e1 - 60_000, 95.0), // before the rule existed: nothing
        (e1 - 59_000, 70.0),
        (e1 + 10, 95.0), // version 1 (above 90): raised
        (e1 + 20, 70.0),
        (e1 + 30, 70.0),
        (e1 + 40, 70.0),     // resolved after three clear evaluations
        (e2 + 1_000, 95.0),  // version 2 (above 99): nothing
        (e2 + 2_000, 100.0), // raised
    ]
    .iter()
    .map(|(ts, v)| json!({"machine": "press-07", "metric": "t", "ts": ts, "value": v}))
    .collect();
    assert_eq!(
        app.ingest(&json!({ "readings": readings })).await.status(),
        202
    );

    let list = wait_for(&app, "/api/v1/alerts?detector=threshold_above", |b| {
        b["alerts"].as_array().is_some_and(|a| a.len() >= 2)
    })
    .await;
    let mut seen: Vec<(String, String, f64, f64)> = list["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let at =
                chrono::DateTime::parse_from_rfc3339(a["raised_at"].as_str().unwrap()).unwrap();
            let version = if at.timestamp_millis() < e2 {
                "v1"
            } else {
                "v2"
            };
            let state = a["state"].as_str().unwrap().to_owned();
            (
                version.to_owned(),
                state,
                a["limit"].as_f64().unwrap(),
                a["observed"].as_f64().unwrap(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    // The v1 alert's last observation is the clear reading that resolved it.
    assert_eq!(
        seen,
        [
            ("v1".to_owned(), "resolved".to_owned(), 90.0, 70.0),
            ("v2".to_owned(), "open".to_owned(), 99.0, 100.0)
        ],
        "{list}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_replacement_makes_the_machines_detectors_start_afresh() {
    let app = TestApp::spawn(&["press-07", "lathe-02"]).await;
    let rule = json!({"rule": {"id": "shaking", "clear_after": 1,
        "when": {"metric": "vib", "detector": "ewma", "band": 4, "warmup": 5}}});
    let (status, body) = send(&app, reqwest::Method::POST, "/api/v1/rules", Some(rule)).await;
    assert_eq!(status, 201, "{body}");
    let readings = |t0: i64, values: &[f64]| -> Value {
        let r: Vec<Value> = ["press-07", "lathe-02"]
            .iter()
            .flat_map(|m| {
                values.iter().enumerate().map(move |(i, v)| {
                    json!({"machine": m, "metric": "vib", "ts": t0 + i as i64 * 10, "value": v})
                })
            })
            .collect();
        json!({ "readings": r })
    };
    // Both machines learn a steady vibration.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let quiet: Vec<f64> = (0..20).map(|i| 2.0 + 0.01 * f64::from(i % 2)).collect();
    let t0 = chrono::Utc::now().timestamp_millis();
    assert_eq!(app.ingest(&readings(t0, &quiet)).await.status(), 202);
    // press-07's bearing is replaced: it runs at another level from now on, and its detectors relearn.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replacement = json!({"machine": "press-07", "kind": "replacement",
        "performed_at": chrono::Utc::now().to_rfc3339(), "notes": "new bearing"});
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/maintenance-events",
        Some(replacement),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t1 = chrono::Utc::now().timestamp_millis() + 100;
    assert_eq!(app.ingest(&readings(t1, &[5.0; 10])).await.status(), 202);
    // lathe-02, not maintained, alerts on the new level; press-07 does not.
    wait_for(&app, "/api/v1/alerts?machine=lathe-02", |b| {
        b["alerts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.get("/api/v1/alerts?machine=press-07").await.1["alerts"],
        json!([])
    );
}
