//! The per-instance hub of live data: one feed per tenant that has a socket open on this instance.
//!
//! A feed holds the latest value of each series (machine, metric) and a bounded log of what changed, each
//! entry numbered. Readings only overwrite the latest value; a ticker publishes a series at most once in
//! each window of `live.series_interval_ms` and wakes the tenant's sockets, which read the log from the number they last
//! sent. So the hub's work grows with readings and series, a socket's with the series it follows, and
//! nothing grows with clients × readings. A socket that fell behind the log is sent the latest values
//! whole (coalesced). Alert transitions, actions and machine status changes are entries of the same log.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use haltless_schemas::actions::{Action, AlertAction};
use haltless_schemas::predictions::PredictionRecord;
use haltless_schemas::{AlertRecord, Quality, ReadingBatch};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use super::protocol::{message, LiveReading};
use crate::time::format_instant;

/// Entries a feed's log keeps; a socket further behind gets the latest values whole.
pub const LOG_CAPACITY: usize = 8192;

/// A series: (machine, metric).
pub type SeriesKey = (Uuid, String);

/// What a log entry says changed.
#[derive(Debug, Clone)]
pub enum Entry {
    /// The series' value as published, serialized once for every socket.
    Series(SeriesKey, Arc<str>),
    /// An alert transition or action of a machine, for the sockets subscribed to it.
    Event(Uuid, Arc<str>),
    /// A machine's status changed, for every socket that may see the machine.
    Status(Uuid, Arc<str>),
    /// A notification about alerts of these machines: for the sockets that follow one of them and may
    /// see all of them (as `GET /notifications` shows a restricted caller only what it may see whole).
    Notice(Arc<[Uuid]>, Arc<str>),
}

#[derive(Debug)]
struct Series {
    machine: String,
    ts_ms: i64,
    value: f64,
    quality: Option<Quality>,
    /// The window (see [`window`]) it was last published in.
    published_in: Option<u128>,
    /// The value last published, as the JSON object a `readings` message lists.
    published: Option<Arc<str>>,
    pending: bool,
}

/// A machine's status as the fleet shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Name.
    pub name: String,
    /// `running`, `alerting` or `silent`.
    pub status: &'static str,
    /// Open alerts.
    pub open_alerts: i64,
}

/// The live state of one tenant.
#[derive(Debug, Default)]
pub struct FeedState {
    seq: u64,
    series: HashMap<SeriesKey, Series>,
    pending: Vec<SeriesKey>,
    events: Vec<Entry>,
    log: VecDeque<(u64, Entry)>,
    /// The machine of each alert seen, for the actions (which name only the alert).
    alert_machines: HashMap<Uuid, Uuid>,
    /// The status of every active machine, once loaded.
    pub statuses: HashMap<Uuid, Status>,
}

/// What a socket reads from a feed since the number it last sent.
#[derive(Debug, Default)]
pub struct Changes {
    /// The number to read from next time.
    pub seq: u64,
    /// Latest published values of changed series (one per series), as JSON objects.
    pub readings: Vec<Arc<str>>,
    /// Events and status messages, in order, with the machine each is about and whether it is a status.
    pub messages: Vec<(Uuid, Arc<str>, bool)>,
    /// The socket was behind the log: `readings` holds every series, and statuses are whole.
    pub resync: bool,
}

/// What a feed entry is, for a socket to choose what it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A series' latest value (`readings` messages).
    Reading,
    /// An alert transition, an action, a prediction or a notification about a machine.
    Event,
    /// A machine's status.
    Status,
}

