//! `GET /api/v1/ws/dashboard`: one socket's life. It signs in with its first text message, joins its
//! tenant's feed, and then sends what changed since it last sent, filtered by what the caller may see and
//! has subscribed to. Every second it checks that its token still holds (expiry, logout, revocation).
//!
//! Flow control: after each batch the server sends a ping and sends nothing more until the pong comes
//! back, so at most one batch is in flight per socket; meanwhile changes coalesce in the feed (the latest
//! value per series). A ping left unanswered for `live.slow_client_secs` closes the socket with 4429.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;

use super::hub::{Feed, Kind};
use super::protocol::{close, message, Command, Selection, AUTH_TIMEOUT_SECS};
use crate::auth::{authenticate_key, authenticate_token, Caller, Permission};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest command a client may send.
const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// How often an open socket checks that its credentials still hold.
const RECHECK: Duration = Duration::from_secs(1);

#[utoipa::path(get, path = "/api/v1/ws/dashboard", tag = "live",
    description = "A WebSocket (protocol version 1) of the tenant's live data. Send the access token (or an API key with the `read` scope) as the first text message within 5 s. Then send `{\"type\": \"subscribe\", \"machines\": [\"press-01\"] | \"*\"}` (add `\"readings\": false` for everything but readings, as an alert inbox wants) or `unsubscribe`. The server sends JSON objects, each with `\"v\": 1` and a `type`: `ready` (after sign-in, with the statuses of every machine the caller may see), `subscribed` (the machines followed now, and whether readings come), `readings` (the latest value of each series of the subscribed machines that changed, at most one per series in each second), `alert` (raised / updated / resolved), `alert_action` (ack / snooze), `machine_status` (running / alerting / silent, for every machine the caller may see), `prediction` (remaining useful life after a cycle), `notification` (a notification about the machine's alerts recorded or its delivery status changed), `error` (a command refused; the socket stays open). Close codes: 4408 no token within 5 s; 4401 the token is invalid, expired, logged out or revoked (checked every second); 4403 the key lacks the `read` scope; 4400 a message that is not a command; 4429 the client left a ping unanswered for `live.slow_client_secs` (it did not keep up); 1001 the server is going away; 1013 the token could not be checked now (a service is unreachable), reconnect shortly. See the README.",
    responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 400, description = "Not a WebSocket upgrade request", body = crate::error::ErrorBody)))]
pub(crate) async fn dashboard(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(upgrade
        .max_message_size(MAX_COMMAND_BYTES)
        .on_upgrade(move |socket| serve(state, socket)))
}

/// The credential a socket signed in with, checked again every second.
enum Credential {
    Token(String),
    Key(String),
}

async fn sign_in(state: &AppState, text: &str) -> Result<(Caller, Credential), ApiError> {
    let text = text.trim();
    let text = text.strip_prefix("Bearer ").unwrap_or(text);
    // An access token is a JWT (three dot-separated parts); anything else is tried as an API key.
    if text.split('.').count() == 3 {
        let caller = authenticate_token(text, state).await?;
        Ok((caller, Credential::Token(text.to_owned())))
    } else {
        let caller = authenticate_key(text, state).await?;
        Ok((caller, Credential::Key(text.to_owned())))
    }
}

/// Whether the credential still holds; an outage of Redis or the database keeps the socket open.
async fn still_valid(state: &AppState, credential: &Credential) -> bool {
    let refused = |e: &ApiError| e.status() == axum::http::StatusCode::UNAUTHORIZED;
    match credential {
        Credential::Token(token) => match state.tokens().verify(token) {
            Err(_) => false,
            Ok(claims) => !state
                .auth_store()
                .is_revoked(&claims)
                .await
                .unwrap_or(false),
        },
        Credential::Key(key) => !authenticate_key(key, state)
            .await
            .is_err_and(|e| refused(&e)),
    }
}

async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    };
    // A client that reads nothing gets its close frame only while this wait lasts.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

