//! The endpoint × caller matrix of the resource groups (machines, sensor data, maintenance, fleet, reports,
//! settings, predictions and RUL models, the alert engine's channels, policies, silences and delivery log): every endpoint called as admin, operator, viewer, an ingest key, a read key and anonymously.
//! (The accounts endpoints' matrix is in `roles.rs`.)

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use haltless_api::auth::Scope;
use haltless_api::tenants::create_api_key;
use reqwest::Method;
use serde_json::{json, Value};

const WHO: [&str; 6] = [
    "admin",
    "operator",
    "viewer",
    "ingest_key",
    "read_key",
    "anonymous",
];

/// (admin, operator, viewer, ingest key, read key); anonymous callers always get 401.
fn expected(class: &str, ok: u16) -> [u16; 5] {
    match class {
        "read" => [ok, ok, ok, 403, ok],
        "operate" => [ok, ok, 403, 403, 403],
        "admin" => [ok, 403, 403, 403, 403],
        // Signed-in users only, whatever their role (their own browsers' push subscriptions).
        "user" => [ok, ok, ok, 403, 403],
        other => panic!("unknown class {other}"),
    }
}

/// `method path` with ids put back as the document's `{id}` and machine names as `{machine}`.
fn template(method: &Method, path: &str, ids: &[&String]) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<String> = path
        .split('/')
        .enumerate()
        .map(|(i, part)| {
            if ids.iter().any(|id| id.as_str() == part) {
                "{id}".to_owned()
            } else if i == 4 && path.starts_with("/api/v1/machines/") {
                "{machine}".to_owned()
            } else {
                part.to_owned()
            }
        })
        .collect();
    format!("{} {}", method.as_str().to_lowercase(), parts.join("/"))
}

