//! The ingest gateway, the projection and the query API together, on real Kafka, PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::io::Write;

use common::TestApp;
use serde_json::{json, Value};

const T0: i64 = 1_795_687_200_000; // 2026-11-26T10:00:00Z

#[tokio::test]
async fn posted_readings_come_back_exactly_through_the_query_api() {
    let app = TestApp::spawn(&["press-07", "lathe-02"]).await;
    // A thousand readings over two machines and two metrics, in ten requests, with awkward values.
    let mut expected: Vec<(String, String, i64, f64)> = Vec::new();
    for request in 0..10 {
        let readings: Vec<Value> = (0..100)
            .map(|i| {
                let n = request * 100 + i;
                let machine = if n % 2 == 0 { "press-07" } else { "lathe-02" };
                let metric = if n % 3 == 0 {
                    "spindle_temp"
                } else {
                    "vibration"
                };
                let ts = T0 + n as i64 * 1_000;
                let value = (n as f64 * 0.1) - 33.3 + 1e-9 * n as f64;
                expected.push((machine.into(), metric.into(), ts, value));
                // Half the timestamps as RFC 3339, half as epoch milliseconds.
                let ts_json = if n % 2 == 0 {
                    json!(ts)
                } else {
                    json!(haltless_api::time::format_instant(
                        chrono::DateTime::from_timestamp_millis(ts).unwrap()
                    ))
                };
                json!({"machine": machine, "metric": metric, "ts": ts_json, "value": value})
            })
            .collect();
        let r = app.ingest(&json!({ "readings": readings })).await;
        assert_eq!(r.status(), 202);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"accepted": 100}));
    }
    for machine in ["press-07", "lathe-02"] {
        let rows = app.wait_for_readings(machine, 500).await;
        let mut want: Vec<_> = expected.iter().filter(|e| e.0 == machine).collect();
        want.sort_by_key(|e| (e.2, e.1.clone()));
        assert_eq!(
            rows.len(),
            want.len(),
            "no reading lost or doubled for {machine}"
        );
        for (row, (_, metric, ts, value)) in rows.iter().zip(want) {
            assert_eq!(row["metric"], json!(metric));
            let got = chrono::DateTime::parse_from_rfc3339(row["ts"].as_str().unwrap()).unwrap();
            assert_eq!(got.timestamp_millis(), *ts);
            assert_eq!(
                row["value"].as_f64().unwrap(),
                *value,
                "values are stored bit for bit"
            );
        }
    }
    // One metric, a time window, and bucketed aggregates over the same data.
    let (_, body) = app
        .get("/api/v1/machines/press-07/readings?metric=spindle_temp&from=2026-11-26T10:00:00Z&to=2026-11-26T10:01:00Z")
        .await;
    let window: Vec<_> = expected
        .iter()
        .filter(|e| e.0 == "press-07" && e.1 == "spindle_temp" && e.2 < T0 + 60_000)
        .collect();
    assert_eq!(body["readings"].as_array().unwrap().len(), window.len());
    let (status, body) = app
        .get("/api/v1/machines/press-07/readings?metric=vibration&bucket=1m")
        .await;
    assert_eq!(status, 200);
    let first = &body["buckets"][0];
    let in_first: Vec<f64> = expected
        .iter()
        .filter(|e| e.0 == "press-07" && e.1 == "vibration" && e.2 < T0 + 60_000)
        .map(|e| e.3)
        .collect();
    assert_eq!(first["ts"], json!("2026-11-26T10:00:00.000Z"));
    assert_eq!(first["count"], json!(in_first.len()));
    assert_eq!(
        first["min"].as_f64().unwrap(),
        in_first.iter().cloned().fold(f64::MAX, f64::min)
    );
    assert_eq!(
        first["max"].as_f64().unwrap(),
        in_first.iter().cloned().fold(f64::MIN, f64::max)
    );
    assert_eq!(first["last"].as_f64().unwrap(), *in_first.last().unwrap());
    let avg = in_first.iter().sum::<f64>() / in_first.len() as f64;
    assert!((first["avg"].as_f64().unwrap() - avg).abs() < 1e-9);
    app.stop().await;
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_reposts_do_not_double_rows() {
    let app = TestApp::spawn(&["pump-1"]).await;
    let body = json!({"readings": [{"machine": "pump-1", "metric": "flow", "ts": T0, "value": 12.5, "quality": "uncertain"}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    for _ in 0..2 {
        let r = app
            .client
            .post(format!("{}/api/v1/ingest", app.url))
            .header("x-api-key", &app.key)
            .header("content-encoding", "gzip")
            .body(compressed.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let rows = app.wait_for_readings("pump-1", 1).await;
    // Give a second copy time to arrive if it were going to.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, body) = app.get("/api/v1/machines/pump-1/readings").await;
    assert_eq!(body["readings"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(rows[0]["quality"], json!("uncertain"));
    // A later request mixing the stored reading (another value) with a new one: the new one is stored,
    // the stored one is kept as it was.
    let mixed = json!({"readings": [
        {"machine": "pump-1", "metric": "flow", "ts": T0, "value": 99.0},
        {"machine": "pump-1", "metric": "flow", "ts": T0 + 1_000, "value": 13.0}]});
    assert_eq!(app.ingest(&mixed).await.status(), 202);
    let rows = app.wait_for_readings("pump-1", 2).await;
    let values: Vec<f64> = rows.iter().map(|r| r["value"].as_f64().unwrap()).collect();
    assert!(
        values.contains(&12.5) && values.contains(&13.0) && values.len() == 2,
        "{values:?}"
    );
    app.stop().await;
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("every error is JSON");
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{body}"
    );
    (status, body)
}

#[tokio::test]
async fn bad_requests_get_the_documented_4xx_and_nothing_is_stored() {
    let app = TestApp::spawn_with(&["press-07"], |s| s.gateway.max_body_bytes = 64 * 1024).await;
    let url = format!("{}/api/v1/ingest", app.url);
    let ok = json!({"readings": [{"machine": "press-07", "metric": "t", "ts": T0, "value": 1.0}]});

    let (s, b) = error_of(app.client.post(&url).json(&ok).send().await.unwrap()).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _) = error_of(
        app.client
            .post(&url)
            .header("x-api-key", "hlk_nope")
            .json(&ok)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);

    let read_only = haltless_api::tenants::create_api_key(
        &app.iso.pool,
        app.tenant,
        "ro",
        &[haltless_api::auth::Scope::Read],
    )
    .await
    .unwrap();
    let (s, _) = error_of(
        app.client
            .post(&url)
            .header("x-api-key", &read_only.secret)
            .json(&ok)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);

    let (s, b) = error_of(
        app.ingest(&json!({"readings": [
        {"machine": "press-07", "metric": "t", "ts": T0, "value": 1.0},
        {"machine": "ghost-9", "metric": "t", "ts": T0, "value": 1.0}]}))
            .await,
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(b["error"]["details"]["machines"], json!(["ghost-9"]));
    assert!(b["error"]["message"].as_str().unwrap().contains("ghost-9"));

    let cases = [
        (
            json!({"readings": [{"machine": "press-07", "metric": "t", "ts": T0, "value": "NaN"}]}),
            "value",
        ),
        (
            json!({"readings": [{"machine": "press-07", "metric": "t", "ts": T0, "value": "Infinity"}]}),
            "value",
        ),
        (
            json!({"readings": [{"machine": "press-07", "metric": "t", "ts": T0, "value": "hot"}]}),
            "value",
        ),
        (
            json!({"readings": [{"machine": "press-07", "metric": "t", "ts": "26/11/2026", "value": 1}]}),
            "ts",
        ),
        (
            json!({"readings": [{"machine": "press-07", "metric": "t", "ts": "2099-01-01T00:00:00Z", "value": 1}]}),
            "ts",
        ),
    ];
    for (body, field) in cases {
        let (s, b) = error_of(app.ingest(&body).await).await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(
            b["error"]["details"]["entries"][0]["field"],
            json!(field),
            "{b}"
        );
        assert_eq!(b["error"]["details"]["entries"][0]["index"], json!(0));
    }
    for raw in [r#"{"readings":[{"machine":"press-07","metric":"t","ts":0,"value":1e999}]}"#] {
        let r = app
            .client
            .post(&url)
            .header("x-api-key", &app.key)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.0, 422);
    }
    for raw in [
        "{",
        "[]",
        r#"{"readings":[{"machine":"press-07","metric":"t","ts":0,"value":NaN}]}"#,
        "",
    ] {
        let r = app
            .client
            .post(&url)
            .header("x-api-key", &app.key)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.0, 400, "{raw}");
    }
    let big = vec![b' '; 70 * 1024];
    let r = app
        .client
        .post(&url)
        .header("x-api-key", &app.key)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 413);
    let r = app
        .client
        .post(&url)
        .header("x-api-key", &app.key)
        .header("content-encoding", "gzip")
        .body("not gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 400);
    let r = app
        .client
        .post(&url)
        .header("x-api-key", &app.key)
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 415);

    // A request with one bad entry is rejected whole: the good entry beside it is not stored either.
    let (s, _) = error_of(
        app.ingest(&json!({"readings": [
        {"machine": "press-07", "metric": "t", "ts": T0, "value": 1.0},
        {"machine": "press-07", "metric": "t", "ts": T0 + 1, "value": "x"}]}))
            .await,
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(app.ingest(&ok).await.status(), 202);
    let rows = app.wait_for_readings("press-07", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let (_, body) = app.get("/api/v1/machines/press-07/readings").await;
    assert_eq!(body["readings"].as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["ts"], json!("2026-11-26T10:00:00.000Z"));

    // Query errors.
    assert_eq!(app.get("/api/v1/machines/ghost-9/readings").await.0, 404);
    assert_eq!(
        app.get("/api/v1/machines/press-07/readings?from=soon")
            .await
            .0,
        422
    );
    assert_eq!(
        app.get("/api/v1/machines/press-07/readings?bucket=7x")
            .await
            .0,
        422
    );
    assert_eq!(
        app.get("/api/v1/machines/press-07/readings?limit=0")
            .await
            .0,
        422
    );
    assert_eq!(
        app.get("/api/v1/machines/press-07/readings?nonsense=1")
            .await
            .0,
        400
    );
    app.stop().await;
}

#[tokio::test]
async fn machines_are_registered_per_tenant() {
    let app = TestApp::spawn(&[]).await;
    let post = |name: Value| {
        app.client
            .post(format!("{}/api/v1/machines", app.url))
            .bearer_auth(&app.admin)
            .json(&json!({ "name": name }))
            .send()
    };
    assert_eq!(post(json!("cnc-1")).await.unwrap().status(), 201);
    assert_eq!(error_of(post(json!("cnc-1")).await.unwrap()).await.0, 409);
    assert_eq!(
        error_of(post(json!("bad name!")).await.unwrap()).await.0,
        422
    );
    assert_eq!(error_of(post(json!(42)).await.unwrap()).await.0, 422);
    let (_, body) = app.get("/api/v1/machines").await;
    assert_eq!(body["machines"].as_array().unwrap().len(), 1);
    assert_eq!(body["machines"][0]["name"], json!("cnc-1"));

    // Another tenant neither sees the machine nor reads its readings, and may use the same name.
    let (_, other_key) = app.iso.tenant_with_machines(&["cnc-1"]).await;
    let r = app
        .client
        .get(format!("{}/api/v1/machines", app.url))
        .header("x-api-key", &other_key)
        .send()
        .await
        .unwrap();
    let other: Value = r.json().await.unwrap();
    assert_eq!(other["machines"].as_array().unwrap().len(), 1);
    assert_ne!(other["machines"][0]["id"], body["machines"][0]["id"]);
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn(&["m-1"]).await;
    let (s, _) = app.get("/healthz").await;
    assert_eq!(s, 200);
    let (s, body) = app.get("/readyz").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["checks"]["kafka"]["status"], json!("ok"));
    assert_eq!(body["checks"]["redis"]["status"], json!("ok"));
    assert_eq!(body["checks"]["postgres"]["status"], json!("ok"));
    let ok = json!({"readings": [{"machine": "m-1", "metric": "t", "ts": T0, "value": 1.0}]});
    assert_eq!(app.ingest(&ok).await.status(), 202);
    app.wait_for_readings("m-1", 1).await;
    let text = app.metrics().await;
    for name in [
        "haltless_http_requests_total",
        "haltless_gateway_readings_accepted_total",
        "haltless_gateway_produce_duration_seconds_bucket",
        "haltless_projection_rows_total",
        "haltless_projection_batch_messages_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    app.stop().await;
}

#[tokio::test]
async fn past_its_concurrency_the_gateway_sheds_at_once_and_loses_nothing_acknowledged() {
    let app = TestApp::spawn_with(&["press-09"], |s| s.gateway.max_concurrent_requests = 2).await;
    // The tenant's rate limit is not what this measures.
    sqlx::query("UPDATE tenants SET writes_per_minute = 2147483647 WHERE id = $1")
        .bind(app.tenant)
        .execute(&app.iso.pool)
        .await
        .unwrap();
    let per_request = 200;
    let (mut accepted, mut shed, mut round) = (0usize, 0usize, 0i64);
    // Bursts of 40 requests at once against 2 slots, until some were shed (the first burst, in practice).
    while shed == 0 {
        assert!(round < 5, "five bursts of 40 and nothing was shed");
        let bodies: Vec<Value> = (0..40)
            .map(|r| {
                let readings: Vec<Value> = (0..per_request)
                    .map(|i| {
                        let ts = T0 + (round * 40 + r) * 1_000_000 + i * 1_000;
                        json!({"machine": "press-09", "metric": "load", "ts": ts, "value": i as f64})
                    })
                    .collect();
                json!({ "readings": readings })
            })
            .collect();
        let burst = bodies.iter().map(|body| app.ingest(body));
        for response in futures::future::join_all(burst).await {
            match response.status().as_u16() {
                202 => accepted += 1,
                503 => {
                    assert_eq!(response.headers()["retry-after"], "1");
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["error"]["code"], json!("overloaded"), "{body}");
                    shed += 1;
                }
                other => panic!("ingest answered {other}"),
            }
        }
        round += 1;
    }
    assert!(accepted > 0, "the slots served some requests");
    // It recovers by itself: a lone request afterwards is served.
    let lone: Vec<Value> = (0..per_request)
        .map(|i| json!({"machine": "press-09", "metric": "load", "ts": T0 - 1_000_000 + i * 1_000, "value": 1.0}))
        .collect();
    assert_eq!(app.ingest(&json!({ "readings": lone })).await.status(), 202);
    accepted += 1;
    // Every acknowledged reading is stored, and nothing of a shed request.
    let expected = accepted * per_request as usize;
    let rows = app.wait_for_readings("press-09", expected).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let rows_after = app.wait_for_readings("press-09", expected).await;
    assert_eq!((rows.len(), rows_after.len()), (expected, expected));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("haltless_gateway_requests_shed_total"),
        "the shed requests are counted"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_full_producer_queue_sheds_the_request_and_the_next_one_that_fits_is_accepted() {
    // A 1 KiB queue of records waiting for Kafka: a request of 200 readings never fits, one reading does.
    let app = TestApp::spawn_with(&["press-11"], |s| s.gateway.producer_queue_kbytes = 1).await;
    let readings = |n: i64, from: i64| -> Value {
        let readings: Vec<Value> = (0..n)
            .map(|i| json!({"machine": "press-11", "metric": "load", "ts": from + i * 1_000, "value": i as f64}))
            .collect();
        json!({ "readings": readings })
    };
    let response = app.ingest(&readings(200, T0)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("overloaded"), "{body}");
    // A full queue is not a Kafka outage: the next request that fits is written at once.
    let response = app.ingest(&readings(1, T0 - 1_000_000)).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let rows = app.wait_for_readings("press-11", 1).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let rows_after = app.wait_for_readings("press-11", 1).await;
    assert_eq!(
        (rows.len(), rows_after.len()),
        (1, 1),
        "nothing of the shed request is stored"
    );
    assert!(
        app.metrics()
            .await
            .lines()
            .any(|l| l.starts_with("haltless_gateway_requests_shed_total") && !l.ends_with(" 0")),
        "the shed request is counted"
    );
    app.stop().await;
}

#[tokio::test]
async fn readings_of_a_tenant_deleted_while_they_waited_in_kafka_do_not_stall_the_projection() {
    use haltless_connectors::gateway::ReadingsSink;
    use haltless_schemas::{Reading, ReadingBatch, Source, WireFormat};
    let app = TestApp::spawn(&["press-10"]).await;
    let kafka = &app.iso.settings.kafka;
    let sink = ReadingsSink::new(
        &kafka.brokers,
        &kafka.readings_topic,
        ReadingBatch::codec(WireFormat::SingleObject).unwrap(),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    // A batch whose tenant no longer exists (deleted after the gateway acknowledged it).
    let orphan = ReadingBatch {
        tenant_id: uuid::Uuid::new_v4(),
        machine_id: uuid::Uuid::new_v4(),
        machine: "gone".into(),
        source: Source::Gateway,
        ingest_time_ms: T0,
        readings: vec![Reading {
            metric: "load".into(),
            event_time_ms: T0,
            value: 1.0,
            quality: None,
        }],
    };
    sink.write(&[orphan]).await.unwrap();
    let readings: Vec<Value> = (0..10)
        .map(|i| json!({"machine": "press-10", "metric": "load", "ts": T0 + i * 1_000, "value": i}))
        .collect();
    assert_eq!(
        app.ingest(&json!({ "readings": readings })).await.status(),
        202
    );
    // The live tenant's readings behind it arrive.
    app.wait_for_readings("press-10", 10).await;
    app.stop().await;
}
