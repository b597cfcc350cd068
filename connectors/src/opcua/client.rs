//! The OPC-UA client of one source, on `async-opcua`: a session per source, then either periodic reads
//! of every node or a subscription whose monitored items report changes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::opcua::client::{
    ClientBuilder, DataChangeCallback, IdentityToken, MonitoredItem, MonitoredItemMap,
    OnSubscriptionNotificationCore, Password, Session,
};
use ::opcua::crypto::SecurityPolicy;
use ::opcua::types::{
    DataValue, EndpointDescription, MessageSecurityMode, MonitoredItemCreateRequest, NodeId,
    NotificationMessage, ReadValueId, StatusCode, TimestampsToReturn, UserTokenType, Variant,
};
use futures::future::BoxFuture;
use haltless_schemas::outbound::{split_host_port, OutboundPolicy};
use haltless_schemas::{Quality, Reading};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{interval, timeout, timeout_at, Instant, Interval, MissedTickBehavior};

use super::config::{OpcUaAuth, OpcUaPoint, OpcUaSettings};
use crate::source::outbound::resolve_checked;
use crate::source::{CertificateTrust, Connection, Device, PointReading, PollOutcome, SourceError};

/// Publishing intervals without a change after which the server sends a keep-alive: a subscription that
/// sends neither a change nor a keep-alive for this many intervals (plus the timeout) is dead.
const KEEP_ALIVE_COUNT: u32 = 3;

/// When the subscription last said anything (a change or a keep-alive).
type LastHeard = Arc<Mutex<Instant>>;

