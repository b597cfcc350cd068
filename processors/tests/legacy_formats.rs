//! Topics written by the platform before the rules topic and the detector changelog had schemas (and before
//! the single-object fingerprint followed the specification) stay readable: `fixtures/legacy/` holds real
//! messages captured from Kafka as that code wrote them (see its README). A detector restored from the old
//! changelog continues exactly as the old detector did.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use haltless_processors::detection::logic::engine::{Input, MachineState};
use haltless_processors::detection::logic::rules::Rule;
use haltless_processors::detection::logic::Sample;
use haltless_processors::detection::processor::{
    alert_record, decode_state, encode_state, state_codec, RuleBook, RuleChange,
};
use haltless_schemas::alerts::Transition;
use haltless_schemas::{AlertRecord, ReadingBatch, WireFormat};
use serde_json::Value;

/// One captured message.
struct Message {
    partition: i32,
    offset: i64,
    key: String,
    value: Vec<u8>,
}

fn fixture(name: &str) -> Vec<Message> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let value = match (v["value"].as_str(), v["value_hex"].as_str()) {
                (Some(text), _) => text.as_bytes().to_vec(),
                (None, Some(hex)) => (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
                _ => panic!("{line}"),
            };
            Message {
                partition: v["partition"].as_i64().unwrap() as i32,
                offset: v["offset"].as_i64().unwrap(),
                key: v["key"].as_str().unwrap().to_owned(),
                value,
            }
        })
        .collect()
}

/// Per topic, per partition: the end offsets when the first half of the readings had been processed.
fn boundary() -> HashMap<String, HashMap<i32, i64>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy/boundary.json");
    let v: HashMap<String, HashMap<String, i64>> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.into_iter()
        .map(|(topic, ends)| {
            let ends = ends
                .into_iter()
                .map(|(p, o)| (p.parse().unwrap(), o))
                .collect();
            (topic, ends)
        })
        .collect()
}

fn before(ends: &HashMap<i32, i64>, m: &Message) -> bool {
    m.offset < ends.get(&m.partition).copied().unwrap_or(0)
}

fn rulebook() -> RuleBook {
    let codec = RuleChange::codec().unwrap();
    let mut book = RuleBook::default();
    for m in fixture("rules.jsonl") {
        book.apply(RuleChange::decode(&codec, &m.value).unwrap());
    }
    book
}

#[test]
fn legacy_rule_changes_decode_and_survive_the_new_format() {
    let codec = RuleChange::codec().unwrap();
    let changes = fixture("rules.jsonl");
    assert!(changes.len() >= 8);
    let mut deleted = 0;
    for m in changes {
        assert_eq!(m.value[0], b'{', "the fixture holds the old JSON");
        let change = RuleChange::decode(&codec, &m.value).unwrap();
        assert_eq!(change.key(), m.key);
        deleted += usize::from(change.deleted);
        let avro = change.encode(&codec).unwrap();
        assert_eq!(RuleChange::decode(&codec, &avro).unwrap(), change);
    }
    assert_eq!(deleted, 1);
}

#[test]
fn legacy_changelog_values_restore_and_survive_the_new_format() {
    let codec = state_codec().unwrap();
    let values = fixture("changelog.jsonl");
    assert!(values.len() >= 10);
    for m in values {
        assert_eq!(m.value[0], b'{', "the fixture holds the old JSON");
        let state = decode_state(&codec, &m.value).unwrap();
        let again = decode_state(&codec, &encode_state(&codec, &state).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&state).unwrap()
        );
        // The old writer's JSON is what the state serialises to: nothing was lost in reading it.
        let written: Value = serde_json::from_slice(&m.value).unwrap();
        assert_eq!(serde_json::to_value(&state).unwrap(), written);
    }
}

