//! The detectors on real Kafka: the alert topic (read_committed) holds exactly the alerts the detection logic
//! gives for the input, alert for alert, however often the processor is killed with SIGKILL and restarted.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Isolation;
use haltless_connectors::gateway::ReadingsSink;
use haltless_processors::detect::engine::{Input, MachineState};
use haltless_processors::detect::Sample;
use haltless_schemas::{AlertRecord, Reading, ReadingBatch, Source, WireFormat};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::process::{Child, Command};
use uuid::Uuid;

const MACHINES: usize = 4;
const PER_MACHINE: usize = 1_200;
const PER_MESSAGE: usize = 6;

/// Event time of the first reading: two days ago, on the minute.
fn start_ms() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START
        .get_or_init(|| (chrono::Utc::now().timestamp_millis() - 2 * 86_400_000) / 60_000 * 60_000)
}

/// A temperature every minute with a spike and a lasting step, different per machine.
fn series(machine: usize) -> Vec<Sample> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ machine as u64;
    (0..PER_MACHINE)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 1000) as f64 / 1000.0 - 0.5;
            let mut v = 50.0 + machine as f64 * 5.0 + noise;
            if i == 300 + machine * 37 {
                v += 25.0;
            }
            if i >= 700 + machine * 11 {
                v += 12.0;
            }
            Sample {
                ts_ms: start_ms() + i as i64 * 60_000,
                value: v,
            }
        })
        .collect()
}

/// What the alerts must be: the detection logic run over each machine's readings in order.
fn expected(tenant: Uuid, names: &[String]) -> BTreeMap<String, Vec<(Uuid, String, i64)>> {
    names
        .iter()
        .enumerate()
        .map(|(m, name)| {
            let mut state = MachineState::default();
            let events = series(m)
                .into_iter()
                .flat_map(|s| {
                    state.observe(
                        &tenant.to_string(),
                        name,
                        &[],
                        Input {
                            metric: "temp",
                            sample: s,
                            offset: None,
                        },
                    )
                })
                .map(|e| (e.alert_id, format!("{:?}", e.transition), e.event_time_ms))
                .collect();
            (name.clone(), events)
        })
        .collect()
}

