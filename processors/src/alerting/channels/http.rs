//! Outbound connections of the channels: resolve, keep what the outbound policy allows, connect to
//! exactly those addresses (a second lookup could answer differently), never follow a redirect.
//!
//! An HTTP client is kept per receiver (host and port), pinned to the addresses checked when it was made,
//! so deliveries reuse connections; after [`PIN_FOR`] the name is resolved and checked again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{check_url, only_fields, text, Channel, Config, Outbound, Recipient, SendError};
use crate::alerting::message::Message;

/// The addresses of `host` that the outbound policy allows.
pub(crate) async fn resolve(
    out: &Outbound,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, SendError> {
    haltless_schemas::outbound::check_host(host)
        .map_err(|e| SendError::permanent(e.to_string()))?;
    let looked_up = tokio::time::timeout(out.timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| SendError::retry("the receiver's name did not resolve in time"))?
        .map_err(|_| SendError::retry("the receiver's name does not resolve"))?;
    out.policy
        .filter(looked_up)
        .map_err(|refusal| SendError::permanent(refusal.to_string()))
}

/// How long a receiver's checked addresses (and its client) are used before resolving again.
pub const PIN_FOR: Duration = Duration::from_secs(60);

/// Receivers kept at most; past that the oldest half is dropped.
const MAX_CLIENTS: usize = 1024;

/// HTTP clients per (host, port), each pinned to checked addresses.
#[derive(Debug, Default)]
pub(crate) struct Clients(Mutex<HashMap<(String, u16), (Instant, reqwest::Client)>>);

impl Clients {
    fn get(&self, host: &str, port: u16) -> Option<reqwest::Client> {
        let clients = self.0.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .get(&(host.to_owned(), port))
            .filter(|(made, _)| made.elapsed() < PIN_FOR)
            .map(|(_, client)| client.clone())
    }

    fn put(&self, host: &str, port: u16, client: reqwest::Client) {
        let mut clients = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS {
            let mut ages: Vec<Instant> = clients.values().map(|(made, _)| *made).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            clients.retain(|_, (made, _)| *made > cut);
        }
        clients.insert((host.to_owned(), port), (Instant::now(), client));
    }
}

/// A client for `host:port` whose connections go to addresses the policy allows.
async fn client(out: &Outbound, host: &str, port: u16) -> Result<reqwest::Client, SendError> {
    if let Some(client) = out.clients.get(host, port) {
        return Ok(client);
    }
    let addrs = resolve(out, host, port).await?;
    let client = reqwest::Client::builder()
        .resolve_to_addrs(host, &addrs)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(out.timeout)
        .build()
        .map_err(|e| SendError::retry(format!("no HTTP client: {e}")))?;
    out.clients.put(host, port, client.clone());
    Ok(client)
}

/// A chat service's incoming webhook (Slack, Teams): one secret `webhook_url`, and the message rendered
/// by `payload`, posted with the notification's `Idempotency-Key`.
#[derive(Debug)]
pub struct ChatWebhook {
    /// The registered name.
    pub name: &'static str,
    /// The service's message for a notification.
    pub payload: fn(&Message) -> serde_json::Value,
}

impl Channel for ChatWebhook {
    fn name(&self) -> &'static str {
        self.name
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["webhook_url"]
    }

    fn check(&self, config: &Config) -> Result<(), String> {
        only_fields(config, &["webhook_url"])?;
        check_url(config, "webhook_url")
    }

    fn send<'a>(
        &'a self,
        out: &'a Outbound,
        config: &'a Config,
        message: &'a Message,
        _to: Option<&'a Recipient>,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            let url = text(config, "webhook_url").map_err(SendError::permanent)?;
            let body = serde_json::to_vec(&(self.payload)(message))
                .map_err(|e| SendError::permanent(format!("unencodable message: {e}")))?;
            post_json(
                out,
                url,
                body,
                &[("idempotency-key", message.id.to_string())],
            )
            .await
        }
        .boxed()
    }
}

/// POSTs a JSON `body` to `url` with `headers`; a 2xx answer is a delivery.
pub async fn post_json(
    out: &Outbound,
    url: &str,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
) -> Result<(), SendError> {
    let mut map = HeaderMap::new();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|_| SendError::permanent(format!("header {name} is not valid")))?;
        map.insert(HeaderName::from_static(name), value);
    }
    post(out, url, map, body).await
}

/// POSTs `body` with `headers` to `url`, through a client pinned to addresses the outbound policy
/// allows; a 2xx answer is a delivery.
pub async fn post(
    out: &Outbound,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(), SendError> {
    let url =
        reqwest::Url::parse(url).map_err(|_| SendError::permanent("the URL does not parse"))?;
    let host = url
        .host_str()
        .ok_or_else(|| SendError::permanent("the URL has no host"))?
        .trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(443);
    let client = client(out, host, port).await?;
    let answer = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                SendError::retry("the receiver did not answer in time")
            } else {
                SendError::retry("could not connect to the receiver")
            }
        })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    Err(SendError {
        message: format!("the receiver answered {status}"),
        retriable: status.is_server_error() || code == 408 || code == 429,
        status: Some(code),
    })
}
