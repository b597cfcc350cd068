//! A paced run's reports: each phase's totals and lag verdict, and the end's exactly-once check.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use super::{Line, Outcome, PacedConfig, Phase, Run, Window};
use crate::tools::bench::{all_stored, memory_of, mib, percentiles, unbounded, BenchTenant};

/// A phase's figures, gathered line by line.
pub(super) struct PhaseReport {
    phase: Phase,
    /// Consumer lag messages per second of input at this rate: the tolerance of "lag flat".
    messages_per_sec: f64,
    pub(super) totals: Window,
    lags: BTreeMap<String, Vec<i64>>,
    /// Per line: how far into the phase it ended, and whether it had shed answers.
    shed_at: Vec<(Duration, bool)>,
    started: Instant,
    pub(super) peak_rss: u64,
}

impl PhaseReport {
    pub(super) fn new(phase: Phase, config: &PacedConfig) -> Self {
        Self {
            phase,
            messages_per_sec: phase.rate as f64 / config.batch as f64
                * config.batch.min(config.machines) as f64,
            totals: Window::default(),
            lags: BTreeMap::new(),
            shed_at: Vec::new(),
            started: Instant::now(),
            peak_rss: 0,
        }
    }

    pub(super) fn add(&mut self, line: Line, groups: &mut BTreeMap<String, String>) {
        self.shed_at
            .push((self.started.elapsed(), line.window.shed() > 0));
        if let Some(scrape) = line.lag {
            for (consumer, (group, lag)) in scrape.lag {
                self.lags.entry(consumer.clone()).or_default().push(lag);
                groups.insert(consumer, group);
            }
        }
        self.totals.merge(line.window);
    }

    pub(super) fn print(&mut self, n: usize) {
        let t = &mut self.totals;
        let secs = self.phase.secs as f64;
        println!(
            "phase {n} ({} readings/s for {} s): offered {:.0}/s, accepted {:.0}/s; answers 202 {}, 503 overloaded {}, 503 unavailable {}, 429 {}, failed {} (shed {:.1} %)",
            self.phase.rate,
            self.phase.secs,
            t.sent as f64 / secs,
            t.accepted as f64 / secs,
            t.count(Outcome::Accepted),
            t.count(Outcome::Overloaded),
            t.count(Outcome::Unavailable),
            t.count(Outcome::RateLimited),
            t.count(Outcome::Failed),
            100.0 * t.shed() as f64 / (t.shed() + t.count(Outcome::Accepted)).max(1) as f64,
        );
        let (p50, p99) = percentiles(&mut t.accepted_latency);
        print!("  latency 202: p50 {p50:.1} ms, p99 {p99:.1} ms");
        if t.shed_latency.is_empty() {
            println!("; nothing shed");
        } else {
            let (p50, p99) = percentiles(&mut t.shed_latency);
            let last = self
                .shed_at
                .iter()
                .rev()
                .find(|(_, shed)| *shed)
                .map(|(at, _)| at);
            let still = self.shed_at.last().is_some_and(|(_, shed)| *shed);
            println!(
                "; shed answers (503/429): p50 {p50:.1} ms, p99 {p99:.1} ms; {}",
                match (still, last) {
                    (true, _) => "still shedding at the end of the phase".to_owned(),
                    (false, Some(at)) => format!(
                        "nothing shed after {:.0} s into the phase",
                        at.as_secs_f64()
                    ),
                    (false, None) => String::new(),
                }
            );
        }
        for (consumer, lags) in &self.lags {
            println!(
                "  lag of {consumer}: {}",
                verdict(lags, self.messages_per_sec)
            );
        }
        if self.peak_rss > 0 {
            println!(
                "  memory: peak resident {:.0} MiB (sampled twice a second during the phase)",
                mib(self.peak_rss)
            );
        }
    }
}

