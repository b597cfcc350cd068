//! Framing of Avro records on the wire.
//!
//! Avro single-object encoding: `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the
//! writer schema's Parsing Canonical Form, then the Avro binary datum. Confluent wire format: `00`, the
//! 4-byte big-endian schema-registry id, then the datum. [`Codec::decode_value`] accepts both, whatever the
//! codec writes.
//!
//! The fingerprint is the one the Avro specification defines (see [`crate::fingerprint`]), so any Avro
//! library finds the writer schema from it; the decoder also knows the legacy fingerprints that messages
//! written before that fix carry.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum, Schema};

use crate::error::CodecError;
use crate::fingerprint::{fingerprint, legacy_fingerprint};

const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
const CONFLUENT_MAGIC: u8 = 0x00;

/// How encoded records are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// Avro single-object encoding (self-describing through the schema fingerprint).
    SingleObject,
    /// Confluent schema-registry framing with the id the registry gave the schema.
    Confluent {
        /// Schema id in the registry.
        schema_id: u32,
    },
}

/// Encodes records with one writer schema and decodes records written with any known version.
#[derive(Debug, Clone)]
pub struct Codec {
    schema: Schema,
    fingerprint: [u8; 8],
    /// The fingerprint messages of this schema carried before the fingerprint fix.
    legacy_fingerprint: [u8; 8],
    format: WireFormat,
    /// Every known version (earlier ones and the current one) by fingerprint, the specification's and the
    /// legacy one, for messages written before the current schema or before the fingerprint fix.
    writers: HashMap<[u8; 8], Schema>,
}

impl Codec {
    /// A codec writing with `schema_json`, able to read `history` (earlier versions) too.
    pub fn new(
        schema_json: &str,
        history: &[&str],
        format: WireFormat,
    ) -> Result<Self, CodecError> {
        let schema = Schema::parse_str(schema_json)?;
        let mut writers = HashMap::new();
        for text in history.iter().chain([&schema_json]) {
            let version = Schema::parse_str(text)?;
            writers.insert(legacy_fingerprint(&version), version.clone());
            writers.insert(fingerprint(text)?, version);
        }
        Ok(Self {
            legacy_fingerprint: legacy_fingerprint(&schema),
            schema,
            fingerprint: fingerprint(schema_json)?,
            format,
            writers,
        })
    }

    /// The schema this codec writes with.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The CRC-64-AVRO fingerprint of the writer schema, as it appears in single-object headers.
    pub fn fingerprint(&self) -> [u8; 8] {
        self.fingerprint
    }

    /// Encodes one record value, framed according to the codec's wire format.
    pub fn encode_value(&self, value: Value) -> Result<Vec<u8>, CodecError> {
        let datum = to_avro_datum(&self.schema, value)?;
        let mut out = self.header(datum.len());
        out.extend_from_slice(&datum);
        Ok(out)
    }

    /// Encodes a record from a `serde` type shaped like the schema (fields in schema order, `Option` for
    /// `["null", T]`, structs named like their records), without building an Avro `Value` first: several
    /// times faster for large records. apache-avro 0.21's serde writer resolves no references to named
    /// types, so the schema must define each named type where it is used.
    pub fn encode_serde<T: serde::Serialize>(&self, data: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = self.header(256);
        apache_avro::write_avro_datum_ref(&self.schema, data, &mut out)?;
        Ok(out)
    }

    /// The framing header, in a buffer with room for `datum` more bytes (for a codec that writes its datum
    /// itself, e.g. the readings').
    pub(crate) fn header(&self, datum: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(datum + 10);
        match self.format {
            WireFormat::SingleObject => {
                out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
                out.extend_from_slice(&self.fingerprint);
            }
            WireFormat::Confluent { schema_id } => {
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&schema_id.to_be_bytes());
            }
        }
        out
    }

    /// The datum of a message written with this codec's own schema (either fingerprint, or its registry
    /// id): a reader of that version may read it directly. `None` for anything else, which
    /// [`Codec::decode_value`] resolves or refuses.
    pub fn own_datum<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        match bytes {
            [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
                let fp = &rest[..8];
                (fp == self.fingerprint || fp == self.legacy_fingerprint).then_some(&rest[8..])
            }
            [CONFLUENT_MAGIC, a, b, c, d, rest @ ..] => match self.format {
                WireFormat::Confluent { schema_id }
                    if schema_id == u32::from_be_bytes([*a, *b, *c, *d]) =>
                {
                    Some(rest)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Decodes one framed message into a value of the codec's (reader) schema.
    pub fn decode_value(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        let (writer, mut datum) = match bytes {
            [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
                let mut fp = [0u8; 8];
                fp.copy_from_slice(&rest[..8]);
                let writer = self
                    .writers
                    .get(&fp)
                    .ok_or_else(|| CodecError::UnknownSchema(format!("fingerprint {fp:02x?}")))?;
                (writer, &rest[8..])
            }
            [CONFLUENT_MAGIC, a, b, c, d, rest @ ..] => {
                let id = u32::from_be_bytes([*a, *b, *c, *d]);
                match self.format {
                    WireFormat::Confluent { schema_id } if schema_id == id => (&self.schema, rest),
                    _ => return Err(CodecError::UnknownSchema(format!("registry id {id}"))),
                }
            }
            _ => {
                return Err(CodecError::UnknownFraming(
                    bytes.iter().take(4).copied().collect(),
                ))
            }
        };
        Ok(from_avro_datum(writer, &mut datum, Some(&self.schema))?)
    }
}
