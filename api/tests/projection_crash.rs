//! The readings projection killed with SIGKILL at random moments, mid-batch, and restarted: every reading
//! ends up in the table exactly once.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Isolation;
use haltless_connectors::gateway::ReadingsSink;
use haltless_schemas::{Reading, ReadingBatch, Source, WireFormat};
use rand::Rng;
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

const MESSAGES: usize = 400;
const PER_MESSAGE: usize = 50;

async fn rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn projector(iso: &Isolation) -> Child {
    Command::new(env!("CARGO_BIN_EXE_haltless"))
        .arg("project")
        .envs(iso.env())
        // Small transactions, so that kills land in the middle of many of them.
        .env("HALTLESS__PROJECTION__BATCH_MAX_MESSAGES", "4")
        // Two consumers of the group (the default), each its share of the three partitions in its own
        // transactions: a kill lands between one's commit and the other's too.
        .env("HALTLESS__PROJECTION__WRITERS", "2")
        // The broker's minimum: a killed instance's partitions come back to the next one soon.
        .env("HALTLESS__PROJECTION__SESSION_TIMEOUT_MS", "6000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the haltless binary starts")
}

#[tokio::test]
async fn projection_killed_mid_batch_loses_and_doubles_nothing() {
    let iso = Isolation::create().await;
    let machines = ["m-0", "m-1", "m-2", "m-3", "m-4", "m-5"];
    let (tenant, _) = iso.tenant_with_machines(&machines).await;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM machines ORDER BY name")
        .fetch_all(&iso.pool)
        .await
        .unwrap();

    // The input goes straight to the topic, as the gateway would write it.
    let s = &iso.settings;
    let codec = ReadingBatch::codec(WireFormat::SingleObject).unwrap();
    let sink = ReadingsSink::new(
        &s.kafka.brokers,
        &s.kafka.readings_topic,
        codec,
        Duration::from_secs(10),
    )
    .unwrap();
    let mut expected_sum = 0.0;
    let batches: Vec<ReadingBatch> = (0..MESSAGES)
        .map(|m| ReadingBatch {
            tenant_id: tenant,
            machine_id: ids[m % ids.len()],
            machine: machines[m % ids.len()].into(),
            source: Source::Gateway,
            ingest_time_ms: 1_795_687_200_000,
            readings: (0..PER_MESSAGE)
                .map(|i| {
                    let value = (m * PER_MESSAGE + i) as f64;
                    expected_sum += value;
                    Reading {
                        metric: format!("metric-{}", i % 5),
                        event_time_ms: 1_795_687_200_000 + (m * PER_MESSAGE + i) as i64,
                        value,
                        quality: None,
                    }
                })
                .collect(),
        })
        .collect();
    for chunk in batches.chunks(50) {
        sink.write(chunk).await.unwrap();
    }
    let total = (MESSAGES * PER_MESSAGE) as i64;

    // Kill the projection four times at random moments while it writes.
    let mut rng = rand::rng();
    for round in 0..4 {
        let before = rows(&iso.pool).await;
        let mut child = projector(&iso);
        let deadline = Instant::now() + Duration::from_secs(60);
        while rows(&iso.pool).await == before {
            assert!(
                Instant::now() < deadline,
                "round {round}: the projection made no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let after = rows(&iso.pool).await;
        assert!(
            after <= total,
            "round {round}: {after} rows for {total} readings"
        );
        if after == total {
            break;
        }
    }

    // A last run finishes the topic.
    let mut child = projector(&iso);
    let deadline = Instant::now() + Duration::from_secs(120);
    while rows(&iso.pool).await < total {
        assert!(
            Instant::now() < deadline,
            "stalled at {} of {total}",
            rows(&iso.pool).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let (count, distinct, sum): (i64, i64, f64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (machine_id, metric, ts)), sum(value) FROM named_readings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&iso.pool)
    .await
    .unwrap();
    assert_eq!(count, total, "every reading stored");
    assert_eq!(distinct, total, "none stored twice");
    assert_eq!(sum, expected_sum, "with its own value");
    let applied: i64 = sqlx::query_scalar(
        "SELECT sum(next_offset)::bigint FROM projection_offsets WHERE projection = 'readings'",
    )
    .fetch_one(&iso.pool)
    .await
    .unwrap();
    assert_eq!(
        applied, MESSAGES as i64,
        "the stored offsets cover exactly the topic"
    );
    iso.drop().await;
}
