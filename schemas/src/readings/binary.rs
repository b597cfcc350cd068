//! The readings schema's Avro binary encoding written and read directly, for batches of the current
//! version: the topic's hottest path (the gateway encodes every batch; the projection, the detectors, the
//! predictor and the live feed each decode every one). Building and walking apache-avro's `Value` tree
//! (a record of four named fields per reading, and schema resolution on the way in) cost several times
//! the work itself. The bytes are exactly apache-avro's (tests compare them), and messages of earlier
//! versions still go through schema resolution.

use uuid::Uuid;

use super::{parse_source, source_fields, Reading, ReadingBatch, QUALITIES, SOURCE_SYMBOLS};
use crate::error::CodecError;
use crate::Quality;

/// Appends the Avro binary datum of `batch` (current schema) to `out`.
pub(super) fn encode(batch: &ReadingBatch, out: &mut Vec<u8>) {
    out.reserve(100 + batch.machine.len() + batch.readings.len() * 24);
    uuid(out, batch.tenant_id);
    uuid(out, batch.machine_id);
    string(out, &batch.machine);
    let (symbol, protocol) = source_fields(batch.source);
    // Every symbol `source_fields` gives is in the list.
    let source = SOURCE_SYMBOLS
        .iter()
        .position(|s| *s == symbol)
        .unwrap_or_default();
    long(out, source as i64);
    long(out, batch.ingest_time_ms);
    if !batch.readings.is_empty() {
        long(out, batch.readings.len() as i64);
        for r in &batch.readings {
            string(out, &r.metric);
            long(out, r.event_time_ms);
            out.extend_from_slice(&r.value.to_le_bytes());
            match r.quality {
                None => long(out, 0),
                Some(q) => {
                    long(out, 1);
                    let index = QUALITIES.iter().position(|(k, _)| *k == q);
                    long(out, index.unwrap_or_default() as i64);
                }
            }
        }
    }
    long(out, 0);
    match protocol {
        None => long(out, 0),
        Some(name) => {
            long(out, 1);
            string(out, name.as_str());
        }
    }
}

/// Decodes the Avro binary datum of a batch written with the current schema.
pub(super) fn decode(datum: &[u8]) -> Result<ReadingBatch, CodecError> {
    let mut r = Reader(datum);
    let tenant_id = r.uuid("tenant_id")?;
    let machine_id = r.uuid("machine_id")?;
    let machine = r.string("machine")?.to_owned();
    let source = *SOURCE_SYMBOLS
        .get(r.index("source")?)
        .ok_or_else(|| shape("source"))?;
    let ingest_time_ms = r.long("ingest_time")?;
    let mut readings = Vec::new();
    loop {
        let mut count = r.long("readings")?;
        if count == 0 {
            break;
        }
        if count < 0 {
            // A block may carry its size in bytes after a negated count.
            count = count.checked_neg().ok_or_else(|| shape("readings"))?;
            r.long("readings")?;
        }
        // A reading takes at least 11 bytes: never reserve more than the datum can hold.
        readings.reserve((count as usize).min(r.0.len() / 11));
        for _ in 0..count {
            readings.push(Reading {
                metric: r.string("metric")?.to_owned(),
                event_time_ms: r.long("event_time")?,
                value: r.double("value")?,
                quality: match r.index("quality")? {
                    0 => None,
                    1 => Some(quality(r.index("quality")?)?),
                    _ => return Err(shape("quality")),
                },
            });
        }
    }
    let protocol = match r.index("protocol")? {
        0 => None,
        1 => Some(r.string("protocol")?.to_owned()),
        _ => return Err(shape("protocol")),
    };
    Ok(ReadingBatch {
        tenant_id,
        machine_id,
        machine,
        source: parse_source(source, protocol)?,
        ingest_time_ms,
        readings,
    })
}

fn quality(index: usize) -> Result<Quality, CodecError> {
    QUALITIES
        .get(index)
        .map(|(q, _)| *q)
        .ok_or_else(|| shape("quality"))
}

fn shape(field: &str) -> CodecError {
    CodecError::Shape(format!("the datum ends or is malformed at `{field}`"))
}

/// A zig-zag variable-length long.
fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// A `uuid` logical type on `string`: the hyphenated lowercase form.
fn uuid(out: &mut Vec<u8>, id: Uuid) {
    let mut buf = Uuid::encode_buffer();
    string(out, id.hyphenated().encode_lower(&mut buf));
}

/// The unread rest of a datum.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn long(&mut self, field: &str) -> Result<i64, CodecError> {
        let mut z: u64 = 0;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            z |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(shape(field))
    }

    /// An enum symbol's or a union branch's index.
    fn index(&mut self, field: &str) -> Result<usize, CodecError> {
        usize::try_from(self.long(field)?).map_err(|_| shape(field))
    }

    fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8], CodecError> {
        if len > self.0.len() {
            return Err(shape(field));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn string(&mut self, field: &str) -> Result<&'a str, CodecError> {
        let len = self.index(field)?;
        std::str::from_utf8(self.take(len, field)?).map_err(|_| shape(field))
    }

    fn uuid(&mut self, field: &str) -> Result<Uuid, CodecError> {
        Uuid::parse_str(self.string(field)?).map_err(|_| shape(field))
    }

    fn double(&mut self, field: &str) -> Result<f64, CodecError> {
        let bytes = self.take(8, field)?;
        let mut le = [0u8; 8];
        le.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(le))
    }
}