/// `haltless process` as instance `instance`, committing a transaction every `batch` messages.
fn processor(iso: &Isolation, instance: &str, batch: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_haltless"))
        .arg("process")
        .envs(iso.env())
        .env("HALTLESS__DETECTOR__INSTANCE", instance)
        .env("HALTLESS__DETECTOR__BATCH_MAX_MESSAGES", batch.to_string())
        .env("HALTLESS__DETECTOR__SESSION_TIMEOUT_MS", "6000")
        .env(
            "RUST_LOG",
            std::env::var("TEST_PROCESS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(if std::env::var("TEST_PROCESS_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("the haltless binary starts")
}

/// Every committed alert on the topic, per machine, in topic order.
fn committed_alerts(iso: &Isolation, want: usize) -> BTreeMap<String, Vec<AlertRecord>> {
    let k = &iso.settings.kafka;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("group.id", "test-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..k.partitions {
        tpl.add_partition_offset(&k.alerts_topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let codec = AlertRecord::codec(WireFormat::SingleObject).unwrap();
    let mut out: BTreeMap<String, Vec<AlertRecord>> = BTreeMap::new();
    let (mut seen, mut quiet) = (0, Instant::now());
    while quiet.elapsed() < Duration::from_secs(if seen >= want { 3 } else { 90 }) {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let a = AlertRecord::decode(&codec, msg.unwrap().payload().unwrap()).unwrap();
            out.entry(a.machine.clone()).or_default().push(a);
            seen += 1;
            quiet = Instant::now();
        }
    }
    out
}

/// A test's world: its topics and database, a tenant with machines, their readings on the topic, and the
/// alerts the detection logic gives for them.
struct World {
    iso: Isolation,
    tenant: Uuid,
    names: Vec<String>,
    ids: BTreeMap<String, Uuid>,
    want: BTreeMap<String, Vec<(Uuid, String, i64)>>,
    total: usize,
}

async fn world() -> World {
    let iso = Isolation::create().await;
    let names: Vec<String> = (0..MACHINES).map(|m| format!("m-{m}")).collect();
    let (tenant, _) = iso
        .tenant_with_machines(&names.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let ids: BTreeMap<String, Uuid> =
        sqlx::query_as::<_, (String, Uuid)>("SELECT name, id FROM machines")
            .fetch_all(&iso.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let k = &iso.settings.kafka;
    let sink = ReadingsSink::new(
        &k.brokers,
        &k.readings_topic,
        ReadingBatch::codec(WireFormat::SingleObject).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let all: Vec<Vec<Sample>> = (0..MACHINES).map(series).collect();
    for chunk in 0..PER_MACHINE / PER_MESSAGE {
        let batches: Vec<ReadingBatch> = names
            .iter()
            .enumerate()
            .map(|(m, name)| ReadingBatch {
                tenant_id: tenant,
                machine_id: ids[name],
                machine: name.clone(),
                source: Source::Gateway,
                ingest_time_ms: 0,
                readings: all[m][chunk * PER_MESSAGE..(chunk + 1) * PER_MESSAGE]
                    .iter()
                    .map(|s| Reading {
                        metric: "temp".into(),
                        event_time_ms: s.ts_ms,
                        value: s.value,
                        quality: None,
                    })
                    .collect(),
            })
            .collect();
        sink.write(&batches).await.unwrap();
    }
    let want = expected(tenant, &names);
    let total: usize = want.values().map(Vec::len).sum();
    assert!(
        total >= MACHINES * 4,
        "the input has anomalies to find: {want:?}"
    );

    World {
        iso,
        tenant,
        names,
        ids,
        want,
        total,
    }
}

/// Asserts the committed alert stream equals the detection logic's, alert for alert.
async fn assert_same_alerts(w: World, got: BTreeMap<String, Vec<AlertRecord>>) {
    let (tenant, names, ids, want) = (w.tenant, &w.names, &w.ids, &w.want);
    for name in names {
        let alerts = got.get(name).cloned().unwrap_or_default();
        let summary: Vec<(Uuid, String, i64)> = alerts
            .iter()
            .map(|a| (a.alert_id, format!("{:?}", a.transition), a.event_time_ms))
            .collect();
        assert_eq!(
            summary, want[name],
            "{name}: alert for alert, none missing, none doubled"
        );
        for a in &alerts {
            assert_eq!((a.tenant_id, a.machine_id), (tenant, ids[name]));
            assert!(
                !a.readings.is_empty(),
                "every alert names the readings behind it"
            );
        }
    }
    w.iso.drop().await;
}

#[tokio::test]
async fn killing_the_processor_never_changes_the_alert_stream() {
    let w = world().await;
    let iso = &w.iso;
    let mut rng = rand::rng();
    for _ in 0..3 {
        let mut child = processor(iso, "a", 8);
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_500..5_000))).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    let mut child = processor(iso, "a", 8);
    let got = committed_alerts(iso, w.total);
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    assert_same_alerts(w, got).await;
}

#[tokio::test]
async fn two_instances_with_a_rebalance_give_the_same_alerts() {
    let w = world().await;
    let iso = &w.iso;
    // One instance starts alone; a second joins (partitions and their state move to it); then the first is
    // killed and the second takes everything over from the changelog.
    // Small transactions keep the first instance busy while the second joins.
    let mut a = processor(iso, "a", 4);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut b = processor(iso, "b", 4);
    tokio::time::sleep(Duration::from_millis(9_000)).await;
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let got = committed_alerts(iso, w.total);
    b.start_kill().unwrap();
    b.wait().await.unwrap();
    assert_same_alerts(w, got).await;
}
