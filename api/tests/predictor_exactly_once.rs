//! The RUL predictor on real Kafka and PostgreSQL: machines whose readings replay run-to-failure engines get
//! one prediction per cycle on the predictions topic (read_committed), exactly those the prediction logic
//! gives, however often the predictor is killed with SIGKILL and restarted; the projection stores each
//! once in `predictions`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Isolation;
use haltless_connectors::gateway::ReadingsSink;
use haltless_processors::prediction::cmapss::{parse, simulate, Run};
use haltless_processors::prediction::stream::{Observed, Window};
use haltless_processors::prediction::{RulModel, TrainOptions};
use haltless_schemas::models::ModelChange;
use haltless_schemas::predictions::PredictionRecord;
use haltless_schemas::{Reading, ReadingBatch, Source, WireFormat};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::process::{Child, Command};
use uuid::Uuid;

const MACHINES: usize = 4;
const START_MS: i64 = 1_795_000_000_000;

/// What one prediction must be: (event time, cycle, RUL, lower, upper, model version).
type Expected = (i64, i64, f64, f64, f64, String);

/// A machine's readings, one message per cycle: its engine's settings and sensors, named as the model
/// names them, a minute apart.
fn batches(model: &RulModel, run: &Run, tenant: Uuid, id: Uuid, name: &str) -> Vec<ReadingBatch> {
    let layout = &model.normaliser.layout;
    run.cycles
        .iter()
        .enumerate()
        .map(|(i, c)| ReadingBatch {
            tenant_id: tenant,
            machine_id: id,
            machine: name.to_owned(),
            source: Source::Gateway,
            ingest_time_ms: 0,
            readings: layout
                .settings
                .iter()
                .zip(&c.settings)
                .chain(layout.sensors.iter().zip(&c.sensors))
                .map(|(metric, value)| Reading {
                    metric: metric.clone(),
                    event_time_ms: START_MS + i as i64 * 60_000,
                    value: *value,
                    quality: None,
                })
                .collect(),
        })
        .collect()
}

/// The predictions the logic gives for a machine's batches.
fn expected(model: &RulModel, batches: &[ReadingBatch]) -> Vec<Expected> {
    let mut window = Window::default();
    let mut out = Vec::new();
    for b in batches {
        for r in &b.readings {
            if let Observed::Predicted(step) =
                window.observe(Some(model), None, &r.metric, r.event_time_ms, r.value)
            {
                let p = step.prediction;
                out.push((
                    step.event_time_ms,
                    step.cycle as i64,
                    p.rul,
                    p.lower,
                    p.upper,
                    model.version.clone(),
                ));
            }
        }
    }
    out
}

fn role(iso: &Isolation, role: &str, instance: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_haltless"))
        .arg(role)
        .envs(iso.env())
        .env("HALTLESS__PREDICTOR__INSTANCE", instance)
        .env("HALTLESS__PREDICTOR__BATCH_MAX_MESSAGES", "5")
        .env("HALTLESS__PREDICTOR__SESSION_TIMEOUT_MS", "6000")
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

/// Every committed prediction, per machine, in topic order.
fn committed(iso: &Isolation, want: usize) -> BTreeMap<String, Vec<PredictionRecord>> {
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
        tpl.add_partition_offset(&k.predictions_topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let codec = PredictionRecord::codec(WireFormat::SingleObject).unwrap();
    let mut out: BTreeMap<String, Vec<PredictionRecord>> = BTreeMap::new();
    let (mut seen, mut quiet) = (0, Instant::now());
    while quiet.elapsed() < Duration::from_secs(if seen >= want { 3 } else { 120 }) {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let p = PredictionRecord::decode(&codec, msg.unwrap().payload().unwrap()).unwrap();
            out.entry(p.machine.clone()).or_default().push(p);
            seen += 1;
            quiet = Instant::now();
        }
    }
    out
}

#[tokio::test]
async fn predictions_appear_once_each_however_often_the_predictor_is_killed() {
    let iso = Isolation::create().await;
    let names: Vec<String> = (0..MACHINES).map(|m| format!("engine-{m}")).collect();
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

    // The tenant's model, trained on simulated engines, serves every machine of the tenant.
    let model = RulModel::train(&parse(&simulate(8, 21)).unwrap(), &TrainOptions::quick()).unwrap();
    let change = ModelChange {
        tenant_id: tenant,
        model_id: Uuid::new_v4(),
        version: model.version.clone(),
        effective_from_ms: 0,
        active: true,
        machines: vec![],
        model: model.to_json(),
        alert_below: None,
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .set("message.max.bytes", "33554432")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&k.models_topic)
                .key(&change.key())
                .payload(&change.encode(&ModelChange::codec().unwrap()).unwrap()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    // Each machine replays an engine the model never saw, to its failure.
    let engines = parse(&simulate(MACHINES as u32, 99)).unwrap();
    let sink = ReadingsSink::new(
        &k.brokers,
        &k.readings_topic,
        ReadingBatch::codec(WireFormat::SingleObject).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let mut want: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    for (name, run) in names.iter().zip(&engines) {
        let machine = batches(&model, run, tenant, ids[name], name);
        want.insert(name.clone(), expected(&model, &machine));
        for chunk in machine.chunks(20) {
            sink.write(chunk).await.unwrap();
        }
    }
    let total: usize = want.values().map(Vec::len).sum();
    assert!(total > MACHINES * 100, "{total} predictions expected");

    let mut rng = rand::rng();
    for _ in 0..3 {
        let mut child = role(&iso, "predictor", "a");
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..5_000))).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    let mut predictor = role(&iso, "predictor", "a");
    let mut projection = role(&iso, "project", "-");
    let got = committed(&iso, total);

    for name in &names {
        let summary: Vec<Expected> = got
            .get(name)
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p.event_time_ms,
                            p.cycle,
                            p.rul,
                            p.lower,
                            p.upper,
                            p.model_version.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            summary, want[name],
            "{name}: prediction for prediction, none missing, none doubled"
        );
        let ps = &got[name];
        assert!(ps.iter().all(|p| p.tenant_id == tenant
            && p.machine_id == ids[name]
            && p.model_id == change.model_id
            && p.contributors.len() == 3
            && (0.0..=1.0).contains(&p.health)
            && p.lower <= p.rul
            && p.rul <= p.upper));
        // The remaining life counts down to the engine's failure.
        let (first, last) = (&ps[0], ps.last().unwrap());
        assert!(first.rul > 80.0 && last.rul < 25.0, "{first:?} … {last:?}");
    }

    // The projection stores each prediction once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM predictions WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&iso.pool)
            .await
            .unwrap();
        if rows as usize == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} rows of {total} predictions"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let newest: (f64, i64) = sqlx::query_as(
        "SELECT rul, cycle FROM predictions WHERE machine_id = $1 ORDER BY ts DESC LIMIT 1",
    )
    .bind(ids[&names[0]])
    .fetch_one(&iso.pool)
    .await
    .unwrap();
    let last = want[&names[0]].last().unwrap();
    assert_eq!(newest, (last.2, last.1));

    for child in [&mut predictor, &mut projection] {
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    iso.drop().await;
}
