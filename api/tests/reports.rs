//! Reports: CSV and PDF exports of machines, alerts and work orders, and the fleet summary PDF with charts.
//! With HALTLESS_REPORT_DIR set, the fleet summary is also written there (to look at it).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

async fn fetch(app: &TestApp, path: &str) -> (u16, String, Vec<u8>) {
    let r = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, r.bytes().await.unwrap().to_vec())
}

async fn insert_alert(app: &TestApp, machine: &str, severity: &str) {
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, machine_id, machine, rule_id, rule_name, severity, detector, metric,
            state, observed, expected, score, score_limit, raised_at, updated_at)
         SELECT $1, $2, m.id, m.name, 'r', 'Overheat', $4, 'above', 'temp', 'open', 91.5, 80, 1, 0.5, now(), now()
         FROM machines m WHERE m.tenant_id = $2 AND m.name = $3",
    )
    .bind(Uuid::new_v4())
    .bind(app.tenant)
    .bind(machine)
    .bind(severity)
    .execute(&app.iso.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn exports_and_the_fleet_summary_are_csv_and_pdf() {
    let app = TestApp::spawn(&["press-01", "press-02", "lathe-01"]).await;
    let t = &app.admin;
    insert_alert(&app, "press-01", "critical").await;
    insert_alert(&app, "press-01", "warning").await;
    insert_alert(&app, "lathe-01", "warning").await;
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            t,
            Some(&json!({"title": "Fix, \"urgently\"", "machines": ["press-01"]})),
        )
        .await;
    assert_eq!(s, 201);
    let now = chrono::Utc::now().timestamp_millis();
    let r = app
        .ingest(&json!({"readings": [
            {"machine": "press-02", "metric": "t", "ts": now - 120_000, "value": 1.0},
            {"machine": "press-01", "metric": "t", "ts": now - 40 * 60_000, "value": 1.0},
        ]}))
        .await;
    assert_eq!(r.status(), 202);
    app.wait_for_readings("press-01", 1).await;
    app.wait_for_readings("press-02", 1).await;

    let (s, kind, body) = fetch(&app, "/api/v1/reports/machines.csv?name=press").await;
    assert_eq!(s, 200);
    assert!(kind.starts_with("text/csv"));
    let csv = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "name,status,site,tags,description,created_at,retired_at"
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("press-01,active,"));

    let (_, _, body) = fetch(&app, "/api/v1/reports/alerts.csv?severity=warning").await;
    let csv = String::from_utf8(body).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .starts_with("raised_at,machine,severity"));
    let (_, _, body) = fetch(&app, "/api/v1/reports/work-orders.csv").await;
    let csv = String::from_utf8(body).unwrap();
    assert!(csv.contains("\"Fix, \"\"urgently\"\"\",open,"), "{csv}");
    assert_eq!(
        fetch(&app, "/api/v1/reports/alerts.csv?severity=loud")
            .await
            .0,
        422
    );

    for path in [
        "/api/v1/reports/machines.pdf",
        "/api/v1/reports/alerts.pdf",
        "/api/v1/reports/work-orders.pdf",
    ] {
        let (s, kind, body) = fetch(&app, path).await;
        assert_eq!((s, kind.as_str()), (200, "application/pdf"), "{path}");
        assert!(body.starts_with(b"%PDF-"), "{path}");
        assert!(String::from_utf8_lossy(&body).contains("/Type /Page"));
    }
    let (_, _, body) = fetch(&app, "/api/v1/reports/alerts.pdf").await;
    assert!(String::from_utf8_lossy(&body).contains("(Overheat) Tj"));

    let (s, kind, pdf) = fetch(&app, "/api/v1/reports/fleet.pdf").await;
    assert_eq!((s, kind.as_str()), (200, "application/pdf"));
    let text = String::from_utf8_lossy(&pdf);
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(text.contains("/Type /Pages"));
    assert!(text.contains("/Type /Page"));
    assert!(text.contains("(Open alerts by severity) Tj"));
    assert!(text.contains("(Minutes since the newest reading, per machine) Tj"));
    assert!(
        text.contains("(lathe-01 (no data)) Tj"),
        "machines without data are named"
    );
    assert!(text.contains("(Open alerts: 3 (critical 1, warning 2, info 0)) Tj"));
    // Charts are filled rectangles: 3 + 3 columns, 3 freshness bars, plus table shading.
    assert!(
        text.matches(" re\nf").count() >= 9,
        "bars drawn as rectangles"
    );
    if let Ok(dir) = std::env::var("HALTLESS_REPORT_DIR") {
        std::fs::write(format!("{dir}/fleet-summary.pdf"), &pdf).unwrap();
    }
    app.stop().await;
}
