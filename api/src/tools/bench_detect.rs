//! `haltless bench-detect`: readings/s through the detectors with exactly-once on, and reading-to-alert
//! latency, on throw-away topics of the configured Kafka (removed afterwards).

use std::time::{Duration, Instant};

use haltless_connectors::gateway::ReadingsSink;
use haltless_connectors::kafka::{producer_config, Delivery};
use haltless_processors::config::KafkaConfig;
use haltless_processors::detection::logic::rules::Rule;
use haltless_processors::detection::processor::{
    DetectorConfig, DetectorRuntime, DetectorTopics, RuleChange,
};
use haltless_processors::runtime::kafka::reader_config;
use haltless_processors::runtime::topics::{ensure_topics, TopicSpec};
use haltless_schemas::{AlertRecord, Reading, ReadingBatch, Source, WireFormat};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Parameters of the detector benchmark.
#[derive(Debug, Clone)]
pub struct DetectBenchConfig {
    /// Readings to push through the detectors.
    pub readings: usize,
    /// Readings per Kafka message (one machine each).
    pub per_message: usize,
    /// Machines the readings are spread over.
    pub machines: usize,
    /// Alerts to time for the latency figures.
    pub alerts: usize,
}

/// The benchmark's throw-away tenant and machines.
struct Plant {
    tenant: Uuid,
    machines: Vec<Uuid>,
}

/// Runs the benchmark and prints its figures; the topics it made are deleted whatever happens.
pub async fn run(kafka: &KafkaConfig, config: DetectBenchConfig) -> anyhow::Result<()> {
    let run = Uuid::new_v4().simple().to_string();
    let topics = DetectorTopics {
        readings: format!("bench.readings.{run}"),
        alerts: format!("bench.alerts.{run}"),
        changelog: format!("bench.detector-state.{run}"),
        rules: format!("bench.rules.{run}"),
    };
    create_topics(kafka, &topics).await?;
    let result = measure(kafka, &topics, &run, &config).await;
    delete_topics(&kafka.brokers, &topics).await;
    result
}

async fn create_topics(kafka: &KafkaConfig, topics: &DetectorTopics) -> anyhow::Result<()> {
    let spec = |name: &str, partitions: i32, compact: bool| TopicSpec {
        name: name.to_owned(),
        partitions,
        replication: kafka.replication,
        config: if compact {
            vec![("cleanup.policy".into(), "compact".into())]
        } else {
            vec![]
        },
    };
    ensure_topics(
        &kafka.brokers,
        &[
            spec(&topics.readings, kafka.partitions, false),
            spec(&topics.alerts, kafka.partitions, false),
            spec(&topics.changelog, kafka.partitions, true),
            spec(&topics.rules, 1, true),
        ],
    )
    .await?;
    Ok(())
}

async fn delete_topics(brokers: &str, topics: &DetectorTopics) {
    let names = [
        topics.readings.as_str(),
        topics.alerts.as_str(),
        topics.changelog.as_str(),
        topics.rules.as_str(),
    ];
    haltless_processors::runtime::topics::delete_topics(brokers, &names).await;
}

async fn measure(
    kafka: &KafkaConfig,
    topics: &DetectorTopics,
    run: &str,
    config: &DetectBenchConfig,
) -> anyhow::Result<()> {
    let codec = ReadingBatch::codec(WireFormat::SingleObject)?;
    let sink = ReadingsSink::new(
        &kafka.brokers,
        &topics.readings,
        codec.clone(),
        Duration::from_secs(30),
    )?;
    let plant = Plant {
        tenant: Uuid::new_v4(),
        machines: (0..config.machines).map(|_| Uuid::new_v4()).collect(),
    };
    let messages = fill(&sink, &plant, config).await?;
    let detector = DetectorConfig {
        group: format!("bench-detectors-{run}"),
        instance: "bench".into(),
        ..DetectorConfig::default()
    };
    let group = detector.group.clone();
    let runtime = DetectorRuntime::new(
        &kafka.brokers,
        topics.clone(),
        detector,
        codec,
        AlertRecord::codec(WireFormat::SingleObject)?,
    );
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(runtime.run(shutdown.clone()));
    let timed = async {
        let progress = wait_committed(kafka, &group, &topics.readings, started).await?;
        let latencies = alert_latencies(kafka, topics, run, &sink, &plant, config.alerts).await?;
        anyhow::Ok((progress, latencies))
    }
    .await;
    shutdown.cancel();
    let _ = task.await;
    let (progress, mut latencies) = timed?;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let n = (messages * config.per_message) as f64;
    let (secs, partitions) = (progress.done.as_secs_f64(), kafka.partitions);
    let (first, first_messages) = progress.first;
    let steady_readings = ((messages - first_messages) * config.per_message) as f64;
    let steady_secs = (progress.done - first).as_secs_f64();
    println!("detector benchmark: {n} readings in {messages} messages over {} machines, {partitions} partitions, exactly once", config.machines);
    println!("  readings through the detectors: {:>10.0} readings/s overall ({secs:.2} s from start until every offset was committed, start-up included)", n / secs);
    println!("  first commit:                   {:>10.2} s after start ({} readings committed then: start-up and the first transaction)",
        first.as_secs_f64(), first_messages * config.per_message);
    if steady_readings > 0.0 && steady_secs > 0.0 {
        println!("  steady rate after it:           {:>10.0} readings/s ({steady_readings} readings in {steady_secs:.2} s)", steady_readings / steady_secs);
    }
    println!("  reading → committed alert:      p50 {:.1} ms, p99 {:.1} ms over {} alerts, one reading in flight",
        pct(0.5).as_secs_f64() * 1e3, pct(0.99).as_secs_f64() * 1e3, latencies.len());
    Ok(())
}

