//! Delivery: notifications that are due are claimed (`sending`, with a lease), sent through their
//! channel, and their outcome recorded with the attempt. A failure worth retrying waits 1 s, 2 s,
//! 4 s, ... A process killed mid-send leaves the claim to expire; the notification is then sent again
//! with the same `Idempotency-Key`, so a receiver that honours it sees it once.
//!
//! Each channel has its own limit of deliveries in flight (`max_concurrency`) and every attempt its
//! deadline; a claim takes at most a few turns' worth per channel, so a slow receiver holds up only its
//! own notifications. All channels together are held to `max_in_flight`: memory stays bounded whatever
//! the backlog.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::channels::{self, Outbound, Recipient, SendError};
use super::config::AlertingConfig;
use super::message::Message;
use super::record::message_of;
use super::secrets::ChannelSecrets;
use crate::runtime::ProcessorError;

/// A channel as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredChannel {
    /// Its id.
    pub id: Uuid,
    /// Its kind (a registered channel).
    pub kind: String,
    /// The configuration without its secret fields.
    pub config: sqlx::types::Json<Map<String, Value>>,
    /// The secret fields, sealed.
    pub secret: String,
}

impl StoredChannel {
    /// The whole configuration, secrets opened.
    pub fn opened(&self, secrets: &ChannelSecrets) -> Result<Map<String, Value>, String> {
        let mut config = self.config.0.clone();
        config.extend(secrets.open(self.id, &self.secret)?);
        Ok(config)
    }
}

/// Sends `message` through `channel` (to the browser `to`, for a push channel).
async fn send(
    out: &Outbound,
    secrets: &ChannelSecrets,
    channel: &StoredChannel,
    message: &Message,
    to: Option<&Recipient>,
) -> Result<(), SendError> {
    let kind = channels::kind(&channel.kind)
        .ok_or_else(|| SendError::permanent(format!("unknown channel kind {}", channel.kind)))?;
    let config = channel.opened(secrets).map_err(|e| {
        tracing::error!(channel = %channel.id, error = %e, "a channel's secret does not open");
        SendError::permanent("the channel's secret cannot be opened")
    })?;
    kind.send(out, &config, message, to).await
}