fn heard(last: &LastHeard) -> Instant {
    *last.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A subscription callback that notes every notification, keep-alives included (which carry no data and
/// never reach a data change callback), before handing it on.
struct NoteHeard<C> {
    inner: C,
    last: LastHeard,
}

impl<C: OnSubscriptionNotificationCore> OnSubscriptionNotificationCore for NoteHeard<C> {
    fn on_subscription_notification(
        &mut self,
        notification: NotificationMessage,
        monitored_items: MonitoredItemMap<'_>,
    ) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.inner
            .on_subscription_notification(notification, monitored_items);
    }
}

/// Changes a subscription may hold before they are taken: past it, further changes are dropped and
/// counted (a server flooding changes must not grow the poller's memory without end).
const MAX_PENDING_CHANGES: usize = 20_000;

/// A live subscription: its changes by point index, when it last said anything, and how many changes
/// were dropped because the queue was full.
struct Subscription {
    changes: mpsc::Receiver<(usize, DataValue)>,
    last_heard: LastHeard,
    dropped: Arc<AtomicU64>,
}

/// An open session and what runs it.
struct Connected {
    session: Arc<Session>,
    event_loop: JoinHandle<StatusCode>,
    /// The subscription (subscription mode only).
    subscription: Option<Subscription>,
}

/// One OPC-UA server and the nodes read from it.
pub struct OpcUaDevice {
    endpoint: String,
    settings: OpcUaSettings,
    outbound: Arc<OutboundPolicy>,
    trust: Option<CertificateTrust>,
    state_dir: Option<PathBuf>,
    timeout: Duration,
    poll_interval: Duration,
    points: Vec<OpcUaPoint>,
    node_ids: Vec<NodeId>,
    ticker: Option<Interval>,
    connected: Option<Connected>,
}

impl OpcUaDevice {
    /// A device at `connection.endpoint` with `settings`, serving `points`.
    pub fn new(connection: Connection, settings: OpcUaSettings, points: Vec<OpcUaPoint>) -> Self {
        // The definition was checked; a node id the crate still refuses fails at connect time.
        let node_ids = points
            .iter()
            .map(|p| NodeId::from_str(&p.node_id).unwrap_or_else(|_| NodeId::null()))
            .collect();
        Self {
            endpoint: connection.endpoint,
            settings,
            outbound: connection.outbound,
            trust: connection.trust,
            state_dir: connection.state_dir,
            timeout: connection.timeout,
            poll_interval: connection.poll_interval,
            points,
            node_ids,
            ticker: None,
            connected: None,
        }
    }

    fn connect_error(&self, message: impl std::fmt::Display) -> SourceError {
        SourceError::Connect {
            endpoint: self.endpoint.clone(),
            message: message.to_string(),
        }
    }

    /// The library's error as its status code only: its context holds the address connected to and the
    /// operating system's text.
    fn library_error(&self, e: &::opcua::types::Error) -> SourceError {
        self.connect_error(e.status())
    }

    /// The endpoint URL with its host replaced by the first address the outbound policy allows, so that
    /// the library connects where the policy looked and never resolves the name again.
    async fn checked_url(&self) -> Result<String, SourceError> {
        let rest = self.endpoint.strip_prefix("opc.tcp://").unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match split_host_port(authority) {
            Some(hp) => hp,
            // No port: OPC-UA's registered one.
            None => (
                authority.trim_start_matches('[').trim_end_matches(']'),
                4840,
            ),
        };
        let addrs =
            resolve_checked(&self.outbound, &self.endpoint, host, port, self.timeout).await?;
        let addr = addrs
            .first()
            .ok_or_else(|| self.connect_error("the host name resolves to no address"))?;
        Ok(format!("opc.tcp://{addr}{path}"))
    }

    /// The client's key folder: `opcua/` in the tenant's state folder, that folder and it readable by this
    /// user only (0700), since they hold the client's private key; without a state folder, one under the
    /// system's temporary folder (the edge agent).
    fn pki_dir(&self) -> std::io::Result<PathBuf> {
        let (dir, private) = match &self.state_dir {
            Some(tenant) => {
                let dir = tenant.join("opcua");
                (dir.clone(), vec![tenant.clone(), dir])
            }
            None => {
                let dir = std::env::temp_dir().join("haltless-opcua-pki");
                (dir.clone(), vec![dir])
            }
        };
        std::fs::create_dir_all(&dir)?;
        for folder in &private {
            make_private(folder)?;
        }
        Ok(dir)
    }

    /// Opens a session (and, in subscription mode, creates the subscription and monitored items).
    pub async fn connect(&mut self) -> Result<(), SourceError> {
        if let Some(i) = self.node_ids.iter().position(NodeId::is_null) {
            return Err(SourceError::Config(format!(
                "points[{i}].node_id `{}` is not a node id",
                self.points[i].node_id
            )));
        }
        let url = self.checked_url().await?;
        let secure = self.settings.security_policy != "None";
        // The first secure client of a tenant creates its key pair; the others must not race it.
        static PKI: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let pki = PKI.lock().await;
        let pki_dir = self.pki_dir().map_err(|e| {
            tracing::error!(error = %e, "the OPC-UA client key folder cannot be made private");
            SourceError::Config("the OPC-UA client key folder cannot be created".into())
        })?;
        // The library's own trust list is not used: the server's certificate is pinned per source
        // (`CertificateTrust`), which the library's list, shared by every source, could not express.
        let client = ClientBuilder::new()
            .application_name("Haltless")
            .application_uri("urn:haltless:connectors")
            .product_uri("urn:haltless")
            .pki_dir(pki_dir)
            .create_sample_keypair(secure)
            .trust_server_certs(true)
            .session_retry_limit(0)
            .request_timeout(self.timeout)
            .session_timeout(60_000)
            .client()
            .map_err(|e| SourceError::Config(format!("OPC-UA client: {}", e.join("; "))));
        drop(pki);
        let mut client = client?;
        let mode = match self.settings.security_mode.as_str() {
            "Sign" => MessageSecurityMode::Sign,
            "SignAndEncrypt" => MessageSecurityMode::SignAndEncrypt,
            _ => MessageSecurityMode::None,
        };
        let identity = match &self.settings.auth {
            OpcUaAuth::Anonymous => IdentityToken::Anonymous,
            OpcUaAuth::UserPassword { username, password } => {
                IdentityToken::UserName(username.clone(), Password::new(password.clone()))
            }
        };
        let ms = self.timeout.as_millis() as u64;
        let endpoints = timeout(
            self.timeout,
            client.get_server_endpoints_from_url(url.as_str()),
        )
        .await
        .map_err(|_| SourceError::Timeout(ms))?
        .map_err(|e| self.library_error(&e))?;
        let endpoint = self.choose_endpoint(endpoints, mode, &url)?;
        if let Some(trust) = &self.trust {
            trust.check(endpoint.server_certificate.as_ref())?;
        }
        let (session, event_loop) = client
            .connect_to_endpoint_directly(endpoint, identity)
            .map_err(|e| self.library_error(&e))?;
        let mut event_loop = event_loop.spawn();
        // The session is up, or the event loop gave up (e.g. a refused login), or time ran out.
        let up = tokio::select! {
            up = timeout(self.timeout, session.wait_for_connection()) => up,
            ended = &mut event_loop => {
                let status = ended.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return Err(self.connect_error(format!("the session could not be opened: {status}")));
            }
        };
        if !matches!(up, Ok(true)) {
            event_loop.abort();
            return Err(self.connect_error(format!(
                "the session was not activated within {ms} ms (check security policy, mode, user and password)"
            )));
        }
        let mut connected = Connected {
            session,
            event_loop,
            subscription: None,
        };
        if self.settings.subscribe {
            match self.subscribe(&connected.session).await {
                Ok(subscription) => connected.subscription = Some(subscription),
                Err(e) => {
                    close(connected).await;
                    return Err(e);
                }
            }
        }
        self.connected = Some(connected);
        Ok(())
    }

    /// The server's endpoint with our security policy and mode, preferring the one whose path is ours; its
    /// address is replaced by `url` (the configured one, at the address the outbound policy checked),
    /// because servers often advertise a host name or port that is not reachable from here, and because
    /// the policy checked that address and no other.
    fn choose_endpoint(
        &self,
        endpoints: Vec<EndpointDescription>,
        mode: MessageSecurityMode,
        url: &str,
    ) -> Result<EndpointDescription, SourceError> {
        let policy = SecurityPolicy::from_str(&self.settings.security_policy)
            .unwrap_or(SecurityPolicy::Unknown);
        let path = |url: &str| {
            url.splitn(4, '/')
                .nth(3)
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned()
        };
        let ours = path(&self.endpoint);
        let offered: Vec<String> = endpoints
            .iter()
            .map(|e| {
                format!(
                    "{} {:?}",
                    e.security_policy_uri
                        .as_ref()
                        .rsplit('#')
                        .next()
                        .unwrap_or_default(),
                    e.security_mode
                )
            })
            .collect();
        let mut chosen = endpoints
            .into_iter()
            .filter(|e| e.security_mode == mode && SecurityPolicy::from_uri(e.security_policy_uri.as_ref()) == policy)
            .min_by_key(|e| path(e.endpoint_url.as_ref()) != ours)
            .ok_or_else(|| {
                SourceError::Device(format!(
                    "the server offers no endpoint with security policy {} and mode {}; it offers: {}",
                    self.settings.security_policy,
                    self.settings.security_mode,
                    offered.join(", ")
                ))
            })?;
        // Say it plainly when the endpoint refuses our kind of login: the session would otherwise end with
        // a bare `BadSecurityPolicyRejected`, the library's own explanation lost on the way.
        let (wanted, kind) = match &self.settings.auth {
            OpcUaAuth::Anonymous => (UserTokenType::Anonymous, "anonymous"),
            OpcUaAuth::UserPassword { .. } => (UserTokenType::UserName, "user name"),
        };
        if chosen.find_policy(wanted).is_none() {
            let accepted: Vec<String> = chosen
                .user_identity_tokens
                .iter()
                .flatten()
                .map(|t| format!("{:?}", t.token_type))
                .collect();
            return Err(SourceError::Device(format!(
                "the endpoint does not accept {kind} logins; it accepts: {} (set `opcua.auth`)",
                accepted.join(", ")
            )));
        }
        chosen.endpoint_url = url.into();
        Ok(chosen)
    }

    async fn subscribe(&self, session: &Session) -> Result<Subscription, SourceError> {
        let (tx, rx) = mpsc::channel(MAX_PENDING_CHANGES);
        let last_heard = Arc::new(Mutex::new(Instant::now()));
        let dropped = Arc::new(AtomicU64::new(0));
        let overflow = dropped.clone();
        let callback = NoteHeard {
            inner: DataChangeCallback::new(move |value: DataValue, item: &MonitoredItem| {
                // Client handles are point index + 1 (0 lets the crate choose).
                let index = item.client_handle().saturating_sub(1) as usize;
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send((index, value)) {
                    overflow.fetch_add(1, Ordering::Relaxed);
                }
            }),
            last: last_heard.clone(),
        };
        let ms = self.poll_interval.as_millis() as f64;
        // The lifetime count must be at least three keep-alive counts.
        let id = session
            .create_subscription(
                self.poll_interval,
                KEEP_ALIVE_COUNT * 10,
                KEEP_ALIVE_COUNT,
                0,
                0,
                true,
                callback,
            )
            .await
            .map_err(|e| SourceError::Device(format!("creating the subscription: {e}")))?;
        let items: Vec<MonitoredItemCreateRequest> = self
            .node_ids
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let mut item: MonitoredItemCreateRequest = node.clone().into();
                item.requested_parameters.client_handle = i as u32 + 1;
                item.requested_parameters.sampling_interval = ms;
                item.requested_parameters.queue_size = 100;
                item
            })
            .collect();
        let created = session
            .create_monitored_items(id, TimestampsToReturn::Both, items)
            .await
            .map_err(|e| SourceError::Device(format!("creating monitored items: {e}")))?;
        let refused: Vec<String> = created
            .iter()
            .enumerate()
            .filter(|(_, c)| c.result.status_code.is_bad())
            .map(|(i, c)| format!("{}: {}", self.points[i].node_id, c.result.status_code))
            .collect();
        if !refused.is_empty() {
            return Err(SourceError::Device(format!(
                "monitored items refused: {}",
                refused.join("; ")
            )));
        }
        Ok(Subscription {
            changes: rx,
            last_heard,
            dropped,
        })
    }

    /// The next readings: a read of every node at the polling interval, or the changes the subscription
    /// reported.
    pub async fn next(&mut self) -> Result<PollOutcome, SourceError> {
        let lost = |c: &Connected| c.event_loop.is_finished();
        if self.connected.as_ref().is_none_or(lost) {
            return Err(self.connect_error("the session was lost"));
        }
        if self.settings.subscribe {
            return self.next_changes().await;
        }
        let period = self.poll_interval;
        let ticker = self.ticker.get_or_insert_with(|| {
            let mut t = interval(period);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        ticker.tick().await;
        let Some(connected) = &self.connected else {
            return Err(self.connect_error("not connected"));
        };
        let nodes: Vec<ReadValueId> = self
            .node_ids
            .iter()
            .cloned()
            .map(ReadValueId::from)
            .collect();
        let ms = self.timeout.as_millis() as u64;
        let values = timeout(
            self.timeout,
            connected
                .session
                .read(&nodes, TimestampsToReturn::Both, 0.0),
        )
        .await
        .map_err(|_| SourceError::Timeout(ms))?
        .map_err(|e| self.connect_error(format!("read: {}", e.status())))?;
        let now = crate::now_ms();
        let mut outcome = PollOutcome::default();
        for (i, value) in values.into_iter().enumerate() {
            self.convert(i, value, now, &mut outcome);
        }
        Ok(outcome)
    }

    /// The changes the subscription reported. A subscription that says nothing, neither a change nor a
    /// keep-alive, within its window (keep-alive count + 1 publishing intervals, plus the timeout) is
    /// dead whatever the session thinks (e.g. lost in a reconnection after a TCP reset, or a frozen
    /// server): that is an error, after which the task reconnects and subscribes afresh.
    async fn next_changes(&mut self) -> Result<PollOutcome, SourceError> {
        let window = self.poll_interval * (KEEP_ALIVE_COUNT + 1) + self.timeout;
        let Some(sub) = self
            .connected
            .as_mut()
            .and_then(|c| c.subscription.as_mut())
        else {
            return Err(self.connect_error("not subscribed"));
        };
        let last = heard(&sub.last_heard);
        let mut changes = Vec::new();
        match timeout_at(last + window, sub.changes.recv()).await {
            // A keep-alive came meanwhile: nothing changed, the link is alive.
            Err(_) if heard(&sub.last_heard) > last => {}
            Err(_) => {
                return Err(SourceError::Device(format!(
                    "the subscription sent no data change and no keep-alive within {} ms; subscribing afresh",
                    window.as_millis()
                )))
            }
            Ok(None) => return Err(self.connect_error("the subscription ended")),
            Ok(Some(first)) => {
                changes.push(first);
                while let Ok(more) = sub.changes.try_recv() {
                    changes.push(more);
                }
            }
        }
        let dropped = sub.dropped.swap(0, Ordering::Relaxed);
        let now = crate::now_ms();
        let mut outcome = PollOutcome::default();
        if dropped > 0 {
            outcome.problems.push(format!(
                "{dropped} changes dropped: the server sent more than {MAX_PENDING_CHANGES} changes before they could be delivered"
            ));
        }
        for (i, value) in changes {
            if i < self.points.len() {
                self.convert(i, value, now, &mut outcome);
            }
        }
        Ok(outcome)
    }

    /// Turns a data value into a reading of point `i`, or a problem.
    fn convert(&self, i: usize, value: DataValue, now: i64, outcome: &mut PollOutcome) {
        let point = &self.points[i];
        let status = value.status.unwrap_or(StatusCode::Good);
        let name = format!("{}/{} ({})", point.machine, point.metric, point.node_id);
        if status.is_bad() {
            outcome
                .problems
                .push(format!("{name}: the server answered {status}"));
            return;
        }
        let Some(number) = value.value.as_ref().and_then(number) else {
            outcome.problems.push(format!(
                "{name}: the value {:?} is not a number or boolean",
                value.value
            ));
            return;
        };
        let ts = value
            .source_timestamp
            .or(value.server_timestamp)
            .map(|t| t.as_chrono().timestamp_millis())
            .filter(|ms| *ms > 0)
            .unwrap_or(now);
        let quality = if status.is_uncertain() {
            Quality::Uncertain
        } else {
            Quality::Good
        };
        outcome.readings.push(PointReading {
            machine: point.machine.clone(),
            reading: Reading {
                metric: point.metric.clone(),
                event_time_ms: ts,
                value: number * point.scale + point.offset,
                quality: Some(quality),
            },
        });
    }

    /// Closes the session.
    pub async fn disconnect(&mut self) {
        if let Some(connected) = self.connected.take() {
            close(connected).await;
        }
        self.ticker = None;
    }
}

/// Makes `folder` readable, writable and searchable by this user only.
fn make_private(folder: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = folder;
    Ok(())
}

async fn close(connected: Connected) {
    let _ = timeout(Duration::from_secs(2), connected.session.disconnect()).await;
    connected.event_loop.abort();
}

/// The numeric value of a scalar variant (booleans as 0 and 1).
fn number(v: &Variant) -> Option<f64> {
    Some(match v {
        Variant::Boolean(b) => f64::from(u8::from(*b)),
        Variant::SByte(x) => f64::from(*x),
        Variant::Byte(x) => f64::from(*x),
        Variant::Int16(x) => f64::from(*x),
        Variant::UInt16(x) => f64::from(*x),
        Variant::Int32(x) => f64::from(*x),
        Variant::UInt32(x) => f64::from(*x),
        Variant::Int64(x) => *x as f64,
        Variant::UInt64(x) => *x as f64,
        Variant::Float(x) => f64::from(*x),
        Variant::Double(x) => *x,
        _ => return None,
    })
}

impl Device for OpcUaDevice {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(OpcUaDevice::connect(self))
    }

    fn next(&mut self) -> BoxFuture<'_, Result<PollOutcome, SourceError>> {
        Box::pin(OpcUaDevice::next(self))
    }

    fn disconnect(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(OpcUaDevice::disconnect(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_numeric_and_boolean_variants() {
        assert_eq!(number(&Variant::Boolean(true)), Some(1.0));
        assert_eq!(number(&Variant::Int16(-3)), Some(-3.0));
        assert_eq!(number(&Variant::Float(0.5)), Some(0.5));
        assert_eq!(number(&Variant::UInt64(1 << 40)), Some((1u64 << 40) as f64));
        assert_eq!(number(&Variant::Empty), None);
    }
}