impl FeedState {
    /// The entries after `since` that `wanted` (machine, kind) keeps: readings coalesced by series.
    pub fn changes(&self, since: u64, wanted: impl Fn(Uuid, Kind) -> bool) -> Changes {
        let mut out = Changes {
            seq: self.seq,
            ..Changes::default()
        };
        if since >= self.seq {
            return out;
        }
        let first = self.log.front().map_or(self.seq + 1, |(s, _)| *s);
        if since + 1 < first {
            out.resync = true;
            for (key, series) in &self.series {
                if let Some(text) = series
                    .published
                    .as_ref()
                    .filter(|_| wanted(key.0, Kind::Reading))
                {
                    out.readings.push(text.clone());
                }
            }
            for (machine, status) in &self.statuses {
                if wanted(*machine, Kind::Status) {
                    out.messages
                        .push((*machine, status_message(*machine, status, None), true));
                }
            }
            return out;
        }
        let start = self.log.partition_point(|(s, _)| *s <= since);
        // Newest first, so that a series published twice since is sent once, with its newer value.
        let mut seen = std::collections::HashSet::new();
        for (_, entry) in self.log.range(start..).rev() {
            if let Entry::Series(key, text) = entry {
                if wanted(key.0, Kind::Reading) && seen.insert(key) {
                    out.readings.push(text.clone());
                }
            }
        }
        for (_, entry) in self.log.range(start..) {
            match entry {
                Entry::Event(machine, text) if wanted(*machine, Kind::Event) => {
                    out.messages.push((*machine, text.clone(), false))
                }
                Entry::Status(machine, text) if wanted(*machine, Kind::Status) => {
                    out.messages.push((*machine, text.clone(), true))
                }
                Entry::Notice(machines, text)
                    if machines.iter().all(|m| wanted(*m, Kind::Status))
                        && machines.iter().any(|m| wanted(*m, Kind::Event)) =>
                {
                    out.messages.push((machines[0], text.clone(), false))
                }
                _ => {}
            }
        }
        out
    }

    /// The latest value of every series of the machines `wanted` keeps.
    pub fn latest(&self, wanted: impl Fn(Uuid) -> bool) -> Vec<Arc<str>> {
        self.series
            .iter()
            .filter(|(key, _)| wanted(key.0))
            .filter_map(|(_, s)| s.published.clone())
            .collect()
    }

    /// The number of the newest entry.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn push(&mut self, entry: Entry) {
        self.seq += 1;
        self.log.push_back((self.seq, entry));
        while self.log.len() > LOG_CAPACITY {
            self.log.pop_front();
        }
    }

    /// Publishes what is due; true when anything was.
    fn publish(&mut self, now: Instant, interval: Duration) -> bool {
        let before = self.seq;
        for entry in std::mem::take(&mut self.events) {
            self.push(entry);
        }
        let mut waiting = Vec::new();
        let current = window(now, interval);
        for key in std::mem::take(&mut self.pending) {
            let Some(s) = self.series.get_mut(&key) else {
                continue;
            };
            if s.published_in == Some(current) {
                waiting.push(key);
                continue;
            }
            let text: Arc<str> = serde_json::to_string(&reading(&key, s))
                .unwrap_or_default()
                .into();
            s.published_in = Some(current);
            s.published = Some(text.clone());
            s.pending = false;
            self.push(Entry::Series(key, text));
        }
        self.pending = waiting;
        self.seq != before
    }

    /// Replaces the statuses with `now`, logging each change.
    pub fn set_statuses(&mut self, now: HashMap<Uuid, Status>) {
        for (machine, status) in &now {
            let previous = self.statuses.get(machine);
            if previous != Some(status) {
                let text = status_message(*machine, status, previous.map(|p| p.status));
                self.events.push(Entry::Status(*machine, text));
            }
        }
        self.statuses = now;
    }
}

/// The number of the `interval`-long window `at` falls in, counted from the first call in this process.
///
/// A series goes out at most once per window, and at once when it has not gone out in the current one.
/// Windows rather than a minimum spacing: with a spacing, a series read once per interval would wait for
/// the spacing after every publication and keep the delay it once had (a 1 Hz series would lag by up
/// to a second for good); in fixed windows each reading of it goes out as it arrives.
fn window(at: Instant, interval: Duration) -> u128 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| at);
    at.saturating_duration_since(start).as_nanos() / interval.as_nanos().max(1)
}

