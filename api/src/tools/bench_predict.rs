//! `haltless bench-predict`: the RUL model's training time, streaming inference readings/s on one core (the
//! predictor's per-machine window, with each prediction's explanation), and reading → committed prediction
//! latency through the predictor on throw-away topics of the configured Kafka (removed afterwards).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use haltless_connectors::gateway::ReadingsSink;
use haltless_processors::config::KafkaConfig;
use haltless_processors::prediction::cmapss::{self, Run};
use haltless_processors::prediction::predictor::{
    PredictorConfig, PredictorRuntime, PredictorTopics,
};
use haltless_processors::prediction::stream::{Observed, Window};
use haltless_processors::prediction::{RulModel, TrainOptions};
use haltless_processors::runtime::kafka::reader_config;
use haltless_processors::runtime::topics::{delete_topics, ensure_topics, TopicSpec};
use haltless_schemas::models::ModelChange;
use haltless_schemas::predictions::PredictionRecord;
use haltless_schemas::{AlertRecord, Reading, ReadingBatch, Source, WireFormat};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::MODEL_MESSAGE_BYTES;

/// Parameters of the prediction benchmark.
#[derive(Debug, Clone)]
pub struct PredictBenchConfig {
    /// Train on this C-MAPSS file; else on 100 simulated engines.
    pub cmapss: Option<PathBuf>,
    /// The quick recipe instead of the full one.
    pub quick: bool,
    /// Predictions to time end to end.
    pub latencies: usize,
}

/// Runs the three measurements and prints them.
pub async fn run(kafka: &KafkaConfig, config: PredictBenchConfig) -> anyhow::Result<()> {
    let runs = match &config.cmapss {
        Some(path) => cmapss::parse(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => cmapss::parse(&cmapss::simulate(100, 13))?,
    };
    let options = if config.quick {
        TrainOptions::quick()
    } else {
        TrainOptions::default()
    };
    let started = Instant::now();
    let model = tokio::task::spawn_blocking(move || RulModel::train(&runs, &options)).await??;
    let trained = started.elapsed();
    let source = config
        .cmapss
        .as_ref()
        .map_or("100 simulated engines".to_owned(), |p| {
            p.display().to_string()
        });
    println!(
        "RUL benchmark: model {} ({} recipe) on {source}",
        model.version,
        if config.quick { "quick" } else { "full" }
    );
    println!(
        "  training (cross-validation by unit + final fit):  {:>8.1} s   (cross-validated RMSE {:.2} cycles)",
        trained.as_secs_f64(),
        model.metrics.cv_rmse
    );
    let test = cmapss::parse(&cmapss::simulate(50, 99))?;
    let (readings, predictions, secs) = inference(&model, &test);
    println!(
        "  streaming inference, one core:                  {:>8.0} readings/s ({:.0} predictions/s with their top sensors; {readings} readings, {:.2} s)",
        readings as f64 / secs,
        predictions as f64 / secs,
        secs
    );
    let mut latencies = latency(kafka, &model, &test[0], config.latencies).await?;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3
    };
    println!(
        "  reading → committed prediction (Kafka, exactly once): p50 {:.1} ms, p99 {:.1} ms over {} cycles, one cycle in flight",
        pct(0.5),
        pct(0.99),
        latencies.len()
    );
    Ok(())
}

/// Every cycle of `runs` as named readings through one window per run, on this thread: (readings,
/// predictions, seconds).
fn inference(model: &RulModel, runs: &[Run]) -> (usize, usize, f64) {
    let layout = &model.normaliser.layout;
    let names: Vec<&String> = layout.settings.iter().chain(&layout.sensors).collect();
    let mut windows: Vec<Window> = runs.iter().map(|_| Window::default()).collect();
    let longest = runs.iter().map(|r| r.cycles.len()).max().unwrap_or(0);
    let (mut readings, mut predictions) = (0, 0);
    let started = Instant::now();
    for i in 0..longest {
        for (run, window) in runs.iter().zip(&mut windows) {
            let Some(c) = run.cycles.get(i) else { continue };
            let values = c.settings.iter().chain(&c.sensors);
            for (name, value) in names.iter().zip(values) {
                readings += 1;
                if let Observed::Predicted(_) =
                    window.observe(Some(model), Some(20.0), name, i as i64, *value)
                {
                    predictions += 1;
                }
            }
        }
    }
    (readings, predictions, started.elapsed().as_secs_f64())
}

