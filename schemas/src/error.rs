//! The error of every codec in this crate.

/// Errors from encoding or decoding a record.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The schema text or a record does not conform to Avro.
    #[error("avro: {0}")]
    Avro(#[from] apache_avro::Error),
    /// The message does not start with a known framing header.
    #[error("unknown message framing (first bytes {0:02x?})")]
    UnknownFraming(Vec<u8>),
    /// The message names a writer schema this codec does not know.
    #[error("unknown writer schema {0}")]
    UnknownSchema(String),
    /// The schema text is not a valid Avro schema in JSON.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// The datum decoded, but its content does not map onto the Rust type.
    #[error("record does not match the expected shape: {0}")]
    Shape(String),
}
