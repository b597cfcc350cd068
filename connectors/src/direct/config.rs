//! Settings of `haltless connectors`.

use std::path::PathBuf;

use serde::Deserialize;

/// How connectors instances share and poll sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// This instance's name in the leases table; a random one per process when empty.
    pub instance_id: String,
    /// How long a lease lasts without renewal (milliseconds): a dead instance's sources move after this.
    pub lease_ttl_ms: u64,
    /// How often leases are renewed, sources rebalanced, changes picked up and health published (ms).
    pub refresh_interval_ms: u64,
    /// First wait before reconnecting to a failed device (milliseconds).
    pub min_backoff_ms: u64,
    /// Longest wait between two attempts to reach a failed device (milliseconds).
    pub max_backoff_ms: u64,
    /// Where protocols keep their state, one folder per tenant (mode 0700), e.g. each tenant's OPC-UA
    /// client key pair in `<state_dir>/<tenant id>/opcua/`.
    pub state_dir: PathBuf,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        Self {
            instance_id: String::new(),
            lease_ttl_ms: 15_000,
            refresh_interval_ms: 2_000,
            min_backoff_ms: 250,
            max_backoff_ms: 10_000,
            state_dir: PathBuf::from(".haltless/state"),
        }
    }
}
