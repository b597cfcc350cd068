//! Fixed-window counters in Redis, the one place that counts what a tier limits per minute (API reads and
//! writes, readings deliveries) and what auth throttles (logins, sign-ups); and a tenant's limits in force.
//! Every key carries the deployment's prefix and expires by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fred::clients::Client;
use fred::error::{Error as RedisError, ErrorKind};
use fred::prelude::{ClientLike, KeysInterface};
use haltless_schemas::metric_names;
use haltless_schemas::tier::{TenantLimits, Tier};
use sqlx::PgPool;
use uuid::Uuid;

/// A fixed-window counter after one hit.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// Hits allowed per window.
    pub limit: u64,
    /// Seconds until the window ends.
    pub reset_secs: u64,
}

impl Window {
    /// Whether this hit went over the limit.
    pub fn exceeded(&self) -> bool {
        self.count > self.limit
    }
    /// Hits left in the window.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.count)
    }
}

/// Fixed-window counters under one key prefix.
#[derive(Clone)]
pub struct Counters {
    redis: Client,
    prefix: String,
    /// Whether the limiter is letting requests through because Redis is unreachable (shared by clones, so
    /// that an outage is logged and counted once per process).
    bypassing: Arc<AtomicBool>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The name of a tenant's counter of API writes per minute, which ingest requests and polled deliveries
/// share with every other write.
pub fn writes_counter(tenant: Uuid) -> String {
    format!("rate:{tenant}:writes")
}

/// The name of a tenant's counter of API reads per minute.
pub fn reads_counter(tenant: Uuid) -> String {
    format!("rate:{tenant}:reads")
}

fn now_secs() -> u64 {
    (crate::now_ms().max(0) / 1000) as u64
}

/// The start of the current window of `window_secs` (at least 1), and the seconds until it ends.
fn window(window_secs: u64) -> (u64, u64) {
    let now = now_secs();
    let window_secs = window_secs.max(1);
    let start = now - now % window_secs;
    (start, start + window_secs - now)
}

impl Counters {
    /// Counters on `redis` whose keys start with `prefix`.
    pub fn new(redis: Client, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            bypassing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Fails at once while the client is not connected, instead of queueing the command until the
    /// reconnection or the command timeout: during an outage every caller learns it without waiting.
    fn connected(&self) -> Result<(), RedisError> {
        if self.redis.is_connected() {
            Ok(())
        } else {
            Err(RedisError::new(ErrorKind::IO, "not connected to Redis"))
        }
    }

    /// Counts one hit like [`Counters::hit`], for a tier's rate limit: when Redis cannot be reached the hit
    /// passes (`None`: availability over strictness, ingest must not stop). The first failure of an outage
    /// logs one warning and counts one outage; every hit let through is counted under `kind`.
    pub async fn limit(
        &self,
        name: &str,
        window_secs: u64,
        limit: u64,
        kind: &'static str,
    ) -> Option<Window> {
        match self.hit(name, window_secs, limit).await {
            Ok(window) => {
                if self.bypassing.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again; rate limits are enforced");
                }
                Some(window)
            }
            Err(e) => {
                if !self.bypassing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis unreachable; rate limits let requests through until it is back");
                    metrics::counter!(metric_names::RATE_LIMIT_OUTAGES).increment(1);
                }
                metrics::counter!(metric_names::RATE_LIMIT_PASSED, "kind" => kind).increment(1);
                None
            }
        }
    }

    fn key(&self, name: &str, start: u64) -> String {
        format!("{}{name}:{start}", self.prefix)
    }

    /// Counts one hit on the counter `name` in the current window of `window_secs`.
    pub async fn hit(
        &self,
        name: &str,
        window_secs: u64,
        limit: u64,
    ) -> Result<Window, fred::error::Error> {
        self.connected()?;
        let (start, reset_secs) = window(window_secs);
        let key = self.key(name, start);
        let pipeline = self.redis.pipeline();
        let () = pipeline.incr(&key).await?;
        let () = pipeline
            .expire(&key, window_secs.max(1) as i64 + 1, None)
            .await?;
        let (count, _): (u64, i64) = pipeline.all().await?;
        Ok(Window {
            count,
            limit,
            reset_secs,
        })
    }

    /// The counter `name` in the current window, without counting a hit.
    pub async fn peek(
        &self,
        name: &str,
        window_secs: u64,
        limit: u64,
    ) -> Result<Window, fred::error::Error> {
        self.connected()?;
        let (start, reset_secs) = window(window_secs);
        let count: Option<u64> = self.redis.get(self.key(name, start)).await?;
        Ok(Window {
            count: count.unwrap_or(0),
            limit,
            reset_secs,
        })
    }

    /// Takes back one hit of the counter `name` in the current window (e.g. an attempt counted before it
    /// was known to succeed).
    pub async fn undo(&self, name: &str, window_secs: u64) -> Result<(), fred::error::Error> {
        self.connected()?;
        let (start, _) = window(window_secs);
        let key = self.key(name, start);
        // With its deadline again, in case the hit fell in the previous window and the key is new: the
        // window then starts one below zero, a single extra attempt at most.
        let pipeline = self.redis.pipeline();
        let () = pipeline.decr(&key).await?;
        let () = pipeline
            .expire(&key, window_secs.max(1) as i64 + 1, None)
            .await?;
        let _: (i64, i64) = pipeline.all().await?;
        Ok(())
    }

    /// Forgets the counter `name` in the current window (e.g. failed logins after a success).
    pub async fn reset(&self, name: &str, window_secs: u64) -> Result<(), fred::error::Error> {
        self.connected()?;
        let (start, _) = window(window_secs);
        self.redis.del::<(), _>(self.key(name, start)).await
    }
}

/// A tenant's tier and its override columns.
type LimitsRow = (String, Option<i32>, Option<i32>, Option<i32>);

/// The limits in force for `tenant` (its tier's figures unless a platform operator overrode them), or
/// None when it does not exist.
pub async fn load_limits(pool: &PgPool, tenant: Uuid) -> Result<Option<TenantLimits>, sqlx::Error> {
    let row: Option<LimitsRow> = sqlx::query_as(
        "SELECT tier, max_machines, writes_per_minute, reads_per_minute FROM tenants WHERE id = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(tier, m, w, r)| TenantLimits::from_row(Tier::parse(&tier), m, w, r)))
}
