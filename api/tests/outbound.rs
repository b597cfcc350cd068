//! The outbound policy seen from a tenant: sources pointed at the platform's own services, at loopback
//! under a name, or at cloud metadata are refused before any connection, and their status says so by
//! category without a resolved address.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestApp;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

async fn create(app: &TestApp, name: &str, protocol: &str, endpoint: &str) -> String {
    let point = if protocol == "opcua" {
        json!({"machine": "press-01", "metric": "t", "node_id": "ns=2;s=Press.Temp"})
    } else {
        json!({"machine": "press-01", "metric": "t", "register": "holding", "address": 0, "data_type": "u16"})
    };
    let body = json!({"name": name, "protocol": protocol, "endpoint": endpoint,
                      "poll_interval_ms": 200, "timeout_ms": 500, "points": [point]});
    let (status, created) = app
        .call(Method::POST, "/api/v1/sources", &app.admin, Some(&body))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn refusal(app: &TestApp, id: &str) -> String {
    let status = app
        .wait_source_status(id, 30, |s| s["state"] == "error")
        .await;
    status["last_error"].as_str().unwrap().to_owned()
}

fn pg_port(app: &TestApp) -> u16 {
    let url = app.iso.settings.database.url.expose_secret().to_owned();
    let authority = url.split('@').nth(1).unwrap().split('/').next().unwrap();
    authority.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A loopback listener that counts the connections it accepts.
async fn listener() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn by_default_a_tenant_reaches_neither_loopback_nor_metadata_and_learns_no_address() {
    let app = TestApp::spawn_with(&["press-01"], |s| {
        s.outbound.allow.clear();
        s.connectors.refresh_interval_ms = 200;
        s.connectors.min_backoff_ms = 100;
        s.connectors.max_backoff_ms = 500;
    })
    .await;
    let pg = pg_port(&app);
    let (port, accepted) = listener().await;
    let cases = [
        (
            "pg-modbus",
            "modbus_tcp",
            format!("127.0.0.1:{pg}"),
            "loopback address",
        ),
        (
            "pg-by-name",
            "modbus_tcp",
            format!("localhost:{pg}"),
            "loopback address",
        ),
        (
            "pg-opcua",
            "opcua",
            format!("opc.tcp://localhost:{pg}/x"),
            "loopback address",
        ),
        (
            "mapped",
            "modbus_tcp",
            format!("[::ffff:127.0.0.1]:{port}"),
            "loopback address",
        ),
        (
            "listener",
            "opcua",
            format!("opc.tcp://127.0.0.1:{port}"),
            "loopback address",
        ),
        (
            "metadata",
            "modbus_tcp",
            "169.254.169.254:80".into(),
            "cloud metadata address",
        ),
        (
            "private",
            "modbus_tcp",
            "10.1.2.3:502".into(),
            "private network address",
        ),
    ];
    for (name, protocol, endpoint, category) in &cases {
        let id = create(&app, name, protocol, endpoint).await;
        let error = refusal(&app, &id).await;
        assert_eq!(
            error,
            format!("connection to {endpoint}: refused by the outbound policy: {category}"),
            "{name}"
        );
        assert!(
            !error.contains("::1") && !error.contains("os error"),
            "{name}: {error}"
        );
        if endpoint.contains("localhost") {
            assert!(!error.contains("127.0.0.1"), "{name}: {error}");
        }
    }
    // The status list says the same, and nothing was ever connected to.
    let (_, list) = app.get("/api/v1/sources").await;
    assert!(!list.to_string().contains("os error"), "{list}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no connection was opened"
    );
    app.stop().await;
}

#[tokio::test]
async fn where_loopback_is_allowed_the_platforms_own_ports_stay_refused() {
    // The harness allows 127.0.0.1 (its device peers listen there).
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let pg = pg_port(&app);
    let redis: u16 = app
        .iso
        .settings
        .redis
        .url
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let (port, accepted) = listener().await;
    for (name, protocol, endpoint) in [
        ("pg", "modbus_tcp", format!("127.0.0.1:{pg}")),
        ("redis", "opcua", format!("opc.tcp://127.0.0.1:{redis}")),
    ] {
        let id = create(&app, name, protocol, &endpoint).await;
        assert_eq!(
            refusal(&app, &id).await,
            format!("connection to {endpoint}: refused by the outbound policy: a port of the platform's own services")
        );
    }
    // An allowed address is reached, and what failed there is said in a category.
    let id = create(&app, "allowed", "modbus_tcp", &format!("127.0.0.1:{port}")).await;
    let error = refusal(&app, &id).await;
    assert!(accepted.load(Ordering::SeqCst) > 0, "{error}");
    assert!(
        !error.contains("outbound policy") && !error.contains("os error"),
        "{error}"
    );
    app.stop().await;
}
