//! `haltless backtest`: the detectors over recorded series (CSV files or the NAB corpus), writing NAB
//! results files and printing detections and NAB scores.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use haltless_schemas::{Codec, ReadingBatch};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::nab::{self, Profile};
use super::series::{run_corpus, run_series, sweep, SeriesRun};
use crate::config::KafkaConfig;
use crate::detection::logic::lifecycle::Transition;
use crate::detection::logic::rules::Rule;
use crate::runtime::codecs::readings_codec;
use crate::runtime::kafka::reader_config;
use crate::runtime::offsets::TopicOffsets;

/// What to backtest.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    /// One `timestamp,value` CSV.
    pub csv: Option<PathBuf>,
    /// A NAB-style folder: `combined_windows.json` and `data/<group>/<stream>.csv`.
    pub nab: Option<PathBuf>,
    /// Labels for `csv`: a `combined_windows.json`, with the key of the stream in it.
    pub labels: Option<PathBuf>,
    /// The stream's key in `labels`; by default the CSV's `<parent folder>/<file name>`.
    pub stream: Option<String>,
    /// A JSON array of rules on the metric `value`; the default detectors when absent.
    pub rules: Option<PathBuf>,
    /// Where results go: a file for `csv`, a folder for `nab`.
    pub out: Option<PathBuf>,
    /// Only streams whose key contains one of these texts (with `nab`); all when empty.
    pub only: Vec<String>,
    /// A range of the readings topic instead of a file.
    pub topic: Option<TopicRange>,
}

