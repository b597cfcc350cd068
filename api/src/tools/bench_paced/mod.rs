//! `haltless bench --rate` / `--phases`: the paced (open-loop) ingest benchmark.
//!
//! Requests of `--batch` readings leave on a schedule at the offered rate, whatever the answers, with at
//! most `--max-in-flight` requests outstanding. A request answered 503 or 429 is counted as shed and not
//! retried: it was never acknowledged, so overload shows as shed load, and the readings stored must be
//! exactly the acknowledged ones. Every interval prints offered and accepted readings/s, the answers,
//! latencies, rows stored, the platform's consumer lag (read from its `/metrics`, as its consumers report
//! it) and its memory; the end prints each phase's totals, whether lag grew, and the exactly-once check.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use super::bench::{body, memory_of, mib, percentiles, with_tenant, BenchTenant};

mod report;
mod scrape;

use report::{summary, PhaseReport};
use scrape::{Metrics, Scrape};

/// One phase of a paced run: `rate` readings/s offered for `secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// Readings per second offered.
    pub rate: u64,
    /// How long, in seconds.
    pub secs: u64,
}

impl FromStr for Phase {
    type Err = String;

    /// `RATExSECS`, e.g. `60000x60`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (rate, secs) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("`{s}`: expected RATExSECS, e.g. 60000x60"))?;
        let number = |v: &str, what: &str| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{s}`: the {what} must be a positive whole number"))
        };
        Ok(Phase {
            rate: number(rate, "rate")?,
            secs: number(secs, "duration")?,
        })
    }
}

/// Parameters of a paced run.
#[derive(Debug, Clone)]
pub struct PacedConfig {
    /// Base URL of a running platform (`haltless all`).
    pub url: String,
    /// The phases, played in order.
    pub phases: Vec<Phase>,
    /// Readings per request.
    pub batch: usize,
    /// Most requests outstanding; past it the schedule waits for an answer.
    pub max_in_flight: usize,
    /// Machines the readings are spread over.
    pub machines: usize,
    /// The platform's process, whose memory is reported (same machine only).
    pub pid: Option<u32>,
    /// How often a line is printed.
    pub interval: Duration,
    /// The bearer token `GET /metrics` needs, if any (`http.metrics_token`).
    pub metrics_token: Option<SecretString>,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    Pending = 0,
    Accepted,
    /// 503 `overloaded`: shed before its body was read.
    Overloaded,
    /// 503 otherwise (`unavailable`): Kafka did not acknowledge in time; some records may be written.
    Unavailable,
    /// 429 `rate_limited`.
    RateLimited,
    /// Any other answer, or none.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Pending,
        Outcome::Accepted,
        Outcome::Overloaded,
        Outcome::Unavailable,
        Outcome::RateLimited,
        Outcome::Failed,
    ];

    fn is_shed(self) -> bool {
        matches!(
            self,
            Outcome::Overloaded | Outcome::Unavailable | Outcome::RateLimited
        )
    }
}

/// Counts and latencies over a stretch of the run (an interval, a phase).
#[derive(Debug, Default)]
struct Window {
    /// Readings sent.
    sent: u64,
    /// Readings acknowledged (202).
    accepted: u64,
    /// Answers per [`Outcome`].
    answers: [u64; 6],
    accepted_latency: Vec<Duration>,
    shed_latency: Vec<Duration>,
}

impl Window {
    fn merge(&mut self, other: Window) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        for (a, b) in self.answers.iter_mut().zip(other.answers) {
            *a += b;
        }
        self.accepted_latency.extend(other.accepted_latency);
        self.shed_latency.extend(other.shed_latency);
    }

    fn count(&self, outcome: Outcome) -> u64 {
        self.answers[outcome as usize]
    }

    fn shed(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|o| o.is_shed())
            .map(|o| self.count(*o))
            .sum()
    }
}

/// The run shared by the schedule and the requests.
struct Run {
    client: reqwest::Client,
    ingest_url: String,
    key: String,
    names: Vec<String>,
    start_ms: i64,
    batch: usize,
    outcomes: Vec<AtomicU8>,
    window: Mutex<Window>,
    first_failure: Mutex<Option<String>>,
    /// The largest resident memory of `--pid` sampled since the phase began, in KiB.
    peak_rss: AtomicU64,
}

impl Run {
    /// Sends request `r` (readings `r × batch ..`) once and records its outcome.
    async fn send(&self, r: usize) {
        let body = body(
            &self.names,
            self.start_ms,
            r * self.batch..(r + 1) * self.batch,
        );
        let started = Instant::now();
        let answer = self
            .client
            .post(&self.ingest_url)
            .header("x-api-key", &self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let took = started.elapsed();
        let outcome = match answer {
            Ok(response) => match response.status().as_u16() {
                202 => Outcome::Accepted,
                429 => Outcome::RateLimited,
                503 => match response.text().await {
                    Ok(text) if text.contains("\"overloaded\"") => Outcome::Overloaded,
                    _ => Outcome::Unavailable,
                },
                other => {
                    let text = response.text().await.unwrap_or_default();
                    self.failed(format!("ingest answered {other}: {text}"));
                    Outcome::Failed
                }
            },
            Err(e) => {
                self.failed(format!("no answer: {e}"));
                Outcome::Failed
            }
        };
        self.outcomes[r].store(outcome as u8, Ordering::Relaxed);
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.answers[outcome as usize] += 1;
        if outcome == Outcome::Accepted {
            window.accepted += self.batch as u64;
            window.accepted_latency.push(took);
        } else if outcome.is_shed() {
            window.shed_latency.push(took);
        }
    }

    fn failed(&self, why: String) {
        let mut first = self.first_failure.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(why);
    }

    fn take_window(&self) -> Window {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn outcome(&self, r: usize) -> Outcome {
        let code = self.outcomes[r].load(Ordering::Relaxed);
        Outcome::ALL
            .get(code as usize)
            .copied()
            .unwrap_or(Outcome::Failed)
    }
}

/// Runs the paced benchmark against the platform at `config.url` and the database behind it, printing as
/// it goes. The benchmark's tenant and its rows are removed afterwards.
pub async fn run(pool: &PgPool, config: PacedConfig) -> anyhow::Result<()> {
    anyhow::ensure!(!config.phases.is_empty(), "no phase to run");
    with_tenant(pool, config.machines, |tenant| async move {
        measure(pool, &tenant, &config).await
    })
    .await
}

/// Requests of each phase: its rate × duration in whole batches, at least one.
fn requests_of(phase: Phase, batch: usize) -> usize {
    ((phase.rate as f64 * phase.secs as f64 / batch as f64).round() as usize).max(1)
}

async fn measure(pool: &PgPool, tenant: &BenchTenant, config: &PacedConfig) -> anyhow::Result<()> {
    let counts: Vec<usize> = config
        .phases
        .iter()
        .map(|p| requests_of(*p, config.batch))
        .collect();
    let total: usize = counts.iter().sum();
    let base = config.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let run = Arc::new(Run {
        client: client.clone(),
        ingest_url: format!("{base}/api/v1/ingest"),
        key: tenant.key.clone(),
        names: tenant.machines.iter().map(|(_, n)| n.clone()).collect(),
        // One millisecond per reading, the last one about now.
        start_ms: crate::time::now_ms() - (total * config.batch) as i64 - 1_000,
        batch: config.batch,
        outcomes: (0..total).map(|_| AtomicU8::new(0)).collect(),
        window: Mutex::default(),
        first_failure: Mutex::default(),
        peak_rss: AtomicU64::new(0),
    });
    let metrics = Metrics {
        client,
        url: format!("{base}/metrics"),
        token: config.metrics_token.clone(),
    };
    let memory = config
        .pid
        .map(|pid| tokio::spawn(sample_memory(pid, run.clone())));
    let rows_at_start = metrics.scrape().await.map(|s| s.rows);
    let phases: Vec<String> = config
        .phases
        .iter()
        .map(|p| format!("{} readings/s for {} s", p.rate, p.secs))
        .collect();
    println!(
        "paced ingest benchmark: {}; {} readings per request, at most {} in flight, {} machines",
        phases.join(", then "),
        config.batch,
        config.max_in_flight,
        config.machines
    );
    println!("  stored: rows the readings projection wrote since the start (its metric, every tenant); lag: messages behind, summed over partitions");
    println!(
        "  {:>6} {:>10} {:>10} {:>6} {:>6} {:>6} {:>8} {:>8} {:>11} {:>13}  lag",
        "t s",
        "offered/s",
        "accepted/s",
        "202",
        "503",
        "429",
        "p50 ms",
        "p99 ms",
        "stored",
        "rss MiB/peak"
    );
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut first = 0;
    let mut groups = BTreeMap::new();
    for (phase, count) in config.phases.iter().zip(&counts) {
        println!("  phase: {} readings/s for {} s", phase.rate, phase.secs);
        run.peak_rss.store(0, Ordering::Relaxed);
        let mut pacer = tokio::spawn(pace(run.clone(), slots.clone(), *phase, first, *count));
        first += count;
        let mut report = PhaseReport::new(*phase, config);
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + config.interval,
            config.interval,
        );
        let mut since = Instant::now();
        loop {
            let ended = tokio::select! {
                _ = ticks.tick() => false,
                done = &mut pacer => { done??; true }
            };
            // A line per tick, and one for the rest of the phase unless it is a mere moment.
            if !ended || since.elapsed() >= Duration::from_millis(500) {
                let at = Some(since);
                let line = line(&run, &metrics, config.pid, rows_at_start, at, started).await;
                since = Instant::now();
                report.add(line, &mut groups);
            }
            if ended {
                break;
            }
        }
        report.peak_rss = run.peak_rss.load(Ordering::Relaxed);
        reports.push(report);
    }
    // The answers still outstanding, in the last phase's figures.
    let _all = slots.acquire_many(config.max_in_flight as u32).await?;
    if let Some(last) = reports.last_mut() {
        let line = line(&run, &metrics, config.pid, rows_at_start, None, started).await;
        last.add(line, &mut groups);
    }
    if let Some(memory) = memory {
        memory.abort();
    }
    for (report, n) in reports.iter_mut().zip(1..) {
        report.print(n);
    }
    let mut totals = Window::default();
    for report in reports {
        totals.merge(report.totals);
    }
    if !groups.is_empty() {
        let named: Vec<String> = groups.iter().map(|(c, g)| format!("{c} ({g})")).collect();
        println!("consumer groups: {}", named.join(", "));
    }
    summary(pool, tenant, &run, &totals, config).await
}

/// Sends the phase's `count` requests, numbered from `first`, one every `batch / rate` seconds, each as soon
/// as it is due (late ones at once) and a slot is free.
async fn pace(
    run: Arc<Run>,
    slots: Arc<Semaphore>,
    phase: Phase,
    first: usize,
    count: usize,
) -> anyhow::Result<()> {
    let every = Duration::from_secs_f64(run.batch as f64 / phase.rate as f64);
    let start = tokio::time::Instant::now();
    for k in 0..count {
        tokio::time::sleep_until(start + every.mul_f64(k as f64)).await;
        let slot = slots.clone().acquire_owned().await?;
        run.window.lock().unwrap_or_else(|e| e.into_inner()).sent += run.batch as u64;
        let run = run.clone();
        tokio::spawn(async move {
            run.send(first + k).await;
            drop(slot);
        });
    }
    Ok(())
}

/// Samples the resident memory of `pid` twice a second, keeping the largest.
async fn sample_memory(pid: u32, run: Arc<Run>) {
    loop {
        if let Ok((resident, _)) = memory_of(pid) {
            run.peak_rss.fetch_max(resident, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One interval: its counts, and the lag when it ended.
struct Line {
    window: Window,
    lag: Option<Scrape>,
}

/// Takes the interval's counts since `since`, reads the lag and memory, and prints its line; without
/// `since`, the line of the last answers after the schedule ended (`end`, no rates).
async fn line(
    run: &Run,
    metrics: &Metrics,
    pid: Option<u32>,
    rows_at_start: Option<f64>,
    since: Option<Instant>,
    started: Instant,
) -> Line {
    let mut window = run.take_window();
    let rate = |n: u64| match since {
        Some(since) => format!("{:.0}", n as f64 / since.elapsed().as_secs_f64().max(1e-3)),
        None => "-".into(),
    };
    let at = match since {
        Some(_) => format!("{:.0}", started.elapsed().as_secs_f64()),
        None => "end".into(),
    };
    let scrape = metrics.scrape().await;
    let (p50, p99) = percentiles(&mut window.accepted_latency);
    let stored = match (&scrape, rows_at_start) {
        (Some(s), Some(at_start)) => format!("{:.0}", s.rows - at_start),
        _ => "-".into(),
    };
    let memory = match pid.map(memory_of) {
        Some(Ok((resident, _))) => format!(
            "{:.0}/{:.0}",
            mib(resident),
            mib(run.peak_rss.load(Ordering::Relaxed).max(resident))
        ),
        _ => "-".into(),
    };
    let lag = match &scrape {
        Some(s) if !s.lag.is_empty() => s
            .lag
            .iter()
            .map(|(consumer, (_, lag))| format!("{consumer} {lag}"))
            .collect::<Vec<_>>()
            .join(", "),
        Some(_) => "not reported yet".into(),
        None => "unknown (no /metrics)".into(),
    };
    let failed = window.count(Outcome::Failed);
    println!(
        "  {at:>6} {:>10} {:>10} {:>6} {:>6} {:>6} {:>8.1} {:>8.1} {:>11} {:>13}  {lag}{}",
        rate(window.sent),
        rate(window.accepted),
        window.count(Outcome::Accepted),
        window.count(Outcome::Overloaded) + window.count(Outcome::Unavailable),
        window.count(Outcome::RateLimited),
        p50,
        p99,
        stored,
        memory,
        if failed > 0 {
            format!("  ({failed} failed)")
        } else {
            String::new()
        }
    );
    Line {
        window,
        lag: scrape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_as_rate_x_seconds() {
        assert_eq!(
            "60000x60".parse::<Phase>(),
            Ok(Phase {
                rate: 60_000,
                secs: 60
            })
        );
        assert!("60000".parse::<Phase>().is_err());
        assert!("0x60".parse::<Phase>().is_err());
        assert!("fastx60".parse::<Phase>().is_err());
    }
}
