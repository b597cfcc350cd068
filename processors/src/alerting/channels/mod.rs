//! Notification channels: one file per kind, registered by one line in [`CHANNELS`]; the engine and the
//! API know a kind only through [`Channel`].
//!
//! Kinds: `webhook` (signed JSON), `slack` and `teams` (chat webhooks), `email` (SMTP) and `push` (Web
//! Push to the browsers people subscribed).
//!
//! A channel's configuration is one JSON object. The fields a kind names in [`Channel::secret_fields`]
//! (webhook URLs that carry tokens, signing secrets, SMTP passwords) are sealed at rest, never shown
//! back and never logged; the rest is stored and shown as it is.

mod email;
mod http;
mod push;
mod slack;
mod teams;
mod webhook;

use std::time::Duration;

use futures::future::BoxFuture;
use haltless_schemas::outbound::OutboundPolicy;
use serde_json::{Map, Value};

use super::message::Message;

pub use http::post_json;
pub use push::{check_keys as check_push_keys, NAME as PUSH};

/// Every kind of channel.
pub static CHANNELS: &[&dyn Channel] = &[
    &webhook::Webhook,
    &slack::SLACK,
    &teams::TEAMS,
    &email::Email,
    &push::Push,
];

/// The channel kind called `name`.
pub fn kind(name: &str) -> Option<&'static dyn Channel> {
    CHANNELS.iter().copied().find(|c| c.name() == name)
}

/// The registered kinds' names, for messages.
pub fn kind_names() -> Vec<&'static str> {
    CHANNELS.iter().map(|c| c.name()).collect()
}

/// What every send may use: where it may connect, how long it may take, and the HTTP clients kept per
/// receiver (each pinned to the addresses the policy allowed, so connections are reused).
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The operator's outbound policy: which addresses a tenant's channel may reach.
    pub policy: OutboundPolicy,
    /// The deadline of one delivery attempt, connection included.
    pub timeout: Duration,
    clients: std::sync::Arc<http::Clients>,
}

impl Outbound {
    /// Sends that follow `policy`, each within `timeout`.
    pub fn new(policy: OutboundPolicy, timeout: Duration) -> Self {
        Self {
            policy,
            timeout,
            clients: std::sync::Arc::default(),
        }
    }
}

/// Why a delivery attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What went wrong, safe to show the tenant (no resolved addresses, no secrets).
    pub message: String,
    /// A timeout, a refused connection or a 5xx/429 is worth another attempt; a 4xx or a refused
    /// address is not.
    pub retriable: bool,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
}

impl SendError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: true,
            status: None,
        }
    }

    /// A failure that another attempt would repeat.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retriable: false,
            status: None,
        }
    }
}

/// A channel's stored configuration, its secret fields opened.
pub type Config = Map<String, Value>;

/// A kind of notification channel.
pub trait Channel: Send + Sync {
    /// The registered name (`kind` in the API).
    fn name(&self) -> &'static str;

    /// The fields of the configuration that are secrets.
    fn secret_fields(&self) -> &'static [&'static str];

    /// Fills in what a configuration leaves to the platform (a push channel's key pair), before
    /// [`Channel::check`] on every create and update.
    fn complete(&self, _config: &mut Config) -> Result<(), String> {
        Ok(())
    }

    /// Checks a whole configuration (secrets included); the reason names the field.
    fn check(&self, config: &Config) -> Result<(), String>;

    /// Delivers `message`; `config` passed [`Channel::check`]. `to` is the browser a push channel
    /// tells; other kinds have their receivers in `config`.
    fn send<'a>(
        &'a self,
        out: &'a Outbound,
        config: &'a Config,
        message: &'a Message,
        to: Option<&'a Recipient>,
    ) -> BoxFuture<'a, Result<(), SendError>>;
}

/// One browser's push subscription, as the W3C `PushSubscription` gives it.
#[derive(Clone, sqlx::FromRow)]
pub struct Recipient {
    /// The push service's URL for this browser (a capability: never logged).
    pub endpoint: String,
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    pub auth: String,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient").finish_non_exhaustive()
    }
}

/// A required string field.
pub(crate) fn text<'a>(config: &'a Config, field: &str) -> Result<&'a str, String> {
    match config.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(format!("{field} is required")),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

/// Refuses fields a kind does not know.
pub(crate) fn only_fields(config: &Config, known: &[&str]) -> Result<(), String> {
    match config.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown field {k}; known: {}", known.join(", "))),
        None => Ok(()),
    }
}

/// Checks an `https://` (or, where the operator allows it, `http://`) URL's syntax.
pub(crate) fn check_url(config: &Config, field: &str) -> Result<(), String> {
    check_endpoint(field, text(config, field)?).map(|_| ())
}

/// Checks the syntax of `url`, the value of `field`: an `https://` (or `http://`) URL with a plain host;
/// returns it parsed.
pub fn check_endpoint(field: &str, url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{field} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("{field} must be an https:// URL"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{field} has no host"))?;
    haltless_schemas::outbound::check_host(host).map_err(|e| format!("{field}: {e}"))?;
    Ok(parsed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_registered_once() {
        let mut names = kind_names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHANNELS.len());
        assert_eq!(kind("slack").map(|c| c.name()), Some("slack"));
        assert!(kind("pager").is_none());
    }

    #[test]
    fn urls_must_be_http_with_a_plain_host() {
        let config = |url: &str| {
            let mut c = Config::new();
            c.insert("url".into(), Value::String(url.into()));
            c
        };
        assert!(check_url(&config("https://hooks.example.com/a?b=c"), "url").is_ok());
        assert!(check_url(&config("ftp://example.com/"), "url").is_err());
        assert!(check_url(&config("not a url"), "url").is_err());
        assert!(check_url(&Config::new(), "url")
            .unwrap_err()
            .contains("required"));
    }
}
