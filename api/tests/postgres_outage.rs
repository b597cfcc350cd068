//! With PostgreSQL stopped, ingest with an API key and a machine the instance has seen goes on from the
//! lookup cache; what needs the database answers 503 with `Retry-After` within about a second, never 500;
//! readiness answers within a second naming PostgreSQL. When it is back, everything acknowledged is
//! stored, and a machine retired before the outage stays refused during it.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::private::PrivateService;
use common::TestApp;
use haltless_api::config::DatabaseConfig;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn ingest_goes_on_and_the_rest_answers_503_while_postgres_is_down() {
    let pg = PrivateService::postgres();
    pg.run("start");
    let app = TestApp::spawn_on(Some(pg.url()), &["m-1", "m-2", "old"], |settings| {
        // The shipped deadline (other tests wait longer, for a loaded CI machine).
        settings.database.acquire_timeout_ms = DatabaseConfig::default().acquire_timeout_ms;
    })
    .await;
    let reading = |machine: &str, i: i64| json!({"readings": [{"machine": machine, "metric": "t", "ts": 1_795_687_200_000i64 + i, "value": i}]});

    assert_eq!(app.ingest(&reading("m-1", 0)).await.status(), 202);
    assert_eq!(app.ingest(&reading("old", 0)).await.status(), 202);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/machines/old/retire",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.ingest(&reading("old", 1)).await.status(), 422);
    app.wait_for_readings("m-1", 1).await;

    pg.run("stop");
    let mut answers = Vec::new();
    for i in 1..=20 {
        let started = Instant::now();
        let r = app.ingest(&reading("m-1", i)).await;
        answers.push(started.elapsed());
        assert_eq!(
            r.status(),
            202,
            "a known key and machine ingest without the database"
        );
    }
    let slowest = answers.iter().max().copied().unwrap();
    println!(
        "ingest answers with PostgreSQL down: first {:?}, slowest {slowest:?}",
        answers[0]
    );
    assert!(
        slowest < Duration::from_millis(1_500),
        "ingest waited {slowest:?}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("haltless_lookup_cache_fallbacks_total{lookup=\"api_key\"}")
            && metrics.contains("haltless_lookup_cache_fallbacks_total{lookup=\"machines\"}"),
        "the fallback answers are counted"
    );

    let started = Instant::now();
    let r = app.ingest(&reading("old", 2)).await;
    assert_eq!(
        r.status(),
        422,
        "the machine retired by this instance stays refused"
    );
    assert!(started.elapsed() < Duration::from_millis(1_500));

    // What the cache cannot answer: 503 with Retry-After, quickly, never 500.
    for (what, status, elapsed, retry) in [
        {
            let started = Instant::now();
            let r = app.ingest(&reading("m-2", 1)).await;
            (
                "unseen machine",
                r.status().as_u16(),
                started.elapsed(),
                r.headers().get("retry-after").cloned(),
            )
        },
        {
            let started = Instant::now();
            let r = app
                .client
                .get(format!("{}/api/v1/machines", app.url))
                .bearer_auth(&app.admin)
                .send()
                .await
                .unwrap();
            (
                "token request",
                r.status().as_u16(),
                started.elapsed(),
                r.headers().get("retry-after").cloned(),
            )
        },
        {
            let started = Instant::now();
            let r = app
                .client
                .post(format!("{}/api/v1/ingest", app.url))
                .header("x-api-key", "hk_unknown_key")
                .json(&reading("m-1", 1))
                .send()
                .await
                .unwrap();
            (
                "unseen key",
                r.status().as_u16(),
                started.elapsed(),
                r.headers().get("retry-after").cloned(),
            )
        },
    ] {
        println!("{what} with PostgreSQL down: {status} in {elapsed:?}");
        assert_eq!(status, 503, "{what}");
        assert_eq!(retry.unwrap(), "1", "{what}");
        assert!(
            elapsed < Duration::from_millis(1_500),
            "{what} waited {elapsed:?}"
        );
    }

    let started = Instant::now();
    let (status, body) = app.get("/readyz").await;
    let ready_answer = started.elapsed();
    println!("/readyz answer with PostgreSQL down: {ready_answer:?}");
    assert_eq!(status, 503);
    assert_eq!(
        body["checks"]["postgres"]["status"],
        json!("down"),
        "{body}"
    );
    assert!(
        body["down"]
            .as_array()
            .unwrap()
            .contains(&json!("postgres")),
        "{body}"
    );
    assert!(
        ready_answer < Duration::from_secs(1),
        "readiness took {ready_answer:?}"
    );

    pg.run("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app
            .call(Method::GET, "/api/v1/machines", &app.admin, None)
            .await;
        if status == 200 {
            break;
        }
        assert_eq!(
            status, 503,
            "nothing but 503 while PostgreSQL recovers: {body}"
        );
        assert!(Instant::now() < deadline, "the API did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = app.wait_for_readings("m-1", 21).await;
    assert_eq!(rows.len(), 21, "every acknowledged reading is stored once");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}
