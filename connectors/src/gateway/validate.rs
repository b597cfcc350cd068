//! Parsing and validation of an ingest request body.
//!
//! A request is accepted whole or rejected whole: every entry is checked, and all problems are reported
//! together, each naming the entry (its index and machine) and the field at fault.

use chrono::DateTime;
use haltless_schemas::{Quality, Reading};
use serde::Serialize;
use serde_json::{Map, Value};

use super::config::GatewayConfig;

/// At most this many entry problems are reported; the count says how many there were.
const MAX_REPORTED: usize = 100;

/// One problem with one entry of the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryError {
    /// Position of the entry in `readings`, from 0.
    pub index: usize,
    /// The entry's machine, when it named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a request was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    /// The body is not the JSON document the gateway expects.
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// The body holds no readings.
    #[error("the request holds no readings")]
    Empty,
    /// The body holds more readings than one request may.
    #[error("the request holds {count} readings; at most {max} are accepted per request")]
    TooMany {
        /// Readings in the request.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// Some entries are invalid; the first [`MAX_REPORTED`] are listed.
    #[error("{total} of the request's readings are invalid")]
    Invalid {
        /// How many problems were found.
        total: usize,
        /// The first problems, in entry order.
        errors: Vec<EntryError>,
    },
}

/// The readings of one machine, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineReadings {
    /// Machine name as the request gave it.
    pub machine: String,
    /// Its readings.
    pub readings: Vec<Reading>,
}

/// A request that passed validation, grouped by machine in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRequest {
    /// One group per machine.
    pub machines: Vec<MachineReadings>,
}

impl ValidRequest {
    /// Total readings in the request.
    pub fn len(&self) -> usize {
        self.machines.iter().map(|m| m.readings.len()).sum()
    }

    /// True when the request holds no readings (never the case for a validated request).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The distinct machine names, in order of first appearance.
    pub fn machine_names(&self) -> impl Iterator<Item = &str> {
        self.machines.iter().map(|m| m.machine.as_str())
    }
}

/// Parses and validates a JSON body `{"readings": [...]}` against the gateway's limits.
///
/// `now_ms` is the gateway's clock, used only to refuse timestamps too far in the future.
pub fn parse_request(
    body: &[u8],
    config: &GatewayConfig,
    now_ms: i64,
) -> Result<ValidRequest, IngestError> {
    let max_ts = now_ms.saturating_add((config.max_future_skew_secs as i64).saturating_mul(1000));
    match parse_typed(body, config.max_readings_per_request, max_ts) {
        Some(valid) => Ok(valid),
        None => parse_checked(body, config, max_ts),
    }
}

/// The request, when every entry of a body of the expected shape is valid as it stands (the fast path:
/// [`super::typed`]); `None` sends it to [`parse_checked`], which gives the same result for a valid body and
/// words every problem of an invalid one.
fn parse_typed(body: &[u8], max_readings: usize, max_ts: i64) -> Option<ValidRequest> {
    let entries = super::typed::entries(body)?;
    if entries.is_empty() || entries.len() > max_readings {
        return None;
    }
    let mut machines: Vec<MachineReadings> = Vec::new();
    for e in entries {
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

/// [`parse_request`] through a `serde_json::Value`, checking each field in turn and naming every problem.
fn parse_checked(
    body: &[u8],
    config: &GatewayConfig,
    max_ts: i64,
) -> Result<ValidRequest, IngestError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().contains("number out of range") {
            invalid(vec![EntryError {
                index: 0,
                machine: None,
                field: "value",
                reason: format!("a number is out of range (infinite values are refused): {e}"),
            }])
        } else {
            IngestError::Malformed(e.to_string())
        }
    })?;
    let entries = match doc {
        Value::Object(mut top) => {
            if let Some(extra) = top.keys().find(|k| *k != "readings") {
                return Err(IngestError::Malformed(format!(
                    "unknown top-level field `{extra}`; expected only `readings`"
                )));
            }
            match top.remove("readings") {
                Some(Value::Array(entries)) => entries,
                Some(_) => {
                    return Err(IngestError::Malformed("`readings` must be an array".into()))
                }
                None => return Err(IngestError::Malformed("missing field `readings`".into())),
            }
        }
        _ => {
            return Err(IngestError::Malformed(
                "the body must be a JSON object".into(),
            ))
        }
    };
    if entries.is_empty() {
        return Err(IngestError::Empty);
    }
    if entries.len() > config.max_readings_per_request {
        return Err(IngestError::TooMany {
            count: entries.len(),
            max: config.max_readings_per_request,
        });
    }
    let mut errors = Vec::new();
    let mut machines: Vec<MachineReadings> = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        match parse_entry(entry, max_ts) {
            Ok((machine, reading)) => group(&mut machines, &machine, reading),
            Err(mut problems) => {
                for p in &mut problems {
                    p.index = index;
                }
                errors.extend(problems);
            }
        }
    }
    if errors.is_empty() {
        Ok(ValidRequest { machines })
    } else {
        Err(invalid(errors))
    }
}

