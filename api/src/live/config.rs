//! Settings of the dashboard socket (`[live]`, `HALTLESS__LIVE__*`).

use serde::Deserialize;

/// The dashboard socket's pace and patience.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Window of the socket (milliseconds): each series goes out at most once per window.
    pub series_interval_ms: u64,
    /// How often the hub publishes what is due and wakes sockets (milliseconds).
    pub tick_ms: u64,
    /// How often machine statuses are recomputed for tenants with an open socket (milliseconds).
    pub status_interval_ms: u64,
    /// A socket that leaves a ping unanswered this long (it does not read what it is sent) is closed with
    /// 4429 (seconds).
    pub slow_client_secs: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            series_interval_ms: 1_000,
            tick_ms: 100,
            status_interval_ms: 2_000,
            slow_client_secs: 10,
        }
    }
}
