//! The dashboard WebSocket on the real platform (Kafka, PostgreSQL, Redis): sign-in within 5 s or a 4408
//! close, a bad token's 4401, logout closing an open socket within a second, tenants and machine-restricted
//! keys seeing only their own machines, readings coalesced to the latest value per series, and a client
//! that stops reading closed with 4429.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::socket::{close_code, command, connect, expect, next, sign_in, Next, Socket};
use common::TestApp;
use futures::SinkExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A rule `overheat` raising a critical alert when `machine`'s temp goes above 90.
async fn overheat_rule(app: &TestApp, machine: &str) {
    let rule = json!({"rule": {"id": "overheat", "name": "Overheating", "severity": "critical",
        "when": {"metric": "temp", "detector": "above", "value": 90}}, "machines": [machine]});
    let (status, body) = app
        .call(Method::POST, "/api/v1/rules", &app.admin, Some(&rule))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The secret of a `read` key restricted to `machines` (a wall display's).
async fn kiosk_key(app: &TestApp, machines: &[&str]) -> String {
    let (status, key) = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &app.admin,
            Some(&json!({"name": "kiosk", "scopes": ["read"], "machines": machines})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    key["secret"].as_str().unwrap().to_owned()
}

fn reading(machine: &str, value: f64) -> Value {
    json!({ "machine": machine, "metric": "temp", "ts": chrono::Utc::now().to_rfc3339(), "value": value })
}

async fn ingest(app: &TestApp, key: &str, readings: Vec<Value>) {
    let r = app
        .client
        .post(format!("{}/api/v1/ingest", app.url))
        .header("x-api-key", key)
        .json(&json!({ "readings": readings }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

/// The readings of `readings` messages received within `within`, as (machine, value).
async fn readings_for(ws: &mut Socket, within: Duration) -> Vec<(String, f64)> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        match next(ws, deadline - Instant::now()).await {
            Next::Json(m) if m["type"] == "readings" => {
                for r in m["readings"].as_array().unwrap() {
                    out.push((
                        r["machine"].as_str().unwrap().to_owned(),
                        r["value"].as_f64().unwrap(),
                    ));
                }
            }
            Next::Json(_) => {}
            _ => break,
        }
    }
    out
}

/// Posts a reading of `machine` every 200 ms until the socket shows `value` (the feed reads topics from
/// their end, so the first readings may pass before it has its partitions).
async fn until_seen(app: &TestApp, key: &str, ws: &mut Socket, machine: &str, value: f64) {
    for _ in 0..50 {
        ingest(app, key, vec![reading(machine, value)]).await;
        let seen = readings_for(ws, Duration::from_millis(200)).await;
        if seen.iter().any(|(m, v)| m == machine && *v == value) {
            return;
        }
    }
    panic!("{machine}={value} never arrived");
}

#[tokio::test]
async fn a_socket_without_a_token_within_5_s_is_closed_with_4408() {
    let app = TestApp::spawn(&[]).await;
    let mut ws = connect(&app).await;
    let started = Instant::now();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(8)).await,
        Some(4408)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(4_500),
        "{:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_or_logged_out_token_is_refused_with_4401() {
    let app = TestApp::spawn(&[]).await;
    let mut ws = connect(&app).await;
    ws.send(Message::Text("not-a-token.at.all".into()))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4401)
    );
    let mut ws = connect(&app).await;
    ws.send(Message::Text("hk_no_such_key".into()))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4401)
    );
    // A token that worked, logged out: refused at sign-in too.
    let token = app.token_for(app.tenant, "viewer").await;
    let (status, _) = app
        .call(Method::POST, "/api/v1/auth/logout", &token, None)
        .await;
    assert_eq!(status, 204);
    let mut ws = connect(&app).await;
    ws.send(Message::Text(token.into())).await.unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some(4401)
    );
    app.stop().await;
}

