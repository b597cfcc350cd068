//! Tenant isolation of the resource groups: two tenants signed up from scratch; tenant A's credentials on
//! tenant B's machines, maintenance events, work orders, sign-offs, channels, escalation policies, silences,
//! notifications, push subscriptions, RUL models, predictions and rule previews answer 404; B's machines, alerts, users and channels cannot be linked from A (422); no list,
//! fleet view, report or setting of A shows B's data.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn sign_up(app: &TestApp, name: &str) -> (Uuid, String) {
    let email = format!("admin@{name}.example");
    let body = json!({"tenant": name, "email": email, "password": "correct horse battery"});
    let r = app
        .client
        .post(format!("{}/api/v1/signup", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let (s, login) = app.login(&email, "correct horse battery").await;
    assert_eq!(s, 200);
    let tenant = created["tenant"]["id"].as_str().unwrap().parse().unwrap();
    (tenant, login["access_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn another_tenants_resources_answer_404_and_nothing_leaks() {
    let app = TestApp::spawn(&[]).await;
    let (_, a) = sign_up(&app, "alpha").await;
    let (tenant_b, b) = sign_up(&app, "bravo").await;
    let id = |v: &Value| {
        v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {v}"))
            .to_owned()
    };

    // B's resources, through the API.
    let (s, machine) = app
        .call(
            Method::POST,
            "/api/v1/machines",
            &b,
            Some(&json!({"name": "b-press", "site": "b-site", "tags": ["b-tag"]})),
        )
        .await;
    assert_eq!(s, 201);
    let machine_id: Uuid = id(&machine).parse().unwrap();
    let alert = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector, metric,
            state, observed, expected, score, score_limit, raised_at, updated_at)
         VALUES ($1, $2, $3, 'b-press', 'r', 'b-rule', 'critical', 'above', 't', 'open', 1, 0, 1, 0.5, now(), now())",
    )
    .bind(alert)
    .bind(tenant_b)
    .bind(machine_id)
    .execute(&app.iso.pool)
    .await
    .unwrap();
    let (_, event) = app
        .call(
            Method::POST,
            "/api/v1/maintenance-events",
            &b,
            Some(&json!({"machine": "b-press", "kind": "repair", "notes": "b-notes", "performed_at": "2026-11-01T00:00:00Z"})),
        )
        .await;
    let event = id(&event);
    let (_, order) = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            &b,
            Some(&json!({"title": "b-order", "machines": ["b-press"], "alerts": [alert]})),
        )
        .await;
    let order = id(&order);
    let signoff = json!({"checklist": "b-checklist", "machine": "b-press", "items": [{"item": "i", "ok": true}]});
    let (_, draft) = app
        .call(Method::POST, "/api/v1/signoffs", &b, Some(&signoff))
        .await;
    let draft = id(&draft);
    let (_, me_b) = app.call(Method::GET, "/api/v1/me", &b, None).await;
    let b_user = me_b["user"]["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/settings",
            &b,
            Some(&json!({"silent_after_minutes": 999})),
        )
        .await;
    assert_eq!(s, 200);

    // B's RUL model, ready and activated, and a prediction of B's machine.
    let (s, model) = app
        .call(
            Method::POST,
            "/api/v1/models",
            &b,
            Some(&json!({"name": "b-model", "csv": haltless_processors::prediction::cmapss::simulate(3, 1), "quick": true})),
        )
        .await;
    assert_eq!(s, 202, "{model}");
    let model = id(&model);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while app
        .call(Method::GET, &format!("/api/v1/models/{model}"), &b, None)
        .await
        .1["status"]
        == "training"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "b-model still training"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let (s, answer) = app
        .call(
            Method::POST,
            &format!("/api/v1/models/{model}/activate"),
            &b,
            Some(&json!({"tags": ["b-tag"]})),
        )
        .await;
    assert_eq!(s, 200, "{answer}");
    sqlx::query(
        "INSERT INTO predictions (tenant_id, machine_id, ts, cycle, rul, rul_lower, rul_upper, interval, health,
            model_id, model_version, contributors)
         VALUES ($1, $2, now(), 7, 42.5, 30, 50, 0.8, 0.34, $3, 'b-version', '[{\"sensor\": \"b-sensor\", \"effect\": -3}]')",
    )
    .bind(tenant_b)
    .bind(machine_id)
    .bind(model.parse::<Uuid>().unwrap())
    .execute(&app.iso.pool)
    .await
    .unwrap();

    // B's alert engine: a channel, a policy, a silence, a notification (a test send, refused by the
    // outbound policy: it is logged all the same).
    let hook =
        json!({"url": "https://10.255.255.1/b-hook", "signing_secret": "b-secret-0123456789"});
    let (s, channel) = app
        .call(
            Method::POST,
            "/api/v1/channels",
            &b,
            Some(&json!({"name": "b-channel", "kind": "webhook", "config": hook})),
        )
        .await;
    assert_eq!(s, 201, "{channel}");
    let channel = id(&channel);
    let policy_body = json!({"name": "b-policy", "steps": [{"channels": [channel]}]});
    let (_, policy) = app
        .call(
            Method::POST,
            "/api/v1/escalation-policies",
            &b,
            Some(&policy_body),
        )
        .await;
    let policy = id(&policy);
    let until = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (_, silence) = app
        .call(Method::POST, "/api/v1/silences", &b,
            Some(&json!({"matchers": {"machines": ["b-press"]}, "ends_at": until, "comment": "b-silence"})))
        .await;
    let silence = id(&silence);
    let (_, inhibition) = app
        .call(
            Method::POST,
            "/api/v1/inhibition-rules",
            &b,
            Some(&json!({"name": "b-inhibition", "source": {"rules": ["power"]}, "target": {}})),
        )
        .await;
    let inhibition = id(&inhibition);
    let (_, sent) = app
        .call(
            Method::POST,
            &format!("/api/v1/channels/{channel}/test"),
            &b,
            None,
        )
        .await;
    let notification = sent["notification_id"].as_str().unwrap().to_owned();
    let (s, push) = app
        .call(
            Method::POST,
            "/api/v1/channels",
            &b,
            Some(&json!({"name": "b-push", "kind": "push", "config": {"subject": "mailto:b@example.com"}})),
        )
        .await;
    assert_eq!(s, 201, "{push}");
    let push = id(&push);
    let subscription_body = json!({"channel_id": push, "endpoint": "https://push.example.com/send/b-browser",
        "keys": {"p256dh": "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY",
                 "auth": "_ordMnz7uTCmrpBTeUV4Bw"}});
    let (s, subscription) = app
        .call(
            Method::POST,
            "/api/v1/push/subscriptions",
            &b,
            Some(&subscription_body),
        )
        .await;
    assert_eq!(s, 201, "{subscription}");
    let subscription = id(&subscription);

    // A on B's ids: 404, never 403, with the uniform body.
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/channels/{channel}"), None),
        (
            Method::PUT,
            format!("/api/v1/channels/{channel}"),
            Some(json!({"name": "mine", "config": hook})),
        ),
        (
            Method::POST,
            format!("/api/v1/channels/{channel}/test"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/channels/{channel}"), None),
        (
            Method::GET,
            format!("/api/v1/escalation-policies/{policy}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/escalation-policies/{policy}"),
            Some(json!({"name": "mine", "steps": [{"channels": [channel]}]})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/escalation-policies/{policy}"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/silences/{silence}"), None),
        (
            Method::GET,
            format!("/api/v1/inhibition-rules/{inhibition}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/inhibition-rules/{inhibition}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/notifications/{notification}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/push/subscriptions/{subscription}"),
            None,
        ),
        (Method::GET, "/api/v1/machines/b-press".into(), None),
        (
            Method::PUT,
            "/api/v1/machines/b-press".into(),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::PATCH,
            "/api/v1/machines/b-press".into(),
            Some(json!({"site": "x"})),
        ),
        (Method::POST, "/api/v1/machines/b-press/retire".into(), None),
        (Method::GET, "/api/v1/machines/b-press/latest".into(), None),
        (
            Method::GET,
            "/api/v1/machines/b-press/readings.csv".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/machines/b-press/preview-rule".into(),
            Some(json!({"rule": {"when": {"metric": "t", "detector": "above", "value": 0}}})),
        ),
        (
            Method::GET,
            format!("/api/v1/maintenance-events/{event}"),
            None,
        ),
        (
            Method::GET,
            "/api/v1/maintenance-events?machine=b-press".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/maintenance-events".into(),
            Some(
                json!({"machine": "b-press", "kind": "repair", "performed_at": "2026-11-01T00:00:00Z"}),
            ),
        ),
        (Method::GET, format!("/api/v1/work-orders/{order}"), None),
        (
            Method::PATCH,
            format!("/api/v1/work-orders/{order}"),
            Some(json!({"status": "cancelled"})),
        ),
        (
            Method::GET,
            "/api/v1/work-orders?machine=b-press".into(),
            None,
        ),
        (Method::GET, format!("/api/v1/signoffs/{draft}"), None),
        (
            Method::PATCH,
            format!("/api/v1/signoffs/{draft}"),
            Some(json!({"notes": "x"})),
        ),
        (Method::POST, format!("/api/v1/signoffs/{draft}/sign"), None),
        (Method::DELETE, format!("/api/v1/signoffs/{draft}"), None),
        (
            Method::POST,
            "/api/v1/signoffs".into(),
            Some(signoff.clone()),
        ),
        (
            Method::GET,
            "/api/v1/reports/work-orders.csv?machine=b-press".into(),
            None,
        ),
        (Method::GET, format!("/api/v1/models/{model}"), None),
        (
            Method::POST,
            format!("/api/v1/models/{model}/activate"),
            Some(json!({})),
        ),
        (
            Method::GET,
            "/api/v1/machines/b-press/predictions".into(),
            None,
        ),
    ];
    for (method, path, body) in &cases {
        let (s, answer) = app.call(method.clone(), path, &a, body.as_ref()).await;
        assert_eq!(s, 404, "{method} {path} with tenant A's token: {answer}");
        assert_eq!(answer["error"]["code"], "not_found", "{method} {path}");
    }
    // B's channels cannot be named in A's policies.
    let (s, answer) = app
        .call(
            Method::POST,
            "/api/v1/escalation-policies",
            &a,
            Some(&json!({"name": "x", "steps": [{"channels": [channel]}]})),
        )
        .await;
    assert_eq!(
        (s, answer["error"]["code"].as_str()),
        (422, Some("unknown_channel")),
        "{answer}"
    );
    // A's browsers cannot subscribe with B's push channel.
    let (s, answer) = app
        .call(
            Method::POST,
            "/api/v1/push/subscriptions",
            &a,
            Some(&subscription_body),
        )
        .await;
    assert_eq!(s, 422, "{answer}");
    // B's machines cannot be served by A's models, and B's history (its repair) trains nothing of A's.
    let (s, answer) = app
        .call(
            Method::POST,
            "/api/v1/models",
            &a,
            Some(&json!({"name": "a-model", "csv": haltless_processors::prediction::cmapss::simulate(3, 1), "quick": true})),
        )
        .await;
    assert_eq!(s, 202, "{answer}");
    let a_model = id(&answer);
    let (s, answer) = app
        .call(
            Method::POST,
            "/api/v1/models",
            &a,
            Some(&json!({"name": "a-history", "history": {"metrics": ["t"]}})),
        )
        .await;
    assert_eq!(s, 422, "{answer}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while app
        .call(Method::GET, &format!("/api/v1/models/{a_model}"), &a, None)
        .await
        .1["status"]
        == "training"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a-model still training"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    for body in [json!({"machines": ["b-press"]}), json!({"tags": ["b-tag"]})] {
        let (s, answer) = app
            .call(
                Method::POST,
                &format!("/api/v1/models/{a_model}/activate"),
                &a,
                Some(&body),
            )
            .await;
        assert_eq!(s, 422, "{body}: {answer}");
    }

    // B's machines, alerts and users cannot be linked to A's work orders.
    for (body, code) in [
        (
            json!({"title": "x", "machines": ["b-press"]}),
            "unknown_machine",
        ),
        (json!({"title": "x", "alerts": [alert]}), "unknown_alert"),
        (json!({"title": "x", "assignee": b_user}), "unknown_user"),
    ] {
        let (s, answer) = app
            .call(Method::POST, "/api/v1/work-orders", &a, Some(&body))
            .await;
        assert_eq!(
            (s, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}"
        );
    }

    // Nothing of B in A's lists, fleet, KPIs, reports and settings.
    let secrets = [
        machine_id.to_string(),
        "b-press".into(),
        "b-site".into(),
        alert.to_string(),
        event.clone(),
        order.clone(),
        draft.clone(),
        "b-checklist".into(),
        "b-order".into(),
        channel.clone(),
        policy.clone(),
        silence.clone(),
        notification.clone(),
        "b-channel".into(),
        "b-policy".into(),
        "b-silence".into(),
        inhibition.clone(),
        "b-inhibition".into(),
        push.clone(),
        "b-push".into(),
        subscription.clone(),
        model.clone(),
        "b-model".into(),
        "b-version".into(),
        "b-sensor".into(),
    ];
    for path in [
        "/api/v1/machines",
        "/api/v1/machines?tag=b-tag",
        "/api/v1/machines?site=b-site",
        "/api/v1/maintenance-events",
        "/api/v1/work-orders",
        "/api/v1/signoffs",
        "/api/v1/fleet/status",
        "/api/v1/fleet/kpis",
        "/api/v1/settings",
        "/api/v1/reports/machines.csv",
        "/api/v1/reports/alerts.csv",
        "/api/v1/reports/work-orders.csv",
        "/api/v1/reports/fleet.pdf",
        "/api/v1/reports/alerts.pdf",
        "/api/v1/channels",
        "/api/v1/escalation-policies",
        "/api/v1/silences",
        "/api/v1/notifications",
        "/api/v1/inhibition-rules",
        "/api/v1/push/channels",
        "/api/v1/push/subscriptions",
        "/api/v1/models",
        "/api/v1/predictions",
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.url))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let text = String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned();
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{path} leaks {secret}: {text}"
            );
        }
    }
    let (_, kpis) = app.call(Method::GET, "/api/v1/fleet/kpis", &a, None).await;
    assert_eq!(kpis["open_alerts"]["total"], 0);
    assert_eq!(kpis["machines"]["total"], 0);
    let (_, settings) = app.call(Method::GET, "/api/v1/settings", &a, None).await;
    assert_eq!(settings["settings"]["silent_after_minutes"], 15);

    // B's resources are intact.
    let (_, m) = app
        .call(Method::GET, "/api/v1/machines/b-press", &b, None)
        .await;
    assert_eq!(
        (m["status"].as_str(), m["site"].as_str()),
        (Some("active"), Some("b-site"))
    );
    let (_, o) = app
        .call(
            Method::GET,
            &format!("/api/v1/work-orders/{order}"),
            &b,
            None,
        )
        .await;
    assert_eq!(o["status"], "open");
    for path in [
        format!("/api/v1/channels/{channel}"),
        format!("/api/v1/escalation-policies/{policy}"),
        format!("/api/v1/notifications/{notification}"),
    ] {
        assert_eq!(
            app.call(Method::GET, &path, &b, None).await.0,
            200,
            "{path}"
        );
    }
    let (_, silences) = app.call(Method::GET, "/api/v1/silences", &b, None).await;
    assert_eq!(silences["silences"][0]["id"], json!(silence));
    let (_, d) = app
        .call(Method::GET, &format!("/api/v1/signoffs/{draft}"), &b, None)
        .await;
    assert_eq!(
        (d["status"].as_str(), d["notes"].as_str()),
        (Some("draft"), Some(""))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_key_restricted_to_a_machine_sees_only_that_machine() {
    let app = TestApp::spawn(&["m-1", "m-2"]).await;
    let t = &app.admin;
    for machine in ["m-1", "m-2"] {
        let body = json!({"machine": machine, "kind": "repair", "notes": format!("note-{machine}"),
                          "performed_at": "2026-11-01T00:00:00Z"});
        let (s, _) = app
            .call(Method::POST, "/api/v1/maintenance-events", t, Some(&body))
            .await;
        assert_eq!(s, 201);
        let body = json!({"title": format!("order-{machine}"), "machines": [machine]});
        let (s, _) = app
            .call(Method::POST, "/api/v1/work-orders", t, Some(&body))
            .await;
        assert_eq!(s, 201);
    }
    let (s, key) = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            t,
            Some(&json!({"name": "edge", "scopes": ["read"], "machines": ["m-1"]})),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    let secret = key["secret"].as_str().unwrap().to_owned();
    let get = |path: &str| {
        let req = app
            .client
            .get(format!("{}{path}", app.url))
            .header("x-api-key", &secret);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for path in [
        "/api/v1/machines",
        "/api/v1/maintenance-events",
        "/api/v1/work-orders",
        "/api/v1/fleet/status",
        "/api/v1/reports/machines.csv",
        "/api/v1/reports/work-orders.csv",
    ] {
        let (s, text) = get(path).await;
        assert_eq!(s, 200, "{path}: {text}");
        assert!(text.contains("m-1"), "{path}: {text}");
        assert!(
            !text.contains("m-2"),
            "{path} shows the other machine: {text}"
        );
    }
    for path in [
        "/api/v1/machines/m-2",
        "/api/v1/machines/m-2/latest",
        "/api/v1/machines/m-2/readings.csv",
        "/api/v1/maintenance-events?machine=m-2",
    ] {
        assert_eq!(get(path).await.0, 404, "{path}");
    }
    app.stop().await;
}
