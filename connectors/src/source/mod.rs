//! What every device source shares, whatever its protocol: the [`Protocol`] trait a protocol implements
//! ([`protocol`]) and how the shared code holds protocols ([`registry`]); the source definition and its
//! validation ([`config`]); the [`Device`] a protocol opens ([`device`]); the errors ([`error`]); reaching a
//! device under the operator's outbound policy ([`outbound`]); sealing a definition's secrets at rest
//! ([`secrets`]); trust on first use of a server's certificate ([`trust`]); the task
//! that polls one source with timeouts and reconnects ([`run`]) and its health ([`status`]).
//!
//! Nothing here imports a protocol: the protocols are listed once, in [`crate::protocols`].

pub mod config;
pub mod device;
pub mod error;
pub mod outbound;
pub mod protocol;
pub mod registry;
pub mod run;
pub mod secrets;
pub mod status;
pub mod trust;

pub use config::SourceSpec;
pub use device::{Connection, Device, PointReading, PollOutcome};
pub use error::{FieldError, SourceError};
pub use protocol::{Point, Protocol};
pub use registry::{DeviceConfig, ErasedProtocol, Protocols};
pub use run::{run_source, Outlet, RunOptions};
pub use status::{SharedStatus, SourceStatus};
pub use trust::CertificateTrust;
