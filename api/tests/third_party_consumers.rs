//! Downstream consumers that know only the schema files read the platform's topics: real messages, produced
//! by the platform onto real Kafka topics (a rule through the API, readings through the ingest gateway, the
//! detectors' alerts and changelog, an acknowledgement through the API), are handed raw to Python's fastavro and to Java's Apache Avro
//! `BinaryMessageDecoder`, which find each writer schema by the fingerprint in its single-object header
//! (`compose/consumers/`). Both must reproduce what the platform decodes, value for value.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;
use common::TestApp;
use haltless_schemas::{
    actions, detector_state, rules, AlertRecord, Codec, ReadingBatch, WireFormat,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// Every committed message of `topic`, in partition and offset order.
fn dump(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "third-party-consumers-test")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .unwrap();
        ends.push((p.id(), high));
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            messages.push((m.partition(), m.offset(), m.payload().unwrap().to_vec()));
        }
        let position = consumer.position().unwrap();
        let done = ends.iter().all(|(p, end)| {
            *end == 0
                || matches!(position.find_partition(topic, *p).map(|e| e.offset()),
                    Some(Offset::Offset(o)) if o >= *end)
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "{topic} not read to its end");
    }
    messages.sort_by_key(|(p, o, _)| (*p, *o));
    messages.into_iter().map(|(_, _, v)| v).collect()
}

/// The JSON shape all three sides print: records as objects, enums as symbols, unions as their value, uuids
/// as strings, timestamps as milliseconds, non-finite doubles as strings.
fn plain(v: Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(i) => json!(i),
        Avro::Long(i) | Avro::TimestampMillis(i) => json!(i),
        Avro::Double(d) if d.is_finite() => json!(d),
        Avro::Double(d) => json!(if d.is_nan() {
            "NaN".to_owned()
        } else {
            format!("{}Infinity", if d < 0.0 { "-" } else { "" })
        }),
        Avro::String(s) | Avro::Enum(_, s) => json!(s),
        Avro::Uuid(u) => json!(u.to_string()),
        Avro::Union(_, inner) => plain(*inner),
        Avro::Array(items) => Value::Array(items.into_iter().map(plain).collect()),
        Avro::Map(m) => Value::Object(m.into_iter().map(|(k, v)| (k, plain(v))).collect()),
        Avro::Record(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, plain(v))).collect())
        }
        other => panic!("no such type in our schemas: {other:?}"),
    }
}

