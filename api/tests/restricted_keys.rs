//! An API key restricted to some machines sees the ingest sources and rules that concern only those
//! machines, as it sees only their alerts and notifications: the others answer 404 and are not listed.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

/// `GET path` with `X-API-Key: key`.
async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.url))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn source(name: &str, machines: &[&str]) -> Value {
    let points: Vec<Value> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"machine": m, "metric": "t", "register": "holding", "address": i, "data_type": "u16"}))
        .collect();
    json!({"name": name, "protocol": "modbus_tcp", "endpoint": "plc.example.com:502", "points": points})
}

fn names(list: &Value, field: &str, name: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.pointer(name).unwrap().as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_key_restricted_to_a_machine_sees_only_the_sources_and_rules_of_its_machines() {
    let app = TestApp::spawn(&["m-1", "m-2"]).await;
    let mut ids = std::collections::HashMap::new();
    for (name, machines) in [
        ("s-1", &["m-1"][..]),
        ("s-2", &["m-2"][..]),
        ("s-12", &["m-1", "m-2"][..]),
    ] {
        let (s, body) = app
            .call(
                Method::POST,
                "/api/v1/sources",
                &app.admin,
                Some(&source(name, machines)),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        ids.insert(name, body["id"].as_str().unwrap().to_owned());
    }
    for (id, machines) in [
        ("r-all", json!([])),
        ("r-1", json!(["m-1"])),
        ("r-2", json!(["m-2"])),
        ("r-12", json!(["m-1", "m-2"])),
    ] {
        let rule = json!({"rule": {"id": id, "name": id, "when": {"metric": "t", "detector": "above", "value": 1}},
                          "machines": machines});
        let (s, body) = app
            .call(Method::POST, "/api/v1/rules", &app.admin, Some(&rule))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, key) = app
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &app.admin,
            Some(&json!({"name": "line-1", "scopes": ["read"], "machines": ["m-1"]})),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    let restricted = key["secret"].as_str().unwrap();

    let (s, list) = get(&app, restricted, "/api/v1/sources").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(names(&list, "sources", "/name"), ["s-1"]);
    for (name, want) in [("s-1", 200), ("s-2", 404), ("s-12", 404)] {
        for path in [
            format!("/api/v1/sources/{}", ids[name]),
            format!("/api/v1/sources/{}/status", ids[name]),
        ] {
            let (s, body) = get(&app, restricted, &path).await;
            assert_eq!(s, want, "{path}: {body}");
        }
    }
    let (s, list) = get(&app, restricted, "/api/v1/rules").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(names(&list, "rules", "/id"), ["r-1", "r-all"]);
    for (id, want) in [("r-all", 200), ("r-1", 200), ("r-2", 404), ("r-12", 404)] {
        let (s, body) = get(&app, restricted, &format!("/api/v1/rules/{id}")).await;
        assert_eq!(s, want, "{id}: {body}");
    }

    // The tenant's unrestricted key sees everything.
    let (_, list) = get(&app, &app.key, "/api/v1/sources").await;
    assert_eq!(names(&list, "sources", "/name"), ["s-1", "s-12", "s-2"]);
    let (_, list) = get(&app, &app.key, "/api/v1/rules").await;
    assert_eq!(
        names(&list, "rules", "/id"),
        ["r-1", "r-12", "r-2", "r-all"]
    );
    app.stop().await;
}
