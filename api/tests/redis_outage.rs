//! With Redis stopped, ingest with an API key goes on (rate limits pass, the outage is counted once) and
//! answers as fast as ever; access tokens, which need the blocklist, answer 503 at once; readiness answers
//! within a second naming Redis. When Redis is back, rate limits and tokens work again.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::private::PrivateService;
use common::TestApp;
use reqwest::Method;
use serde_json::json;

/// The value of the unlabelled counter `name` in the metrics text.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn ingest_goes_on_and_tokens_answer_503_while_redis_is_down() {
    let redis = PrivateService::redis();
    redis.run("start");
    let url = redis.url();
    let app = TestApp::spawn_with(&["m-1"], |s| s.redis.url = url).await;
    let reading = |i: i64| json!({"readings": [{"machine": "m-1", "metric": "t", "ts": 1_795_687_200_000i64 + i, "value": i}]});

    let r = app.ingest(&reading(0)).await;
    assert_eq!(r.status(), 202);
    assert!(
        r.headers().contains_key("x-ratelimit-limit"),
        "limits are counted while Redis runs"
    );

    redis.run("stop");
    let mut slowest = Duration::ZERO;
    for i in 1..=20 {
        let started = Instant::now();
        let r = app.ingest(&reading(i)).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.status(), 202, "ingest with a key goes on without Redis");
        assert!(
            !r.headers().contains_key("x-ratelimit-limit"),
            "nothing was counted"
        );
    }
    println!("slowest ingest answer with Redis down: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "ingest waited {slowest:?}"
    );
    let metrics = app.metrics().await;
    assert_eq!(
        counter(&metrics, "haltless_rate_limit_outages_total"),
        1.0,
        "one outage, counted once"
    );
    assert!(
        metrics.contains("haltless_rate_limit_passed_total{kind=\"writes\"} 20"),
        "{metrics}"
    );

    let started = Instant::now();
    let (status, body) = app
        .call(Method::GET, "/api/v1/machines", &app.admin, None)
        .await;
    let token_answer = started.elapsed();
    println!("token check answer with Redis down: {token_answer:?}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], json!("unavailable"));
    assert!(
        token_answer < Duration::from_secs(1),
        "the token check waited {token_answer:?}"
    );

    let started = Instant::now();
    let (status, body) = app.get("/readyz").await;
    let ready_answer = started.elapsed();
    println!("/readyz answer with Redis down: {ready_answer:?}");
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["redis"]["status"], json!("down"), "{body}");
    assert_eq!(body["checks"]["postgres"]["status"], json!("ok"), "{body}");
    assert_eq!(body["down"], json!(["redis"]), "{body}");
    assert!(
        ready_answer < Duration::from_secs(1),
        "readiness took {ready_answer:?}"
    );

    redis.run("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.ingest(&reading(100)).await;
        assert_eq!(r.status(), 202);
        if r.headers().contains_key("x-ratelimit-limit") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rate limits did not come back with Redis"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = app
        .call(Method::GET, "/api/v1/machines", &app.admin, None)
        .await;
    assert_eq!(status, 200, "tokens work again: {body}");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let rows = app.wait_for_readings("m-1", 22).await;
    assert_eq!(rows.len(), 22, "every acknowledged reading is stored");
    app.stop().await;
}
