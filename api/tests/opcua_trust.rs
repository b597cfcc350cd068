//! OPC-UA server certificates pinned per source (trust on first use): the first certificate of an asyncua
//! server is pinned and shown; the server restarted with a new certificate is refused, its readings stop,
//! and the status says why, until an administrator accepts the new fingerprint. Each tenant's client key
//! pair lives in its own folder of the state folder, readable by the platform's user only.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::time::Duration;

use common::peers::{free_port, Peer};
use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

fn secure_source(port: u16) -> Value {
    json!({"name": "press-ua", "protocol": "opcua", "endpoint": format!("opc.tcp://127.0.0.1:{port}/haltless"),
           "poll_interval_ms": 200, "timeout_ms": 3000,
           "opcua": {"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt"},
           "points": [{"machine": "press-01", "metric": "count", "node_id": "ns=2;s=Press.Count"}]})
}

async fn count(app: &TestApp) -> usize {
    let (_, body) = app
        .get("/api/v1/machines/press-01/readings?limit=100000")
        .await;
    body["readings"].as_array().unwrap().len()
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_changed_server_certificate_is_refused_until_an_administrator_accepts_it() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let port = free_port();
    let server = Peer::opcua(port, &["--period", "0.3", "--secure"]).await;
    let (s, created) = app
        .call(
            Method::POST,
            "/api/v1/sources",
            &app.admin,
            Some(&secure_source(port)),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // First use: the certificate is pinned and shown.
    app.wait_for_readings("press-01", 3).await;
    let first = app
        .wait_source_status(&id, 30, |s| s["certificate"]["pinned"].is_string())
        .await;
    let pinned = first["certificate"]["pinned"].as_str().unwrap().to_owned();
    assert_eq!(pinned.len(), 64, "{first}");
    assert_eq!(first["certificate"]["presented"], json!(pinned), "{first}");
    assert_eq!(first["certificate"]["trusted"], true, "{first}");
    let (_, shown) = app.get(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(shown["status"]["certificate"]["pinned"], json!(pinned));

    // The tenant's client key pair, in its own folder, 0700.
    #[cfg(unix)]
    {
        let tenant_dir = app
            .iso
            .settings
            .connectors
            .state_dir
            .join(app.tenant.to_string());
        assert_eq!(mode(&tenant_dir), 0o700);
        assert_eq!(mode(&tenant_dir.join("opcua")), 0o700);
        assert!(
            tenant_dir.join("opcua/private").is_dir(),
            "the key pair is there"
        );
    }

    // The server comes back with another certificate (made anew at every start): refused.
    server.stop().await;
    let server = Peer::opcua(port, &["--period", "0.3", "--secure"]).await;
    let refused = app
        .wait_source_status(&id, 30, |s| {
            s["state"] == "error"
                && s["last_error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("untrusted certificate:"))
        })
        .await;
    let presented = refused["certificate"]["presented"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(refused["certificate"]["pinned"], json!(pinned), "{refused}");
    assert_eq!(refused["certificate"]["trusted"], false, "{refused}");
    let message = refused["last_error"].as_str().unwrap();
    assert!(
        message.contains("POST /api/v1/sources/{id}/trust") && !message.contains(&presented),
        "a category and what to do: {message}"
    );
    let before = count(&app).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&app).await, before, "nothing is read from it");

    // Only an administrator accepts, and only the certificate the server presents.
    let path = format!("/api/v1/sources/{id}/trust");
    let operator = app.token_for(app.tenant, "operator").await;
    let (s, body) = app
        .call(
            Method::POST,
            &path,
            &operator,
            Some(&json!({"fingerprint": presented})),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = app
        .call(
            Method::POST,
            &path,
            &app.admin,
            Some(&json!({"fingerprint": "not a fingerprint"})),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = app
        .call(
            Method::POST,
            &path,
            &app.admin,
            Some(&json!({"fingerprint": pinned})),
        )
        .await;
    assert_eq!(s, 409, "not what the server presents: {body}");
    assert_eq!(body["error"]["details"]["presented"], json!(presented));
    assert_eq!(count(&app).await, before, "still refused");
    // Colons and capitals, as tools print fingerprints, are accepted.
    let printed: Vec<String> = presented
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let (s, body) = app
        .call(
            Method::POST,
            &path,
            &app.admin,
            Some(&json!({"fingerprint": printed.join(":")})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"]["certificate"]["pinned"], json!(presented));

    // Accepted: the source reads again.
    app.wait_for_readings("press-01", before + 3).await;
    let back = app
        .wait_source_status(&id, 30, |s| s["state"] == "ok")
        .await;
    assert_eq!(back["certificate"]["trusted"], true, "{back}");
    // The source's metrics are labelled by protocol, never by the name the tenant chose.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("haltless_source_readings_total{source=\"opcua\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("press-ua"), "{metrics}");
    server.stop().await;
    app.stop().await;
}
