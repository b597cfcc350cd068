//! The fast path of `validate::parse_request`: a body deserialized straight into typed entries that
//! borrow their strings from it, instead of a `serde_json::Value` tree (a map and five owned strings per
//! reading, taken apart again field by field). A body it does not take as is (a wrong type, an unknown or
//! repeated field) goes to the checked path, which finds and words every problem; `validate` checks the
//! values of the entries it gives.

use std::borrow::Cow;
use std::fmt;

use chrono::DateTime;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    #[serde(borrow)]
    readings: Vec<Entry<'a>>,
}

/// One entry of the body, its values not checked yet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Entry<'a> {
    #[serde(borrow)]
    pub machine: Cow<'a, str>,
    #[serde(borrow)]
    pub metric: Cow<'a, str>,
    pub ts: Ts,
    pub value: f64,
    #[serde(borrow, default)]
    pub quality: Option<Cow<'a, str>>,
}

/// `ts`: integer epoch milliseconds or an RFC 3339 string, as milliseconds.
pub(super) struct Ts(pub i64);

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

/// The entries of `body` when it has the expected shape and types; `None` sends it to the checked path.
pub(super) fn entries(body: &[u8]) -> Option<Vec<Entry<'_>>> {
    serde_json::from_slice::<Body>(body)
        .ok()
        .map(|b| b.readings)
}
