//! The detectors on real Kafka: the alert topic (read_committed) holds exactly the alerts the detection logic
//! gives for the input, alert for alert, however often the processor is killed with SIGKILL and restarted.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Isolation;
use haltless_connectors::gateway::ReadingsSink;
use haltless_processors::detection::generation::Generation;
use haltless_processors::detection::logic::engine::{Input, MachineState};
use haltless_processors::detection::logic::Sample;
use haltless_processors::detection::replay::{self, ReplayOptions};
use haltless_schemas::{AlertRecord, Reading, ReadingBatch, Source, WireFormat};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const MACHINES: usize = 4;
const PER_MACHINE: usize = 1_200;
const PER_MESSAGE: usize = 6;

/// Event time of the first reading: midnight (UTC) two days ago, so that the readings fall on the same hours
/// of the day whenever the test runs (the default detector learns a time-of-day profile).
fn start_ms() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        (chrono::Utc::now().timestamp_millis() - 2 * 86_400_000) / 86_400_000 * 86_400_000
    })
}

/// Reading `i` of `machine`: a temperature every minute with a spike and a lasting step, different per
/// machine, and a 20-minute excursion after the first `PER_MACHINE` readings (longer than a spike: the default
/// detector's calibration is less sensitive for a while after the step).
fn sample(machine: usize, i: usize) -> Sample {
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ machine as u64;
    for _ in 0..=i {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
    }
    let noise = (seed % 1000) as f64 / 1000.0 - 0.5;
    let mut v = 50.0 + machine as f64 * 5.0 + noise;
    if i == 300 + machine * 37 || (PER_MACHINE + 60..PER_MACHINE + 80).contains(&i) {
        v += 25.0;
    }
    if i >= 700 + machine * 11 {
        v += 12.0;
    }
    Sample {
        ts_ms: start_ms() + i as i64 * 60_000,
        value: v,
    }
}

