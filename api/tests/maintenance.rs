//! Maintenance: events recorded and filtered; work orders through their lifecycle with every change in the
//! history and invalid transitions refused with the reason; sign-offs immutable once signed.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn machine_id(app: &TestApp, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM machines WHERE tenant_id = $1 AND name = $2")
        .bind(app.tenant)
        .bind(name)
        .fetch_one(&app.iso.pool)
        .await
        .unwrap()
}

/// An alert as the alerts projection writes it.
async fn insert_alert(app: &TestApp, machine: &str, severity: &str, raised: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector, metric,
            state, observed, expected, score, score_limit, raised_at, updated_at)
         VALUES ($1, $2, $3, $4, 'r', 'R', $5, 'above', 't', 'open', 1, 0, 1, 0.5, $6::timestamptz, $6::timestamptz)",
    )
    .bind(id)
    .bind(app.tenant)
    .bind(machine_id(app, machine).await)
    .bind(machine)
    .bind(severity)
    .bind(raised)
    .execute(&app.iso.pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn maintenance_events_are_recorded_and_filtered() {
    let app = TestApp::spawn(&["m-1", "m-2"]).await;
    let t = &app.admin;
    let operator = app.token_for(app.tenant, "operator").await;
    for (machine, kind, at) in [
        ("m-1", "inspection", "2026-11-01T08:00:00Z"),
        ("m-1", "repair", "2026-11-10T08:00:00Z"),
        ("m-2", "lubrication", "2026-11-05T08:00:00Z"),
    ] {
        let body = json!({"machine": machine, "kind": kind, "notes": "ok", "performed_at": at});
        let (s, e) = app
            .call(
                Method::POST,
                "/api/v1/maintenance-events",
                &operator,
                Some(&body),
            )
            .await;
        assert_eq!(s, 201, "{e}");
        assert_eq!(e["machine"], machine);
        assert!(e["performed_by"].as_str().unwrap().starts_with("user:"));
    }
    let (s, e) = app
        .call(
            Method::POST,
            "/api/v1/maintenance-events",
            t,
            Some(&json!({"machine": "m-2", "kind": "calibration", "performed_at": "2026-11-06T08:00:00Z", "by": "Acme Service Ltd"})),
        )
        .await;
    assert_eq!((s, &e["performed_by"]), (201, &json!("Acme Service Ltd")));
    let (s, shown) = app
        .call(
            Method::GET,
            &format!("/api/v1/maintenance-events/{}", e["id"].as_str().unwrap()),
            t,
            None,
        )
        .await;
    assert_eq!((s, &shown["kind"]), (200, &json!("calibration")));
    let list = |q: &'static str| {
        let app = &app;
        async move {
            let (s, body) = app
                .call(
                    Method::GET,
                    &format!("/api/v1/maintenance-events{q}"),
                    &app.admin,
                    None,
                )
                .await;
            assert_eq!(s, 200, "{body}");
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("").await,
        ["repair", "calibration", "lubrication", "inspection"]
    );
    assert_eq!(list("?machine=m-1").await, ["repair", "inspection"]);
    assert_eq!(list("?kind=lubrication").await, ["lubrication"]);
    assert_eq!(
        list("?from=2026-11-05T00:00:00Z&to=2026-11-07T00:00:00Z").await,
        ["calibration", "lubrication"]
    );
    assert_eq!(list("?limit=1&offset=1").await, ["calibration"]);
    for (body, status) in [
        (
            json!({"machine": "m-1", "kind": "prayer", "performed_at": "2026-11-01T08:00:00Z"}),
            422,
        ),
        (
            json!({"machine": "m-1", "kind": "repair", "performed_at": "soon"}),
            422,
        ),
        (
            json!({"machine": "m-1", "kind": "repair", "performed_at": "2099-01-01T00:00:00Z"}),
            422,
        ),
        (
            json!({"machine": "nope", "kind": "repair", "performed_at": "2026-11-01T08:00:00Z"}),
            404,
        ),
        (json!({"machine": "m-1", "kind": "repair"}), 422),
    ] {
        let (s, answer) = app
            .call(Method::POST, "/api/v1/maintenance-events", t, Some(&body))
            .await;
        assert_eq!(s, status, "{body}: {answer}");
        assert!(answer["error"]["message"].is_string());
    }
    app.stop().await;
}

fn history_kinds(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let c = h["change"].as_object().unwrap();
            let mut keys: Vec<&str> = c.keys().map(|k| k.as_str()).collect();
            keys.sort();
            keys.join("+")
        })
        .collect()
}

