//! The edge agent pushes over HTTPS: a TLS endpoint in front of the platform, with a certificate issued by
//! a CA made in the test. The agent that trusts that CA (`cloud.ca_file`) delivers its readings through
//! TLS; one that does not refuses the certificate and says so in its health.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::TestApp;
use haltless_connectors::agent::AgentConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A CA made here, in PEM, and a server certificate for 127.0.0.1 it issued (DER, with its key).
struct Pki {
    ca_pem: String,
    server: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: server.der().clone(),
        server_key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

/// Terminates TLS with `pki`'s server certificate and relays the plain bytes to the platform; counts the
/// handshakes that succeeded.
async fn tls_endpoint(pki: &Pki, upstream: u16, stop: CancellationToken) -> (u16, Arc<AtomicU64>) {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.server.clone()],
                PrivateKeyDer::Pkcs8(pki.server_key.clone_key()),
            )
            .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicU64::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let (inbound, _) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            };
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(inbound).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut out) = TcpStream::connect(("127.0.0.1", upstream)).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut out).await;
                }
            });
        }
    });
    (port, handshakes)
}

fn site(url: &str, key: &str, ca_file: Option<&Path>, buffer: &Path, device: u16) -> AgentConfig {
    let ca = ca_file
        .map(|p| format!("ca_file = \"{}\"", p.display()))
        .unwrap_or_default();
    AgentConfig::parse(&format!(
        r#"
        [cloud]
        url = "{url}"
        api_key = "{key}"
        {ca}
        push_interval_ms = 100
        min_backoff_ms = 100
        max_backoff_ms = 400
        timeout_ms = 2000
        [buffer]
        dir = "{}"
        [http]
        bind = "127.0.0.1:0"
        [[sources]]
        name = "press-plc"
        protocol = "modbus_tcp"
        endpoint = "127.0.0.1:{device}"
        poll_interval_ms = 100
        [[sources.points]]
        machine = "press-01"
        metric = "count"
        register = "holding"
        address = 3
        data_type = "u16"
        "#,
        buffer.display()
    ))
    .unwrap()
}

fn metrics() -> haltless_connectors::agent::server::RenderMetrics {
    let prometheus = haltless_api::telemetry::prometheus();
    Arc::new(move || prometheus.render())
}

async fn wait_health(port: u16, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h: Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "haltless-agent-tls-{name}-{}",
        uuid::Uuid::new_v4()
    ))
}

#[tokio::test]
async fn the_agent_pushes_over_https_to_a_platform_whose_ca_it_trusts_and_refuses_any_other() {
    let app = TestApp::spawn(&["press-01"]).await;
    let cloud_port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let device = Peer::modbus(free_port(), &["--period", "0.5"]).await;
    let stop = CancellationToken::new();
    let ours = pki("Haltless test CA");
    let (tls_port, handshakes) = tls_endpoint(&ours, cloud_port, stop.clone()).await;
    let url = format!("https://127.0.0.1:{tls_port}");
    let ca_file = temp("ca.pem");
    std::fs::write(&ca_file, &ours.ca_pem).unwrap();

    // Without our CA, only the public roots are trusted: the certificate is refused, nothing arrives.
    let untrusting = CancellationToken::new();
    let buffer = temp("buffer-untrusting");
    let agent = haltless_connectors::agent::server::start(
        site(&url, &app.key, None, &buffer, device.port),
        metrics(),
        untrusting.clone(),
    )
    .await
    .unwrap();
    let h = wait_health(agent.port, "a refused push", |h| {
        h["push"]["last_error"].is_string()
    })
    .await;
    let error = h["push"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("TLS refused the platform's certificate")
            && error.contains("UnknownIssuer")
            && error.contains("cloud.ca_file"),
        "the error says what is wrong and what to do: {error}"
    );
    assert_eq!(h["push"]["pushed"], 0, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(
        handshakes.load(Ordering::Relaxed),
        0,
        "no TLS session began"
    );
    untrusting.cancel();
    agent.task.await.unwrap().unwrap();
    let (_, stored) = app.get("/api/v1/machines/press-01/readings").await;
    assert_eq!(stored["readings"], serde_json::json!([]), "{stored}");

    // A CA that is not the one that issued the certificate is refused the same way.
    let other_ca = temp("other-ca.pem");
    std::fs::write(&other_ca, pki("Another CA").ca_pem).unwrap();
    let other = CancellationToken::new();
    let other_buffer = temp("buffer-other");
    let agent = haltless_connectors::agent::server::start(
        site(&url, &app.key, Some(&other_ca), &other_buffer, device.port),
        metrics(),
        other.clone(),
    )
    .await
    .unwrap();
    let h = wait_health(agent.port, "a refused push", |h| {
        h["push"]["last_error"].is_string()
    })
    .await;
    assert!(
        h["push"]["last_error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{h}"
    );
    other.cancel();
    agent.task.await.unwrap().unwrap();

    // With our CA in cloud.ca_file, the readings arrive, through the TLS endpoint; the readings the first
    // agent buffered while refused arrive with them.
    let trusting = CancellationToken::new();
    let agent = haltless_connectors::agent::server::start(
        site(&url, &app.key, Some(&ca_file), &buffer, device.port),
        metrics(),
        trusting.clone(),
    )
    .await
    .unwrap();
    let h = wait_health(agent.port, "a push over HTTPS", |h| {
        h["push"]["pushed"].as_u64() > Some(0)
    })
    .await;
    assert!(handshakes.load(Ordering::Relaxed) > 0, "{h}");
    let readings = app.wait_for_readings("press-01", 5).await;
    assert!(
        readings.iter().all(|r| r["metric"] == "count"),
        "{readings:?}"
    );
    trusting.cancel();
    agent.task.await.unwrap().unwrap();

    // A CA file that holds no certificate stops the agent at start, naming the setting.
    let empty = temp("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let temp_empty_buffer = temp("buffer-empty");
    let refused = haltless_connectors::agent::server::start(
        site(
            &url,
            &app.key,
            Some(&empty),
            &temp_empty_buffer,
            device.port,
        ),
        metrics(),
        CancellationToken::new(),
    )
    .await;
    let Err(e) = refused else {
        panic!("an agent with an empty CA file started")
    };
    assert!(
        format!("{e:#}").contains("cloud.ca_file") && format!("{e:#}").contains("no PEM"),
        "{e:#}"
    );

    stop.cancel();
    for path in [&ca_file, &other_ca, &empty] {
        let _ = std::fs::remove_file(path);
    }
    for dir in [&buffer, &other_buffer, &temp_empty_buffer] {
        let _ = std::fs::remove_dir_all(dir);
    }
    device.stop().await;
    app.stop().await;
}
