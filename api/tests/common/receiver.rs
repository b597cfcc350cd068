//! A local HTTP receiver for notifications: records every POST (path, headers, JSON body) and answers 200,
//! or 503 while a path's planned failures last. It honours `Idempotency-Key` the way a careful receiver
//! would: `distinct` counts each key once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    got: Vec<Received>,
    failures: HashMap<String, usize>,
    delay: Duration,
}

/// The receiver, listening on a free loopback port.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> StatusCode {
    let delay = inner.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut inner = inner.lock().unwrap();
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    inner.got.push(Received {
        path: path.clone(),
        headers,
        raw: raw.to_vec(),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
    });
    match inner.failures.get_mut(&path) {
        Some(left) if *left > 0 => {
            *left -= 1;
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::OK,
    }
}

impl Receiver {
    /// Starts a receiver.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{path}", post(record))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, inner }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Answers 503 to the next `n` requests on `path`.
    pub fn fail_next(&self, path: &str, n: usize) {
        self.inner.lock().unwrap().failures.insert(path.into(), n);
    }

    /// Answers every request only after `delay` (a slow receiver).
    pub fn set_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().delay = delay;
    }

    /// Every request on `path`, in order.
    pub fn got(&self, path: &str) -> Vec<Received> {
        let inner = self.inner.lock().unwrap();
        inner
            .got
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The requests on `path`, one per `Idempotency-Key` (the first of each), in order.
    pub fn distinct(&self, path: &str) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.got(path)
            .into_iter()
            .filter(|r| {
                seen.insert(
                    r.headers
                        .get("idempotency-key")
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits until `path` got at least `n` distinct notifications; returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.distinct(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path} got {} of {n} notifications: {:?}",
                got.len(),
                got.iter().map(|r| &r.body).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
