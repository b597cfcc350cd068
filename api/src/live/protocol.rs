//! The dashboard socket's messages and close codes (protocol version 1), as the README documents them.
//!
//! Client to server: the first text message is an access token (or an API key with the `read` scope);
//! then JSON commands `{"type": "subscribe" | "unsubscribe", "machines": ["press-01", ...] | "*"}` (a subscribe
//! may add `"readings": false`).
//! Server to client: JSON objects with `"v": 1` and a `type`: `ready`, `subscribed`, `readings`,
//! `alert`, `alert_action`, `machine_status`, `prediction`, `notification`, `error`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version every server message carries as `v`.
pub const VERSION: u32 = 1;

/// How long a client has to send its token after the socket opened.
pub const AUTH_TIMEOUT_SECS: u64 = 5;

/// Close codes (the 4000–4999 range is the application's).
pub mod close {
    /// No token within [`super::AUTH_TIMEOUT_SECS`].
    pub const AUTH_TIMEOUT: u16 = 4408;
    /// The token is invalid, expired, logged out or revoked (at sign-in or later), or the key was revoked.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The caller may not read (an API key without the `read` scope).
    pub const FORBIDDEN: u16 = 4403;
    /// The client did not keep up: it left pings unanswered for `live.slow_client_secs`.
    pub const TOO_SLOW: u16 = 4429;
    /// A message that is not a command (binary, not JSON, unknown type).
    pub const BAD_MESSAGE: u16 = 4400;
    /// The server is shutting down or lost its services; reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// The token could not be checked (PostgreSQL or Redis unreachable or overloaded); reconnect shortly.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// A command from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Start receiving readings, alerts and actions of these machines (names), or of all (`"*"`).
    Subscribe {
        /// Names, or `"*"`.
        machines: Selection,
        /// `false`: everything but `readings` messages, for the whole socket (an alert inbox follows every
        /// machine without their values). The last subscribe decides; absent means `true`.
        #[serde(default = "yes")]
        readings: bool,
    },
    /// Stop receiving them.
    Unsubscribe {
        /// Names, or `"*"`.
        machines: Selection,
    },
}

fn yes() -> bool {
    true
}

/// Which machines a command names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Selection {
    /// `"*"`: every machine the caller may see, including machines registered later.
    All(String),
    /// Machines by name.
    Names(Vec<String>),
}

/// One series' latest value in a `readings` message.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReading {
    /// Machine name.
    pub machine: String,
    /// Machine id.
    pub machine_id: uuid::Uuid,
    /// Metric.
    pub metric: String,
    /// Event time, RFC 3339.
    pub ts: String,
    /// The value.
    pub value: f64,
    /// Quality, when the device reported one.
    pub quality: Option<&'static str>,
}

/// A server message as JSON text, `v` and `type` first.
pub fn message(kind: &str, fields: Value) -> String {
    let mut doc = serde_json::Map::new();
    doc.insert("v".into(), VERSION.into());
    doc.insert("type".into(), kind.into());
    if let Value::Object(fields) = fields {
        doc.extend(fields);
    }
    Value::Object(doc).to_string()
}