#[tokio::test]
async fn logout_closes_an_open_socket_within_a_second() {
    let app = TestApp::spawn(&["m-1"]).await;
    let token = app.token_for(app.tenant, "viewer").await;
    let mut ws = connect(&app).await;
    let ready = sign_in(&mut ws, &token).await;
    assert_eq!(ready["machines"][0]["machine"], "m-1", "{ready}");
    let (status, _) = app
        .call(Method::POST, "/api/v1/auth/logout", &token, None)
        .await;
    assert_eq!(status, 204);
    let logged_out = Instant::now();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(3)).await,
        Some(4401)
    );
    assert!(
        logged_out.elapsed() <= Duration::from_millis(1_500),
        "closed {:?} after the logout",
        logged_out.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_machines() {
    let app = TestApp::spawn(&["m-1"]).await;
    // Another tenant with a machine of the same name.
    let (other, other_key) = app.iso.tenant_with_machines(&["m-1", "other-only"]).await;
    let mine = app.token_for(app.tenant, "viewer").await;
    let theirs = app.token_for(other, "viewer").await;
    let mut a = connect(&app).await;
    let ready = sign_in(&mut a, &mine).await;
    let shown: Vec<&str> = ready["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["machine"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["m-1"]);
    // The other tenant's machine is unknown here.
    let refused = command(
        &mut a,
        json!({"type": "subscribe", "machines": ["other-only"]}),
    )
    .await;
    assert_eq!(refused["code"], "unknown_machine", "{refused}");
    let ok = command(&mut a, json!({"type": "subscribe", "machines": "*"})).await;
    assert_eq!(ok["machines"], "*");
    let mut b = connect(&app).await;
    sign_in(&mut b, &theirs).await;
    command(&mut b, json!({"type": "subscribe", "machines": ["m-1"]})).await;
    until_seen(&app, &other_key, &mut b, "m-1", 222.0).await;
    until_seen(&app, &app.key, &mut a, "m-1", 111.0).await;
    // Whatever tenant A's socket carried and carries, no value of tenant B is in it.
    ingest(&app, &other_key, vec![reading("m-1", 223.0)]).await;
    let later = readings_for(&mut a, Duration::from_secs(2)).await;
    assert!(later.iter().all(|(_, v)| *v < 200.0), "{later:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_machine_restricted_key_sees_only_its_machines() {
    let app = TestApp::spawn(&["m-1", "m-2"]).await;
    let key = kiosk_key(&app, &["m-1"]).await;
    let mut ws = connect(&app).await;
    let ready = sign_in(&mut ws, &key).await;
    assert_eq!(ready["machines"].as_array().unwrap().len(), 1, "{ready}");
    let refused = command(&mut ws, json!({"type": "subscribe", "machines": ["m-2"]})).await;
    assert_eq!(refused["code"], "unknown_machine");
    command(&mut ws, json!({"type": "subscribe", "machines": "*"})).await;
    until_seen(&app, &app.key, &mut ws, "m-1", 1.0).await;
    ingest(&app, &app.key, vec![reading("m-2", 2.0)]).await;
    let later = readings_for(&mut ws, Duration::from_secs(2)).await;
    assert!(later.iter().all(|(m, _)| m == "m-1"), "{later:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_slow_reader_gets_the_latest_value_at_most_once_a_second() {
    let app = TestApp::spawn(&["m-1"]).await;
    let mut ws = connect(&app).await;
    sign_in(&mut ws, &app.admin).await;
    command(&mut ws, json!({"type": "subscribe", "machines": ["m-1"]})).await;
    until_seen(&app, &app.key, &mut ws, "m-1", 0.5).await;
    // 40 readings over 4 s while the client reads only every 1.5 s.
    let started = Instant::now();
    let mut got = Vec::new();
    let mut last_read = Instant::now();
    for i in 1..=40 {
        ingest(&app, &app.key, vec![reading("m-1", f64::from(i))]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last_read.elapsed() >= Duration::from_millis(1_500) {
            got.extend(readings_for(&mut ws, Duration::from_millis(50)).await);
            last_read = Instant::now();
        }
    }
    got.extend(readings_for(&mut ws, Duration::from_secs(3)).await);
    let seconds = started.elapsed().as_secs_f64() + 3.0;
    assert!(
        (got.len() as f64) <= seconds + 1.0,
        "{} values in {seconds:.1} s: {got:?}",
        got.len()
    );
    assert!(got.len() < 40, "coalesced: {got:?}");
    assert_eq!(got.last().unwrap().1, 40.0, "the latest value: {got:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_4429() {
    let app = TestApp::spawn_with(&["m-1"], |s| s.live.slow_client_secs = 2).await;
    let mut ws = connect(&app).await;
    sign_in(&mut ws, &app.admin).await;
    command(&mut ws, json!({"type": "subscribe", "machines": ["m-1"]})).await;
    until_seen(&app, &app.key, &mut ws, "m-1", 0.5).await;
    // Readings go on while the client reads nothing (so it answers no ping).
    for i in 1..=20 {
        ingest(&app, &app.key, vec![reading("m-1", f64::from(i))]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut values = Vec::new();
    let code = loop {
        match next(&mut ws, Duration::from_secs(10)).await {
            Next::Json(m) if m["type"] == "readings" => {
                values.push(m["readings"][0]["value"].clone())
            }
            Next::Json(_) => {}
            Next::Closed(code) => break code,
            Next::Nothing => panic!("not closed; values {values:?}"),
        }
    };
    assert_eq!(code, Some(4429), "values before: {values:?}");
    assert!(
        values.len() <= 2,
        "nothing queued for the stalled client: {values:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_socket_is_in_the_openapi_document() {
    let app = TestApp::spawn(&[]).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let op = &doc["paths"]["/api/v1/ws/dashboard"]["get"];
    assert!(op["description"].as_str().unwrap().contains("4429"), "{op}");
    app.stop().await;
}

#[tokio::test]
async fn alerts_their_acks_and_the_machine_status_arrive_live() {
    let app = TestApp::spawn(&["press-07"]).await;
    overheat_rule(&app, "press-07").await;
    let mut ws = connect(&app).await;
    sign_in(&mut ws, &app.admin).await;
    command(
        &mut ws,
        json!({"type": "subscribe", "machines": ["press-07"]}),
    )
    .await;
    // An alert inbox: every machine, no readings.
    let mut inbox = connect(&app).await;
    sign_in(&mut inbox, &app.admin).await;
    let answer = command(
        &mut inbox,
        json!({"type": "subscribe", "machines": "*", "readings": false}),
    )
    .await;
    assert_eq!(answer["machines"], "*", "{answer}");
    assert_eq!(answer["readings"], false, "{answer}");
    // Normal readings until the socket shows them (the feed has its partitions), then a hot one.
    until_seen(&app, &app.key, &mut ws, "press-07", 20.0).await;
    ingest(&app, &app.key, vec![reading("press-07", 99.0)]).await;
    let raised = expect(&mut ws, "alert", Duration::from_secs(30), |m| {
        m["transition"] == "raised"
    })
    .await;
    // The inbox got the alert and none of the readings before or around it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the inbox never got the alert");
        match next(&mut inbox, deadline - Instant::now()).await {
            Next::Json(m) if m["type"] == "alert" => {
                assert_eq!(m["alert"]["id"], raised["alert"]["id"], "{m}");
                break;
            }
            Next::Json(m) => assert_ne!(m["type"], "readings", "the inbox got readings: {m}"),
            other => panic!("the inbox: {other:?}"),
        }
    }
    assert_eq!(raised["v"], 1);
    assert_eq!(raised["alert"]["machine"], "press-07", "{raised}");
    assert_eq!(raised["alert"]["severity"], "critical");
    let status = expect(&mut ws, "machine_status", Duration::from_secs(30), |m| {
        m["status"] == "alerting"
    })
    .await;
    assert_eq!(status["machine"], "press-07", "{status}");
    let id = raised["alert"]["id"].as_str().unwrap().to_owned();
    let (code, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/alerts/{id}/ack"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(code, 202);
    let acked = expect(&mut ws, "alert_action", Duration::from_secs(30), |m| {
        m["alert_id"] == id.as_str()
    })
    .await;
    assert_eq!(acked["action"], "ack", "{acked}");
    app.stop().await;
}

#[tokio::test]
async fn a_second_api_instance_serves_sockets_with_the_readings_the_first_took_in() {
    // Instances of one platform share the token secret.
    let app = TestApp::spawn_with(&["m-1"], |s| {
        s.auth.jwt_secret = secrecy::SecretString::from("live-test-secret-".repeat(3));
    })
    .await;
    // Another process of the same platform, running only the API: its sockets see what the first ingests.
    let roles = haltless_api::app::Roles {
        gateway: false,
        api: true,
        projection: false,
        detector: false,
        connectors: false,
        alerting: false,
        predictor: false,
    };
    let second = haltless_api::app::Application::build(app.iso.settings.clone(), roles)
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/api/v1/ws/dashboard", second.port());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(second.run(shutdown.clone()));
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    sign_in(&mut ws, &app.admin).await;
    command(&mut ws, json!({"type": "subscribe", "machines": ["m-1"]})).await;
    until_seen(&app, &app.key, &mut ws, "m-1", 7.0).await;
    shutdown.cancel();
    let _ = task.await;
    app.stop().await;
}

#[tokio::test]
async fn a_notification_and_its_delivery_arrive_live_for_those_who_may_see_its_machines() {
    let app = TestApp::spawn_with(&["press-08", "press-09"], |s| {
        s.alerting.tick_ms = 100;
        s.outbound.allow = vec!["127.0.0.1".into()];
    })
    .await;
    let rx = common::receiver::Receiver::start().await;
    let (status, hook) = app
        .call(
            Method::POST,
            "/api/v1/channels",
            &app.admin,
            Some(&json!({"name": "hook", "kind": "webhook", "config": {"url": rx.url("hook"), "signing_secret": "live-test-signing-secret"}})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let policy = json!({"name": "all", "matchers": {"rules": ["overheat"]}, "group_wait_secs": 0,
        "steps": [{"channels": [hook["id"]]}]});
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/escalation-policies",
            &app.admin,
            Some(&policy),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    overheat_rule(&app, "press-08").await;
    let mut ws = connect(&app).await;
    sign_in(&mut ws, &app.admin).await;
    command(&mut ws, json!({"type": "subscribe", "machines": "*"})).await;
    // A wall display's key restricted to the other machine: the notification is not about its machines.
    let kiosk = kiosk_key(&app, &["press-09"]).await;
    let mut other = connect(&app).await;
    sign_in(&mut other, &kiosk).await;
    command(&mut other, json!({"type": "subscribe", "machines": "*"})).await;

    until_seen(&app, &app.key, &mut ws, "press-08", 20.0).await;
    ingest(&app, &app.key, vec![reading("press-08", 99.0)]).await;
    let delivered = expect(&mut ws, "notification", Duration::from_secs(30), |m| {
        m["notification"]["status"] == "delivered"
    })
    .await;
    assert_eq!(delivered["v"], 1);
    let n = &delivered["notification"];
    assert_eq!(n["channel"], "hook", "{delivered}");
    assert_eq!(n["kind"], "alert", "{delivered}");
    assert_eq!(n["attempts"], 1, "{delivered}");
    assert_eq!(rx.got("hook").len(), 1, "the receiver got it");
    // The REST API says the same.
    let (status, shown) = app
        .get(&format!(
            "/api/v1/notifications/{}",
            n["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((status, &shown["status"]), (200, &json!("delivered")));
    loop {
        match next(&mut other, Duration::from_secs(2)).await {
            Next::Json(m) => assert_ne!(m["type"], "notification", "{m}"),
            Next::Nothing => break,
            Next::Closed(code) => panic!("closed: {code:?}"),
        }
    }
    app.stop().await;
}