/// The old platform's default detectors of a metric (EWMA and rate of change, before the context detector
/// replaced them), as explicit rules with the ids and names they had.
fn old_defaults(metric: &str) -> Vec<Rule> {
    serde_json::from_value(serde_json::json!([
        {"id": format!("default:ewma:{metric}"), "name": format!("ewma on {metric}"),
         "when": {"metric": metric, "detector": "ewma"}, "clear_after": 96},
        {"id": format!("default:rate_of_change:{metric}"), "name": format!("rate_of_change on {metric}"),
         "when": {"metric": metric, "detector": "rate"}, "clear_after": 96},
    ]))
    .unwrap()
}

/// The old platform processed the first half of the readings, wrote its changelog, then the second half.
/// Restoring that changelog with today's code and running the second half with the same detectors gives
/// the old alerts exactly. (The default detectors have changed since: `rpm`, which no rule names, is given
/// the old defaults as rules, so the restored state of those conditions is what carries on.)
#[test]
fn a_detector_restored_from_the_legacy_changelog_continues_like_the_old_one() {
    let ends = boundary();
    let state_codec = state_codec().unwrap();
    let readings_codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
    let alerts_codec = AlertRecord::codec(WireFormat::SingleObject).unwrap();

    let mut machines: HashMap<String, MachineState> = HashMap::new();
    for m in fixture("changelog.jsonl")
        .into_iter()
        .filter(|m| before(&ends["changelog"], m))
    {
        machines.insert(m.key.clone(), decode_state(&state_codec, &m.value).unwrap());
    }
    assert_eq!(machines.len(), 2, "both machines have a state");

    let mut book = rulebook();
    let mut got: BTreeMap<String, Vec<AlertRecord>> = BTreeMap::new();
    for m in fixture("readings.jsonl") {
        // Written before the fingerprint fix: the header carries apache-avro's own fingerprint.
        assert_eq!(
            m.value[2..10],
            [0x5c, 0xa6, 0x22, 0xaa, 0xd8, 0x4d, 0x03, 0xf6]
        );
        if before(&ends["readings"], &m) {
            continue;
        }
        let batch = ReadingBatch::decode(&readings_codec, &m.value).unwrap();
        let state = machines.entry(batch.key()).or_default();
        let tenant = batch.tenant_id.to_string();
        for r in &batch.readings {
            let mut rules = book
                .rules_for(batch.tenant_id, &batch.machine, r.event_time_ms)
                .to_vec();
            rules.extend(old_defaults("rpm"));
            let input = Input {
                metric: &r.metric,
                sample: Sample {
                    ts_ms: r.event_time_ms,
                    value: r.value,
                },
                offset: Some((m.partition, m.offset)),
            };
            for event in state.observe(&tenant, &batch.machine, &rules[..], input) {
                got.entry(batch.key())
                    .or_default()
                    .push(alert_record(&batch, event));
            }
        }
    }

    let mut old_first: Vec<AlertRecord> = Vec::new();
    let mut old_second: BTreeMap<String, Vec<AlertRecord>> = BTreeMap::new();
    for m in fixture("alerts.jsonl") {
        let alert = AlertRecord::decode(&alerts_codec, &m.value).unwrap();
        if before(&ends["alerts"], &m) {
            old_first.push(alert);
        } else {
            old_second.entry(m.key).or_default().push(alert);
        }
    }
    // The old platform wrote no explanations; today's alerts carry one, and are otherwise the same.
    for alert in got.values_mut().flatten() {
        assert!(!alert.explanation.is_empty(), "{alert:?}");
        alert.explanation.clear();
        alert.contributions.clear();
    }
    assert_eq!(got, old_second);
    // The restored state carried open alerts across: some alert raised before resolves after.
    let carried = got.values().flatten().filter(|a| {
        a.transition == Transition::Resolved
            && old_first
                .iter()
                .any(|b| b.alert_id == a.alert_id && b.transition == Transition::Raised)
    });
    assert!(carried.count() >= 1, "{got:#?}");
}
