//! The alert engine end to end, on real Kafka and PostgreSQL, with local receivers that check each channel's
//! payload shape and a real SMTP server (aiosmtpd): grouping, a two-step escalation with repeats stopped by
//! an acknowledgement, resolution notices, silences and maintenance muting, retries with one idempotency
//! key, the delivery log, an engine killed with SIGKILL mid-escalation that loses and repeats nothing, Web
//! Push to people's browsers through a push-service stand-in that checks VAPID and decrypts (http_ece), group
//! intervals, and the connectivity watchdog.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::receiver::{Received, Receiver};
use common::TestApp;
use haltless_api::app::Roles;
use haltless_api::config::Settings;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::process::Command;

const SECRET: &str = "a-signing-secret-of-some-length";

/// Fast clocks, and loopback receivers allowed (the outbound policy refuses them by default).
fn tweak(s: &mut Settings) {
    s.alerting.tick_ms = 100;
    s.alerting.mute_recheck_secs = 1;
    s.alerting.send_timeout_ms = 2_000;
    s.alerting.watchdog_secs = 1;
    s.outbound.allow = vec!["127.0.0.1".into()];
}

async fn spawn(machines: &[&str]) -> TestApp {
    TestApp::spawn_with(machines, tweak).await
}

async fn create(app: &TestApp, path: &str, body: Value) -> String {
    let (status, v) = app.call(Method::POST, path, &app.admin, Some(&body)).await;
    assert_eq!(status, 201, "{path}: {v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn channel(app: &TestApp, name: &str, kind: &str, config: Value) -> String {
    create(
        app,
        "/api/v1/channels",
        json!({"name": name, "kind": kind, "config": config}),
    )
    .await
}

/// A webhook channel called `hook`, posting to the receiver's `/hook`.
async fn hook_channel(app: &TestApp, rx: &Receiver) -> String {
    channel(
        app,
        "hook",
        "webhook",
        json!({"url": rx.url("hook"), "signing_secret": SECRET}),
    )
    .await
}

/// A rule `id` raising a `severity` alert when `metric` goes above 90 on `machines`.
async fn rule(app: &TestApp, id: &str, metric: &str, machines: &[&str]) {
    let body = json!({"rule": {"id": id, "name": format!("{metric} too high"), "severity": "critical",
        "when": {"metric": metric, "detector": "above", "value": 90, "hysteresis": 5}}, "machines": machines});
    let (status, v) = app
        .call(Method::POST, "/api/v1/rules", &app.admin, Some(&body))
        .await;
    assert_eq!(status, 201, "{v}");
}

/// Readings of `metrics` on `machine` taking `values` one after another, 10 ms apart, from now.
async fn ingest(app: &TestApp, machine: &str, metrics: &[String], values: &[f64]) {
    ingest_at(
        app,
        machine,
        metrics,
        values,
        chrono::Utc::now().timestamp_millis(),
    )
    .await;
}

/// Readings of `metrics` on `machine` taking `values` one after another, 10 ms apart, from `t0` (ms).
async fn ingest_at(app: &TestApp, machine: &str, metrics: &[String], values: &[f64], t0: i64) {
    let readings: Vec<Value> = metrics
        .iter()
        .flat_map(|m| {
            values.iter().enumerate().map(move |(i, v)| {
                json!({"machine": machine, "metric": m, "ts": t0 + i as i64 * 10, "value": v})
            })
        })
        .collect();
    assert_eq!(
        app.ingest(&json!({ "readings": readings })).await.status(),
        202
    );
}

const HOT: [f64; 3] = [80.0, 95.0, 96.0];
const COOL: [f64; 4] = [70.0, 70.0, 70.0, 70.0];

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn alerts(app: &TestApp, query: &str) -> Vec<Value> {
    let (_, v) = app.get(&format!("/api/v1/alerts?{query}")).await;
    v["alerts"].as_array().cloned().unwrap_or_default()
}

fn ids_listed(r: &Received) -> BTreeSet<String> {
    r.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_signed(r: &Received) {
    let ts = &r.headers["x-haltless-timestamp"];
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&r.raw);
    let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.headers["x-haltless-signature"], want, "signature");
    assert_eq!(r.headers["idempotency-key"], r.body["id"].as_str().unwrap());
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {ts}");
}

fn assert_slack_shape(r: &Received, alerts: usize) {
    let blocks = r.body["blocks"].as_array().unwrap();
    assert!(r.body["text"].as_str().unwrap().len() > 5, "fallback text");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    let sections = blocks.iter().filter(|b| b["type"] == "section").count();
    assert_eq!(sections, alerts, "{}", r.body);
    assert!(blocks.len() <= 50, "Slack takes at most 50 blocks");
    assert_eq!(blocks.last().unwrap()["type"], "context");
}

