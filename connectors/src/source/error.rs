//! Errors of device sources: a problem with a definition ([`FieldError`]) and a failed poll
//! ([`SourceError`], classified for retry).

/// Why a poll of a device failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The device could not be reached or the connection broke.
    #[error("connection to {endpoint}: {message}")]
    Connect {
        /// The device's address.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// The operator's outbound policy refuses every address of the device (the category, no address).
    #[error("connection to {endpoint}: {refusal}")]
    Refused {
        /// The device's address, as the tenant wrote it.
        endpoint: String,
        /// Why.
        refusal: haltless_schemas::outbound::Refusal,
    },
    /// The device did not answer in time.
    #[error("no answer from the device within {0} ms")]
    Timeout(u64),
    /// The device answered with a protocol error, e.g. a Modbus exception for an address it lacks.
    #[error("{0}")]
    Device(String),
    /// A value read could not become a reading (e.g. not finite).
    #[error("{0}")]
    Value(String),
    /// The readings could not be delivered (Kafka or the cloud unavailable).
    #[error("delivery: {0}")]
    Delivery(String),
    /// The server presented a certificate that is not the one pinned for the source
    /// ([`super::trust`]).
    #[error("untrusted certificate: {0}")]
    Untrusted(String),
    /// The source's definition cannot work (e.g. an unknown machine).
    #[error("configuration: {0}")]
    Config(String),
}

impl SourceError {
    /// Whether a later attempt may succeed without a change of configuration.
    pub fn is_retriable(&self) -> bool {
        !matches!(self, SourceError::Config(_))
    }
}

/// One problem with a source definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Path of the field at fault, e.g. `points[2].address`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}