/// Adds `reading` to its machine's group, opening the group at the machine's first appearance. Searched
/// from the last group: a request's entries usually come machine by machine.
fn group(machines: &mut Vec<MachineReadings>, machine: &str, reading: Reading) {
    match machines.iter_mut().rev().find(|m| m.machine == machine) {
        Some(group) => group.readings.push(reading),
        None => machines.push(MachineReadings {
            machine: machine.to_owned(),
            readings: vec![reading],
        }),
    }
}

fn invalid(mut errors: Vec<EntryError>) -> IngestError {
    let total = errors.len();
    errors.truncate(MAX_REPORTED);
    IngestError::Invalid { total, errors }
}

/// Checks one entry; problems carry index 0, set by the caller.
fn parse_entry(entry: Value, max_ts: i64) -> Result<(String, Reading), Vec<EntryError>> {
    let Value::Object(mut obj) = entry else {
        return Err(vec![problem(
            None,
            "readings",
            "each entry must be a JSON object",
        )]);
    };
    let mut errors = Vec::new();
    let machine = match obj.remove("machine") {
        Some(Value::String(s)) if valid_name(&s) => Some(s),
        Some(Value::String(s)) => {
            errors.push(problem(Some(&s), "machine", NAME_RULE));
            None
        }
        Some(_) => {
            errors.push(problem(None, "machine", "must be a string"));
            None
        }
        None => {
            errors.push(problem(None, "machine", "is required"));
            None
        }
    };
    let m = machine.as_deref();
    let metric = take_metric(&mut obj, m, &mut errors);
    let ts = take_ts(&mut obj, m, max_ts, &mut errors);
    let value = take_value(&mut obj, m, &mut errors);
    let quality = take_quality(&mut obj, m, &mut errors);
    if let Some(extra) = obj.keys().next() {
        let reason =
            format!("unknown field `{extra}`; expected machine, metric, ts, value, quality");
        errors.push(problem(m, "readings", &reason));
    }
    match (machine, metric, ts, value, quality) {
        (Some(machine), Some(metric), Some(event_time_ms), Some(value), Some(quality))
            if errors.is_empty() =>
        {
            Ok((
                machine,
                Reading {
                    metric,
                    event_time_ms,
                    value,
                    quality,
                },
            ))
        }
        _ => Err(errors),
    }
}

const NAME_RULE: &str =
    "must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit";