/// Reading → committed prediction, one cycle at a time, through a predictor on throw-away topics.
async fn latency(
    kafka: &KafkaConfig,
    model: &RulModel,
    run: &Run,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    let id = Uuid::new_v4().simple().to_string();
    let topics = PredictorTopics {
        readings: format!("bench.readings.{id}"),
        predictions: format!("bench.predictions.{id}"),
        changelog: format!("bench.predictor-state.{id}"),
        models: format!("bench.models.{id}"),
        alerts: format!("bench.alerts.{id}"),
    };
    let spec = |name: &str, compact: bool| TopicSpec {
        name: name.to_owned(),
        partitions: 1,
        replication: kafka.replication,
        config: if compact {
            vec![
                ("cleanup.policy".into(), "compact".into()),
                ("max.message.bytes".into(), MODEL_MESSAGE_BYTES.to_string()),
            ]
        } else {
            vec![]
        },
    };
    ensure_topics(
        &kafka.brokers,
        &[
            spec(&topics.readings, false),
            spec(&topics.predictions, false),
            spec(&topics.changelog, true),
            spec(&topics.models, true),
            spec(&topics.alerts, false),
        ],
    )
    .await?;
    let result = measure(kafka, &topics, model, run, count, &id).await;
    let names = [
        topics.readings.as_str(),
        topics.predictions.as_str(),
        topics.changelog.as_str(),
        topics.models.as_str(),
        topics.alerts.as_str(),
    ];
    delete_topics(&kafka.brokers, &names).await;
    result
}

async fn measure(
    kafka: &KafkaConfig,
    topics: &PredictorTopics,
    model: &RulModel,
    run: &Run,
    count: usize,
    id: &str,
) -> anyhow::Result<Vec<Duration>> {
    let tenant = Uuid::new_v4();
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
        .set("bootstrap.servers", &kafka.brokers)
        .set("message.max.bytes", MODEL_MESSAGE_BYTES.to_string())
        .set("compression.type", "lz4")
        .create()?;
    producer
        .send(
            FutureRecord::to(&topics.models)
                .key(&change.key())
                .payload(&change.encode(&ModelChange::codec()?)?),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
    let codec = ReadingBatch::codec(WireFormat::SingleObject)?;
    let sink = ReadingsSink::new(
        &kafka.brokers,
        &topics.readings,
        codec.clone(),
        Duration::from_secs(30),
    )?;
    let config = PredictorConfig {
        group: format!("bench-predictor-{id}"),
        instance: "bench".into(),
        ..PredictorConfig::default()
    };
    let runtime = PredictorRuntime::new(
        &kafka.brokers,
        topics.clone(),
        &config,
        [
            codec,
            PredictionRecord::codec(WireFormat::SingleObject)?,
            AlertRecord::codec(WireFormat::SingleObject)?,
        ],
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runtime.run(shutdown.clone()));
    let consumer: BaseConsumer =
        reader_config(&kafka.brokers, &format!("bench-reader-{id}")).create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topics.predictions, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let prediction_codec = PredictionRecord::codec(WireFormat::SingleObject)?;
    let layout = &model.normaliser.layout;
    let machine = Uuid::new_v4();
    let mut latencies = Vec::new();
    let timed = async {
        for (i, c) in run.cycles.iter().enumerate() {
            if latencies.len() >= count {
                break;
            }
            let ts = 1_000 + i as i64;
            let readings = layout
                .settings
                .iter()
                .zip(&c.settings)
                .chain(layout.sensors.iter().zip(&c.sensors))
                .map(|(metric, value)| Reading {
                    metric: metric.clone(),
                    event_time_ms: ts,
                    value: *value,
                    quality: None,
                })
                .collect();
            let batch = ReadingBatch {
                tenant_id: tenant,
                machine_id: machine,
                machine: "bench-engine".into(),
                source: Source::Gateway,
                ingest_time_ms: 0,
                readings,
            };
            let sent = Instant::now();
            sink.write(&[batch]).await?;
            // The first cycles fill the window; a prediction follows from the fifth on.
            if i + 1 < haltless_processors::prediction::model::MIN_PREDICTION_CYCLES {
                continue;
            }
            let deadline = sent + Duration::from_secs(60);
            loop {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "no prediction for cycle {}",
                    i + 1
                );
                let polled =
                    tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(50)));
                if let Some(msg) = polled {
                    let p = PredictionRecord::decode(
                        &prediction_codec,
                        msg?.payload().unwrap_or_default(),
                    )?;
                    if p.event_time_ms == ts {
                        latencies.push(sent.elapsed());
                        break;
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    shutdown.cancel();
    let _ = task.await;
    timed?;
    Ok(latencies)
}