/// The browser subscription `id`, when it still exists.
async fn recipient(pool: &PgPool, id: Uuid) -> Result<Option<Recipient>, ProcessorError> {
    Ok(
        sqlx::query_as("SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Sends `message` through `channel`, to the browser subscription `to` for a push channel; a push
/// service that answers 404 or 410 ended the subscription, which is then deleted.
pub async fn send_notice(
    pool: &PgPool,
    out: &Outbound,
    secrets: &ChannelSecrets,
    channel: &StoredChannel,
    message: &Message,
    to: Option<Uuid>,
) -> Result<(), SendError> {
    let Some(subscription) = to else {
        return send(out, secrets, channel, message, None).await;
    };
    let to = recipient(pool, subscription)
        .await
        .map_err(|_| SendError::retry("could not read the subscription"))?
        .ok_or_else(|| SendError::permanent("the browser's subscription was removed"))?;
    let result = send(out, secrets, channel, message, Some(&to)).await;
    if let Err(SendError {
        status: Some(404 | 410),
        ..
    }) = &result
    {
        let deleted = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
            .bind(subscription)
            .execute(pool)
            .await;
        if let Err(e) = deleted {
            tracing::warn!(subscription = %subscription, error = %e, "could not delete an ended subscription");
        }
    }
    result
}

/// Sends claimed notification `c` (its channel as stored, if it still exists).
async fn deliver(
    pool: &PgPool,
    out: &Outbound,
    secrets: &ChannelSecrets,
    channel: Option<StoredChannel>,
    c: &Claimed,
) -> Result<(), SendError> {
    let Some(channel) = channel else {
        return Err(SendError::permanent("the channel was deleted"));
    };
    let message = message_of(c.message.clone()).map_err(|e| SendError::permanent(e.to_string()))?;
    send_notice(pool, out, secrets, &channel, &message, c.recipient).await
}

/// How long to wait before attempt `attempt + 1`.
pub fn backoff(attempt: i32, max: Duration) -> Duration {
    let secs = 1u64 << attempt.clamp(1, 20).saturating_sub(1);
    Duration::from_secs(secs).min(max)
}

/// Records the outcome of attempt `attempt` of notification `id`.
pub async fn finish(
    pool: &PgPool,
    config: &AlertingConfig,
    id: Uuid,
    attempt: i32,
    took: Duration,
    result: &Result<(), SendError>,
) -> Result<(), ProcessorError> {
    let (status, outcome, error, code) = match result {
        Ok(()) => ("delivered", "delivered", None, None),
        Err(e) if e.retriable && attempt < config.max_attempts => {
            ("pending", "retry", Some(e.message.as_str()), e.status)
        }
        Err(e) => ("failed", "failed", Some(e.message.as_str()), e.status),
    };
    let wait = backoff(attempt, Duration::from_secs(config.max_backoff_secs));
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE notifications SET status = $2, last_error = $3, lease_until = NULL,
            next_attempt_at = now() + make_interval(secs => $4),
            delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(wait.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, attempt, outcome, status_code, error, duration_ms)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(attempt)
    .bind(outcome)
    .bind(code.map(i32::from))
    .bind(error)
    .bind(i32::try_from(took.as_millis()).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!(haltless_schemas::metric_names::NOTIFICATION_ATTEMPTS, "outcome" => outcome)
        .increment(1);
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    channel_id: Uuid,
    message: Value,
    recipient: Option<Uuid>,
    attempts: i32,
    max_concurrency: i32,
}

/// How many times its concurrency a channel's claim may hold: the deliveries waiting their turn in
/// this process, so that a claim (one query) feeds a fast channel for a while.
const PREFETCH: i64 = 4;

/// The delivery loop of one process.
pub struct Deliveries {
    pool: PgPool,
    config: AlertingConfig,
    out: Arc<Outbound>,
    secrets: ChannelSecrets,
    in_flight: JoinSet<Uuid>,
    per_channel: HashMap<Uuid, usize>,
    permits: HashMap<Uuid, Arc<Semaphore>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Deliveries {
    /// A delivery loop sending through `out`, opening channels' secrets with `secrets`.
    pub fn new(
        pool: PgPool,
        config: AlertingConfig,
        out: Outbound,
        secrets: ChannelSecrets,
    ) -> Self {
        Self {
            pool,
            config,
            out: Arc::new(out),
            secrets,
            in_flight: JoinSet::new(),
            per_channel: HashMap::new(),
            permits: HashMap::new(),
        }
    }

    /// Claims what is due and starts sending it; returns how many were started.
    pub async fn step(&mut self) -> Result<usize, ProcessorError> {
        while let Some(done) = self.in_flight.try_join_next() {
            self.ended(done);
        }
        self.per_channel.retain(|_, n| *n > 0);
        let per_channel = &self.per_channel;
        self.permits.retain(|c, _| per_channel.contains_key(c));
        let room = self
            .config
            .max_in_flight
            .saturating_sub(self.in_flight.len());
        if room == 0 {
            return Ok(0);
        }
        let busy: Vec<Uuid> = self.per_channel.keys().copied().collect();
        let in_use: Vec<i32> = busy.iter().map(|c| self.per_channel[c] as i32).collect();
        // Per channel, the oldest due notifications up to PREFETCH times its concurrency (counting those
        // already claimed here); each is leased for as long as its turn can take: the sends before it in
        // the channel's queue, its own, and a margin.
        let claimed: Vec<Claimed> = sqlx::query_as(
            "WITH due AS (
                SELECT n.id, n.next_attempt_at,
                       row_number() OVER (PARTITION BY n.channel_id ORDER BY n.next_attempt_at)
                         + coalesce(u.n, 0) AS rank, c.max_concurrency
                FROM notifications n
                JOIN notification_channels c ON c.id = n.channel_id
                LEFT JOIN unnest($1::uuid[], $2::int[]) AS u(channel, n) ON u.channel = n.channel_id
                WHERE (n.status = 'pending' AND n.next_attempt_at <= now())
                   OR (n.status = 'sending' AND n.lease_until < now())
             ), picked AS (
                SELECT id, rank, max_concurrency FROM due WHERE rank <= max_concurrency * $5
                ORDER BY next_attempt_at LIMIT $3
             )
             UPDATE notifications n SET status = 'sending', attempts = attempts + 1,
                lease_until = now() + make_interval(secs =>
                    ceil(picked.rank::float8 / picked.max_concurrency) * $4 + 10)
             FROM picked WHERE n.id = picked.id
               AND ((n.status = 'pending' AND n.next_attempt_at <= now())
                    OR (n.status = 'sending' AND n.lease_until < now()))
             RETURNING n.id, n.channel_id, n.message, n.recipient, n.attempts, picked.max_concurrency",
        )
        .bind(&busy)
        .bind(&in_use)
        .bind(room as i64)
        .bind(self.out.timeout.as_secs_f64())
        .bind(PREFETCH)
        .fetch_all(&self.pool)
        .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = claimed.iter().map(|c| c.channel_id).collect();
        let stored: HashMap<Uuid, StoredChannel> = sqlx::query_as::<_, StoredChannel>(
            "SELECT id, kind, config, secret FROM notification_channels WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
        let started = claimed.len();
        for c in claimed {
            *self.per_channel.entry(c.channel_id).or_default() += 1;
            let permits = self
                .permits
                .entry(c.channel_id)
                .or_insert_with(|| Arc::new(Semaphore::new(c.max_concurrency.max(1) as usize)))
                .clone();
            let channel = stored.get(&c.channel_id).cloned();
            let (pool, config, out, secrets) = (
                self.pool.clone(),
                self.config.clone(),
                self.out.clone(),
                self.secrets.clone(),
            );
            self.in_flight.spawn(async move {
                // The channel's limit: the permit is held for the send, never closed.
                let _turn = permits.acquire_owned().await;
                let began = Instant::now();
                let result = deliver(&pool, &out, &secrets, channel, &c).await;
                if let Err(e) = &result {
                    tracing::warn!(notification = %c.id, attempt = c.attempts, error = %e, "delivery failed");
                }
                if let Err(e) = finish(&pool, &config, c.id, c.attempts, began.elapsed(), &result).await {
                    // The lease runs out and the notification goes again, with the same key.
                    tracing::warn!(notification = %c.id, error = %e, "could not record a delivery");
                }
                c.channel_id
            });
        }
        Ok(started)
    }

    /// Runs until `shutdown`, then lets the sends under way finish (each has its deadline). Looks
    /// for due notifications every tick, when `recorded` is notified (the dispatcher recorded some) and
    /// when a delivery ends (its channel has room again).
    pub async fn run(mut self, recorded: Arc<Notify>, shutdown: CancellationToken) {
        let tick = Duration::from_millis(self.config.tick_ms.max(10));
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "could not claim notifications");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
                _ = recorded.notified() => {}
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    self.ended(done);
                }
            }
        }
        // Sends under way get their deadline; those still waiting for their turn are dropped: their
        // leases run out and another engine (or this one restarted) sends them.
        let drain = async { while self.in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(self.out.timeout, drain).await.is_err() {
            self.in_flight.abort_all();
        }
    }

    /// A delivery ended: its channel has room again.
    fn ended(&mut self, done: Result<Uuid, tokio::task::JoinError>) {
        if let Ok(channel) = done {
            if let Some(n) = self.per_channel.get_mut(&channel) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_the_cap() {
        let cap = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=10).map(|a| backoff(a, cap).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }
}