/// Machine and metric names: what the database's check constraint on `machines.name` accepts.
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Checks a reading that did not come through an HTTP body (a polled device's) by the same rules as
/// [`parse_request`]: a valid machine and metric name, a finite value, a timestamp from 1970 on and no
/// further in the future than the configured skew.
pub fn check_reading(
    machine: &str,
    reading: &Reading,
    config: &GatewayConfig,
    now_ms: i64,
) -> Result<(), EntryError> {
    let max_ts = now_ms.saturating_add((config.max_future_skew_secs as i64).saturating_mul(1000));
    let m = Some(machine);
    if !valid_name(machine) {
        Err(problem(m, "machine", NAME_RULE))
    } else if !valid_name(&reading.metric) {
        Err(problem(m, "metric", NAME_RULE))
    } else if !reading.value.is_finite() {
        Err(problem(m, "value", "must be a finite number"))
    } else if reading.event_time_ms < 0 {
        Err(problem(m, "ts", "lies before 1970-01-01T00:00:00Z"))
    } else if reading.event_time_ms > max_ts {
        Err(problem(
            m,
            "ts",
            "lies in the future, beyond the allowed clock skew",
        ))
    } else {
        Ok(())
    }
}

fn problem(machine: Option<&str>, field: &'static str, reason: &str) -> EntryError {
    EntryError {
        index: 0,
        machine: machine.map(str::to_owned),
        field,
        reason: reason.to_owned(),
    }
}

fn take_metric(
    obj: &mut Map<String, Value>,
    m: Option<&str>,
    errors: &mut Vec<EntryError>,
) -> Option<String> {
    match obj.remove("metric") {
        Some(Value::String(s)) if valid_name(&s) => Some(s),
        Some(Value::String(_)) => {
            errors.push(problem(m, "metric", NAME_RULE));
            None
        }
        Some(_) => {
            errors.push(problem(m, "metric", "must be a string"));
            None
        }
        None => {
            errors.push(problem(m, "metric", "is required"));
            None
        }
    }
}

fn take_ts(
    obj: &mut Map<String, Value>,
    m: Option<&str>,
    max_ts: i64,
    errors: &mut Vec<EntryError>,
) -> Option<i64> {
    let ms = match obj.remove("ts") {
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => t.timestamp_millis(),
            Err(e) => {
                let reason = format!("`{s}` is not an RFC 3339 timestamp ({e})");
                errors.push(problem(m, "ts", &reason));
                return None;
            }
        },
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => ms,
            None => {
                let reason = format!("`{n}` is not a whole number of epoch milliseconds");
                errors.push(problem(m, "ts", &reason));
                return None;
            }
        },
        Some(_) => {
            let reason = "must be an RFC 3339 string or integer epoch milliseconds";
            errors.push(problem(m, "ts", reason));
            return None;
        }
        None => {
            errors.push(problem(m, "ts", "is required"));
            return None;
        }
    };
    if ms < 0 {
        errors.push(problem(m, "ts", "lies before 1970-01-01T00:00:00Z"));
        None
    } else if ms > max_ts {
        let reason = format!(
            "lies {} s in the future, beyond the allowed clock skew",
            (ms - max_ts) / 1000
        );
        errors.push(problem(m, "ts", &reason));
        None
    } else {
        Some(ms)
    }
}

fn take_value(
    obj: &mut Map<String, Value>,
    m: Option<&str>,
    errors: &mut Vec<EntryError>,
) -> Option<f64> {
    match obj.remove("value") {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Some(v),
            _ => {
                errors.push(problem(m, "value", "must be a finite number"));
                None
            }
        },
        Some(Value::String(s)) => {
            let reason = format!("must be a finite number, got the string `{s}`");
            errors.push(problem(m, "value", &reason));
            None
        }
        Some(_) => {
            errors.push(problem(m, "value", "must be a finite number"));
            None
        }
        None => {
            errors.push(problem(m, "value", "is required"));
            None
        }
    }
}

