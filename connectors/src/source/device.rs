//! What the polling task sees of a device, whatever its protocol: connect, next poll, disconnect.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use haltless_schemas::outbound::OutboundPolicy;
use haltless_schemas::Reading;

use super::error::SourceError;
use super::trust::CertificateTrust;

/// A reading and the (machine, metric) it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct PointReading {
    /// Machine name.
    pub machine: String,
    /// The reading (its metric named).
    pub reading: Reading,
}

/// What one poll brought: readings, and the problems of the points that could not be read.
#[derive(Debug, Default)]
pub struct PollOutcome {
    /// Readings of the points read.
    pub readings: Vec<PointReading>,
    /// Problems with single requests or points (the connection itself is fine).
    pub problems: Vec<String>,
}

/// Where a device is and how to pace it: the part of a definition every protocol shares.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The device's address, in the protocol's form (`host:port`, `opc.tcp://host:port/path`, ...).
    pub endpoint: String,
    /// Time between two polls (or the publishing interval of a subscription).
    pub poll_interval: Duration,
    /// How long one connect or read may take before it counts as failed.
    pub timeout: Duration,
    /// Which addresses the device may have: connect only to addresses this policy allows
    /// ([`super::outbound::resolve_checked`]).
    pub outbound: Arc<OutboundPolicy>,
    /// The pinned server certificate, for a protocol whose servers present one; `None`: not pinned (the
    /// edge agent's own devices).
    pub trust: Option<CertificateTrust>,
    /// A folder private to the source's tenant (mode 0700) where the protocol may keep its client keys;
    /// `None`: a folder under the system's temporary folder.
    pub state_dir: Option<PathBuf>,
}

/// A connected or connectable device. The polling task ([`super::run_source`]) calls `connect` until it
/// succeeds, then `next` for every poll, and `disconnect` after a failure or at the end.
pub trait Device: Send {
    /// Opens the connection (and whatever the protocol sets up once per connection).
    fn connect(&mut self) -> BoxFuture<'_, Result<(), SourceError>>;

    /// Waits for the next poll (or the next changes) and reads them.
    fn next(&mut self) -> BoxFuture<'_, Result<PollOutcome, SourceError>>;

    /// Closes the connection, if any; the next `connect` starts afresh.
    fn disconnect(&mut self) -> BoxFuture<'_, ()>;
}