/// "lag flat" when the mean lag over the last third of the samples is within `tolerance` (one second of
/// input) of the first third's; else how it grew or fell.
fn verdict(samples: &[i64], tolerance: f64) -> String {
    if samples.len() < 3 {
        return format!(
            "too few samples to judge ({})",
            samples
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let third = samples.len() / 3;
    let mean = |s: &[i64]| s.iter().sum::<i64>() as f64 / s.len() as f64;
    let (first, last) = (
        mean(&samples[..third]),
        mean(&samples[samples.len() - third..]),
    );
    if last < first - tolerance {
        format!(
            "lag fell from {first:.0} to {last:.0} messages (means of the first and last thirds)"
        )
    } else if last <= first + tolerance {
        format!("lag flat (mean {first:.0} messages in the first third, {last:.0} in the last)")
    } else {
        format!(
            "lag grew from {first:.0} to {last:.0} messages (means of the first and last thirds)"
        )
    }
}

/// Waits until every acknowledged reading is stored, then checks each was stored exactly once, and prints
/// the run's totals.
pub(super) async fn summary(
    pool: &PgPool,
    tenant: &BenchTenant,
    run: &Run,
    totals: &Window,
    config: &PacedConfig,
) -> anyhow::Result<()> {
    println!(
        "total: {} readings sent, {} acknowledged; shed: {} requests answered 503 overloaded, {} 503 unavailable, {} 429; {} failed",
        totals.sent,
        totals.accepted,
        totals.count(Outcome::Overloaded),
        totals.count(Outcome::Unavailable),
        totals.count(Outcome::RateLimited),
        totals.count(Outcome::Failed),
    );
    if let Some(why) = run
        .first_failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        println!("  first failure: {why}");
    }
    if let Some(pid) = config.pid {
        let (resident, peak) = memory_of(pid)?;
        println!(
            "  memory of pid {pid}: resident {:.0} MiB now, peak {:.0} MiB since it started (VmHWM)",
            mib(resident),
            mib(peak)
        );
    }
    let last = last_acknowledged(run, &tenant.machines);
    let waited = Instant::now();
    let limit = Duration::from_secs(600).max(
        config
            .phases
            .iter()
            .map(|p| Duration::from_secs(p.secs))
            .sum(),
    );
    while !all_stored(pool, tenant.id, &last).await? {
        anyhow::ensure!(
            waited.elapsed() < limit,
            "projection stalled: the last acknowledged readings are not stored after {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  the last acknowledged reading was stored {:.1} s after the last answer",
        waited.elapsed().as_secs_f64()
    );
    let (acknowledged, stored_refused) = exactly_once(pool, tenant.id, run).await?;
    println!(
        "exactly once: every acknowledged reading stored once ({acknowledged} rows); {stored_refused} readings of requests answered 503 or not answered stored too (a partial write the client was told to retry, which is safe)"
    );
    Ok(())
}

/// Per machine, the (id, event time) of its last acknowledged reading.
fn last_acknowledged(run: &Run, machines: &[(Uuid, String)]) -> Vec<(Uuid, i64)> {
    let mut last: Vec<Option<usize>> = vec![None; machines.len()];
    let mut missing = machines.len();
    for r in (0..run.outcomes.len()).rev() {
        if missing == 0 {
            break;
        }
        if run.outcome(r) != Outcome::Accepted {
            continue;
        }
        for i in (r * run.batch..(r + 1) * run.batch).rev() {
            let slot = &mut last[i % machines.len()];
            if slot.is_none() {
                *slot = Some(i);
                missing -= 1;
            }
        }
    }
    last.iter()
        .zip(machines)
        .filter_map(|(i, (id, _))| i.map(|i| (*id, run.start_ms + i as i64)))
        .collect()
}

/// Counts the stored readings of each request (a reading's event time says which request carried it) and
/// checks that every acknowledged request is stored whole and once, and none refused by its rate limit is.
/// Answers the rows of acknowledged requests, and those of requests answered 503 or not at all: a 503
/// `unavailable` (Kafka did not acknowledge in time) or `overloaded` (its producer queue filled midway) can
/// follow a partial write, which the client's retry makes whole. The shed before their body was read are
/// among them with nothing stored.
async fn exactly_once(pool: &PgPool, tenant: Uuid, run: &Run) -> anyhow::Result<(u64, u64)> {
    // Tens of millions of rows after a long run (45 M took longer than the pool's `statement_timeout`).
    let mut tx = unbounded(pool).await?;
    let per_request: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT ((extract(epoch FROM ts) * 1000)::bigint - $2) / $3 AS request, count(*)
         FROM named_readings WHERE tenant_id = $1 GROUP BY 1",
    )
    .bind(tenant)
    .bind(run.start_ms)
    .bind(run.batch as i64)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let (mut acknowledged, mut refused, mut whole) = (0, 0, 0);
    for (r, n) in per_request {
        let outcome = usize::try_from(r)
            .ok()
            .filter(|r| *r < run.outcomes.len())
            .map(|r| run.outcome(r));
        match outcome {
            Some(Outcome::Accepted) => {
                anyhow::ensure!(
                    n as usize == run.batch,
                    "request {r} was acknowledged with {} readings, {n} are stored",
                    run.batch
                );
                acknowledged += n as u64;
                whole += 1;
            }
            Some(Outcome::Unavailable | Outcome::Overloaded | Outcome::Failed) => {
                refused += n as u64
            }
            Some(other) => anyhow::bail!(
                "request {r} was answered {other:?}, yet {n} of its readings are stored"
            ),
            None => anyhow::bail!("{n} stored readings belong to no request of the run"),
        }
    }
    let expected = (0..run.outcomes.len())
        .filter(|r| run.outcome(*r) == Outcome::Accepted)
        .count();
    anyhow::ensure!(
        whole == expected,
        "{} acknowledged requests have no reading stored",
        expected - whole
    );
    Ok((acknowledged, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_flat_unless_the_last_third_exceeds_the_first_by_a_second_of_input() {
        assert!(verdict(&[10, 50, 20, 30, 15, 40], 100.0).starts_with("lag flat"));
        assert!(
            verdict(&[10, 50, 200, 400, 900, 1500], 100.0).starts_with("lag grew from 30 to 1200")
        );
        assert!(
            verdict(&[1500, 900, 400, 200, 50, 10], 100.0).starts_with("lag fell from 1200 to 30")
        );
        assert!(verdict(&[10, 20], 100.0).starts_with("too few"));
    }
}
