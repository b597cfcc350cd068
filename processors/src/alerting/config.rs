//! The `alerting` settings section.

use serde::Deserialize;

/// How the alert engine schedules and delivers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// How often (ms) the engine looks for escalation steps and deliveries that are due.
    pub tick_ms: u64,
    /// Deadline (ms) of one delivery attempt, connecting included.
    pub send_timeout_ms: u64,
    /// Attempts before a notification is given up as failed (retries wait 1 s, 2 s, 4 s, ... up to
    /// `max_backoff_secs`).
    pub max_attempts: i32,
    /// Longest wait between two attempts (s).
    pub max_backoff_secs: u64,
    /// Deliveries in flight at once in one process, over all channels (each channel also has its own
    /// limit, `max_concurrency`): what bounds the engine's memory however far receivers fall behind.
    pub max_in_flight: usize,
    /// How often (s) a muted alert is looked at again, so it notifies soon after its silence or
    /// maintenance ends.
    pub mute_recheck_secs: u64,
    /// How often (s) the connectivity watchdog looks for machines gone silent (each tenant's
    /// `silent_after_minutes` says when a machine is silent).
    pub watchdog_secs: u64,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            tick_ms: 200,
            send_timeout_ms: 10_000,
            max_attempts: 8,
            max_backoff_secs: 300,
            max_in_flight: 256,
            mute_recheck_secs: 10,
            watchdog_secs: 15,
        }
    }
}