fn reading(key: &SeriesKey, s: &Series) -> LiveReading {
    LiveReading {
        machine: s.machine.clone(),
        machine_id: key.0,
        metric: key.1.clone(),
        ts: chrono::DateTime::from_timestamp_millis(s.ts_ms)
            .map(format_instant)
            .unwrap_or_default(),
        value: s.value,
        quality: s.quality.map(|q| match q {
            Quality::Good => "good",
            Quality::Uncertain => "uncertain",
            Quality::Bad => "bad",
        }),
    }
}

fn status_message(machine: Uuid, s: &Status, previous: Option<&str>) -> Arc<str> {
    message(
        "machine_status",
        json!({ "machine": s.name, "machine_id": machine, "status": s.status,
                "previous": previous, "open_alerts": s.open_alerts }),
    )
    .into()
}

/// One tenant's feed: its state and the signal that wakes its sockets.
#[derive(Debug)]
pub struct Feed {
    /// The tenant.
    pub tenant: Uuid,
    state: Mutex<FeedState>,
    wake: watch::Sender<u64>,
}

impl Feed {
    /// The state, even after a panic elsewhere poisoned the lock (it holds only plain data).
    pub fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver woken whenever entries are published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}

/// What the sockets of this instance share (in [`crate::state::AppState`]).
#[derive(Debug, Clone)]
pub struct Live {
    /// The hub.
    pub hub: Arc<Hub>,
    /// `live.slow_client_secs`.
    pub slow_client_secs: u64,
}

impl Live {
    /// An empty hub.
    pub fn new(config: &super::config::LiveConfig) -> Self {
        Self {
            hub: Arc::new(Hub::default()),
            slow_client_secs: config.slow_client_secs.max(1),
        }
    }
}

/// Every feed of this instance.
#[derive(Debug, Default)]
pub struct Hub {
    feeds: Mutex<HashMap<Uuid, Weak<Feed>>>,
}

impl Hub {
    fn feeds(&self) -> MutexGuard<'_, HashMap<Uuid, Weak<Feed>>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's feed, made when its first socket opens; it lives while a socket holds it. The bool
    /// is true when it was just made (its statuses are still to load).
    pub fn join(&self, tenant: Uuid) -> (Arc<Feed>, bool) {
        let mut feeds = self.feeds();
        if let Some(feed) = feeds.get(&tenant).and_then(Weak::upgrade) {
            return (feed, false);
        }
        let feed = Arc::new(Feed {
            tenant,
            state: Mutex::new(FeedState::default()),
            wake: watch::channel(0).0,
        });
        feeds.insert(tenant, Arc::downgrade(&feed));
        (feed, true)
    }

    fn feed(&self, tenant: Uuid) -> Option<Arc<Feed>> {
        self.feeds().get(&tenant).and_then(Weak::upgrade)
    }

    /// Whether a socket of `tenant` is open on this instance (else its readings need not even be decoded).
    pub fn watches(&self, tenant: Uuid) -> bool {
        self.feed(tenant).is_some()
    }

    /// The feeds with sockets open, forgetting the others.
    pub fn live_feeds(&self) -> Vec<Arc<Feed>> {
        let mut feeds = self.feeds();
        feeds.retain(|_, f| f.strong_count() > 0);
        feeds.values().filter_map(Weak::upgrade).collect()
    }

    /// Records a batch's readings as the latest values of their series.
    pub fn on_readings(&self, batch: &ReadingBatch) {
        let Some(feed) = self.feed(batch.tenant_id) else {
            return;
        };
        let mut state = feed.lock();
        let state = &mut *state;
        for r in &batch.readings {
            let key = (batch.machine_id, r.metric.clone());
            let series = state.series.entry(key.clone()).or_insert_with(|| Series {
                machine: batch.machine.clone(),
                ts_ms: i64::MIN,
                value: 0.0,
                quality: None,
                published_in: None,
                published: None,
                pending: false,
            });
            // Late readings (older than the value shown) do not replace it.
            if r.event_time_ms < series.ts_ms {
                continue;
            }
            series.ts_ms = r.event_time_ms;
            series.value = r.value;
            series.quality = r.quality;
            series.machine.clone_from(&batch.machine);
            if !series.pending {
                series.pending = true;
                state.pending.push(key);
            }
        }
    }

