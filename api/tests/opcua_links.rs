//! An OPC-UA subscription source cannot lie: through a TCP proxy in front of the asyncua server, a reset of
//! every connection (the server stays up) is followed by readings again, and a frozen link (connections
//! open, nothing passes) shows as an error within the subscription's window, then recovers.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::peers::{free_port, Peer};
use common::TestApp;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A TCP proxy that can reset every connection it carries (RST, not FIN) or stop passing bytes.
struct Proxy {
    port: u16,
    frozen: Arc<AtomicBool>,
    resets: Arc<Mutex<CancellationToken>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let resets = Arc::new(Mutex::new(CancellationToken::new()));
        let (f, r) = (frozen.clone(), resets.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let reset = r.lock().unwrap().clone();
                tokio::spawn(carry(client, server, reset, f.clone()));
            }
        });
        Self {
            port,
            frozen,
            resets,
        }
    }

    fn reset(&self) {
        let mut token = self.resets.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

async fn carry(a: TcpStream, b: TcpStream, reset: CancellationToken, frozen: Arc<AtomicBool>) {
    // Closing with a zero linger sends a reset.
    a.set_zero_linger().unwrap();
    b.set_zero_linger().unwrap();
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::select! {
        _ = reset.cancelled() => {}
        _ = pump(ar, bw, frozen.clone()) => {}
        _ = pump(br, aw, frozen) => {}
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, frozen: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn create(app: &TestApp, body: Value) -> String {
    let r = app
        .client
        .post(format!("{}/api/v1/sources", app.url))
        .bearer_auth(&app.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn count(app: &TestApp) -> usize {
    let (status, body) = app
        .get("/api/v1/machines/press-01/readings?limit=100000")
        .await;
    assert_eq!(status, 200, "{body}");
    body["readings"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_subscription_recovers_from_a_tcp_reset_and_a_frozen_link_shows_as_an_error() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let server = Peer::opcua(free_port(), &["--period", "0.3"]).await;
    let proxy = Proxy::start(server.port).await;
    let points: Vec<Value> = ["Temp", "Count", "Level"]
        .iter()
        .map(|n| json!({"machine": "press-01", "metric": n.to_lowercase(), "node_id": format!("ns=2;s=Press.{n}")}))
        .collect();
    // A window of (3 + 1) × 200 ms + 1,000 ms = 1.8 s without a change or keep-alive.
    let id = create(
        &app,
        json!({"name": "press-sub", "protocol": "opcua", "endpoint": format!("opc.tcp://127.0.0.1:{}/haltless", proxy.port),
               "poll_interval_ms": 200, "timeout_ms": 1000, "opcua": {"subscribe": true}, "points": points}),
    )
    .await;
    let status = |want: &'static str, secs: u64| {
        let (app, id) = (&app, id.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                let (_, s) = app.get(&format!("/api/v1/sources/{id}/status")).await;
                if s["state"] == want {
                    return s;
                }
                assert!(Instant::now() < deadline, "never {want}: {s}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    status("ok", 30).await;
    app.wait_for_readings("press-01", 9).await;

    // A TCP reset while the server stays up: readings come again.
    proxy.reset();
    let reset_at = Instant::now();
    let before = count(&app).await;
    app.wait_for_readings("press-01", before + 9).await;
    println!(
        "readings again {:?} after the TCP reset",
        reset_at.elapsed()
    );
    assert!(reset_at.elapsed() < Duration::from_secs(20));

    // A frozen link: an error within the window (plus the status publication), then recovery.
    proxy.freeze(true);
    let frozen_at = Instant::now();
    let down = status("error", 20).await;
    println!(
        "error shown {:?} after the link froze: {}",
        frozen_at.elapsed(),
        down["last_error"]
    );
    assert!(frozen_at.elapsed() < Duration::from_secs(8), "{down}");
    proxy.freeze(false);
    let back = status("ok", 30).await;
    assert!(
        back["last_success_at"].as_str() > down["last_error_at"].as_str(),
        "the last success is a reading received after the error: {back}"
    );
    let before = count(&app).await;
    app.wait_for_readings("press-01", before + 9).await;
    server.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn an_anonymous_login_refused_by_the_endpoint_says_so() {
    let app = TestApp::spawn_polling(&["press-01"]).await;
    let server = Peer::opcua(free_port(), &["--user", "plant", "--password", "s3cret"]).await;
    let id = create(
        &app,
        json!({"name": "anon", "protocol": "opcua", "endpoint": format!("opc.tcp://127.0.0.1:{}/haltless", server.port),
               "poll_interval_ms": 200, "timeout_ms": 1000, "opcua": {"subscribe": true},
               "points": [{"machine": "press-01", "metric": "temp", "node_id": "ns=2;s=Press.Temp"}]}),
    )
    .await;
    let s = app
        .wait_source_status(&id, 30, |s| s["state"] == "error")
        .await;
    let message = s["last_error"].as_str().unwrap();
    assert!(
        message.contains("does not accept anonymous logins") && message.contains("UserName"),
        "{s}"
    );
    server.stop().await;
    app.stop().await;
}
