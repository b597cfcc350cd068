//! The fleet: running / alerting / silent per machine (silent after the tenant's setting), KPIs with MTBF,
//! MTTR, open alerts by severity and freshness; the settings document (GET for all, PUT for admins, 422).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn insert_alert(
    app: &TestApp,
    machine: &str,
    severity: &str,
    state: &str,
    raised: &str,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector, metric,
            state, observed, expected, score, score_limit, raised_at, updated_at)
         SELECT $1, $2, m.id, m.name, 'r', 'R', $4, 'above', 't', $5, 1, 0, 1, 0.5, $6::timestamptz, $6::timestamptz
         FROM machines m WHERE m.tenant_id = $2 AND m.name = $3",
    )
    .bind(id)
    .bind(app.tenant)
    .bind(machine)
    .bind(severity)
    .bind(state)
    .bind(raised)
    .execute(&app.iso.pool)
    .await
    .unwrap();
    id
}

fn status_of(body: &Value, machine: &str) -> String {
    body["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == machine)
        .unwrap_or_else(|| panic!("{machine} missing from {body}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_machine_is_running_alerting_or_silent() {
    let app = TestApp::spawn(&["m-run", "m-alert", "m-none", "m-old", "m-gone"]).await;
    let t = &app.admin;
    let now = chrono::Utc::now().timestamp_millis();
    let r = app
        .ingest(&json!({"readings": [
            {"machine": "m-run", "metric": "t", "ts": now, "value": 1.0},
            {"machine": "m-alert", "metric": "t", "ts": now, "value": 1.0},
            {"machine": "m-old", "metric": "t", "ts": now - 3_600_000, "value": 1.0},
        ]}))
        .await;
    assert_eq!(r.status(), 202);
    app.wait_for_readings("m-old", 1).await;
    app.wait_for_readings("m-run", 1).await;
    app.wait_for_readings("m-alert", 1).await;
    insert_alert(&app, "m-alert", "critical", "open", "2026-11-20T00:00:00Z").await;
    let resolved = insert_alert(&app, "m-run", "warning", "resolved", "2026-11-20T00:00:00Z").await;
    // The same alert still open in a detection generation that is not active (a replay being built).
    sqlx::query(
        "INSERT INTO alerts (generation, id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector,
            metric, state, observed, expected, score, score_limit, raised_at, updated_at)
         SELECT 2, id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector, metric, 'open',
            observed, expected, score, score_limit, raised_at, updated_at FROM alerts WHERE id = $1",
    )
    .bind(resolved)
    .execute(&app.iso.pool)
    .await
    .unwrap();
    assert_eq!(
        app.call(Method::POST, "/api/v1/machines/m-gone/retire", t, None)
            .await
            .0,
        200
    );

    let (s, fleet) = app.get("/api/v1/fleet/status").await;
    assert_eq!(s, 200, "{fleet}");
    assert_eq!(status_of(&fleet, "m-run"), "running");
    assert_eq!(status_of(&fleet, "m-alert"), "alerting");
    assert_eq!(status_of(&fleet, "m-none"), "silent");
    assert_eq!(status_of(&fleet, "m-old"), "silent", "an hour > 15 minutes");
    assert_eq!(
        fleet["machines"].as_array().unwrap().len(),
        4,
        "retired machines are not in the fleet"
    );
    assert_eq!(
        fleet["counts"],
        json!({"running": 1, "alerting": 1, "silent": 2, "total": 4})
    );
    let alerting = fleet["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "m-alert")
        .unwrap();
    assert_eq!(alerting["worst_severity"], "critical");
    assert_eq!(alerting["open_alerts"], 1);
    let (_, only) = app.get("/api/v1/fleet/status?status=silent").await;
    let names: Vec<&str> = only["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m-none", "m-old"]);
    assert_eq!(app.get("/api/v1/fleet/status?status=sleepy").await.0, 422);

    // The silent threshold is the tenant's setting.
    let (s, saved) = app
        .call(
            Method::PUT,
            "/api/v1/settings",
            t,
            Some(&json!({"silent_after_minutes": 120})),
        )
        .await;
    assert_eq!(s, 200, "{saved}");
    assert_eq!(saved["settings"]["silent_after_minutes"], 120);
    assert_eq!(
        saved["settings"]["detection"]["one_in"], 100_000.0,
        "absent fields take their default"
    );
    let (_, fleet) = app.get("/api/v1/fleet/status").await;
    assert_eq!(status_of(&fleet, "m-old"), "running");
    assert_eq!(fleet["silent_after_minutes"], 120);
    app.stop().await;
}

#[tokio::test]
async fn kpis_give_mtbf_mttr_open_alerts_and_freshness() {
    let app = TestApp::spawn(&["a", "b", "c", "d"]).await;
    let pool = &app.iso.pool;
    sqlx::query("UPDATE machines SET created_at = '2026-10-01T00:00:00Z' WHERE tenant_id = $1")
        .bind(app.tenant)
        .execute(pool)
        .await
        .unwrap();
    // Failures in the window: three warning/critical alerts (the info one and the one before do not count).
    let first = insert_alert(&app, "a", "critical", "open", "2026-11-02T00:00:00Z").await;
    insert_alert(&app, "b", "warning", "resolved", "2026-11-04T00:00:00Z").await;
    insert_alert(&app, "c", "warning", "open", "2026-11-06T00:00:00Z").await;
    insert_alert(&app, "c", "info", "open", "2026-11-06T00:00:00Z").await;
    insert_alert(&app, "d", "critical", "resolved", "2026-10-20T00:00:00Z").await;
    // Repairs: 6 h from the linked alert's raise, 2 h from creation for the one without alerts.
    for (alerts, created, closed, status) in [
        (
            vec![first],
            "2026-11-02T01:00:00Z",
            "2026-11-02T06:00:00Z",
            "done",
        ),
        (
            vec![],
            "2026-11-03T00:00:00Z",
            "2026-11-03T02:00:00Z",
            "done",
        ),
        (
            vec![],
            "2026-11-03T00:00:00Z",
            "2026-11-03T09:00:00Z",
            "cancelled",
        ),
    ] {
        sqlx::query(
            "INSERT INTO work_orders (id, tenant_id, title, status, alert_ids, created_by, created_at, closed_at)
             VALUES ($1, $2, 'w', $3, $4, 'test', $5::timestamptz, $6::timestamptz)",
        )
        .bind(Uuid::new_v4())
        .bind(app.tenant)
        .bind(status)
        .bind(&alerts)
        .bind(created)
        .bind(closed)
        .execute(pool)
        .await
        .unwrap();
    }
    let (s, k) = app
        .get("/api/v1/fleet/kpis?from=2026-11-01T00:00:00Z&to=2026-11-11T00:00:00Z")
        .await;
    assert_eq!(s, 200, "{k}");
    assert_eq!(k["failures"], 3);
    assert_eq!(k["operating_hours"], 960.0, "4 machines × 240 h");
    assert_eq!(k["mtbf_hours"], 320.0);
    assert_eq!(k["repairs"], 2);
    assert_eq!(k["mttr_hours"], 4.0);
    assert_eq!(
        k["open_alerts"],
        json!({"info": 1, "warning": 1, "critical": 1, "total": 3})
    );
    assert_eq!(k["machines"]["alerting"], 2);
    assert_eq!(k["freshness"]["machines_without_data"], 4);
    // Without failures or repairs, MTBF and MTTR are null, not a division by zero.
    let (_, quiet) = app
        .get("/api/v1/fleet/kpis?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z")
        .await;
    assert_eq!(quiet["mtbf_hours"], Value::Null);
    assert_eq!(quiet["mttr_hours"], Value::Null);
    let (s, _) = app
        .get("/api/v1/fleet/kpis?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z")
        .await;
    assert_eq!(s, 422);

    // Freshness once data arrives.
    let now = chrono::Utc::now().timestamp_millis();
    let r = app
        .ingest(&json!({"readings": [{"machine": "a", "metric": "t", "ts": now - 60_000, "value": 1.0}]}))
        .await;
    assert_eq!(r.status(), 202);
    app.wait_for_readings("a", 1).await;
    let (_, k) = app.get("/api/v1/fleet/kpis").await;
    assert_eq!(k["freshness"]["machines_without_data"], 3);
    let age = k["freshness"]["max_age_secs"].as_i64().unwrap();
    assert!((60..600).contains(&age), "{age}");
    app.stop().await;
}

#[tokio::test]
async fn settings_are_validated_and_only_admins_change_them() {
    let app = TestApp::spawn(&[]).await;
    let viewer = app.token_for(app.tenant, "viewer").await;
    let operator = app.token_for(app.tenant, "operator").await;
    let (s, defaults) = app
        .call(Method::GET, "/api/v1/settings", &viewer, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(defaults["settings"]["silent_after_minutes"], 15);
    assert_eq!(defaults["updated_by"], Value::Null);
    let change =
        json!({"silent_after_minutes": 30, "detection": {"one_in": 1e6, "severity": "critical"}});
    for token in [&viewer, &operator] {
        let (s, _) = app
            .call(Method::PUT, "/api/v1/settings", token, Some(&change))
            .await;
        assert_eq!(s, 403);
    }
    let (s, saved) = app
        .call(Method::PUT, "/api/v1/settings", &app.admin, Some(&change))
        .await;
    assert_eq!(s, 200, "{saved}");
    assert_eq!(saved["settings"]["detection"]["one_in"], 1e6);
    assert_eq!(saved["settings"]["detection"]["rest_readings"], 96);
    assert_eq!(
        saved["settings"]["detection"]["features"],
        json!({"profile": true, "transitions": true, "rate": false})
    );
    assert!(saved["updated_by"].as_str().unwrap().starts_with("user:"));
    let (_, read) = app
        .call(Method::GET, "/api/v1/settings", &viewer, None)
        .await;
    assert_eq!(read["settings"], saved["settings"]);
    let (s, refused) = app
        .call(
            Method::PUT,
            "/api/v1/settings",
            &app.admin,
            Some(&json!({"silent_after_minutes": 0, "detection": {"one_in": 10, "rest_readings": 0, "severity": "loud"}})),
        )
        .await;
    assert_eq!(s, 422, "{refused}");
    let fields = refused["error"]["details"]["fields"].as_object().unwrap();
    let mut names: Vec<&String> = fields.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "detection.one_in",
            "detection.rest_readings",
            "detection.severity",
            "silent_after_minutes"
        ]
    );
    let (s, refused) = app
        .call(
            Method::PUT,
            "/api/v1/settings",
            &app.admin,
            Some(&json!({"colour": "red"})),
        )
        .await;
    assert_eq!(
        (s, refused["error"]["code"].as_str()),
        (422, Some("invalid_body"))
    );
    let (_, read) = app
        .call(Method::GET, "/api/v1/settings", &viewer, None)
        .await;
    assert_eq!(
        read["settings"]["silent_after_minutes"], 30,
        "a refused PUT changes nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn extreme_time_bounds_answer_422_not_500() {
    let app = TestApp::spawn(&["m-1"]).await;
    for path in [
        "/api/v1/fleet/kpis?to=-8000000000000000",
        "/api/v1/fleet/kpis?from=-8000000000000000",
        "/api/v1/fleet/kpis?from=8000000000000000&to=8000000000000001",
        "/api/v1/maintenance-events?from=-8000000000000000",
        "/api/v1/machines/m-1/readings.csv?from=-8000000000000000",
        "/api/v1/reports/alerts.csv?to=-8000000000000000",
        "/api/v1/machines?offset=9223372036854775807",
        "/api/v1/alerts?from=-8000000000000000",
        "/api/v1/machines/m-1/readings?to=-8000000000000000",
    ] {
        let (s, body) = app.get(path).await;
        assert!(s == 200 || s == 422, "{path}: {s} {body}");
    }
    app.stop().await;
}
