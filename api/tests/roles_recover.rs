//! A role whose work fails restarts itself with backoff while the others go on: the readings projection
//! hits a database error it cannot retry (its table is gone), readiness names it and the restart metric
//! counts it, ingest and the API keep answering, and once the table is back the projection catches up.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_failed_projection_restarts_while_ingest_and_the_api_go_on() {
    let app = TestApp::spawn(&["m-1"]).await;
    let reading = |i: i64| json!({"readings": [{"machine": "m-1", "metric": "t", "ts": 1_795_687_200_000i64 + i, "value": i}]});
    assert_eq!(app.ingest(&reading(0)).await.status(), 202);
    app.wait_for_readings("m-1", 1).await;

    sqlx::query("ALTER TABLE readings RENAME TO readings_away")
        .execute(&app.iso.pool)
        .await
        .unwrap();
    assert_eq!(app.ingest(&reading(1)).await.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = app.get("/readyz").await;
        if body["roles"]["projection readings"]["restarts"].as_u64() >= Some(1) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the projection never restarted: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = body["roles"]["projection readings"]["last_error"]
        .as_str()
        .unwrap();
    assert!(error.contains("readings"), "{error}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("haltless_role_restarts_total{role=\"projection readings\"}"),
        "{metrics}"
    );
    // The other roles go on.
    assert_eq!(app.ingest(&reading(2)).await.status(), 202);
    let (status, body) = app
        .call(Method::GET, "/api/v1/machines", &app.admin, None)
        .await;
    assert_eq!(status, 200, "{body}");

    sqlx::query("ALTER TABLE readings_away RENAME TO readings")
        .execute(&app.iso.pool)
        .await
        .unwrap();
    let rows = app.wait_for_readings("m-1", 3).await;
    assert_eq!(
        rows.len(),
        3,
        "the restarted projection stored what came meanwhile"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app.get("/readyz").await;
        if status == 200 {
            assert_eq!(
                body["roles"]["projection readings"]["status"],
                json!("running")
            );
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
