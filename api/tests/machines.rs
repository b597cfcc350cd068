//! Machines: register with tags and site, query by name, tag, site and status with pages, update with PUT
//! and PATCH, retire (ingest then refused with 422, the tier slot freed); the latest value per metric and
//! the CSV export of the readings query.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

fn names(list: &Value) -> Vec<String> {
    list["machines"]
        .as_array()
        .unwrap_or_else(|| panic!("no machines in {list}"))
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn get(app: &TestApp, q: &str) -> Value {
    let (s, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/machines{q}"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(s, 200, "{q}: {body}");
    body
}

async fn create(app: &TestApp, name: &str) -> (u16, Value) {
    app.call(
        Method::POST,
        "/api/v1/machines",
        &app.admin,
        Some(&json!({ "name": name })),
    )
    .await
}

#[tokio::test]
async fn machines_are_updated_queried_and_retired() {
    let app = TestApp::spawn(&[]).await;
    let t = &app.admin;
    for (name, site, tags) in [
        ("press-01", "north", json!(["press", "line-a"])),
        ("press-02", "north", json!(["press", "line-b"])),
        ("lathe-01", "south", json!(["lathe", "line-a"])),
    ] {
        let (s, m) = app
            .call(
                Method::POST,
                "/api/v1/machines",
                t,
                Some(&json!({"name": name, "site": site, "tags": tags, "description": "d"})),
            )
            .await;
        assert_eq!(s, 201, "{m}");
        assert_eq!(m["status"], "active");
        assert_eq!(m["site"], site);
    }
    assert_eq!(
        names(&get(&app, "?name=PRESS").await),
        ["press-01", "press-02"]
    );
    assert_eq!(
        names(&get(&app, "?tag=line-a").await),
        ["lathe-01", "press-01"]
    );
    assert_eq!(names(&get(&app, "?site=south").await), ["lathe-01"]);
    assert_eq!(
        names(&get(&app, "?site=north&tag=line-b").await),
        ["press-02"]
    );
    let page = get(&app, "?limit=2").await;
    assert_eq!(names(&page), ["lathe-01", "press-01"]);
    assert_eq!(page["next_offset"], 2);
    let page = get(&app, "?limit=2&offset=2").await;
    assert_eq!(names(&page), ["press-02"]);
    assert_eq!(page["next_offset"], Value::Null);

    // Bad filters are 422 with the uniform body; unknown parameters are 400.
    for (q, status) in [
        ("?status=broken", 422),
        ("?limit=0", 422),
        ("?offset=-1", 422),
        ("?colour=red", 400),
    ] {
        let (s, body) = app
            .call(Method::GET, &format!("/api/v1/machines{q}"), t, None)
            .await;
        assert_eq!(s, status, "{q}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }

    // PATCH changes only the given fields; null clears.
    let (s, m) = app
        .call(
            Method::PATCH,
            "/api/v1/machines/press-01",
            t,
            Some(&json!({"tags": ["press", "vip"], "description": null})),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["tags"], json!(["press", "vip"]));
    assert_eq!(m["site"], "north");
    assert_eq!(m["description"], Value::Null);
    // PUT replaces: what is not given is cleared; a rename keeps the id.
    let (s, m2) = app
        .call(
            Method::PUT,
            "/api/v1/machines/press-01",
            t,
            Some(&json!({"name": "press-11", "site": "east"})),
        )
        .await;
    assert_eq!(s, 200, "{m2}");
    assert_eq!(m2["id"], m["id"]);
    assert_eq!(m2["tags"], json!([]));
    assert_eq!(m2["site"], "east");
    let (s, _) = app
        .call(Method::GET, "/api/v1/machines/press-01", t, None)
        .await;
    assert_eq!(s, 404, "the old name is gone");
    let (s, shown) = app
        .call(Method::GET, "/api/v1/machines/press-11", t, None)
        .await;
    assert_eq!((s, &shown["site"]), (200, &json!("east")));
    // Validation and conflicts.
    for (method, body, status, code) in [
        // A replacement without its name is not one.
        (Method::PUT, json!({"site": "x"}), 422, "invalid_body"),
        (
            Method::PATCH,
            json!({"name": "bad name!"}),
            422,
            "validation_failed",
        ),
        (
            Method::PATCH,
            json!({"tags": ["no spaces"]}),
            422,
            "validation_failed",
        ),
        (Method::PATCH, json!({"site": ""}), 422, "validation_failed"),
        (Method::PATCH, json!({"name": "press-02"}), 409, "conflict"),
        (Method::PATCH, json!({"colour": "red"}), 422, "invalid_body"),
    ] {
        let (s, answer) = app
            .call(method.clone(), "/api/v1/machines/press-11", t, Some(&body))
            .await;
        assert_eq!(s, status, "{method} {body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}");
    }

    // Ingest works until the machine is retired, then answers 422 naming it.
    let reading = |m: &str| json!({"readings": [{"machine": m, "metric": "t", "ts": chrono::Utc::now().timestamp_millis(), "value": 1.0}]});
    let r = app.ingest(&reading("press-02")).await;
    assert_eq!(r.status(), 202);
    let (s, retired) = app
        .call(Method::POST, "/api/v1/machines/press-02/retire", t, None)
        .await;
    assert_eq!(s, 200, "{retired}");
    assert_eq!(retired["status"], "retired");
    assert!(retired["retired_at"].is_string());
    let r = app.ingest(&reading("press-02")).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "retired_machine");
    assert_eq!(body["error"]["details"]["machines"], json!(["press-02"]));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("press-02"));
    assert_eq!(names(&get(&app, "?status=retired").await), ["press-02"]);
    assert_eq!(
        names(&get(&app, "?status=active").await),
        ["lathe-01", "press-11"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retired_machine_frees_its_tier_slot() {
    let app = TestApp::spawn(&[]).await;
    sqlx::query("UPDATE tenants SET tier = 'free' WHERE id = $1")
        .bind(app.tenant)
        .execute(&app.iso.pool)
        .await
        .unwrap();
    let t = &app.admin;
    assert_eq!(create(&app, "a").await.0, 201);
    assert_eq!(create(&app, "b").await.0, 201);
    let (s, body) = create(&app, "c").await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("tier_limit"))
    );
    let (s, _) = app
        .call(Method::POST, "/api/v1/machines/a/retire", t, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(create(&app, "c").await.0, 201);
    app.stop().await;
}

#[tokio::test]
async fn latest_values_and_the_csv_export_follow_the_readings_query() {
    let app = TestApp::spawn(&["m-1"]).await;
    let base = 1_795_687_200_000_i64; // 2026-11-26T10:00:00Z
    let readings: Vec<Value> = (0..6)
        .map(|i| {
            json!({"machine": "m-1", "metric": if i % 2 == 0 { "temp" } else { "rpm" },
                   "ts": base + i * 1_000, "value": i as f64 + 0.5, "quality": "good"})
        })
        .collect();
    let r = app.ingest(&json!({ "readings": readings })).await;
    assert_eq!(r.status(), 202);
    app.wait_for_readings("m-1", 6).await;

    let (s, latest) = app.get("/api/v1/machines/m-1/latest").await;
    assert_eq!(s, 200, "{latest}");
    let metrics = latest["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2);
    let of = |m: &str| metrics.iter().find(|x| x["metric"] == m).unwrap().clone();
    assert_eq!(of("temp")["value"], 4.5);
    assert_eq!(of("temp")["ts"], "2026-11-26T10:00:04.000Z");
    assert_eq!(of("rpm")["value"], 5.5);

    let csv = |q: &str| {
        let url = format!("{}/api/v1/machines/m-1/readings.csv{q}", app.url);
        let key = app.key.clone();
        let client = app.client.clone();
        async move {
            let r = client
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        }
    };
    let (s, headers, body) = csv("?metric=temp").await;
    assert_eq!(s, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(
        body,
        "metric,ts,value,quality\r\ntemp,2026-11-26T10:00:00.000Z,0.5,good\r\n\
         temp,2026-11-26T10:00:02.000Z,2.5,good\r\ntemp,2026-11-26T10:00:04.000Z,4.5,good\r\n"
    );
    let (_, headers, body) = csv("?limit=2").await;
    assert_eq!(body.lines().count(), 3, "{body}");
    assert_eq!(headers["x-truncated"], "true");
    let (_, _, body) = csv("?bucket=1m&metric=rpm").await;
    assert_eq!(
        body,
        "metric,ts,min,max,avg,count,last\r\nrpm,2026-11-26T10:00:00.000Z,1.5,5.5,3.5,3,5.5\r\n"
    );
    // The same filters are validated the same way, with a JSON error.
    let (s, _, body) = csv("?bucket=7w").await;
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("validation_failed"));
    let (s, _, _) = csv("?from=2026-11-27T00:00:00Z&to=2026-11-26T00:00:00Z").await;
    assert_eq!(s, 422);
    let (s, _) = app.get("/api/v1/machines/nope/latest").await;
    assert_eq!(s, 404);
    app.stop().await;
}
