//! The sources API (validation, tenancy, enable/disable, delete) and how `haltless connectors`
//! instances share sources: one poller per source, a dead instance's sources taken over.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::TestApp;
use haltless_connectors::admission::Admission;
use haltless_connectors::direct::{Connectors, ConnectorsConfig};
use haltless_connectors::gateway::{GatewayConfig, ReadingsSink};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

async fn spawn(machines: &[&str]) -> TestApp {
    TestApp::spawn_with(machines, |s| {
        s.connectors.refresh_interval_ms = 200;
        s.connectors.lease_ttl_ms = 2_000;
        s.connectors.instance_id = "app".into();
    })
    .await
}

/// Calls the API with `credential`: an API key (`hlk_…`) or a user's access token.
async fn send(
    app: &TestApp,
    credential: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let request = app
        .client
        .request(method, format!("{}/api/v1{path}", app.url));
    let mut request = if credential.starts_with("hlk_") {
        request.header("x-api-key", credential)
    } else {
        request.bearer_auth(credential)
    };
    if let Some(body) = body {
        request = request.json(body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn modbus(name: &str, port: u16, metric: &str) -> Value {
    json!({"name": name, "protocol": "modbus_tcp", "endpoint": format!("127.0.0.1:{port}"), "poll_interval_ms": 200,
           "points": [{"machine": "press-01", "metric": metric, "register": "holding", "address": 3, "data_type": "u16"}]})
}

#[tokio::test]
async fn sources_are_validated_and_managed_per_tenant() {
    use reqwest::Method;
    let app = spawn(&["press-01"]).await;
    // Admins and operators manage sources; read keys see them.
    let key = app.admin.clone();
    // Every problem in one 422, each naming its field.
    let (status, body) = send(
        &app,
        &key,
        Method::POST,
        "/sources",
        Some(&json!({"name": "plc", "protocol": "modbus_tcp", "endpoint": "plc-without-port",
            "points": [{"machine": "press-01", "metric": "t", "register": "coil", "address": 0, "data_type": "f32"},
                       {"machine": "press-01", "metric": "u", "register": "holding", "address": 65535, "data_type": "f64",
                        "byte_order": "middle"}]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_source");
    let fields: Vec<&str> = body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["endpoint", "points[0].data_type", "points[1]"],
        "{body}"
    );
    let opcua = json!({"name": "opc", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840",
        "opcua": {"security_policy": "None", "security_mode": "Sign"},
        "points": [{"machine": "press-01", "metric": "t", "node_id": "ns=2;x=1"}]});
    let (status, body) = send(&app, &key, Method::POST, "/sources", Some(&opcua)).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["opcua.security_mode", "points[0].node_id"],
        "{body}"
    );
    // Unknown machines are refused like the gateway refuses them.
    let (status, body) = send(&app, &key, Method::POST, "/sources", Some(&json!({"name": "x", "protocol": "modbus_tcp",
        "endpoint": "h:502", "points": [{"machine": "nope", "metric": "t", "register": "coil", "address": 0, "data_type": "bool"}]}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_machine"))
    );

    // Create, conflict, update, disable, enable, delete.
    let (status, created) = send(
        &app,
        &key,
        Method::POST,
        "/sources",
        Some(&modbus("plc", 1502, "count")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["points"][0]["scale"], 1.0, "defaults are filled in");
    let id = created["id"].as_str().unwrap();
    let (status, _) = send(
        &app,
        &key,
        Method::POST,
        "/sources",
        Some(&modbus("plc", 1502, "count")),
    )
    .await;
    assert_eq!(status, 409);
    let (status, updated) = send(
        &app,
        &key,
        Method::PUT,
        &format!("/sources/{id}"),
        Some(&modbus("plc", 1503, "count")),
    )
    .await;
    assert_eq!(
        (status, updated["version"].as_i64()),
        (200, Some(2)),
        "{updated}"
    );
    assert_eq!(updated["endpoint"], "127.0.0.1:1503");
    let (_, disabled) = send(
        &app,
        &key,
        Method::POST,
        &format!("/sources/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(
        (
            disabled["enabled"].as_bool(),
            disabled["status"]["state"].as_str()
        ),
        (Some(false), Some("disabled"))
    );
    let (_, enabled) = send(
        &app,
        &key,
        Method::POST,
        &format!("/sources/{id}/enable"),
        None,
    )
    .await;
    assert_eq!(enabled["enabled"], true);

    let (status, _) = send(&app, &app.key, Method::GET, &format!("/sources/{id}"), None).await;
    assert_eq!(status, 200, "a read key sees sources");
    let (status, _) = send(
        &app,
        &app.key,
        Method::DELETE,
        &format!("/sources/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 403, "a key cannot change them");
    let viewer = app.token_for(app.tenant, "viewer").await;
    let (status, _) = send(
        &app,
        &viewer,
        Method::POST,
        &format!("/sources/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 403, "a viewer cannot change them");

    // Another tenant sees nothing and cannot touch it.
    let (other, _) = app.iso.tenant_with_machines(&["press-01"]).await;
    let other_key = app.token_for(other, "admin").await;
    let (status, _) = send(
        &app,
        &other_key,
        Method::GET,
        &format!("/sources/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        &other_key,
        Method::DELETE,
        &format!("/sources/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        &other_key,
        Method::POST,
        &format!("/sources/{id}/trust"),
        Some(&json!({"fingerprint": "0".repeat(64)})),
    )
    .await;
    assert_eq!(status, 404, "nor accept its server's certificate");
    let (_, list) = send(&app, &other_key, Method::GET, "/sources", None).await;
    assert_eq!(list["sources"], json!([]));

    let (status, _) = send(&app, &key, Method::DELETE, &format!("/sources/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(
        &app,
        &key,
        Method::GET,
        &format!("/sources/{id}/status"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// Owner of each source's lease.
async fn owners(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT s.name, l.owner FROM ingest_sources s JOIN ingest_source_leases l ON l.source_id = s.id
         WHERE l.expires_at > now() ORDER BY s.name",
    )
    .fetch_all(&app.iso.pool)
    .await
    .unwrap()
}

async fn wait_owners(
    app: &TestApp,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = owners(app).await;
        if done(&o) {
            return o;
        }
        assert!(Instant::now() < deadline, "leases never settled: {o:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn instances_share_sources_and_take_over_a_dead_ones() {
    let app = spawn(&["press-01"]).await;
    let device = Peer::modbus(free_port(), &[]).await;
    for i in 0..4 {
        let (status, body) = send(
            &app,
            &app.admin,
            reqwest::Method::POST,
            "/sources",
            Some(&modbus(&format!("s{i}"), device.port, &format!("m{i}"))),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    wait_owners(&app, |o| o.len() == 4).await;
    // A second instance joins: two sources each, every source leased once.
    let s = &app.iso.settings;
    let sink = ReadingsSink::new(
        &s.kafka.brokers,
        &s.kafka.readings_topic,
        haltless_processors::runtime::codecs::readings_codec(&s.kafka)
            .await
            .unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let second = Connectors::new(
        app.iso.pool.clone(),
        Admission::new(app.iso.pool.clone(), sink, None),
        GatewayConfig::default(),
        ConnectorsConfig {
            instance_id: "second".into(),
            refresh_interval_ms: 200,
            lease_ttl_ms: 2_000,
            ..ConnectorsConfig::default()
        },
    )
    .with_outbound(s.outbound_policy().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(second.run(stop.clone()));
    let shared = wait_owners(&app, |o| {
        o.len() == 4 && o.iter().filter(|(_, w)| w == "second").count() == 2
    })
    .await;
    assert_eq!(
        shared.iter().filter(|(_, w)| w == "app").count(),
        2,
        "{shared:?}"
    );
    // Every source is polled, by its one owner.
    for i in 0..4 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, rows) = app
                .get(&format!("/api/v1/machines/press-01/readings?metric=m{i}"))
                .await;
            if rows["readings"].as_array().is_some_and(|r| !r.is_empty()) {
                break;
            }
            assert!(Instant::now() < deadline, "source s{i} was never polled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The second instance stops cleanly: its sources move at once.
    stop.cancel();
    task.await.unwrap();
    wait_owners(&app, |o| o.len() == 4 && o.iter().all(|(_, w)| w == "app")).await;

    // A dead instance (it never releases, it just stops renewing): its leases expire and move.
    sqlx::query("INSERT INTO connector_instances (id, heartbeat_at) VALUES ('ghost', now())")
        .execute(&app.iso.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE ingest_source_leases SET owner = 'ghost', expires_at = now() + interval '2 seconds' WHERE source_id IN (SELECT source_id FROM ingest_source_leases ORDER BY source_id LIMIT 2)")
        .execute(&app.iso.pool)
        .await
        .unwrap();
    let t = Instant::now();
    wait_owners(&app, |o| o.len() == 4 && o.iter().all(|(_, w)| w == "app")).await;
    assert!(
        t.elapsed() >= Duration::from_millis(1_000),
        "taken before the lease expired"
    );
    device.stop().await;
    app.stop().await;
}