/// Writes the benchmark's readings (a slow sine per machine, a day ago) and answers the messages written.
async fn fill(
    sink: &ReadingsSink,
    plant: &Plant,
    config: &DetectBenchConfig,
) -> anyhow::Result<usize> {
    let start = crate::time::now_ms() - 86_400_000;
    let messages = config.readings.div_ceil(config.per_message);
    let mut batches = Vec::with_capacity(messages);
    for m in 0..messages {
        let machine = m % plant.machines.len();
        let round = (m / plant.machines.len()) * config.per_message;
        batches.push(ReadingBatch {
            tenant_id: plant.tenant,
            machine_id: plant.machines[machine],
            machine: format!("bench-{machine}"),
            source: Source::Gateway,
            ingest_time_ms: crate::time::now_ms(),
            readings: (0..config.per_message)
                .map(|i| Reading {
                    metric: "temp".into(),
                    event_time_ms: start + (round + i) as i64 * 1_000,
                    value: 50.0 + ((round + i) as f64 / 30.0).sin(),
                    quality: None,
                })
                .collect(),
        });
    }
    for chunk in batches.chunks(500) {
        sink.write(chunk).await?;
    }
    Ok(messages)
}

/// When the detectors' committed offsets moved: the first commit (with the messages it covered) and the
/// last, both from the start.
struct Progress {
    first: (Duration, usize),
    done: Duration,
}

/// Waits until `group`'s committed offsets reach the end of every partition of `readings`, noting when the
/// first commit appeared.
async fn wait_committed(
    kafka: &KafkaConfig,
    group: &str,
    readings: &str,
    started: Instant,
) -> anyhow::Result<Progress> {
    let watcher: BaseConsumer = reader_config(&kafka.brokers, group).create()?;
    let mut ends = TopicPartitionList::new();
    let mut total = 0;
    for p in 0..kafka.partitions {
        let (_, high) = watcher.fetch_watermarks(readings, p, Duration::from_secs(10))?;
        ends.add_partition_offset(readings, p, Offset::Offset(high))?;
        total += high;
    }
    let mut first = None;
    loop {
        let committed = watcher.committed_offsets(ends.clone(), Duration::from_secs(10))?;
        let at = started.elapsed();
        let done: i64 = committed
            .elements()
            .iter()
            .map(|c| match c.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        if done > 0 && first.is_none() {
            first = Some((at, done as usize));
        }
        if done >= total {
            return Ok(Progress {
                first: first.unwrap_or((at, done as usize)),
                done: at,
            });
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "the detectors did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A threshold rule, then one violating reading at a time, each timed until its alert is committed.
async fn alert_latencies(
    kafka: &KafkaConfig,
    topics: &DetectorTopics,
    run: &str,
    sink: &ReadingsSink,
    plant: &Plant,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let rule: Rule = serde_json::from_value(serde_json::json!({
        "id": "hot", "when": {"metric": "probe", "detector": "above", "value": 100}, "clear_after": 1}))?;
    let change = RuleChange {
        tenant_id: plant.tenant,
        version: 1,
        effective_from_ms: 0,
        machines: vec![],
        rule,
        deleted: false,
        reset: None,
        settings: None,
    };
    let producer: FutureProducer = producer_config(
        &kafka.brokers,
        Delivery::AtLeastOnceIdempotent,
        Duration::from_secs(10),
    )
    .create()?;
    producer
        .send(
            FutureRecord::to(&topics.rules)
                .key(&change.key())
                .payload(&change.encode(&RuleChange::codec()?)?),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    let alerts: BaseConsumer = reader_config(&kafka.brokers, &format!("bench-alerts-{run}"))
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    alerts.subscribe(&[&topics.alerts])?;
    let alert_codec = AlertRecord::codec(WireFormat::SingleObject)?;
    let mut latencies = Vec::new();
    let mut ts = crate::time::now_ms();
    let mut tries = 0;
    while latencies.len() < count && tries < count * 4 {
        tries += 1;
        for value in [150.0, 20.0] {
            ts += 1_000;
            let batch = ReadingBatch {
                tenant_id: plant.tenant,
                machine_id: plant.machines[0],
                machine: "bench-0".into(),
                source: Source::Gateway,
                ingest_time_ms: ts,
                readings: vec![Reading {
                    metric: "probe".into(),
                    event_time_ms: ts,
                    value,
                    quality: None,
                }],
            };
            let sent = Instant::now();
            sink.write(std::slice::from_ref(&batch)).await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let alerts_ref = &alerts;
            let found = tokio::task::block_in_place(|| -> anyhow::Result<bool> {
                while Instant::now() < deadline {
                    if let Some(msg) = alerts_ref.poll(Duration::from_millis(5)) {
                        let a =
                            AlertRecord::decode(&alert_codec, msg?.payload().unwrap_or_default())?;
                        if a.event_time_ms == ts && a.rule_id == "hot" {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            })?;
            if found && value > 100.0 {
                latencies.push(sent.elapsed());
            }
        }
    }
    Ok(latencies)
}