#[tokio::test]
async fn work_orders_follow_their_lifecycle_and_keep_a_history() {
    let app = TestApp::spawn(&["m-1", "m-2"]).await;
    let t = &app.admin;
    let operator = app.token_for(app.tenant, "operator").await;
    let (_, me) = app.call(Method::GET, "/api/v1/me", &operator, None).await;
    let operator_id = me["user"]["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!("no user id in /me: {me}");
        });
    let alert = insert_alert(&app, "m-1", "critical", "2026-11-20T10:00:00Z").await;
    let body = json!({"title": "Replace spindle bearing", "description": "noisy", "assignee": operator_id,
        "due_date": "2026-12-01", "machines": ["m-1"], "alerts": [alert]});
    let (s, order) = app
        .call(Method::POST, "/api/v1/work-orders", &operator, Some(&body))
        .await;
    assert_eq!(s, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/work-orders/{id}");
    assert_eq!(order["status"], "open");
    assert_eq!(order["machines"], json!(["m-1"]));
    assert_eq!(order["alerts"], json!([alert]));
    assert_eq!(order["due_date"], "2026-12-01");
    assert_eq!(order["next_statuses"], json!(["in_progress", "cancelled"]));
    assert_eq!(history_kinds(&order), ["created"]);

    // Open → done skips a step: 409 with the reason and what is allowed.
    let (s, refused) = app
        .call(Method::PATCH, &path, t, Some(&json!({"status": "done"})))
        .await;
    assert_eq!(s, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_transition");
    assert_eq!(refused["error"]["details"]["from"], "open");
    assert_eq!(
        refused["error"]["details"]["allowed"],
        json!(["in_progress", "cancelled"])
    );
    let (s, bad) = app
        .call(Method::PATCH, &path, t, Some(&json!({"status": "paused"})))
        .await;
    assert_eq!(
        (s, bad["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );

    let (s, order) = app
        .call(
            Method::PATCH,
            &path,
            &operator,
            Some(&json!({"status": "in_progress", "note": "on it"})),
        )
        .await;
    assert_eq!(s, 200, "{order}");
    assert!(order["started_at"].is_string());
    let (s, order) = app
        .call(
            Method::PATCH,
            &path,
            t,
            Some(&json!({"assignee": null, "due_date": "2026-12-05", "machines": ["m-1", "m-2"]})),
        )
        .await;
    assert_eq!(s, 200, "{order}");
    assert_eq!(order["assignee"], Value::Null);
    assert_eq!(order["machines"], json!(["m-1", "m-2"]));
    let last = order["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["change"]["fields"]["due_date"],
        json!({"from": "2026-12-01", "to": "2026-12-05"})
    );
    assert!(last["by"].as_str().unwrap().starts_with("user:"));
    let (s, order) = app
        .call(
            Method::PATCH,
            &path,
            &operator,
            Some(&json!({"status": "done"})),
        )
        .await;
    assert_eq!(s, 200, "{order}");
    assert!(order["closed_at"].is_string());
    assert_eq!(order["next_statuses"], json!([]));
    assert_eq!(
        history_kinds(&order),
        ["created", "note+status", "fields", "status"]
    );
    assert_eq!(order["history"][1]["change"]["note"], "on it");
    // Done is final.
    for change in [json!({"status": "cancelled"}), json!({"title": "again"})] {
        let (s, refused) = app.call(Method::PATCH, &path, t, Some(&change)).await;
        assert_eq!(s, 409, "{change}: {refused}");
        assert_eq!(refused["error"]["code"], "closed");
    }
    // The history comes with the order.
    let (_, shown) = app.call(Method::GET, &path, t, None).await;
    assert_eq!(shown["history"].as_array().unwrap().len(), 4);

    // Linked resources must be the tenant's.
    for (body, code) in [
        (
            json!({"title": "x", "machines": ["ghost"]}),
            "unknown_machine",
        ),
        (
            json!({"title": "x", "alerts": [Uuid::new_v4()]}),
            "unknown_alert",
        ),
        (
            json!({"title": "x", "assignee": Uuid::new_v4()}),
            "unknown_user",
        ),
        (json!({"title": "", "machines": []}), "validation_failed"),
        (
            json!({"title": "x", "due_date": "next week"}),
            "validation_failed",
        ),
    ] {
        let (s, answer) = app
            .call(Method::POST, "/api/v1/work-orders", t, Some(&body))
            .await;
        assert_eq!(
            (s, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}"
        );
    }
    // Open → cancelled, and the list filters.
    let (_, second) = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            t,
            Some(&json!({"title": "Clean", "machines": ["m-2"]})),
        )
        .await;
    let second_path = format!("/api/v1/work-orders/{}", second["id"].as_str().unwrap());
    let (s, _) = app
        .call(
            Method::PATCH,
            &second_path,
            t,
            Some(&json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(s, 200);
    let titles = |q: &'static str| {
        let app = &app;
        async move {
            let (s, body) = app
                .call(
                    Method::GET,
                    &format!("/api/v1/work-orders{q}"),
                    &app.admin,
                    None,
                )
                .await;
            assert_eq!(s, 200, "{body}");
            body["work_orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(titles("").await, ["Clean", "Replace spindle bearing"]);
    assert_eq!(titles("?status=done").await, ["Replace spindle bearing"]);
    assert_eq!(
        titles("?machine=m-2").await,
        ["Clean", "Replace spindle bearing"]
    );
    assert_eq!(titles("?machine=m-1").await, ["Replace spindle bearing"]);
    assert_eq!(
        titles("?due_before=2026-12-31").await,
        ["Replace spindle bearing"]
    );
    assert_eq!(titles("?limit=1").await, ["Clean"]);
    let (s, _) = app
        .call(Method::GET, "/api/v1/work-orders?status=paused", t, None)
        .await;
    assert_eq!(s, 422);
    app.stop().await;
}

#[tokio::test]
async fn a_signed_signoff_is_immutable() {
    let app = TestApp::spawn(&["m-1"]).await;
    let t = &app.admin;
    let items = json!([{"item": "Guards in place", "ok": true}, {"item": "E-stop tested", "ok": true, "note": "2 s"}]);
    let (s, draft) = app
        .call(
            Method::POST,
            "/api/v1/signoffs",
            t,
            Some(&json!({"checklist": "LOTO weekly", "machine": "m-1", "items": items})),
        )
        .await;
    assert_eq!(s, 201, "{draft}");
    assert_eq!(draft["status"], "draft");
    let path = format!("/api/v1/signoffs/{}", draft["id"].as_str().unwrap());
    // A draft can change.
    let (s, changed) = app
        .call(Method::PATCH, &path, t, Some(&json!({"notes": "all fine"})))
        .await;
    assert_eq!((s, &changed["notes"]), (200, &json!("all fine")));
    assert_eq!(changed["items"], items);
    // Signing records who and when.
    let (s, signed) = app
        .call(Method::POST, &format!("{path}/sign"), t, None)
        .await;
    assert_eq!(s, 200, "{signed}");
    assert_eq!(signed["status"], "signed");
    assert!(signed["signed_by"].as_str().unwrap().starts_with("user:"));
    assert!(signed["signed_at"].is_string());
    // From now on: updates, deletes and a second signature are refused with 409.
    for (method, p, body) in [
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"notes": "tampered"})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/sign"), None),
    ] {
        let (s, answer) = app.call(method.clone(), &p, t, body.as_ref()).await;
        assert_eq!(s, 409, "{method} {p}: {answer}");
        assert_eq!(answer["error"]["code"], "immutable");
    }
    let (_, after) = app.call(Method::GET, &path, t, None).await;
    assert_eq!(after, signed, "unchanged");
    // Even direct SQL cannot change a signed row.
    let direct = sqlx::query("UPDATE signoffs SET notes = 'x' WHERE id = $1")
        .bind(draft["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .execute(&app.iso.pool)
        .await;
    assert!(direct.is_err(), "the trigger refuses it");

    // Signed at creation; drafts can be deleted; the list filters by status.
    let (s, at_once) = app
        .call(
            Method::POST,
            "/api/v1/signoffs",
            t,
            Some(&json!({"checklist": "Daily", "items": [{"item": "Oil", "ok": false}], "sign": true})),
        )
        .await;
    assert_eq!((s, &at_once["status"]), (201, &json!("signed")));
    let (_, other) = app
        .call(
            Method::POST,
            "/api/v1/signoffs",
            t,
            Some(&json!({"checklist": "Tmp", "items": [{"item": "x", "ok": true}]})),
        )
        .await;
    let other_path = format!("/api/v1/signoffs/{}", other["id"].as_str().unwrap());
    assert_eq!(app.call(Method::DELETE, &other_path, t, None).await.0, 204);
    assert_eq!(app.call(Method::GET, &other_path, t, None).await.0, 404);
    let (_, list) = app
        .call(Method::GET, "/api/v1/signoffs?status=signed", t, None)
        .await;
    assert_eq!(list["signoffs"].as_array().unwrap().len(), 2);
    let (_, list) = app
        .call(Method::GET, "/api/v1/signoffs?machine=m-1", t, None)
        .await;
    assert_eq!(list["signoffs"].as_array().unwrap().len(), 1);
    for body in [
        json!({"checklist": "", "items": [{"item": "x", "ok": true}]}),
        json!({"checklist": "C", "items": []}),
        json!({"checklist": "C", "items": [{"item": "x"}]}),
    ] {
        let (s, answer) = app
            .call(Method::POST, "/api/v1/signoffs", t, Some(&body))
            .await;
        assert_eq!(s, 422, "{body}: {answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn text_with_nul_characters_is_refused_with_422_not_500() {
    let app = TestApp::spawn(&["m-1"]).await;
    let t = &app.admin;
    for (path, body) in [
        ("/api/v1/work-orders", json!({"title": "5\u{0}x"})),
        (
            "/api/v1/signoffs",
            json!({"checklist": "a\u{0}b", "items": [{"item": "i", "ok": true}]}),
        ),
        (
            "/api/v1/maintenance-events",
            json!({"machine": "m-1", "kind": "repair", "notes": "\u{0}", "performed_at": "2026-11-01T00:00:00Z"}),
        ),
        ("/api/v1/machines", json!({"name": "m-2", "site": "\u{0}"})),
    ] {
        let (s, answer) = app.call(Method::POST, path, t, Some(&body)).await;
        assert_eq!(s, 422, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed");
    }
    app.stop().await;
}