/// Trains a model (the quick recipe) and waits until it is ready; returns its id.
async fn create_model(app: &TestApp, token: &str, body: &Value) -> String {
    let (s, m) = app
        .call(Method::POST, "/api/v1/models", token, Some(body))
        .await;
    assert_eq!(s, 202, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    for _ in 0..600 {
        let (_, m) = app
            .call(Method::GET, &format!("/api/v1/models/{id}"), token, None)
            .await;
        match m["status"].as_str() {
            Some("ready") => return id,
            Some("training") => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            _ => panic!("training failed: {m}"),
        }
    }
    panic!("model {id} still training");
}

#[tokio::test]
async fn every_resource_endpoint_answers_each_role_as_documented() {
    let retire: Vec<String> = WHO.iter().map(|w| format!("retire-{w}")).collect();
    let mut machines = vec!["m-1"];
    machines.extend(retire.iter().map(String::as_str));
    let app = TestApp::spawn(&machines).await;
    let pool = &app.iso.pool;
    let t = &app.admin;
    let tokens = [
        app.admin.clone(),
        app.token_for(app.tenant, "operator").await,
        app.token_for(app.tenant, "viewer").await,
    ];
    let ingest_key = create_api_key(pool, app.tenant, "i", &[Scope::Ingest])
        .await
        .unwrap()
        .secret;
    let read_key = create_api_key(pool, app.tenant, "r", &[Scope::Read])
        .await
        .unwrap()
        .secret;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let (_, event) = app
        .call(
            Method::POST,
            "/api/v1/maintenance-events",
            t,
            Some(&json!({"machine": "m-1", "kind": "inspection", "performed_at": "2026-11-01T00:00:00Z"})),
        )
        .await;
    let event = id(&event);
    let (_, order) = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            t,
            Some(&json!({"title": "W", "machines": ["m-1"]})),
        )
        .await;
    let order = id(&order);
    let draft = json!({"checklist": "C", "machine": "m-1", "items": [{"item": "i", "ok": true}]});
    let mut drafts = Vec::new();
    for _ in 0..WHO.len() * 2 {
        let (s, d) = app
            .call(Method::POST, "/api/v1/signoffs", t, Some(&draft))
            .await;
        assert_eq!(s, 201);
        drafts.push(id(&d));
    }

    // The alert engine's resources: one of each to read and change, and one per caller to delete.
    let channel_body = |name: String| {
        json!({"name": name, "kind": "webhook",
               "config": {"url": "https://10.255.255.1/hook", "signing_secret": "0123456789abcdef"}})
    };
    let policy_body =
        |name: String, channel: &str| json!({"name": name, "steps": [{"channels": [channel]}]});
    let until = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let silence_body = json!({"matchers": {"machines": ["m-1"]}, "ends_at": until});
    let create = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            let (s, v) = app.call(Method::POST, path, t, Some(&body)).await;
            assert_eq!(s, 201, "{path}: {v}");
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let channel = create("/api/v1/channels", channel_body("main".into())).await;
    let policy = create(
        "/api/v1/escalation-policies",
        policy_body("main".into(), &channel),
    )
    .await;
    let (s, sent) = app
        .call(
            Method::POST,
            &format!("/api/v1/channels/{channel}/test"),
            t,
            None,
        )
        .await;
    assert_eq!(
        (s, sent["status"].as_str()),
        (200, Some("failed")),
        "refused by the outbound policy: {sent}"
    );
    let notification = sent["notification_id"].as_str().unwrap().to_owned();
    let inhibition_body = |name: String| json!({"name": name, "source": {"rules": ["power"]}, "target": {"min_severity": "info"}});
    let inhibition = create("/api/v1/inhibition-rules", inhibition_body("main".into())).await;
    // A push channel, and per signed-in caller one browser subscription to delete.
    let push = create(
        "/api/v1/channels",
        json!({"name": "browsers", "kind": "push", "config": {"subject": "mailto:ops@example.com"}}),
    )
    .await;
    let subscription_body = |n: String| {
        json!({"channel_id": push, "endpoint": format!("https://push.example.com/send/{n}"),
               "expirationTime": null,
               "keys": {"p256dh": "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY",
                        "auth": "_ordMnz7uTCmrpBTeUV4Bw"}})
    };
    let mut gone_subscriptions = Vec::new();
    for (i, who) in WHO.iter().enumerate() {
        let id = match tokens.get(i) {
            Some(token) if i < 3 => {
                let (s, v) = app
                    .call(
                        Method::POST,
                        "/api/v1/push/subscriptions",
                        token,
                        Some(&subscription_body(format!("gone-{who}"))),
                    )
                    .await;
                assert_eq!(s, 201, "{v}");
                v["id"].as_str().unwrap().to_owned()
            }
            _ => uuid::Uuid::new_v4().to_string(),
        };
        gone_subscriptions.push(id);
    }
    let mut doomed = Vec::new();
    for who in WHO {
        doomed.push((
            create("/api/v1/channels", channel_body(format!("gone-{who}"))).await,
            create(
                "/api/v1/escalation-policies",
                policy_body(format!("gone-{who}"), &channel),
            )
            .await,
            create("/api/v1/silences", silence_body.clone()).await,
            create(
                "/api/v1/inhibition-rules",
                inhibition_body(format!("gone-{who}")),
            )
            .await,
        ));
    }

    // A ready RUL model to read and activate.
    let upload = json!({"name": "m", "csv": haltless_processors::prediction::cmapss::simulate(3, 1), "quick": true});
    let model = create_model(&app, t, &upload).await;

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut covered = std::collections::HashSet::new();
    for (i, who) in WHO.iter().enumerate() {
        let (sign, delete) = (&drafts[2 * i], &drafts[2 * i + 1]);
        let (gone_channel, gone_policy, gone_silence, gone_inhibition) = &doomed[i];
        let gone_subscription = &gone_subscriptions[i];
        let endpoints: Vec<(Method, String, Option<Value>, &str, u16)> = vec![
            (
                Method::GET,
                "/api/v1/machines?tag=x&status=active".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/machines/m-1".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/machines/m-1/latest".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/machines/m-1/readings.csv".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/maintenance-events".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                format!("/api/v1/maintenance-events/{event}"),
                None,
                "read",
                200,
            ),
            (Method::GET, "/api/v1/work-orders".into(), None, "read", 200),
            (
                Method::GET,
                format!("/api/v1/work-orders/{order}"),
                None,
                "read",
                200,
            ),
            (Method::GET, "/api/v1/signoffs".into(), None, "read", 200),
            (
                Method::GET,
                format!("/api/v1/signoffs/{sign}"),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/fleet/status".into(),
                None,
                "read",
                200,
            ),
            (Method::GET, "/api/v1/fleet/kpis".into(), None, "read", 200),
            (Method::GET, "/api/v1/settings".into(), None, "read", 200),
            (Method::GET, "/api/v1/predictions".into(), None, "read", 200),
            (
                Method::GET,
                "/api/v1/machines/m-1/predictions".into(),
                None,
                "read",
                200,
            ),
            (Method::GET, "/api/v1/models".into(), None, "read", 200),
            (
                Method::GET,
                format!("/api/v1/models/{model}"),
                None,
                "read",
                200,
            ),
            (
                Method::POST,
                "/api/v1/models".into(),
                Some(
                    json!({"name": format!("new-{who}"), "csv": haltless_processors::prediction::cmapss::simulate(3, 2), "quick": true}),
                ),
                "admin",
                202,
            ),
            (
                Method::POST,
                format!("/api/v1/models/{model}/activate"),
                Some(json!({"machines": ["m-1"]})),
                "admin",
                200,
            ),
            (
                Method::GET,
                "/api/v1/reports/machines.csv".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/reports/machines.pdf".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/reports/alerts.csv".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/reports/alerts.pdf".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/reports/work-orders.csv".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/reports/work-orders.pdf".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/reports/fleet.pdf".into(),
                None,
                "read",
                200,
            ),
            (
                Method::PATCH,
                "/api/v1/machines/m-1".into(),
                Some(json!({"description": who})),
                "operate",
                200,
            ),
            (
                Method::PUT,
                "/api/v1/machines/m-1".into(),
                Some(json!({"name": "m-1", "tags": [who]})),
                "operate",
                200,
            ),
            (
                Method::POST,
                format!("/api/v1/machines/retire-{who}/retire"),
                None,
                "operate",
                200,
            ),
            (
                Method::POST,
                "/api/v1/maintenance-events".into(),
                Some(
                    json!({"machine": "m-1", "kind": "repair", "performed_at": "2026-11-02T00:00:00Z"}),
                ),
                "operate",
                201,
            ),
            (
                Method::POST,
                "/api/v1/work-orders".into(),
                Some(json!({"title": who})),
                "operate",
                201,
            ),
            (
                Method::PATCH,
                format!("/api/v1/work-orders/{order}"),
                Some(json!({"description": who})),
                "operate",
                200,
            ),
            (
                Method::POST,
                "/api/v1/signoffs".into(),
                Some(draft.clone()),
                "operate",
                201,
            ),
            (
                Method::PATCH,
                format!("/api/v1/signoffs/{sign}"),
                Some(json!({"notes": who})),
                "operate",
                200,
            ),
            (
                Method::POST,
                format!("/api/v1/signoffs/{sign}/sign"),
                None,
                "operate",
                200,
            ),
            (
                Method::DELETE,
                format!("/api/v1/signoffs/{delete}"),
                None,
                "operate",
                204,
            ),
            (
                Method::PUT,
                "/api/v1/settings".into(),
                Some(json!({"silent_after_minutes": 20})),
                "admin",
                200,
            ),
            (Method::GET, "/api/v1/channels".into(), None, "admin", 200),
            (
                Method::POST,
                "/api/v1/channels".into(),
                Some(channel_body(format!("new-{who}"))),
                "admin",
                201,
            ),
            (
                Method::GET,
                format!("/api/v1/channels/{channel}"),
                None,
                "admin",
                200,
            ),
            (
                Method::PUT,
                format!("/api/v1/channels/{channel}"),
                Some(json!({"name": "main", "config": {}})),
                "admin",
                200,
            ),
            (
                Method::DELETE,
                format!("/api/v1/channels/{gone_channel}"),
                None,
                "admin",
                204,
            ),
            (
                Method::POST,
                format!("/api/v1/channels/{channel}/test"),
                None,
                "admin",
                200,
            ),
            (
                Method::GET,
                "/api/v1/escalation-policies".into(),
                None,
                "admin",
                200,
            ),
            (
                Method::POST,
                "/api/v1/escalation-policies".into(),
                Some(policy_body(format!("new-{who}"), &channel)),
                "admin",
                201,
            ),
            (
                Method::GET,
                format!("/api/v1/escalation-policies/{policy}"),
                None,
                "admin",
                200,
            ),
            (
                Method::PUT,
                format!("/api/v1/escalation-policies/{policy}"),
                Some(policy_body("main".into(), &channel)),
                "admin",
                200,
            ),
            (
                Method::DELETE,
                format!("/api/v1/escalation-policies/{gone_policy}"),
                None,
                "admin",
                204,
            ),
            (
                Method::GET,
                "/api/v1/inhibition-rules".into(),
                None,
                "admin",
                200,
            ),
            (
                Method::POST,
                "/api/v1/inhibition-rules".into(),
                Some(inhibition_body(format!("new-{who}"))),
                "admin",
                201,
            ),
            (
                Method::GET,
                format!("/api/v1/inhibition-rules/{inhibition}"),
                None,
                "admin",
                200,
            ),
            (
                Method::DELETE,
                format!("/api/v1/inhibition-rules/{gone_inhibition}"),
                None,
                "admin",
                204,
            ),
            (Method::GET, "/api/v1/silences".into(), None, "read", 200),
            (
                Method::POST,
                "/api/v1/silences".into(),
                Some(silence_body.clone()),
                "operate",
                201,
            ),
            (
                Method::DELETE,
                format!("/api/v1/silences/{gone_silence}"),
                None,
                "operate",
                204,
            ),
            (
                Method::GET,
                "/api/v1/notifications?status=failed".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                format!("/api/v1/notifications/{notification}"),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/push/channels".into(),
                None,
                "read",
                200,
            ),
            (
                Method::GET,
                "/api/v1/push/subscriptions".into(),
                None,
                "user",
                200,
            ),
            (
                Method::POST,
                "/api/v1/push/subscriptions".into(),
                Some(subscription_body(format!("new-{who}"))),
                "user",
                201,
            ),
            (
                Method::DELETE,
                format!("/api/v1/push/subscriptions/{gone_subscription}"),
                None,
                "user",
                204,
            ),
        ];
        for (method, path, body, class, ok) in endpoints {
            covered.insert(template(
                &method,
                &path,
                &[
                    &event,
                    &order,
                    sign,
                    delete,
                    &channel,
                    &policy,
                    &notification,
                    gone_channel,
                    gone_policy,
                    gone_silence,
                    &inhibition,
                    gone_inhibition,
                    gone_subscription,
                    &model,
                ],
            ));
            let want = if *who == "anonymous" {
                401
            } else {
                expected(class, ok)[i]
            };
            let mut req = app
                .client
                .request(method.clone(), format!("{}{path}", app.url));
            req = match *who {
                "ingest_key" => req.header("x-api-key", &ingest_key),
                "read_key" => req.header("x-api-key", &read_key),
                "anonymous" => req,
                _ => req.bearer_auth(&tokens[i]),
            };
            if let Some(b) = &body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            let got = r.status().as_u16();
            checked += 1;
            if got != want {
                let answer = r.text().await.unwrap_or_default();
                failures.push(format!(
                    "{who} {method} {path}: want {want}, got {got}: {answer}"
                ));
            } else if got >= 400 {
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                if !answer["error"]["code"].is_string() {
                    failures.push(format!(
                        "{who} {method} {path}: not the uniform error body: {answer}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 61 * 6);

    // Driven from the OpenAPI document: every operation of these groups is in the matrix above (the
    // machine registration, list and readings query are in `roles.rs`).
    let doc: Value = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let in_roles_rs = [
        "post /api/v1/machines",
        "get /api/v1/machines",
        "get /api/v1/machines/{machine}/readings",
    ];
    let mut missing = Vec::new();
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let tag = op["tags"][0].as_str().unwrap_or_default();
            if ![
                "machines",
                "maintenance",
                "fleet",
                "reports",
                "settings",
                "alerting",
                "predictions",
            ]
            .contains(&tag)
            {
                continue;
            }
            documented += 1;
            let key = format!("{method} {path}");
            if !covered.contains(&key) && !in_roles_rs.contains(&key.as_str()) {
                missing.push(key);
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "documented but not in the matrix: {missing:?}"
    );
    let mut all = covered.clone();
    all.extend(in_roles_rs.iter().map(|k| k.to_string()));
    assert_eq!(
        documented,
        all.len(),
        "every case of the matrix is a documented operation"
    );
    app.stop().await;
}
