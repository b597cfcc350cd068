//! What a source's task tells about its health: last successful poll, last error, readings per minute.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The health of one source, updated by its task and read by whoever publishes it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// Whether the last poll succeeded fully.
    pub healthy: bool,
    /// When the last poll that brought readings succeeded fully (ms since the epoch): the last reading
    /// received, not the last time nothing went wrong.
    pub last_success_ms: Option<i64>,
    /// The last error, kept after recovery so that it can still be read.
    pub last_error: Option<String>,
    /// When the last error happened (ms since the epoch).
    pub last_error_ms: Option<i64>,
    /// Readings delivered since the task started.
    pub readings_total: u64,
    #[serde(skip)]
    recent: VecDeque<(i64, u64)>,
}

impl SourceStatus {
    /// Records a poll at `now_ms` that delivered `readings`, with an optional problem.
    pub fn record(&mut self, now_ms: i64, readings: usize, problem: Option<String>) {
        if readings > 0 {
            self.readings_total += readings as u64;
            self.recent.push_back((now_ms, readings as u64));
        }
        self.trim(now_ms);
        match problem {
            None => {
                self.healthy = true;
                if readings > 0 {
                    self.last_success_ms = Some(now_ms);
                }
            }
            Some(message) => {
                self.healthy = false;
                self.last_error = Some(message);
                self.last_error_ms = Some(now_ms);
            }
        }
    }

    /// Readings delivered in the minute before `now_ms`.
    pub fn readings_per_minute(&mut self, now_ms: i64) -> u64 {
        self.trim(now_ms);
        self.recent.iter().map(|(_, n)| n).sum()
    }

    fn trim(&mut self, now_ms: i64) {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| *t <= now_ms - 60_000)
        {
            self.recent.pop_front();
        }
    }
}

/// A status shared between a source's task and its publisher.
pub type SharedStatus = Arc<Mutex<SourceStatus>>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_error_and_a_one_minute_rate() {
        let mut s = SourceStatus::default();
        s.record(1_000, 5, None);
        s.record(2_000, 0, Some("timeout".into()));
        assert!(!s.healthy);
        s.record(30_000, 5, None);
        assert!(s.healthy);
        assert_eq!(s.last_error.as_deref(), Some("timeout"));
        assert_eq!(s.readings_per_minute(61_500), 5);
        assert_eq!(s.readings_total, 10);
        s.record(40_000, 0, None);
        assert_eq!(s.last_success_ms, Some(30_000), "the last reading received");
    }
}
