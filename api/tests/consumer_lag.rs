//! Consumer lag as the platform reports it (`haltless_processor_lag_messages`,
//! `haltless_projection_lag_messages`), computed from a real consumer's statistics on a transactional topic:
//! per partition while behind (not the whole consumer's queue on every partition), and 0 once caught up
//! although commit markers follow the last message.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haltless_api::config::Settings;
use haltless_processors::runtime::kafka::{
    consumer_config, transactional_producer_config, ConsumerDelivery,
};
use haltless_processors::runtime::lag::lag;
use haltless_processors::runtime::topics::{delete_topics, ensure_topics, TopicSpec};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::statistics::Partition;
use rdkafka::{ClientContext, Statistics};
use uuid::Uuid;

/// Keeps every statistics report the consumer served.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<Statistics>>>);

impl ClientContext for Reports {
    fn stats(&self, statistics: Statistics) {
        self.0.lock().unwrap().push(statistics);
    }
}

impl ConsumerContext for Reports {}

/// Each report's partitions of `topic` (the internal partition -1 left out).
fn partitions(reports: &Reports, topic: &str) -> Vec<BTreeMap<i32, Partition>> {
    reports
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|s| s.topics.get(topic))
        .map(|t| {
            t.partitions
                .iter()
                .filter(|(id, _)| **id >= 0)
                .map(|(id, p)| (*id, p.clone()))
                .collect()
        })
        .filter(|ps: &BTreeMap<i32, Partition>| ps.len() == 3)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_counts_each_partition_and_reaches_zero_past_the_commit_markers() {
    let brokers = Settings::load(None).unwrap().kafka.brokers;
    let run = Uuid::new_v4().simple().to_string();
    let topic = format!("test.lag.{run}");
    ensure_topics(
        &brokers,
        &[TopicSpec {
            name: topic.clone(),
            partitions: 3,
            replication: 1,
            config: vec![],
        }],
    )
    .await
    .unwrap();

    // Three transactions: 9 messages on partition 0, 3 on partition 1, none on partition 2.
    let producer: ThreadedProducer<DefaultProducerContext> =
        transactional_producer_config(&brokers, &format!("test-lag-{run}"), 10_000)
            .create()
            .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    for _ in 0..3 {
        producer.begin_transaction().unwrap();
        for partition in [0, 0, 0, 1] {
            producer
                .send(
                    BaseRecord::to(&topic)
                        .key("k")
                        .payload("v")
                        .partition(partition),
                )
                .unwrap();
        }
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
    }

    // A slow reader: one message every 150 ms, statistics every 100 ms (served while it polls).
    let reports = Reports::default();
    let consumer: StreamConsumer<Reports> = consumer_config(
        &brokers,
        &format!("test-lag-{run}"),
        ConsumerDelivery::ExactlyOnce,
    )
    .set("statistics.interval.ms", "100")
    .create_with_context(reports.clone())
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    for _ in 0..12 {
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Caught up: keep polling (nothing comes) so that later reports are served.
    let _ = tokio::time::timeout(Duration::from_millis(1_000), consumer.recv()).await;

    let seen = partitions(&reports, &topic);
    let behind: Vec<_> = seen
        .iter()
        .filter(|ps| ps.values().any(|p| p.fetchq_cnt > 0))
        .collect();
    assert!(
        !behind.is_empty(),
        "no report while messages waited: {seen:?}"
    );
    for ps in behind {
        // Each partition counts its own messages (and the markers between them), not the whole queue's.
        let lags: BTreeMap<i32, Option<i64>> = ps.iter().map(|(id, p)| (*id, lag(p))).collect();
        assert!(lags[&0].unwrap_or(0) <= 12, "partition 0: {lags:?}");
        assert!(lags[&1].unwrap_or(0) <= 6, "partition 1: {lags:?}");
        assert_eq!(lags[&2].unwrap_or(0), 0, "partition 2 is empty: {lags:?}");
    }
    // Everything taken: 0 everywhere, although each partition ends with a commit marker.
    let last = seen.last().unwrap();
    let lags: BTreeMap<i32, Option<i64>> = last.iter().map(|(id, p)| (*id, lag(p))).collect();
    assert_eq!(
        lags,
        BTreeMap::from([(0, Some(0)), (1, Some(0)), (2, Some(0))]),
        "caught up: {last:?}"
    );

    drop(consumer);
    delete_topics(&brokers, &[&topic]).await;
}