/// `v` with every number as a double: Java prints a double's exact decimal value, so `80` for 80.0.
fn numbers_as_doubles(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_doubles).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, numbers_as_doubles(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Runs `compose/consumers/decode <library>` over the messages; one JSON value per message.
async fn decode_with(library: &str, messages: &[(&str, Vec<u8>)]) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../compose/consumers/decode");
    let mut child = tokio::process::Command::new("bash")
        .arg(script)
        .arg(library)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for (topic, bytes) in messages {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        input.push_str(&format!("{topic} {hex}\n"));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
        .await
        .expect("the decoder finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "{library} could not decode the topics"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| numbers_as_doubles(serde_json::from_str(l).unwrap()))
        .collect()
}

async fn wait_for_resolved_alert(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app.get("/api/v1/alerts?state=resolved").await;
        if status == 200 && body["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "no alert resolved: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn fastavro_and_java_read_every_topic_by_the_fingerprint() {
    let app = TestApp::spawn(&["press-07"]).await;
    let rule = json!({"rule": {"id": "overheat", "name": "Spindle overheating", "severity": "critical",
        "when": {"any": [{"metric": "spindle_temp", "detector": "above", "value": 90, "hysteresis": 5},
                         {"metric": "vibration", "detector": "ewma", "band": 4}]}}});
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/rules",
            &app.admin,
            Some(&rule),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = chrono::Utc::now().timestamp_millis();
    let temps = [80.0, 95.5, 96.25, 70.0, 70.0, 70.0, 70.0];
    let mut readings: Vec<Value> = temps
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"machine": "press-07", "metric": "spindle_temp", "ts": t0 + i as i64 * 10, "value": v}))
        .collect();
    readings.push(json!({"machine": "press-07", "metric": "vibration", "ts": t0, "value": -0.125, "quality": "uncertain"}));
    assert_eq!(
        app.ingest(&json!({ "readings": readings })).await.status(),
        202
    );
    wait_for_resolved_alert(&app).await;
    // Someone acknowledges the alert: an event on the alert actions topic.
    let (_, alerts) = app.get("/api/v1/alerts").await;
    let id = alerts["alerts"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/alerts/{id}/ack"),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");

    let k = app.iso.settings.kafka.clone();
    let readings_codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
    let alerts_codec = AlertRecord::codec(WireFormat::SingleObject).unwrap();
    let rules_codec = rules::RuleChange::codec().unwrap();
    let state_codec = detector_state::MachineState::codec().unwrap();
    let actions_codec = actions::AlertAction::codec().unwrap();
    // (topic as the schema files name it, the test's topic, the platform's codec)
    let topics: [(&str, &str, &Codec); 5] = [
        (
            haltless_schemas::READINGS_TOPIC,
            &k.readings_topic,
            &readings_codec,
        ),
        (
            haltless_schemas::ALERTS_TOPIC,
            &k.alerts_topic,
            &alerts_codec,
        ),
        (rules::RULES_TOPIC, &k.rules_topic, &rules_codec),
        (
            actions::ALERT_ACTIONS_TOPIC,
            &k.alert_actions_topic,
            &actions_codec,
        ),
        (
            detector_state::DETECTOR_STATE_TOPIC,
            &k.detector_changelog_topic,
            &state_codec,
        ),
    ];
    let mut messages = Vec::new();
    let mut expected = Vec::new();
    for (name, topic, codec) in topics {
        let raw = dump(&k.brokers, topic);
        assert!(!raw.is_empty(), "nothing on {topic}");
        for bytes in raw {
            assert_eq!(&bytes[2..10], &codec.fingerprint(), "{name}");
            expected.push(numbers_as_doubles(plain(
                codec.decode_value(&bytes).unwrap(),
            )));
            messages.push((name, bytes));
        }
    }
    let by_topic = |decoded: &[Value], name: &str| -> Vec<Value> {
        messages
            .iter()
            .zip(decoded)
            .filter(|((t, _), _)| *t == name)
            .map(|(_, v)| v.clone())
            .collect()
    };

    for library in ["fastavro", "java"] {
        let decoded = decode_with(library, &messages).await;
        assert_eq!(decoded.len(), messages.len(), "{library}");
        for (((topic, _), got), want) in messages.iter().zip(&decoded).zip(&expected) {
            assert_eq!(got, want, "{library} on {topic}");
        }
        // And the values are the ones that went in, not merely the same on both sides.
        let readings: Vec<Value> = by_topic(&decoded, haltless_schemas::READINGS_TOPIC)
            .iter()
            .flat_map(|b| b["readings"].as_array().unwrap().clone())
            .collect();
        assert_eq!(readings.len(), temps.len() + 1, "{library}");
        assert!(readings.iter().any(|r| r["metric"] == "spindle_temp"
            && r["value"] == 96.25
            && r["event_time"] == (t0 + 20) as f64
            && r["quality"].is_null()));
        assert!(readings
            .iter()
            .any(|r| r["value"] == -0.125 && r["quality"] == "UNCERTAIN"));
        let batch = &by_topic(&decoded, haltless_schemas::READINGS_TOPIC)[0];
        assert_eq!(batch["machine"], "press-07");
        assert_eq!(batch["tenant_id"], app.tenant.to_string());
        assert_eq!(batch["source"], "GATEWAY");
        let alerts = by_topic(&decoded, haltless_schemas::ALERTS_TOPIC);
        let transitions: Vec<&Value> = alerts.iter().map(|a| &a["transition"]).collect();
        assert!(
            transitions.contains(&&json!("RAISED")) && transitions.contains(&&json!("RESOLVED"))
        );
        assert!(alerts
            .iter()
            .all(|a| a["rule_id"] == "overheat" && a["severity"] == "CRITICAL"));
        let change = &by_topic(&decoded, rules::RULES_TOPIC)[0];
        assert_eq!(change["version"], 1.0);
        assert_eq!(
            change["rule"]["when"]["any"][0]["condition"]["above"]["value"],
            90.0
        );
        let acks = by_topic(&decoded, actions::ALERT_ACTIONS_TOPIC);
        assert_eq!(acks.len(), 1, "{library}");
        assert_eq!(acks[0]["alert_id"], id.as_str());
        assert_eq!(acks[0]["action"], "ACK");
        assert!(acks[0]["snooze_until"].is_null());
        let states = by_topic(&decoded, detector_state::DETECTOR_STATE_TOPIC);
        assert!(states.iter().all(|s| s["version"] == 1.0));
        assert!(states.iter().any(|s| s["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["rule_id"] == "overheat")));
    }
    app.stop().await;
}