fn take_quality(
    obj: &mut Map<String, Value>,
    m: Option<&str>,
    errors: &mut Vec<EntryError>,
) -> Option<Option<Quality>> {
    match obj.remove("quality") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "good" => Some(Some(Quality::Good)),
            "uncertain" => Some(Some(Quality::Uncertain)),
            "bad" => Some(Some(Quality::Bad)),
            _ => {
                errors.push(problem(m, "quality", "must be good, uncertain or bad"));
                None
            }
        },
        Some(_) => {
            errors.push(problem(m, "quality", "must be good, uncertain or bad"));
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_737_600_000; // 2026-11-27T00:00:00Z

    fn parse(body: &str) -> Result<ValidRequest, IngestError> {
        parse_request(body.as_bytes(), &GatewayConfig::default(), NOW)
    }

    fn entry_errors(body: &str) -> Vec<EntryError> {
        match parse(body) {
            Err(IngestError::Invalid { errors, .. }) => errors,
            other => panic!("expected entry errors, got {other:?}"),
        }
    }

    #[test]
    fn the_fast_path_gives_what_the_checked_path_gives_or_leaves_it_to_it() {
        let config = GatewayConfig::default();
        let max_ts = NOW + 300_000;
        let bodies = [
            // Valid as they stand: the fast path takes them.
            r#"{"readings":[{"machine":"press-07","metric":"t","ts":"2026-11-26T10:00:00Z","value":71.5},
               {"machine":"lathe-1","metric":"rpm","ts":1795000000000,"value":1200,"quality":"GOOD"},
               {"machine":"press-07","metric":"t","ts":"2026-11-26T11:00:00+01:00","value":-3,"quality":null},
               {"machine":"m\u0031","metric":"t","ts":0,"value":1e300,"quality":"Bad"}]}"#,
            r#"{"readings":[{"quality":"uncertain","value":0,"ts":1795737900000,"metric":"a.b:c-d_e","machine":"9"}]}"#,
            // Not: each goes to the checked path.
            r#"{"readings":[]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":0,"value":1,"extra":1}]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":0,"value":"1"}]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":1.5,"value":1}]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":1795737900001,"value":1}]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":-1,"value":1}]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":18446744073709551615,"value":1}]}"#,
            r#"{"readings":[{"machine":"-m","metric":"t","ts":0,"value":1}]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":0,"value":1,"quality":"fine"}]}"#,
            r#"{"readings":[{"machine":"m","machine":"n","metric":"t","ts":0,"value":1}]}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":0,"value":1}],"more":1}"#,
            r#"{"readings":[{"machine":"m","metric":"t","ts":"soon","value":1}]}"#,
        ];
        for (i, body) in bodies.iter().enumerate() {
            let fast = parse_typed(body.as_bytes(), 10_000, max_ts);
            assert_eq!(fast.is_some(), i < 2, "{body}");
            if let Some(fast) = fast {
                assert_eq!(Ok(fast), parse_checked(body.as_bytes(), &config, max_ts));
            }
        }
        let many = format!(
            r#"{{"readings":[{}]}}"#,
            [r#"{"machine":"m","metric":"t","ts":0,"value":1}"#; 3].join(",")
        );
        assert!(parse_typed(many.as_bytes(), 2, max_ts).is_none());
    }

    #[test]
    fn groups_readings_by_machine_in_order() {
        let req = parse(
            r#"{"readings":[
              {"machine":"press-07","metric":"spindle_temp","ts":"2026-11-26T10:00:00Z","value":71.5},
              {"machine":"lathe-1","metric":"rpm","ts":1795000000000,"value":1200,"quality":"good"},
              {"machine":"press-07","metric":"spindle_temp","ts":"2026-11-26T11:00:00+01:00","value":-3}
            ]}"#,
        )
        .unwrap();
        assert_eq!(req.len(), 3);
        assert_eq!(
            req.machine_names().collect::<Vec<_>>(),
            ["press-07", "lathe-1"]
        );
        let press = &req.machines[0].readings;
        assert_eq!(press[0].event_time_ms, 1_795_687_200_000);
        assert_eq!(press[1].event_time_ms, 1_795_687_200_000);
        assert_eq!(press[1].value, -3.0);
        assert_eq!(req.machines[1].readings[0].quality, Some(Quality::Good));
    }

    #[test]
    fn names_every_bad_entry() {
        let errors = entry_errors(
            r#"{"readings":[
              {"machine":"m1","metric":"t","ts":"yesterday","value":1},
              {"machine":"m1","metric":"t","ts":0,"value":"NaN"},
              {"machine":"m1","metric":"t","ts":0,"value":1},
              {"machine":"m2","metric":"t","ts":1895737600000,"value":1},
              {"machine":"m3","metric":"t","ts":0,"value":true,"valeu":2}
            ]}"#,
        );
        let summary: Vec<_> = errors.iter().map(|e| (e.index, e.field)).collect();
        assert_eq!(
            summary,
            [
                (0, "ts"),
                (1, "value"),
                (3, "ts"),
                (4, "value"),
                (4, "readings")
            ]
        );
        assert_eq!(errors[3].machine.as_deref(), Some("m3"));
        assert!(errors[2].reason.contains("future"), "{}", errors[2].reason);
    }

    #[test]
    fn refuses_infinite_numbers() {
        let errors =
            entry_errors(r#"{"readings":[{"machine":"m","metric":"t","ts":0,"value":1e999}]}"#);
        assert_eq!(errors[0].field, "value");
        for literal in ["NaN", "Infinity", "-Infinity"] {
            let body = format!(
                r#"{{"readings":[{{"machine":"m","metric":"t","ts":0,"value":{literal}}}]}}"#
            );
            assert!(matches!(parse(&body), Err(IngestError::Malformed(_))));
        }
    }

    #[test]
    fn allows_the_configured_skew_and_no_more() {
        let ok = format!(
            r#"{{"readings":[{{"machine":"m","metric":"t","ts":{},"value":1}}]}}"#,
            NOW + 300_000
        );
        assert!(parse(&ok).is_ok());
        let late = format!(
            r#"{{"readings":[{{"machine":"m","metric":"t","ts":{},"value":1}}]}}"#,
            NOW + 301_000
        );
        assert_eq!(entry_errors(&late)[0].field, "ts");
    }

    #[test]
    fn rejects_malformed_empty_and_oversized_requests() {
        assert!(matches!(parse("{"), Err(IngestError::Malformed(_))));
        assert!(matches!(parse("[]"), Err(IngestError::Malformed(_))));
        assert!(matches!(
            parse(r#"{"reading":[]}"#),
            Err(IngestError::Malformed(_))
        ));
        assert!(matches!(
            parse(r#"{"readings":[]}"#),
            Err(IngestError::Empty)
        ));
        let config = GatewayConfig {
            max_readings_per_request: 2,
            ..GatewayConfig::default()
        };
        let body = r#"{"readings":[{"machine":"m","metric":"t","ts":0,"value":1},
            {"machine":"m","metric":"t","ts":1,"value":1},{"machine":"m","metric":"t","ts":2,"value":1}]}"#;
        assert_eq!(
            parse_request(body.as_bytes(), &config, NOW),
            Err(IngestError::TooMany { count: 3, max: 2 })
        );
    }

    #[test]
    fn checks_polled_readings_by_the_same_rules() {
        let config = GatewayConfig::default();
        let reading = |metric: &str, ts: i64, value: f64| Reading {
            metric: metric.into(),
            event_time_ms: ts,
            value,
            quality: None,
        };
        assert!(check_reading("m", &reading("t", NOW, 1.0), &config, NOW).is_ok());
        let field = |r: Reading| check_reading("m", &r, &config, NOW).unwrap_err().field;
        assert_eq!(field(reading("t t", NOW, 1.0)), "metric");
        assert_eq!(field(reading("t", NOW, f64::NAN)), "value");
        assert_eq!(field(reading("t", NOW + 301_000, 1.0)), "ts");
        assert!(check_reading("-m", &reading("t", NOW, 1.0), &config, NOW).is_err());
    }

    #[test]
    fn checks_names() {
        assert!(valid_name("press-07"));
        assert!(valid_name("line.3:spindle_temp"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(129)));
    }
}
