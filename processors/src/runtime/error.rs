//! Errors of the processor runtime.

/// What can stop a processor's batch.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// Kafka refused or failed an operation.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// PostgreSQL refused or failed an operation.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// A record could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] haltless_schemas::CodecError),
    /// The schema registry refused or could not be reached.
    #[error("schema registry: {0}")]
    Registry(String),
    /// A broken invariant inside the processor.
    #[error("internal: {0}")]
    Internal(String),
}

impl ProcessorError {
    /// Whether retrying the batch may succeed (connection trouble rather than a broken invariant).
    pub fn is_retriable(&self) -> bool {
        match self {
            ProcessorError::Kafka(_) | ProcessorError::Registry(_) => true,
            ProcessorError::Codec(_) | ProcessorError::Internal(_) => false,
            ProcessorError::Database(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("40") || c.starts_with("08") || c.starts_with("57")))
            }
        }
    }
}