fn assert_teams_shape(r: &Received) {
    assert_eq!(r.body["type"], "message");
    let attachment = &r.body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert!(card["body"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["type"] == "FactSet"));
}

#[tokio::test]
async fn a_burst_is_one_grouped_message_escalated_until_acknowledged_then_resolved() {
    let app = spawn(&["press-07"]).await;
    let rx = Receiver::start().await;
    let hook = channel(
        &app,
        "ops hook",
        "webhook",
        json!({"url": rx.url("hook"), "signing_secret": SECRET}),
    )
    .await;
    let slack = channel(
        &app,
        "ops slack",
        "slack",
        json!({"webhook_url": rx.url("slack")}),
    )
    .await;
    let teams = channel(
        &app,
        "managers",
        "teams",
        json!({"webhook_url": rx.url("teams")}),
    )
    .await;
    let metrics: Vec<String> = (1..=5).map(|i| format!("temp_{i}")).collect();
    let rules: Vec<String> = (1..=5).map(|i| format!("hot-{i}")).collect();
    create(
        &app,
        "/api/v1/escalation-policies",
        json!({
        "name": "line 1", "matchers": {"rules": rules}, "group_wait_secs": 2, "repeat_secs": 2,
        "steps": [{"channels": [hook, slack]}, {"delay_secs": 2, "channels": [teams]}]}),
    )
    .await;
    for (r, m) in rules.iter().zip(&metrics) {
        rule(&app, r, m, &["press-07"]).await;
    }

    // A burst: five rules fire on one machine at once.
    ingest(&app, "press-07", &metrics, &HOT).await;
    let first = &rx.wait_for("hook", 1).await[0];
    assert_signed(first);
    assert_eq!(first.body["kind"], "alert");
    assert_eq!(first.body["version"], 1);
    assert_eq!(first.body["group"], "machine=press-07");
    assert_eq!(first.body["policy"], "line 1");
    assert_eq!(first.body["step"], 0);
    assert_eq!(
        ids_listed(first).len(),
        5,
        "one message listing the five: {}",
        first.body
    );
    assert_eq!(first.body["alerts"][0]["severity"], "critical");
    assert_slack_shape(&rx.wait_for("slack", 1).await[0], 5);

    // The second step, then its repeats, until someone acknowledges.
    let teams_got = rx.wait_for("teams", 2).await;
    assert_teams_shape(&teams_got[0]);
    let (_, log) = app
        .get(&format!("/api/v1/notifications?channel={teams}"))
        .await;
    let mut steps: Vec<i64> = log["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["step"].as_i64().unwrap())
        .collect();
    steps.sort_unstable();
    assert_eq!(steps[..2], [1, 2], "the second step, then a repeat of it");
    assert_eq!(rx.distinct("hook").len(), 1, "the first step fires once");
    assert_eq!(rx.distinct("slack").len(), 1);
    let open = alerts(&app, "state=open").await;
    assert_eq!(open.len(), 5);
    for a in &open {
        let id = a["id"].as_str().unwrap();
        let (status, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/alerts/{id}/ack"),
                &app.admin,
                None,
            )
            .await;
        assert_eq!(status, 202);
    }
    wait_until("the escalations stop", async || {
        let mut all = true;
        for a in &open {
            let (_, v) = app
                .get(&format!("/api/v1/alerts/{}", a["id"].as_str().unwrap()))
                .await;
            all &= v["notification"]["state"] == "acked";
        }
        all
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let repeats = rx.distinct("teams").len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rx.distinct("teams").len(),
        repeats,
        "acknowledged: no more repeats"
    );

    // Back to normal: everyone who heard of the alerts hears they resolved, once, grouped.
    ingest(&app, "press-07", &metrics, &COOL).await;
    let resolved = &rx.wait_for("hook", 2).await[1];
    assert_eq!(resolved.body["kind"], "resolved");
    assert_eq!(ids_listed(resolved), ids_listed(first));
    assert_signed(resolved);
    let slack_resolved = &rx.wait_for("slack", 2).await[1];
    assert!(slack_resolved.body["text"]
        .as_str()
        .unwrap()
        .starts_with("[RESOLVED]"));
    let last = rx.wait_for("teams", repeats + 1).await;
    assert_teams_shape(last.last().unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.distinct("hook").len(), 2, "one resolution notice");
    assert_eq!(rx.got("hook").len(), 2, "no delivery twice");

    // The delivery log.
    let (status, log) = app
        .get(&format!("/api/v1/notifications?channel={hook}"))
        .await;
    assert_eq!(status, 200, "{log}");
    let log = log["notifications"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|n| n["status"] == "delivered" && n["attempts"] == 1),
        "{log:?}"
    );
    let alert = first.body["alerts"][0]["id"].as_str().unwrap();
    let (_, by_alert) = app
        .get(&format!("/api/v1/notifications?alert={alert}&kind=alert"))
        .await;
    assert_eq!(
        by_alert["notifications"].as_array().unwrap().len(),
        2 + repeats,
        "{by_alert}"
    );
    app.stop().await;
}

#[tokio::test]
async fn silences_and_maintenance_mute_and_say_so_until_they_end() {
    let app = spawn(&["m-silenced", "m-serviced"]).await;
    let rx = Receiver::start().await;
    let hook = hook_channel(&app, &rx).await;
    create(&app, "/api/v1/escalation-policies", json!({
        "name": "all", "matchers": {"rules": ["hot"]}, "group_wait_secs": 0, "steps": [{"channels": [hook]}]})).await;
    rule(&app, "hot", "temp", &["m-silenced", "m-serviced"]).await;
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let silence = create(&app, "/api/v1/silences", json!({
        "matchers": {"machines": ["m-silenced"]}, "ends_at": until, "comment": "sensor being replaced"})).await;
    let order = create(
        &app,
        "/api/v1/work-orders",
        json!({"title": "bearing", "machines": ["m-serviced"]}),
    )
    .await;
    let (status, v) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/work-orders/{order}"),
            &app.admin,
            Some(&json!({"status": "in_progress"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let temp = vec!["temp".to_owned()];
    ingest(&app, "m-silenced", &temp, &HOT).await;
    ingest(&app, "m-serviced", &temp, &HOT).await;
    let mut muted = Vec::new();
    wait_until("both alerts show what mutes them", async || {
        muted.clear();
        for a in alerts(&app, "state=open").await {
            let (_, v) = app
                .get(&format!("/api/v1/alerts/{}", a["id"].as_str().unwrap()))
                .await;
            if v["notification"]["muted_by"].is_object() {
                muted.push(v);
            }
        }
        muted.len() == 2
    })
    .await;
    for v in &muted {
        let by = &v["notification"]["muted_by"];
        match v["machine"].as_str().unwrap() {
            "m-silenced" => assert_eq!(
                (by["kind"].as_str(), by["id"].as_str()),
                (Some("silence"), Some(silence.as_str()))
            ),
            _ => assert_eq!(
                (by["kind"].as_str(), by["id"].as_str()),
                (Some("work_order"), Some(order.as_str()))
            ),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(rx.got("hook").is_empty(), "muted alerts notify nobody");

    // The silence ends: its alert notifies; the machine in maintenance stays quiet.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/silences/{silence}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let got = rx.wait_for("hook", 1).await;
    assert_eq!(got[0].body["alerts"][0]["machine"], "m-silenced");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.distinct("hook").len(), 1);

    // The work is done: the other alert, still open, notifies.
    let (status, v) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/work-orders/{order}"),
            &app.admin,
            Some(&json!({"status": "done"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let got = rx.wait_for("hook", 2).await;
    assert_eq!(got[1].body["alerts"][0]["machine"], "m-serviced");

    // A key restricted to one machine sees the notifications about that machine only.
    let (status, key) = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &app.admin,
            Some(&json!({"name": "edge", "scopes": ["read"], "machines": ["m-silenced"]})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let r = app
        .client
        .get(format!("{}/api/v1/notifications", app.url))
        .header("x-api-key", key["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let log: Value = r.json().await.unwrap();
    let seen: Vec<&Value> = log["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["alerts"])
        .collect();
    assert_eq!(seen.len(), 1, "{log}");
    assert_eq!(
        seen[0],
        &got[0].body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect::<Value>()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_machine_that_lost_power_says_so_once_not_through_every_sensor() {
    let app = spawn(&["press-07", "lathe-02"]).await;
    let rx = Receiver::start().await;
    let hook = hook_channel(&app, &rx).await;
    // A group wait gives the inhibiting alert time to arrive with the others.
    create(
        &app,
        "/api/v1/escalation-policies",
        json!({
        "name": "all", "matchers": {"rules": ["power", "temp", "vib"]}, "group_wait_secs": 2,
        "steps": [{"channels": [hook]}]}),
    )
    .await;
    create(
        &app,
        "/api/v1/inhibition-rules",
        json!({
        "name": "power loss mutes the sensors", "source": {"rules": ["power"]},
        "target": {"rules": ["temp", "vib"]}, "equal": ["machine"]}),
    )
    .await;
    rule(&app, "power", "supply_loss", &["press-07", "lathe-02"]).await;
    rule(&app, "temp", "temp", &["press-07", "lathe-02"]).await;
    rule(&app, "vib", "vibration", &["press-07", "lathe-02"]).await;
    let all = [
        "supply_loss".to_owned(),
        "temp".to_owned(),
        "vibration".to_owned(),
    ];
    ingest(&app, "press-07", &all, &HOT).await;
    ingest(&app, "lathe-02", &all[1..], &HOT).await;

    let got = rx.wait_for("hook", 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.distinct("hook").len(), 2, "one message per machine");
    let rules_of = |machine: &str| -> BTreeSet<String> {
        got.iter()
            .flat_map(|r| r.body["alerts"].as_array().unwrap().clone())
            .filter(|a| a["machine"] == machine)
            .map(|a| a["rule_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        rules_of("press-07"),
        BTreeSet::from(["power".to_owned()]),
        "the sensors are inhibited"
    );
    assert_eq!(
        rules_of("lathe-02"),
        BTreeSet::from(["temp".to_owned(), "vib".to_owned()]),
        "another machine is not"
    );
    let muted: Vec<Value> = {
        let mut muted = Vec::new();
        for a in alerts(&app, "state=open&machine=press-07").await {
            let (_, v) = app
                .get(&format!("/api/v1/alerts/{}", a["id"].as_str().unwrap()))
                .await;
            if v["rule_id"] != "power" {
                muted.push(v["notification"]["muted_by"].clone());
            }
        }
        muted
    };
    assert_eq!(muted.len(), 2);
    assert!(
        muted
            .iter()
            .all(|m| m["kind"] == "inhibition" && m["name"] == "power loss mutes the sensors"),
        "{muted:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn email_goes_through_smtp_and_a_failing_receiver_is_retried_with_one_key() {
    let app = spawn(&["oven-05"]).await;
    let rx = Receiver::start().await;
    let mailbox =
        std::env::temp_dir().join(format!("haltless-smtp-{}.jsonl", uuid::Uuid::new_v4()));
    let smtp = Peer::smtp(free_port(), &mailbox).await;
    let email = channel(&app, "night shift", "email", json!({
        "host": "127.0.0.1", "port": smtp.port, "tls": "none", "from": "Haltless <alerts@plant.example>",
        "to": ["shift@plant.example", "lead@plant.example"], "subject_prefix": "[plant] "})).await;
    rx.fail_next("flaky", 2);
    let flaky = channel(
        &app,
        "flaky",
        "webhook",
        json!({"url": rx.url("flaky"), "signing_secret": SECRET}),
    )
    .await;
    let mail = || {
        std::fs::read_to_string(&mailbox)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };

    // The test button.
    let (status, v) = app
        .call(
            Method::POST,
            &format!("/api/v1/channels/{email}/test"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("delivered")),
        "{v}"
    );
    let got = mail();
    assert_eq!(got.len(), 1);
    assert!(got[0]["subject"]
        .as_str()
        .unwrap()
        .starts_with("[plant] Haltless test notification"));

    create(
        &app,
        "/api/v1/escalation-policies",
        json!({
        "name": "oven", "matchers": {"rules": ["oven-hot"]}, "group_wait_secs": 0,
        "steps": [{"channels": [email, flaky]}]}),
    )
    .await;
    rule(&app, "oven-hot", "temp", &["oven-05"]).await;
    ingest(&app, "oven-05", &["temp".to_owned()], &HOT).await;

    wait_until("the mail arrives", async || mail().len() == 2).await;
    let m = &mail()[1];
    assert_eq!(
        m["rcpt_tos"],
        json!(["shift@plant.example", "lead@plant.example"])
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .contains("[CRITICAL] temp too high on oven-05"),
        "{m}"
    );
    assert!(m["text"].as_str().unwrap().contains("oven-05"));
    assert!(m["html"].as_str().unwrap().contains("<table"));

    // Two 503s, then a 200: three attempts, one idempotency key, one delivered notification.
    let attempts = {
        wait_until("the third attempt", async || rx.got("flaky").len() == 3).await;
        rx.got("flaky")
    };
    let keys: BTreeSet<&String> = attempts
        .iter()
        .map(|r| &r.headers["idempotency-key"])
        .collect();
    assert_eq!(keys.len(), 1, "every retry carries the same key");
    let id = keys.into_iter().next().unwrap().clone();
    let mut log = Value::Null;
    wait_until("the log shows the delivery", async || {
        log = app.get(&format!("/api/v1/notifications/{id}")).await.1;
        log["status"] == "delivered"
    })
    .await;
    let outcomes: Vec<&str> = log["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"], "{log}");
    assert_eq!(log["attempt_log"][0]["status_code"], 503);
    assert_eq!(log["message"]["alerts"][0]["machine"], "oven-05");
    smtp.stop().await;
    let _ = std::fs::remove_file(&mailbox);
    app.stop().await;
}

#[tokio::test]
async fn channels_hide_their_secrets_and_refuse_bad_configurations() {
    let app = spawn(&["m-1"]).await;
    let token_url = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX";
    let slack = channel(&app, "slack", "slack", json!({"webhook_url": token_url})).await;
    let (_, shown) = app
        .call(
            Method::GET,
            &format!("/api/v1/channels/{slack}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(shown["config"]["webhook_url"], "(hidden)");
    assert!(!shown.to_string().contains("XXXXSECRET"));
    let stored: String =
        sqlx::query_scalar("SELECT secret FROM notification_channels WHERE id = $1::uuid")
            .bind(&slack)
            .fetch_one(&app.iso.pool)
            .await
            .unwrap();
    assert!(!stored.contains("XXXXSECRET"), "sealed at rest");
    // An update that leaves the secret out keeps it.
    let (status, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/channels/{slack}"),
            &app.admin,
            Some(&json!({"name": "slack renamed", "config": {"webhook_url": "(hidden)"}})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for (body, want) in [
        (json!({"name": "x", "kind": "pager", "config": {}}), "kind"),
        (
            json!({"name": "x", "kind": "slack", "config": {}}),
            "webhook_url",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"url": "ftp://x", "signing_secret": SECRET}}),
            "url",
        ),
        (
            json!({"name": "x", "kind": "email", "config": {"host": "smtp.example.com", "from": "a@example.com", "to": "nobody"}}),
            "to",
        ),
        (
            json!({"name": "slack renamed", "kind": "slack", "config": {"webhook_url": token_url}}),
            "exists",
        ),
    ] {
        let (status, v) = app
            .call(Method::POST, "/api/v1/channels", &app.admin, Some(&body))
            .await;
        assert!(status == 422 || status == 409, "{body}: {status} {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{body}: {v}"
        );
    }
    // A policy naming another tenant's (or no) channel.
    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/escalation-policies",
            &app.admin,
            Some(&json!({"name": "p", "steps": [{"channels": [uuid::Uuid::new_v4()]}]})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_channel")),
        "{v}"
    );
    // A receiver on the platform's own services is refused by the outbound policy, and says so.
    let own = channel(
        &app,
        "sneaky",
        "webhook",
        json!({"url": "http://127.0.0.1:55432/x", "signing_secret": SECRET}),
    )
    .await;
    let (_, v) = app
        .call(
            Method::POST,
            &format!("/api/v1/channels/{own}/test"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(v["status"], "failed");
    assert!(
        v["error"].as_str().unwrap().contains("outbound policy"),
        "{v}"
    );
    assert!(
        !v["error"].as_str().unwrap().contains("55432"),
        "no address in the answer: {v}"
    );
    app.stop().await;
}

/// `haltless alerting` as its own process, for killing.
fn engine(iso: &common::Isolation) -> tokio::process::Child {
    Command::new(env!("CARGO_BIN_EXE_haltless"))
        .arg("alerting")
        .envs(iso.env())
        .env("HALTLESS__HTTP__BIND", "127.0.0.1:0")
        .env("HALTLESS__ALERTING__TICK_MS", "100")
        .env("HALTLESS__ALERTING__SEND_TIMEOUT_MS", "2000")
        .env("HALTLESS__OUTBOUND__ALLOW", r#"["127.0.0.1"]"#)
        .env("HALTLESS__PROJECTION__SESSION_TIMEOUT_MS", "6000")
        .env(
            "RUST_LOG",
            if std::env::var("TEST_LOG").is_ok() {
                "info"
            } else {
                "warn"
            },
        )
        .stdout(Stdio::null())
        .stderr(if std::env::var("TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn an_engine_killed_mid_escalation_loses_and_repeats_nothing() {
    let mut roles = Roles::all();
    roles.alerting = false;
    let app = TestApp::spawn_roles(&["press-01"], roles, tweak).await;
    let rx = Receiver::start().await;
    // A slow receiver, so that kills land in the middle of deliveries.
    rx.set_delay(Duration::from_millis(300));
    let hook = hook_channel(&app, &rx).await;
    let rules: Vec<String> = (1..=8).map(|i| format!("r{i}")).collect();
    let metrics: Vec<String> = (1..=8).map(|i| format!("m{i}")).collect();
    create(&app, "/api/v1/escalation-policies", json!({
        "name": "three steps", "matchers": {"rules": rules}, "group_by": ["rule"], "group_wait_secs": 0,
        "steps": [{"channels": [hook]}, {"delay_secs": 1, "channels": [hook]}, {"delay_secs": 1, "channels": [hook]}]})).await;
    for (r, m) in rules.iter().zip(&metrics) {
        rule(&app, r, m, &["press-01"]).await;
    }
    let mut child = engine(&app.iso);
    // Alerts written before the engine first took the generation in are history to it: wait for that.
    wait_until("the engine starts", async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM alerting_generations")
            .fetch_one(&app.iso.pool)
            .await
            .unwrap()
            > 0
    })
    .await;
    ingest(&app, "press-01", &metrics, &HOT).await;
    // Kill it again and again while it escalates.
    let until = Instant::now() + Duration::from_secs(8);
    let mut kills = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500 + rand::random::<u64>() % 700)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        kills += 1;
        child = engine(&app.iso);
    }
    // 8 alerts × 3 steps, each once: a killed delivery goes again after its lease, with its key.
    let got = rx.wait_for("hook", 24).await;
    let pairs: BTreeSet<(String, i64)> = got
        .iter()
        .map(|r| {
            (
                r.body["alerts"][0]["id"].as_str().unwrap().to_owned(),
                r.body["step"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pairs.len(), 24, "every (alert, step) notified");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.distinct("hook").len(), 24, "no notification made twice");
    println!(
        "{kills} kills; {} requests for 24 notifications (repeats carry the same Idempotency-Key)",
        rx.got("hook").len()
    );
    child.start_kill().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_replay_notifies_nothing_twice_and_the_engine_follows_the_switch_over() {
    let app = spawn(&["press-07"]).await;
    let rx = Receiver::start().await;
    let hook = hook_channel(&app, &rx).await;
    create(
        &app,
        "/api/v1/escalation-policies",
        json!({
        "name": "p", "matchers": {"rules": ["hot", "hot-later"]}, "group_wait_secs": 0, "group_interval_secs": 0,
        "steps": [{"channels": [hook]}]}),
    )
    .await;
    rule(&app, "hot", "temp", &["press-07"]).await;
    ingest(&app, "press-07", &["temp".to_owned()], &HOT).await;
    let first = rx.wait_for("hook", 1).await;

    // Reprocess everything into generation 2: the same alert, the same id, raised again on a new topic.
    let outcome = haltless_processors::detection::replay::run(
        &app.iso.settings.processors(),
        &app.iso.pool,
        &haltless_processors::detection::replay::ReplayOptions::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.generation.0, 2);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rx.got("hook").len(),
        1,
        "the replayed alert is not notified again"
    );

    // The engine follows generation 2: a new alert there is notified.
    rule(&app, "hot-later", "pressure", &["press-07"]).await;
    ingest(&app, "press-07", &["pressure".to_owned()], &HOT).await;
    let got = rx.wait_for("hook", 2).await;
    assert_eq!(got[1].body["alerts"][0]["rule_id"], "hot-later");
    assert_ne!(
        got[1].body["alerts"][0]["id"],
        first[0].body["alerts"][0]["id"]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.got("hook").len(), 2);
    app.stop().await;
}

/// What the push service stand-in received, one JSON object per push.
fn pushed(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_for_pushes(out: &std::path::Path, browser: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    wait_until(&format!("{n} pushes to {browser}"), async || {
        got = pushed(out)
            .into_iter()
            .filter(|p| p["browser"] == browser)
            .collect();
        got.len() >= n
    })
    .await;
    got
}

#[tokio::test]
async fn people_are_told_on_their_browsers_by_role_then_by_name_encrypted_and_signed() {
    let app = spawn(&["press-07"]).await;
    let dir = std::env::temp_dir().join(format!("haltless-push-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (subscriptions, out) = (dir.join("subscriptions.json"), dir.join("pushed.jsonl"));
    let service = Peer::push(
        free_port(),
        "operator,viewer,admin,gone",
        &subscriptions,
        &out,
    )
    .await;
    let browsers: Value =
        serde_json::from_str(&std::fs::read_to_string(&subscriptions).unwrap()).unwrap();

    // The push channel: the platform makes its VAPID key pair and shows the public half to everyone.
    let push = channel(
        &app,
        "browsers",
        "push",
        json!({"subject": "mailto:maintenance@plant.example"}),
    )
    .await;
    let (_, shown) = app
        .call(
            Method::GET,
            &format!("/api/v1/channels/{push}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(shown["config"]["vapid_private_key"], "(hidden)");
    let (viewer_email, password) = app.iso.user(app.tenant, "viewer").await;
    let viewer = app.login(&viewer_email, &password).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let operator = app.token_for(app.tenant, "operator").await;
    let (_, listed) = app
        .call(Method::GET, "/api/v1/push/channels", &viewer, None)
        .await;
    assert_eq!(
        listed["channels"][0]["vapid_public_key"],
        shown["config"]["vapid_public_key"]
    );

    // Each person subscribes their browser; the admin's second browser has since been dropped.
    let subscribe = |token: String, browser: &str| {
        let mut body = browsers[browser].clone();
        body["channel_id"] = json!(push);
        let app = &app;
        async move {
            let (s, v) = app
                .call(
                    Method::POST,
                    "/api/v1/push/subscriptions",
                    &token,
                    Some(&body),
                )
                .await;
            assert_eq!(s, 201, "{v}");
            v
        }
    };
    subscribe(operator.clone(), "operator").await;
    let mine = subscribe(viewer.clone(), "viewer").await;
    assert_eq!(
        mine["push_service"],
        format!("http://127.0.0.1:{}", service.port)
    );
    assert!(
        mine.get("endpoint").is_none(),
        "the endpoint is a capability: not shown back"
    );
    subscribe(app.admin.clone(), "admin").await;
    subscribe(app.admin.clone(), "gone").await;
    let mut bad = browsers["viewer"].clone();
    bad["channel_id"] = json!(push);
    bad["keys"]["p256dh"] = json!("AAAA");
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/push/subscriptions",
            &viewer,
            Some(&bad),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("p256dh"));

    // A test send reaches the admin's newest browser (the dropped one: 410 removes it).
    let (_, sent) = app
        .call(
            Method::POST,
            &format!("/api/v1/channels/{push}/test"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(sent["status"], "failed", "{sent}");
    let (_, sent) = app
        .call(
            Method::POST,
            &format!("/api/v1/channels/{push}/test"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(sent["status"], "delivered", "{sent}");
    let test = &wait_for_pushes(&out, "admin", 1).await[0];
    assert_eq!(test["payload"]["kind"], "test");

    // Operators first; two seconds later the viewer by name.
    let viewer_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(&viewer_email)
        .fetch_one(&app.iso.pool)
        .await
        .unwrap();
    create(
        &app,
        "/api/v1/escalation-policies",
        json!({"name": "people", "group_wait_secs": 1, "steps": [
            {"channels": [push], "roles": ["operator"]},
            {"delay_secs": 2, "channels": [push], "users": [viewer_id]}]}),
    )
    .await;
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/escalation-policies",
            &app.admin,
            Some(&json!({"name": "no way to reach them", "steps": [{"channels": [], "roles": ["viewer"]}]})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    rule(&app, "hot", "temp", &["press-07"]).await;
    ingest(&app, "press-07", &["temp".to_owned()], &HOT).await;

    let first = &wait_for_pushes(&out, "operator", 1).await[0];
    assert!(first["vapid_problem"].is_null(), "{first}");
    assert!(first["decrypt_error"].is_null(), "{first}");
    assert_eq!(first["content_encoding"], "aes128gcm");
    assert_eq!(first["urgency"], "high", "a critical alert");
    assert_eq!(first["ttl"], "86400");
    let payload = &first["payload"];
    assert_eq!(payload["kind"], "alert");
    assert_eq!(payload["title"], "[CRITICAL] temp too high on press-07");
    let alert = payload["alert_ids"][0].as_str().unwrap().to_owned();
    let (_, log) = app
        .get(&format!(
            "/api/v1/notifications?alert={alert}&status=delivered"
        ))
        .await;
    let ids: Vec<String> = log["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().replace('-', ""))
        .collect();
    assert!(
        ids.contains(&first["topic"].as_str().unwrap().to_owned()),
        "the Topic header is the notification's id: {first} {log}"
    );
    assert!(
        pushed(&out).iter().all(|p| p["browser"] != "viewer"),
        "not yet"
    );
    let second = &wait_for_pushes(&out, "viewer", 1).await[0];
    assert_eq!(second["payload"]["alert_ids"][0], alert.as_str());
    assert!(
        pushed(&out).iter().all(|p| p["browser"] != "gone"),
        "an ended subscription"
    );

    // Acknowledged: nothing more; resolved: both who heard are told, once.
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/alerts/{alert}/ack"),
            &operator,
            None,
        )
        .await;
    assert_eq!(s, 202);
    ingest(&app, "press-07", &["temp".to_owned()], &COOL).await;
    let resolved = |browser: &str| {
        pushed(&out)
            .into_iter()
            .filter(|p| p["browser"] == browser && p["payload"]["kind"] == "resolved")
            .count()
    };
    wait_until("both browsers hear of the resolution", async || {
        resolved("operator") == 1 && resolved("viewer") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((resolved("operator"), resolved("viewer")), (1, 1));
    let alerts_pushed = pushed(&out)
        .iter()
        .filter(|p| p["payload"]["kind"] == "alert")
        .count();
    assert_eq!(alerts_pushed, 2, "one per step, then the ack stopped it");
    service.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn alerts_joining_a_group_that_notified_wait_its_interval_and_come_together() {
    let app = spawn(&["press-07"]).await;
    let rx = Receiver::start().await;
    let hook = hook_channel(&app, &rx).await;
    create(
        &app,
        "/api/v1/escalation-policies",
        json!({"name": "grouped", "group_wait_secs": 1, "group_interval_secs": 5,
               "steps": [{"channels": [hook]}]}),
    )
    .await;
    for (r, m) in [("temp", "temp"), ("vib", "vibration"), ("pres", "pressure")] {
        rule(&app, r, m, &["press-07"]).await;
    }
    ingest(&app, "press-07", &["temp".to_owned()], &HOT).await;
    rx.wait_for("hook", 1).await;
    let first_at = Instant::now();
    ingest(&app, "press-07", &["vibration".to_owned()], &HOT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ingest(&app, "press-07", &["pressure".to_owned()], &HOT).await;
    let got = rx.wait_for("hook", 2).await;
    let waited = first_at.elapsed();
    assert!(
        waited >= Duration::from_millis(4500),
        "the newcomers waited the group interval, not the group wait: {waited:?}"
    );
    let rules: BTreeSet<String> = got[1].body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        rules,
        BTreeSet::from(["vib".to_owned(), "pres".to_owned()]),
        "one message for both: {}",
        got[1].body
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.distinct("hook").len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_silent_machine_raises_one_connectivity_alert_that_mutes_its_sensors_until_it_is_back() {
    let app = spawn(&["press-07"]).await;
    let rx = Receiver::start().await;
    let hook = hook_channel(&app, &rx).await;
    create(
        &app,
        "/api/v1/escalation-policies",
        json!({"name": "all", "group_wait_secs": 1, "group_interval_secs": 1,
               "steps": [{"channels": [hook]}, {"delay_secs": 75, "channels": [hook]}]}),
    )
    .await;
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/settings",
            &app.admin,
            Some(&json!({"silent_after_minutes": 1})),
        )
        .await;
    assert_eq!(s, 200);
    rule(&app, "hot", "temp", &["press-07"]).await;
    let temp = ["temp".to_owned()];

    // It overheats, the first step tells the hook, then nothing more arrives from it.
    ingest(&app, "press-07", &temp, &HOT).await;
    let last_heard = Instant::now();
    let first = &rx.wait_for("hook", 1).await[0];
    assert_eq!(first.body["alerts"][0]["rule_id"], "hot");
    let hot = first.body["alerts"][0]["id"].as_str().unwrap().to_owned();

    // A minute later: one connectivity alert, listed and notified like any other.
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(rx.distinct("hook").len(), 1, "not silent before a minute");
    let got = rx.wait_for("hook", 2).await;
    assert!(
        last_heard.elapsed() >= Duration::from_secs(60),
        "raised after {:?}",
        last_heard.elapsed()
    );
    let listed = &got[1].body["alerts"][0];
    assert_eq!(listed["rule_id"], "connectivity", "{}", got[1].body);
    assert_eq!(listed["rule_name"], "machine silent");
    let connectivity = listed["id"].as_str().unwrap().to_owned();
    let open: BTreeSet<String> = alerts(&app, "state=open&machine=press-07")
        .await
        .iter()
        .map(|a| a["rule_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        open,
        BTreeSet::from(["connectivity".to_owned(), "hot".to_owned()])
    );

    // The overheating alert's second step comes due while the machine is silent: muted by it.
    let mut muted = Value::Null;
    wait_until("the sensor alert's next step is muted", async || {
        let (_, v) = app.get(&format!("/api/v1/alerts/{hot}")).await;
        muted = v["notification"]["muted_by"].clone();
        !muted.is_null()
    })
    .await;
    assert_eq!(muted["kind"], "connectivity", "{muted}");
    assert_eq!(muted["by"], connectivity.as_str());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rx.distinct("hook").len(),
        2,
        "nothing more about the sensor"
    );

    // Back and cool: both resolve, and the hook that heard of them is told.
    ingest(&app, "press-07", &temp, &COOL).await;
    let mut resolved = BTreeSet::new();
    wait_until("both resolutions are told", async || {
        resolved = rx
            .got("hook")
            .iter()
            .filter(|r| r.body["kind"] == "resolved")
            .flat_map(ids_listed)
            .collect();
        resolved.len() == 2
    })
    .await;
    assert_eq!(
        resolved,
        BTreeSet::from([hot.clone(), connectivity.clone()])
    );
    let (_, shown) = app.get(&format!("/api/v1/alerts/{connectivity}")).await;
    assert_eq!(shown["state"], "resolved");
    app.stop().await;
}
