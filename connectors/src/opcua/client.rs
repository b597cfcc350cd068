//! The OPC-UA client of one source.

use crate::opcua::OpcUaPoint;
use crate::source::{PollOutcome, SourceError, SourceSpec};

/// One OPC-UA server and the nodes read from it.
pub struct OpcUaDevice {
    _points: Vec<OpcUaPoint>,
}

impl OpcUaDevice {
    /// A device at `spec.endpoint` serving `points`.
    pub fn new(_spec: &SourceSpec, points: Vec<OpcUaPoint>) -> Self {
        Self { _points: points }
    }

    /// Opens the session.
    pub async fn connect(&mut self) -> Result<(), SourceError> {
        Err(SourceError::Config("OPC-UA is not supported yet".into()))
    }

    /// The next values.
    pub async fn next(&mut self) -> Result<PollOutcome, SourceError> {
        Err(SourceError::Config("OPC-UA is not supported yet".into()))
    }

    /// Closes the session.
    pub async fn disconnect(&mut self) {}
}