/// One metric of one machine, from a time range of the readings topic.
#[derive(Debug, Clone)]
pub struct TopicRange {
    /// The machine's name.
    pub machine: String,
    /// The metric.
    pub metric: String,
    /// The tenant, needed when several tenants have a machine of that name.
    pub tenant: Option<Uuid>,
    /// Readings written to Kafka from this time on (the topic's start when absent).
    pub from: Option<DateTime<Utc>>,
    /// Readings written before this time (the topic's end when absent).
    pub to: Option<DateTime<Utc>>,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs the backtest and prints its summary; `kafka` locates the readings topic for a topic range.
pub async fn run(config: &BacktestConfig, kafka: &KafkaConfig) -> anyhow::Result<()> {
    let rules: Vec<Rule> = match &config.rules {
        Some(p) => serde_json::from_str(&read(p)?)
            .with_context(|| format!("{}: not a JSON array of rules", p.display()))?,
        None => Vec::new(),
    };
    let profile = Profile::STANDARD;
    let (series, key) = match (&config.csv, &config.nab, &config.topic) {
        (None, Some(dir), None) => return run_nab(dir, config, &rules, &profile),
        (Some(csv), None, None) => (
            nab::parse_csv(&read(csv)?)?,
            config.stream.clone().unwrap_or_else(|| stream_key(csv)),
        ),
        (None, None, Some(range)) => {
            let k = kafka;
            let (brokers, topic) = (k.brokers.clone(), k.readings_topic.clone());
            let (codec, r) = (readings_codec(kafka).await?, range.clone());
            let series =
                tokio::task::spawn_blocking(move || read_topic(&brokers, &topic, &codec, &r))
                    .await??;
            let key = config
                .stream
                .clone()
                .unwrap_or_else(|| format!("{}/{}", range.machine, range.metric));
            (series, key)
        }
        _ => anyhow::bail!(
            "give exactly one of --csv FILE, --nab FOLDER, or --machine NAME --metric NAME (a topic range)"
        ),
    };
    let windows = match &config.labels {
        Some(p) => nab::parse_windows(&read(p)?)?
            .remove(&key)
            .with_context(|| {
                format!(
                    "{} has no stream {key:?}; name it with --stream",
                    p.display()
                )
            })?,
        None => Vec::new(),
    };
    let run = run_series(&key, &series, &rules, &windows);
    if let Some(out) = &config.out {
        std::fs::write(out, nab::write_results_csv(&run.rows))?;
    }
    println!(
        "{key}: {} readings, {} alerts raised",
        series.len(),
        run.detections()
    );
    for e in run
        .events
        .iter()
        .filter(|e| e.transition == Transition::Raised)
    {
        let at = DateTime::from_timestamp_millis(e.event_time_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!("  raised at {at}: {}", e.explanation);
    }
    print_by_feature(std::iter::once(&run));
    if config.labels.is_some() {
        let s = run.score(&windows, &profile);
        let (null, perfect) = (
            nab::null_raw(&windows, &profile),
            nab::perfect_raw(&windows, &profile),
        );
        let norm = if windows.is_empty() {
            "n/a (no labelled windows)".to_owned()
        } else {
            format!("{:.1}", nab::normalized_score(s.raw, null, perfect))
        };
        println!(
            "  windows {}: {} detected, {} missed, {} false positives; raw {:.3}; NAB standard {norm}",
            windows.len(),
            s.true_positives,
            s.false_negatives,
            s.false_positives,
            s.raw
        );
    }
    Ok(())
}

/// The readings of one metric of one machine in a range of the readings topic, in topic order (the order
/// the detectors saw them in). Blocking.
fn read_topic(
    brokers: &str,
    topic: &str,
    codec: &Codec,
    range: &TopicRange,
) -> anyhow::Result<Vec<(i64, f64)>> {
    let offsets = TopicOffsets::new(brokers, topic)?;
    let start = offsets.at_time(range.from.map(|t| t.timestamp_millis()))?;
    let end = match range.to {
        Some(to) => offsets.at_time(Some(to.timestamp_millis()))?,
        None => offsets.ends()?,
    };
    let consumer: BaseConsumer = reader_config(brokers, "haltless-backtest").create()?;
    let mut tpl = TopicPartitionList::new();
    let mut open: HashMap<i32, i64> = HashMap::new();
    for (&p, &s) in &start {
        let e = end.get(&p).copied().unwrap_or(s);
        if s < e {
            tpl.add_partition_offset(topic, p, Offset::Offset(s))?;
            open.insert(p, e);
        }
    }
    consumer.assign(&tpl)?;
    let mut series = Vec::new();
    let mut tenants = HashSet::new();
    let mut idle = std::time::Instant::now();
    while !open.is_empty() {
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            idle = std::time::Instant::now();
            let msg = msg?;
            if open
                .get(&msg.partition())
                .is_some_and(|&e| msg.offset() < e)
            {
                if let Some(Ok(batch)) = msg.payload().map(|b| ReadingBatch::decode(codec, b)) {
                    if batch.machine == range.machine
                        && range.tenant.is_none_or(|t| t == batch.tenant_id)
                    {
                        tenants.insert(batch.tenant_id);
                        series.extend(
                            batch
                                .readings
                                .iter()
                                .filter(|r| r.metric == range.metric)
                                .map(|r| (r.event_time_ms, r.value)),
                        );
                    }
                }
            }
        }
        // A partition is done once the consumer's position passed the range's end.
        for e in consumer.position()?.elements() {
            if let (Offset::Offset(pos), Some(&end)) = (e.offset(), open.get(&e.partition())) {
                if pos >= end {
                    open.remove(&e.partition());
                }
            }
        }
        anyhow::ensure!(
            idle.elapsed() < Duration::from_secs(30),
            "the readings topic stopped delivering before the end of the range"
        );
    }
    anyhow::ensure!(
        tenants.len() <= 1,
        "several tenants have a machine {:?}: {:?}; choose one with --tenant",
        range.machine,
        tenants
    );
    anyhow::ensure!(
        !series.is_empty(),
        "no readings of {}/{} in that range of {topic}",
        range.machine,
        range.metric
    );
    Ok(series)
}

/// The grid of thresholds NAB's sweep is tried on.
const SWEEP_STEP: f64 = 0.005;

fn run_nab(
    dir: &Path,
    config: &BacktestConfig,
    rules: &[Rule],
    profile: &Profile,
) -> anyhow::Result<()> {
    let windows = nab::parse_windows(&read(&dir.join("combined_windows.json"))?)?;
    let mut streams = Vec::new();
    for (key, w) in &windows {
        if !config.only.is_empty() && !config.only.iter().any(|o| key.contains(o.as_str())) {
            continue;
        }
        let series =
            nab::parse_csv(&read(&dir.join("data").join(key))?).with_context(|| key.clone())?;
        streams.push((key.clone(), series, w.clone()));
    }
    let (runs, tally) = run_corpus(
        streams
            .iter()
            .map(|(k, s, w)| (k.as_str(), s.as_slice(), w.as_slice())),
        rules,
        profile,
    );
    println!(
        "{:<60} {:>7} {:>7} {:>4} {:>4} {:>4} {:>8}",
        "stream", "rows", "alerts", "TP", "FN", "FP", "raw"
    );
    for (key, run, s) in &runs {
        println!(
            "{key:<60} {:>7} {:>7} {:>4} {:>4} {:>4} {:>8.3}",
            run.rows.len(),
            run.detections(),
            s.true_positives,
            s.false_negatives,
            s.false_positives,
            s.raw
        );
        if let Some(out) = &config.out {
            let path = out.join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, nab::write_results_csv(&run.rows))?;
        }
    }
    let (tp, fn_, fp) = runs.iter().fold((0, 0, 0), |a, (_, _, s)| {
        (
            a.0 + s.true_positives,
            a.1 + s.false_negatives,
            a.2 + s.false_positives,
        )
    });
    println!(
        "{} streams: {tp} windows detected, {fn_} missed, {fp} false positives",
        runs.len()
    );
    print_by_feature(runs.iter().map(|(_, run, _)| run));
    println!("NAB score (standard profile): {:.1}", tally.normalized());
    let (threshold, best) = sweep(
        runs.iter()
            .zip(&streams)
            .map(|((_, run, _), (_, _, w))| (run, w.as_slice())),
        profile,
        SWEEP_STEP,
    );
    println!(
        "NAB's threshold sweep over the written scores: {:.1} at threshold {threshold:.3}",
        best.normalized()
    );
    Ok(())
}

/// Prints how many alerts each feature (or detector) raised, and how many of them inside a labelled window.
fn print_by_feature<'a>(runs: impl Iterator<Item = &'a SeriesRun>) {
    let mut total: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for run in runs {
        for (feature, (raised, labelled)) in run.by_feature() {
            let t = total.entry(feature).or_default();
            t.0 += raised;
            t.1 += labelled;
        }
    }
    let parts: Vec<String> = total
        .iter()
        .map(|(f, (raised, labelled))| format!("{f} {raised} ({labelled} in a labelled window)"))
        .collect();
    println!("alerts raised by feature: {}", parts.join(", "));
}

/// `<parent>/<file>` of a path, the form of NAB's stream keys.
fn stream_key(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(parent) => format!("{}/{file}", parent.to_string_lossy()),
        None => file,
    }
}
