//! What every device source shares: the source definition and its validation ([`config`]), the errors
//! ([`error`]), and the task that polls one source with timeouts and reconnects ([`run`]).

pub mod config;
pub mod error;
pub mod run;
pub mod status;

pub use config::{FieldError, OpcUaAuth, OpcUaSettings, Points, Protocol, SourceSpec};
pub use error::SourceError;
pub use run::{run_source, Outlet, PointReading, PollOutcome, RunOptions};
pub use status::{SharedStatus, SourceStatus};