    /// Records an alert transition.
    pub fn on_alert(&self, alert: &AlertRecord) {
        let Some(feed) = self.feed(alert.tenant_id) else {
            return;
        };
        let transition = match alert.transition {
            haltless_schemas::alerts::Transition::Raised => "raised",
            haltless_schemas::alerts::Transition::Updated => "updated",
            haltless_schemas::alerts::Transition::Resolved => "resolved",
        };
        let severity = match alert.severity {
            haltless_schemas::alerts::Severity::Info => "info",
            haltless_schemas::alerts::Severity::Warning => "warning",
            haltless_schemas::alerts::Severity::Critical => "critical",
        };
        let at = chrono::DateTime::from_timestamp_millis(alert.event_time_ms).map(format_instant);
        let text = message(
            "alert",
            json!({ "transition": transition, "alert": {
                "id": alert.alert_id, "machine": alert.machine, "machine_id": alert.machine_id,
                "rule_id": alert.rule_id, "rule_name": alert.rule_name, "severity": severity,
                "detector": alert.detector, "metric": alert.metric, "observed": alert.observed,
                "expected": alert.expected, "at": at } }),
        );
        let mut state = feed.lock();
        state
            .alert_machines
            .insert(alert.alert_id, alert.machine_id);
        state
            .events
            .push(Entry::Event(alert.machine_id, text.into()));
    }

    /// The machine of an alert this hub saw, if it did.
    pub fn alert_machine(&self, tenant: Uuid, alert: Uuid) -> Option<Option<Uuid>> {
        let feed = self.feed(tenant)?;
        let machine = feed.lock().alert_machines.get(&alert).copied();
        Some(machine)
    }

    /// Records an acknowledgement or snooze of an alert of `machine`.
    pub fn on_action(&self, action: &AlertAction, machine: Uuid) {
        let Some(feed) = self.feed(action.tenant_id) else {
            return;
        };
        let at = chrono::DateTime::from_timestamp_millis(action.at_ms).map(format_instant);
        let (kind, until) = match &action.action {
            Action::Ack => ("ack", None),
            Action::Snooze { until_ms } => (
                "snooze",
                chrono::DateTime::from_timestamp_millis(*until_ms).map(format_instant),
            ),
        };
        let text = message(
            "alert_action",
            json!({ "action": kind, "alert_id": action.alert_id, "machine_id": machine,
                    "by": action.by, "at": at, "until": until }),
        );
        let mut state = feed.lock();
        state.alert_machines.insert(action.alert_id, machine);
        state.events.push(Entry::Event(machine, text.into()));
    }

    /// Records a remaining-useful-life prediction.
    pub fn on_prediction(&self, p: &PredictionRecord) {
        let Some(feed) = self.feed(p.tenant_id) else {
            return;
        };
        let at = chrono::DateTime::from_timestamp_millis(p.event_time_ms).map(format_instant);
        let contributors: Vec<_> = p
            .contributors
            .iter()
            .map(|(sensor, effect)| json!({ "sensor": sensor, "effect": effect }))
            .collect();
        let text = message(
            "prediction",
            json!({ "machine": p.machine, "machine_id": p.machine_id, "at": at, "cycle": p.cycle,
                    "rul": p.rul, "lower": p.lower, "upper": p.upper, "interval": p.interval,
                    "health": p.health, "model_id": p.model_id, "model_version": p.model_version,
                    "contributors": contributors }),
        );
        feed.lock()
            .events
            .push(Entry::Event(p.machine_id, text.into()));
    }

    /// Records a notification (`view`, as `GET /notifications/{id}` shows it) about alerts of `machines`.
    pub fn on_notification(&self, tenant: Uuid, machines: Vec<Uuid>, view: serde_json::Value) {
        let Some(feed) = self.feed(tenant) else {
            return;
        };
        if machines.is_empty() {
            return;
        }
        let text = message("notification", json!({ "notification": view }));
        feed.lock()
            .events
            .push(Entry::Notice(machines.into(), text.into()));
    }

