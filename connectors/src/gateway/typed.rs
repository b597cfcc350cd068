//! The fast path of [`super::validate::parse_request`]: a body deserialized straight into typed entries
//! that borrow their strings from it, instead of a `serde_json::Value` tree (a map and five owned strings per
//! reading, taken apart again field by field). It accepts only what the checked path accepts and gives
//! the same result; anything it does not accept as is (a wrong type, an unknown or repeated field, a name
//! or time out of bounds) goes to the checked path, which finds and words every problem.

use std::borrow::Cow;
use std::fmt;

use chrono::DateTime;
use haltless_schemas::{Quality, Reading};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::validate::{group, valid_name, MachineReadings, ValidRequest};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    #[serde(borrow)]
    readings: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry<'a> {
    #[serde(borrow)]
    machine: Cow<'a, str>,
    #[serde(borrow)]
    metric: Cow<'a, str>,
    ts: Ts,
    value: f64,
    #[serde(borrow, default)]
    quality: Option<Cow<'a, str>>,
}

/// `ts`: integer epoch milliseconds or an RFC 3339 string, as milliseconds.
struct Ts(i64);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("integer epoch milliseconds or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ts, E> {
                Ok(Ts(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ts, E> {
                i64::try_from(v)
                    .map(Ts)
                    .map_err(|_| E::custom("out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ts, E> {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| Ts(t.timestamp_millis()))
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// The request, when every entry is valid as it stands; `None` sends it to the checked path.
pub(super) fn parse(body: &[u8], max_readings: usize, max_ts: i64) -> Option<ValidRequest> {
    let body: Body = serde_json::from_slice(body).ok()?;
    if body.readings.is_empty() || body.readings.len() > max_readings {
        return None;
    }
    let mut machines: Vec<MachineReadings> = Vec::new();
    for e in body.readings {
        let ok = valid_name(&e.machine)
            && valid_name(&e.metric)
            && (0..=max_ts).contains(&e.ts.0)
            && e.value.is_finite();
        if !ok {
            return None;
        }
        let quality = match e.quality.as_deref() {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("good") => Some(Quality::Good),
            Some(q) if q.eq_ignore_ascii_case("uncertain") => Some(Quality::Uncertain),
            Some(q) if q.eq_ignore_ascii_case("bad") => Some(Quality::Bad),
            Some(_) => return None,
        };
        let reading = Reading {
            metric: e.metric.into_owned(),
            event_time_ms: e.ts.0,
            value: e.value,
            quality,
        };
        group(&mut machines, &e.machine, reading);
    }
    Some(ValidRequest { machines })
}
