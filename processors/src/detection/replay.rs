//! `haltless replay`: reprocesses the readings topic into a new generation of detection (detector state,
//! alert topic, alert rows) while ingestion and the active generation go on, then switches over.
//!
//! Without `--to`, the new generation's detectors start at `--from` (or the topic's start), catch up with
//! the live head, its alerts and the alert actions (ack, snooze) are projected, and then the replay stops its
//! own tasks and makes the generation active in one database transaction; the processes of the platform move
//! to it within seconds and continue from the offsets it committed. With `--to`, only `[from, to)` is
//! reprocessed and the generation is kept for inspection (status `inspect`), never made active.
//!
//! `--from` and `--to` select readings by the time they were written to Kafka; the detectors still use
//! each reading's event time. A replay from a later point starts with empty detector state there, so its
//! baselines relearn from that point on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::ProcessorsConfig;
use crate::detection::generation::{self, Generation, Status};
use crate::detection::supervisor;
use crate::runtime::offsets::TopicOffsets;
use crate::runtime::tasks::{until_all_end, Task};
use crate::runtime::ProcessorError;

const POLL: Duration = Duration::from_millis(500);
/// Polls without progress after which a projection counts as caught up even if offsets remain: the tail
/// of a transactional topic can be aborted records and markers that never become visible.
const QUIET_POLLS: u32 = 6;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Reprocess readings written from this time on (the topic's start when absent).
    pub from: Option<DateTime<Utc>>,
    /// Reprocess readings written before this time only, and keep the generation for inspection.
    pub to: Option<DateTime<Utc>>,
    /// Switch over once at most this many readings messages are left for the detectors (under heavy
    /// ingest the head moves; the platform's detectors take the rest).
    pub max_lag: i64,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The generation built.
    pub generation: Generation,
    /// The generation it replaced, when it switched over.
    pub replaced: Option<Generation>,
    /// The new generation's alert topic.
    pub alerts_topic: String,
    /// Readings messages the detectors reprocessed.
    pub messages: i64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs a replay to its end (switch-over, or inspection with `to`). Cancelling `shutdown` abandons it and
/// leaves the active generation as it was.
pub async fn run(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    options: &ReplayOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<ReplayOutcome> {
    let started = Instant::now();
    let stale = sqlx::query_scalar::<_, i32>(
        "UPDATE detection_generations SET status = 'abandoned' WHERE status = 'building' RETURNING generation",
    )
    .fetch_all(pool)
    .await?;
    for g in stale {
        tracing::warn!(
            generation = g,
            "marking an unfinished earlier replay abandoned"
        );
    }
    let g = generation::create(pool, options.from, options.to).await?;
    let result = build(settings, pool, options, g, &shutdown).await;
    match (&result, options.to) {
        (Ok(_), None) => {} // made active
        (Ok(_), Some(_)) => generation::finish(pool, g, Status::Inspect).await?,
        (Err(_), _) => generation::finish(pool, g, Status::Abandoned).await?,
    }
    let (messages, replaced) = result?;
    Ok(ReplayOutcome {
        generation: g,
        replaced,
        alerts_topic: g.name(&settings.kafka.alerts_topic),
        messages,
        elapsed: started.elapsed(),
    })
}

/// Builds generation `g`; returns the messages reprocessed and, after a switch-over, the replaced generation.
async fn build(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    options: &ReplayOptions,
    g: Generation,
    shutdown: &CancellationToken,
) -> anyhow::Result<(i64, Option<Generation>)> {
    supervisor::ensure_generation_topics(settings, g).await?;
    let k = &settings.kafka;
    let readings = Offsets::new(&k.brokers, &k.readings_topic)?;
    let start = readings.at_time(options.from).await?;
    let end = match options.to {
        Some(to) => Some(readings.at_time(Some(to)).await?),
        None => None,
    };
    let group = g.name(&settings.detector.group);
    readings.commit_for_group(&group, &start).await?;
    tracing::info!(generation = %g, from = ?options.from, to = ?options.to, "replaying");

    let tasks = CancellationToken::new();
    let mut settings = settings.clone();
    settings.detector.instance = "replay".into();
    let mut running: Vec<Task> =
        vec![supervisor::spawn_detector(&settings, g, end.clone(), &tasks).await?];
    running.push(supervisor::spawn_alerts_projection(&settings, pool, g, &tasks).await?);

    let outcome = follow(
        &settings,
        pool,
        options,
        g,
        &readings,
        &start,
        end,
        shutdown,
        &tasks,
        &mut running,
    )
    .await;
    tasks.cancel();
    until_all_end(running).await?;
    let messages = outcome?;
    if options.to.is_some() {
        return Ok((messages, None));
    }
    let replaced = generation::activate(pool, g).await?;
    tracing::info!(generation = %g, replaced = %replaced, "switched over");
    Ok((messages, Some(replaced)))
}

/// Watches the replay until the detectors and projections caught up; returns the messages reprocessed.
#[allow(clippy::too_many_arguments)]
async fn follow(
    settings: &ProcessorsConfig,
    pool: &PgPool,
    options: &ReplayOptions,
    g: Generation,
    readings: &Offsets,
    start: &HashMap<i32, i64>,
    end: Option<HashMap<i32, i64>>,
    shutdown: &CancellationToken,
    tasks: &CancellationToken,
    running: &mut Vec<Task>,
) -> anyhow::Result<i64> {
    let group = g.name(&settings.detector.group);
    let bar = progress_bar(options.progress);
    let mut last_log = Instant::now();
    // Phase 1: the detectors reach the end (or the live head).
    let done = loop {
        stop_if_failed(shutdown, running).await?;
        let target = match &end {
            Some(end) => end.clone(),
            None => readings.high_watermarks().await?,
        };
        let committed = readings.committed(&group).await?;
        let (done, total) = progress(start, &target, &committed);
        bar.set_length(total.max(0) as u64);
        bar.set_position(done.max(0) as u64);
        if last_log.elapsed() > Duration::from_secs(10) {
            tracing::info!(done, total, "replay progress");
            last_log = Instant::now();
        }
        if total - done <= options.max_lag.max(0) {
            break done;
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish_with_message("detectors caught up");
    // Phase 2: the new generation's alerts, then the actions on them, are in the database.
    let alerts_topic = g.name(&settings.kafka.alerts_topic);
    let brokers = &settings.kafka.brokers;
    wait_projection(
        pool,
        brokers,
        &g.name("alerts"),
        &alerts_topic,
        shutdown,
        running,
    )
    .await?;
    if end.is_none() {
        let actions = &settings.kafka.alert_actions_topic;
        running.push(supervisor::spawn_actions_projection(
            settings, pool, g, tasks,
        )?);
        wait_projection(
            pool,
            brokers,
            &g.name("alert-actions"),
            actions,
            shutdown,
            running,
        )
        .await?;
    }
    Ok(done)
}

/// Fails when the replay was cancelled or one of its tasks failed.
async fn stop_if_failed(shutdown: &CancellationToken, running: &mut [Task]) -> anyhow::Result<()> {
    anyhow::ensure!(!shutdown.is_cancelled(), "replay cancelled");
    for task in running.iter_mut() {
        if task.is_finished() {
            (&mut *task).await??;
            anyhow::bail!("a replay task stopped");
        }
    }
    Ok(())
}

/// Waits until projection `name` stored offsets at the end of `topic`.
async fn wait_projection(
    pool: &PgPool,
    brokers: &str,
    name: &str,
    topic: &str,
    shutdown: &CancellationToken,
    running: &mut [Task],
) -> anyhow::Result<()> {
    let kafka = Offsets::new(brokers, topic)?;
    let mut previous = None;
    let mut quiet = 0;
    loop {
        stop_if_failed(shutdown, running).await?;
        let high = kafka.high_watermarks().await?;
        let stored: HashMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
            "SELECT partition, next_offset FROM projection_offsets WHERE projection = $1 AND topic = $2",
        )
        .bind(name)
        .bind(topic)
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
        // A transaction's commit marker takes the last offset of a partition, so one offset may remain.
        let caught_up = high
            .iter()
            .all(|(p, h)| stored.get(p).copied().unwrap_or(0) >= h - 1);
        quiet = if previous.as_ref() == Some(&stored) {
            quiet + 1
        } else {
            0
        };
        if caught_up || quiet >= QUIET_POLLS {
            return Ok(());
        }
        previous = Some(stored);
        tokio::time::sleep(POLL).await;
    }
}

/// Messages done and in all between `start` and `target`.
fn progress(
    start: &HashMap<i32, i64>,
    target: &HashMap<i32, i64>,
    committed: &HashMap<i32, i64>,
) -> (i64, i64) {
    let mut done = 0;
    let mut total = 0;
    for (p, &t) in target {
        let s = start.get(p).copied().unwrap_or(0);
        let c = committed.get(p).copied().unwrap_or(s).clamp(s, t.max(s));
        done += c - s;
        total += (t - s).max(0);
    }
    (done, total)
}

fn progress_bar(visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} replay [{bar:40}] {pos}/{len} messages · {per_sec} · ETA {eta} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// [`TopicOffsets`] queries, off the async threads.
#[derive(Clone)]
struct Offsets(Arc<TopicOffsets>);

impl Offsets {
    fn new(brokers: &str, topic: &str) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(TopicOffsets::new(brokers, topic)?)))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&TopicOffsets) -> Result<T, ProcessorError> + Send + 'static,
    ) -> anyhow::Result<T> {
        let offsets = self.0.clone();
        let topic = offsets.topic().to_owned();
        tokio::task::spawn_blocking(move || f(&offsets))
            .await?
            .with_context(|| format!("reading the offsets of {topic}"))
    }

    async fn high_watermarks(&self) -> anyhow::Result<HashMap<i32, i64>> {
        self.blocking(|o| o.ends()).await
    }

    async fn at_time(&self, at: Option<DateTime<Utc>>) -> anyhow::Result<HashMap<i32, i64>> {
        self.blocking(move |o| o.at_time(at.map(|t| t.timestamp_millis())))
            .await
    }

    async fn committed(&self, group: &str) -> anyhow::Result<HashMap<i32, i64>> {
        let group = group.to_owned();
        self.blocking(move |o| o.committed(&group)).await
    }

    async fn commit_for_group(&self, group: &str, at: &HashMap<i32, i64>) -> anyhow::Result<()> {
        let (group, at) = (group.to_owned(), at.clone());
        self.blocking(move |o| o.commit(&group, &at)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_from_the_start_and_caps_at_the_target() {
        let start = HashMap::from([(0, 10), (1, 0)]);
        let target = HashMap::from([(0, 110), (1, 50), (2, 0)]);
        let committed = HashMap::from([(0, 60), (1, 70)]);
        assert_eq!(progress(&start, &target, &committed), (50 + 50, 150));
        assert_eq!(progress(&start, &target, &HashMap::new()), (0, 150));
    }
}