    /// Publishes what is due in every feed and wakes the sockets of those that changed.
    pub fn tick(&self, interval: Duration) {
        self.tick_at(Instant::now(), interval);
    }

    fn tick_at(&self, now: Instant, interval: Duration) {
        for feed in self.live_feeds() {
            let published = {
                let mut state = feed.lock();
                state.publish(now, interval).then_some(state.seq)
            };
            if let Some(seq) = published {
                feed.wake.send_replace(seq);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use haltless_schemas::{Reading, Source};

    use super::*;

    fn batch(tenant: Uuid, machine: Uuid, values: &[(i64, f64)]) -> ReadingBatch {
        ReadingBatch {
            tenant_id: tenant,
            machine_id: machine,
            machine: "m-1".into(),
            source: Source::Gateway,
            ingest_time_ms: 0,
            readings: values
                .iter()
                .map(|(ts, v)| Reading {
                    metric: "temp".into(),
                    event_time_ms: *ts,
                    value: *v,
                    quality: None,
                })
                .collect(),
        }
    }

    fn value(text: &str) -> f64 {
        serde_json::from_str::<serde_json::Value>(text).unwrap()["value"]
            .as_f64()
            .unwrap()
    }

    #[test]
    fn a_series_goes_out_at_most_once_per_window_with_its_latest_value() {
        let hub = Hub::default();
        let (tenant, machine) = (Uuid::new_v4(), Uuid::new_v4());
        let (feed, _) = hub.join(tenant);
        let interval = Duration::from_millis(200);
        // Just after a window starts (so that half an interval later is the same window).
        let mut t = Instant::now();
        let w = window(t, interval);
        while window(t, interval) == w {
            t += interval / 10;
        }
        hub.on_readings(&batch(tenant, machine, &[(1, 1.0), (2, 2.0)]));
        hub.tick_at(t, interval);
        let first = feed.lock().changes(0, |_, _| true);
        assert_eq!(first.readings.len(), 1);
        assert_eq!(value(&first.readings[0]), 2.0);
        // Within the window, newer values wait, then the newest goes out once in the next.
        hub.on_readings(&batch(tenant, machine, &[(3, 3.0)]));
        hub.on_readings(&batch(tenant, machine, &[(4, 4.0), (0, 9.0)]));
        hub.tick_at(t + interval / 2, interval);
        assert!(feed
            .lock()
            .changes(first.seq, |_, _| true)
            .readings
            .is_empty());
        hub.tick_at(t + interval, interval);
        let second = feed.lock().changes(first.seq, |_, _| true);
        assert_eq!(second.readings.len(), 1);
        assert_eq!(
            value(&second.readings[0]),
            4.0,
            "the latest, not the late one"
        );
        // A reading in a window where its series has not gone out yet goes out at once.
        hub.on_readings(&batch(tenant, machine, &[(5, 5.0)]));
        hub.tick_at(t + interval * 2, interval);
        let third = feed.lock().changes(second.seq, |_, _| true);
        assert_eq!(third.readings.len(), 1);
        // Another tenant's socket sees nothing of it.
        let (other, _) = hub.join(Uuid::new_v4());
        assert_eq!(other.lock().changes(0, |_, _| true).readings.len(), 0);
    }

    #[test]
    fn a_reader_behind_the_log_gets_every_series_once() {
        let hub = Hub::default();
        let tenant = Uuid::new_v4();
        let (feed, _) = hub.join(tenant);
        for i in 0..(LOG_CAPACITY + 10) {
            hub.on_readings(&batch(tenant, Uuid::new_v4(), &[(1, i as f64)]));
        }
        hub.tick(Duration::from_secs(1));
        let changes = feed.lock().changes(0, |_, _| true);
        assert!(changes.resync);
        assert_eq!(changes.readings.len(), LOG_CAPACITY + 10);
    }
}