/// What the alerts must be: the detection logic run over each machine's first `n` readings in order.
fn expected(
    tenant: Uuid,
    names: &[String],
    n: usize,
) -> BTreeMap<String, Vec<(Uuid, String, i64)>> {
    names
        .iter()
        .enumerate()
        .map(|(m, name)| {
            let mut state = MachineState::default();
            let events = (0..n)
                .map(|i| sample(m, i))
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

/// Every committed alert on the alerts topic, per machine, in topic order.
fn committed_alerts(iso: &Isolation, want: usize) -> BTreeMap<String, Vec<AlertRecord>> {
    committed_alerts_on(iso, &iso.settings.kafka.alerts_topic, want)
}

/// Every committed alert on `topic`, per machine, in topic order.
fn committed_alerts_on(
    iso: &Isolation,
    topic: &str,
    want: usize,
) -> BTreeMap<String, Vec<AlertRecord>> {
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
        tpl.add_partition_offset(topic, p, Offset::Beginning)
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
    produce(&iso, tenant, &names, &ids, 0..PER_MACHINE).await;
    let want = expected(tenant, &names, PER_MACHINE);
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

/// Writes readings `range` of every machine to the readings topic, `PER_MESSAGE` to a message.
async fn produce(
    iso: &Isolation,
    tenant: Uuid,
    names: &[String],
    ids: &BTreeMap<String, Uuid>,
    range: std::ops::Range<usize>,
) {
    let k = &iso.settings.kafka;
    let sink = ReadingsSink::new(
        &k.brokers,
        &k.readings_topic,
        ReadingBatch::codec(WireFormat::SingleObject).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    for chunk in range.step_by(PER_MESSAGE) {
        let batches: Vec<ReadingBatch> = names
            .iter()
            .enumerate()
            .map(|(m, name)| ReadingBatch {
                tenant_id: tenant,
                machine_id: ids[name],
                machine: name.clone(),
                source: Source::Gateway,
                ingest_time_ms: 0,
                readings: (chunk..chunk + PER_MESSAGE)
                    .map(|i| sample(m, i))
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
}

/// Asserts the committed alert stream equals the detection logic's, alert for alert.
async fn assert_same_alerts(w: World, got: BTreeMap<String, Vec<AlertRecord>>) {
    assert_alerts(&w, &w.want, &got);
    w.iso.drop().await;
}

/// Asserts `got` equals `want`, alert for alert.
fn assert_alerts(
    w: &World,
    want: &BTreeMap<String, Vec<(Uuid, String, i64)>>,
    got: &BTreeMap<String, Vec<AlertRecord>>,
) {
    let (tenant, names, ids) = (w.tenant, &w.names, &w.ids);
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

#[tokio::test]
async fn a_replay_reproduces_the_alerts_and_the_platform_follows_the_switch_over() {
    let w = world().await;
    let iso = &w.iso;
    let mut child = processor(iso, "a", 50);
    let first = committed_alerts(iso, w.total);
    assert_alerts(&w, &w.want, &first);

    // Replay the whole topic into generation 2 while the platform's processor goes on.
    let options = ReplayOptions::default();
    let outcome = replay::run(
        &iso.settings.processors(),
        &iso.pool,
        &options,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.generation, Generation(2));
    assert_eq!(outcome.replaced, Some(Generation(1)));
    assert_eq!(
        outcome.messages,
        (MACHINES * PER_MACHINE / PER_MESSAGE) as i64
    );
    let replayed = committed_alerts_on(iso, &outcome.alerts_topic, w.total);
    assert_alerts(&w, &w.want, &replayed);
    let active: i32 = sqlx::query_scalar("SELECT active_generation()")
        .fetch_one(&iso.pool)
        .await
        .unwrap();
    assert_eq!(active, 2);
    let raised = w
        .want
        .values()
        .flatten()
        .filter(|(_, t, _)| t == "Raised")
        .count();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE generation = 2")
        .fetch_one(&iso.pool)
        .await
        .unwrap();
    assert_eq!(
        rows as usize, raised,
        "the new generation's alerts are projected"
    );

    // The running processor moves to generation 2 within seconds and continues from its state and offsets.
    tokio::time::sleep(Duration::from_secs(5)).await;
    produce(
        iso,
        w.tenant,
        &w.names,
        &w.ids,
        PER_MACHINE..PER_MACHINE + 120,
    )
    .await;
    let want = expected(w.tenant, &w.names, PER_MACHINE + 120);
    let total = want.values().map(Vec::len).sum();
    assert!(total > w.total, "the later readings raise alerts");
    let after = committed_alerts_on(iso, &outcome.alerts_topic, total);
    assert_alerts(&w, &want, &after);
    let old = committed_alerts(iso, w.total);
    assert_alerts(&w, &w.want, &old);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    w.iso.drop().await;
}

#[tokio::test]
async fn a_backtest_over_a_topic_range_finds_what_the_detectors_find() {
    let w = world().await;
    let iso = &w.iso;
    let out = std::env::temp_dir().join(format!("backtest-{}.csv", Uuid::new_v4()));
    let run = Command::new(env!("CARGO_BIN_EXE_haltless"))
        .args(["backtest", "--machine", "m-1", "--metric", "temp", "--out"])
        .arg(&out)
        .envs(iso.env())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The backtest counts readings that raised an alert (two detectors firing on one reading count once).
    let raised: std::collections::BTreeSet<i64> = w.want["m-1"]
        .iter()
        .filter(|(_, t, _)| t == "Raised")
        .map(|(_, _, at)| *at)
        .collect();
    let raised = raised.len();
    assert!(
        stdout.contains(&format!(
            "m-1/temp: {PER_MACHINE} readings, {raised} alerts raised"
        )),
        "{stdout} {:?}",
        w.want["m-1"]
    );
    let results = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        results.lines().next(),
        Some("timestamp,value,anomaly_score,label")
    );
    assert_eq!(results.lines().count(), PER_MACHINE + 1);
    std::fs::remove_file(&out).ok();

    let unknown = Command::new(env!("CARGO_BIN_EXE_haltless"))
        .args(["backtest", "--machine", "nope", "--metric", "temp"])
        .envs(iso.env())
        .output()
        .await
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no readings of nope/temp"));
    w.iso.drop().await;
}

/// Writes `records` (key, payload or tombstone) to `partition` of `topic` in one transaction of `producer`,
/// then commits or aborts it.
fn transaction(
    producer: &rdkafka::producer::BaseProducer,
    topic: &str,
    partition: i32,
    records: &[(&str, Option<&str>)],
    commit: bool,
) {
    use rdkafka::producer::{BaseRecord, Producer};
    producer.begin_transaction().unwrap();
    for (key, payload) in records {
        let mut record = BaseRecord::<str, str>::to(topic)
            .key(key)
            .partition(partition);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    if commit {
        producer
            .commit_transaction(Duration::from_secs(10))
            .unwrap();
    } else {
        producer.flush(Duration::from_secs(10)).unwrap();
        producer.abort_transaction(Duration::from_secs(10)).unwrap();
    }
}

#[tokio::test]
async fn the_changelogs_of_all_new_partitions_are_read_back_exactly_on_one_client() {
    use haltless_processors::runtime::transactional::ChangelogReader;
    use rdkafka::producer::{BaseProducer, Producer};
    let iso = Isolation::create().await;
    let k = &iso.settings.kafka;
    let topic = k.detector_changelog_topic.clone();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set(
            "transactional.id",
            format!("test-changelog-{}", Uuid::new_v4()),
        )
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(10)).unwrap();
    // Partition 0 stays empty. Partition 1: a key overwritten and a key removed by a tombstone.
    transaction(
        &producer,
        &topic,
        1,
        &[("a", Some("1")), ("b", Some("1"))],
        true,
    );
    transaction(&producer, &topic, 1, &[("a", Some("2")), ("b", None)], true);
    // Partition 2 ends with an aborted transaction: only its marker and its invisible records follow the
    // last committed record.
    transaction(&producer, &topic, 2, &[("c", Some("1"))], true);
    transaction(
        &producer,
        &topic,
        2,
        &[("c", Some("2")), ("d", Some("2"))],
        false,
    );

    let reader = std::sync::Arc::new(ChangelogReader::open(&k.brokers, &topic).unwrap());
    let r = reader.clone();
    let started = Instant::now();
    let read = tokio::task::spawn_blocking(move || r.read(&[0, 1, 2]))
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    let as_text = |p: i32| -> BTreeMap<String, String> {
        read[&p]
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
            .collect()
    };
    assert_eq!(read.len(), 3, "every partition asked for is answered");
    assert!(as_text(0).is_empty());
    assert_eq!(as_text(1), BTreeMap::from([("a".into(), "2".into())]));
    assert_eq!(as_text(2), BTreeMap::from([("c".into(), "1".into())]));
    // Well under the stall limit: the end of partition 2 is its abort marker, which the reader passes.
    assert!(took < Duration::from_secs(10), "the restore took {took:?}");

    // The reader serves the next assignment too: a partition read again gives the same state, an empty one
    // is answered without reading.
    let again = tokio::task::spawn_blocking(move || reader.read(&[0, 2]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again[&0].is_empty());
    assert_eq!(again[&2].len(), 1);
    iso.drop().await;
}
