//! Secrets at rest: an OPC-UA source's password is stored sealed (no trace of it in a dump of the
//! database) while the source still logs in to an asyncua server that requires it; a password stored in
//! plain text before sealing existed is sealed at start-up; a new key re-wraps every seal.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use common::peers::{free_port, Peer};
use common::{TestApp, TEST_KEY};
use haltless_api::app::seal_secrets;
use haltless_schemas::secrets::Keyring;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use uuid::Uuid;

const PASSWORD: &str = "Pl4nt-Only-Kn0ws";

fn source(name: &str, endpoint: &str, machine: &str) -> Value {
    json!({"name": name, "protocol": "opcua", "endpoint": endpoint, "poll_interval_ms": 200,
           "opcua": {"auth": {"type": "user_password", "username": "plant", "password": PASSWORD}},
           "points": [{"machine": machine, "metric": "temp", "node_id": "ns=2;s=Press.Temp"}]})
}

/// Every stored definition, as text.
async fn stored(app: &TestApp) -> String {
    let rows: Vec<String> = sqlx::query_scalar("SELECT definition::text FROM ingest_sources")
        .fetch_all(&app.iso.pool)
        .await
        .unwrap();
    rows.join("\n")
}

/// `pg_dump` of the test's database, as an operator's backup would be.
fn dump(app: &TestApp) -> String {
    let out = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(app.iso.settings.database.url.expose_secret())
        .output()
        .expect("pg_dump runs (PostgreSQL's client tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn an_opcua_password_is_sealed_at_rest_and_still_logs_in() {
    let app = TestApp::spawn_polling(&["press-01", "press-02"]).await;
    let server = Peer::opcua(
        free_port(),
        &["--period", "0.3", "--user", "plant", "--password", PASSWORD],
    )
    .await;
    let endpoint = format!("opc.tcp://127.0.0.1:{}/haltless", server.port);
    let (status, created) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/sources",
            &app.admin,
            Some(&source("sealed", &endpoint, "press-01")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["opcua"]["auth"]["password"], Value::Null);
    // It logs in: readings arrive.
    app.wait_for_readings("press-01", 3).await;
    let text = stored(&app).await;
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("sealed:v1:test-1:"), "{text}");
    let backup = dump(&app);
    assert!(
        backup.contains("sealed:v1:test-1:"),
        "the dump holds the sources"
    );
    assert!(!backup.contains(PASSWORD), "no password in the dump");

    // A source stored in plain text before sealing existed: the start-up sweep seals it, and it still
    // logs in.
    let definition = json!({"protocol": "opcua", "endpoint": endpoint, "poll_interval_ms": 200, "timeout_ms": 3000,
        "opcua": {"security_policy": "None", "security_mode": "None", "subscribe": false,
                  "auth": {"type": "user_password", "username": "plant", "password": PASSWORD}},
        "points": [{"machine": "press-02", "metric": "temp", "node_id": "ns=2;s=Press.Temp", "scale": 1.0, "offset": 0.0}]});
    sqlx::query(
        "INSERT INTO ingest_sources (id, tenant_id, name, protocol, definition, enabled)
         VALUES ($1, $2, 'legacy', 'opcua', $3, true)",
    )
    .bind(Uuid::new_v4())
    .bind(app.tenant)
    .bind(&definition)
    .execute(&app.iso.pool)
    .await
    .unwrap();
    assert!(stored(&app).await.contains(PASSWORD));
    let done = seal_secrets(&app.iso.settings, &app.iso.pool)
        .await
        .unwrap();
    assert_eq!((done.sources, done.secrets), (1, 1));
    assert!(!dump(&app).contains(PASSWORD));
    app.wait_for_readings("press-02", 3).await;

    // Rotation: a new key first, the old one kept to open; every seal moves to the new key.
    let mut rotated = app.iso.settings.clone();
    let new_key = Keyring::generate_entry("test-2").unwrap();
    rotated.secrets.keys = vec![SecretString::from(new_key), SecretString::from(TEST_KEY)];
    let done = seal_secrets(&rotated, &app.iso.pool).await.unwrap();
    assert_eq!((done.sources, done.secrets), (2, 2));
    let text = stored(&app).await;
    assert!(
        !text.contains("sealed:v1:test-1:") && text.contains("sealed:v1:test-2:"),
        "{text}"
    );
    server.stop().await;
    app.stop().await;
}