async fn serve(state: AppState, mut socket: WebSocket) {
    let first = tokio::time::timeout(Duration::from_secs(AUTH_TIMEOUT_SECS), async {
        loop {
            match socket.recv().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let text = match first {
        Err(_) => return close_with(socket, close::AUTH_TIMEOUT, "no token within 5 s").await,
        Ok(None) => return,
        Ok(Some(text)) => text,
    };
    let (caller, credential) = match sign_in(&state, text.as_str()).await {
        Ok(signed) => signed,
        Err(e) if e.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            return close_with(
                socket,
                close::TRY_AGAIN_LATER,
                "the token cannot be checked now; reconnect shortly",
            )
            .await
        }
        Err(e) => return close_with(socket, close::UNAUTHORIZED, e.message()).await,
    };
    if !caller.allows(Permission::Read) {
        return close_with(socket, close::FORBIDDEN, "the key lacks the read scope").await;
    }
    let live = state.live().clone();
    let (feed, fresh) = live.hub.join(caller.tenant_id);
    if fresh {
        super::load_statuses(&state, &feed).await;
    }
    let mut session = Session {
        state,
        caller,
        credential,
        feed,
        subscribed: Subscribed::None,
        readings: true,
        sent: 0,
        ping: None,
        pings: 0,
        slow_after: Duration::from_secs(live.slow_client_secs),
    };
    match session.run(&mut socket).await {
        Ok(()) => {}
        Err((code, reason)) => close_with(socket, code, reason).await,
    }
}

/// A `readings` message of values serialized once by the hub, for every socket that sends them.
fn readings_message(readings: &[Arc<str>], resync: bool) -> String {
    let size: usize = readings.iter().map(|r| r.len() + 1).sum();
    let mut text = String::with_capacity(size + 64);
    text.push_str(&format!(
        "{{\"v\":{},\"type\":\"readings\",\"resync\":{resync},\"readings\":[",
        super::protocol::VERSION
    ));
    for (i, r) in readings.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(r);
    }
    text.push_str("]}");
    text
}

/// The machines a socket follows.
enum Subscribed {
    None,
    All,
    Some(HashSet<Uuid>),
}

type Closing = (u16, &'static str);

struct Session {
    state: AppState,
    caller: Caller,
    credential: Credential,
    feed: Arc<Feed>,
    subscribed: Subscribed,
    /// Whether the socket wants `readings` messages (a subscribe's `readings`).
    readings: bool,
    /// The feed's number up to which this socket has been sent everything.
    sent: u64,
    /// The outstanding ping: its number and when it left.
    ping: Option<(u64, Instant)>,
    pings: u64,
    slow_after: Duration,
}

impl Session {
    async fn run(&mut self, socket: &mut WebSocket) -> Result<(), Closing> {
        let mut wake = self.feed.subscribe();
        let statuses: Vec<serde_json::Value> = {
            let state = self.feed.lock();
            self.sent = state.seq();
            let mut all: Vec<_> = state
                .statuses
                .iter()
                .filter(|(m, _)| self.caller.may_access(**m))
                .map(|(m, s)| json!({ "machine": s.name, "machine_id": m, "status": s.status, "open_alerts": s.open_alerts }))
                .collect();
            all.sort_by(|a, b| a["machine"].as_str().cmp(&b["machine"].as_str()));
            all
        };
        self.send(
            socket,
            message(
                "ready",
                json!({ "tenant_id": self.caller.tenant_id, "machines": statuses }),
            ),
        )
        .await?;
        let mut check = tokio::time::interval(RECHECK);
        loop {
            tokio::select! {
                changed = wake.changed(), if self.ping.is_none() => {
                    if changed.is_err() {
                        return Err((close::GOING_AWAY, "the server is going away"));
                    }
                    self.flush(socket).await?;
                }
                incoming = socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(Message::Pong(payload))) => {
                        if self.ping.is_some_and(|(n, _)| payload.as_ref() == n.to_be_bytes()) {
                            self.ping = None;
                            // What changed meanwhile goes out at once.
                            self.flush(socket).await?;
                        }
                    }
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Text(text))) => self.command(socket, text.as_str()).await?,
                    Some(Ok(Message::Binary(_))) => return Err((close::BAD_MESSAGE, "binary messages are not commands")),
                },
                _ = check.tick() => {
                    if !still_valid(&self.state, &self.credential).await {
                        return Err((close::UNAUTHORIZED, "the token expired or was revoked"));
                    }
                    if self.ping.is_some_and(|(_, at)| at.elapsed() >= self.slow_after) {
                        return Err((close::TOO_SLOW, "the client did not keep up"));
                    }
                }
            }
        }
    }

    async fn send(&mut self, socket: &mut WebSocket, text: String) -> Result<(), Closing> {
        match tokio::time::timeout(self.slow_after, socket.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err((close::GOING_AWAY, "the connection failed")),
            Err(_) => Err((close::TOO_SLOW, "the client did not keep up")),
        }
    }

    fn follows(&self, machine: Uuid) -> bool {
        match &self.subscribed {
            Subscribed::None => false,
            Subscribed::All => self.caller.may_access(machine),
            Subscribed::Some(set) => set.contains(&machine),
        }
    }

    /// Sends what changed since `sent`, then a ping.
    async fn flush(&mut self, socket: &mut WebSocket) -> Result<(), Closing> {
        let changes = {
            let state = self.feed.lock();
            state.changes(self.sent, |machine, kind| match kind {
                Kind::Status => self.caller.may_access(machine),
                Kind::Event => self.follows(machine),
                Kind::Reading => self.readings && self.follows(machine),
            })
        };
        self.sent = changes.seq;
        if changes.readings.is_empty() && changes.messages.is_empty() {
            return Ok(());
        }
        for (_, text, _) in &changes.messages {
            self.send(socket, text.to_string()).await?;
        }
        if !changes.readings.is_empty() {
            let text = readings_message(&changes.readings, changes.resync);
            self.send(socket, text).await?;
        }
        self.pings += 1;
        let n = self.pings;
        socket
            .send(Message::Ping(n.to_be_bytes().to_vec().into()))
            .await
            .map_err(|_| (close::GOING_AWAY, "the connection failed"))?;
        self.ping = Some((n, Instant::now()));
        Ok(())
    }

    async fn command(&mut self, socket: &mut WebSocket, text: &str) -> Result<(), Closing> {
        let command: Command = match serde_json::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let reply = message(
                    "error",
                    json!({ "code": "bad_command", "message": format!("not a command: {e}") }),
                );
                return self.send(socket, reply).await;
            }
        };
        let (subscribe, selection) = match command {
            Command::Subscribe { machines, readings } => {
                self.readings = readings;
                (true, machines)
            }
            Command::Unsubscribe { machines } => (false, machines),
        };
        let ids = match selection {
            Selection::All(star) if star == "*" => None,
            Selection::All(other) => {
                let reply = message(
                    "error",
                    json!({ "code": "bad_command", "message": format!("machines must be a list of names or \"*\", not `{other}`") }),
                );
                return self.send(socket, reply).await;
            }
            Selection::Names(names) => match self.resolve(&names).await {
                Ok(ids) => Some(ids),
                Err(reply) => return self.send(socket, reply).await,
            },
        };
        let newly: Vec<Uuid> = match (subscribe, ids) {
            (true, None) => {
                self.subscribed = Subscribed::All;
                Vec::new()
            }
            (false, None) => {
                self.subscribed = Subscribed::None;
                Vec::new()
            }
            (true, Some(ids)) => {
                let mut set = match std::mem::replace(&mut self.subscribed, Subscribed::None) {
                    Subscribed::Some(set) => set,
                    Subscribed::None => HashSet::new(),
                    Subscribed::All => ids.iter().copied().collect(),
                };
                set.extend(ids.iter().copied());
                self.subscribed = Subscribed::Some(set);
                ids
            }
            (false, Some(ids)) => {
                if let Subscribed::Some(set) = &mut self.subscribed {
                    set.retain(|m| !ids.contains(m));
                }
                Vec::new()
            }
        };
        let following = match &self.subscribed {
            Subscribed::None => json!([]),
            Subscribed::All => json!("*"),
            Subscribed::Some(set) => json!(set.iter().collect::<Vec<_>>()),
        };
        self.send(
            socket,
            message(
                "subscribed",
                json!({ "machines": following, "readings": self.readings }),
            ),
        )
        .await?;
        // The latest values of the machines just followed, so a chart starts at once.
        let latest = if self.readings {
            self.feed.lock().latest(|m| newly.contains(&m))
        } else {
            Vec::new()
        };
        if !latest.is_empty() {
            self.send(socket, readings_message(&latest, false)).await?;
        }
        Ok(())
    }

    /// The ids of the named machines of the caller's tenant that it may see; an error message naming the
    /// others (another tenant's machine is as unknown as one that does not exist).
    async fn resolve(&self, names: &[String]) -> Result<Vec<Uuid>, String> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, name FROM machines WHERE tenant_id = $1 AND name = ANY($2)",
        )
        .bind(self.caller.tenant_id)
        .bind(names)
        .fetch_all(self.state.pool())
        .await
        .map_err(|_| {
            message(
                "error",
                json!({ "code": "unavailable", "message": "the machines cannot be looked up; retry" }),
            )
        })?;
        let visible: Vec<(Uuid, String)> = rows
            .into_iter()
            .filter(|(id, _)| self.caller.may_access(*id))
            .collect();
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| !visible.iter().any(|(_, v)| v == *n))
            .collect();
        if unknown.is_empty() {
            Ok(visible.into_iter().map(|(id, _)| id).collect())
        } else {
            Err(message(
                "error",
                json!({ "code": "unknown_machine", "message": "no such machine", "machines": unknown }),
            ))
        }
    }
}
