//! Data retention per tenant: readings older than the tenant's tier keeps are deleted, in bounded
//! batches, by a background task of the `project` (or `all`) role.
//!
//! Each batch is `DELETE FROM readings WHERE series_id = ANY($1) AND ts < $2` (the tenant's series, from
//! `reading_series`) over a slice of time sized to about `batch` rows. The same statement serves the
//! natively partitioned table and the TimescaleDB hypertable: on a hypertable only the chunks older than
//! the slice's end are visited, and in a compressed chunk only the tenant's batches (compression segments
//! by series) whose time range the slice reaches are touched (TimescaleDB deletes from compressed chunks;
//! the compression policy compresses what is left again). Whole chunks go by TimescaleDB's retention policy once past the longest tier's
//! retention (migration 0014). After deleting, the continuous aggregates are refreshed over the deleted
//! range, so bucketed queries forget the deleted readings too.

use std::time::Duration;

use chrono::{DateTime, Duration as TimeSpan, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use haltless_schemas::tier::Tier;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Tenants looked at.
    pub tenants: u64,
    /// Readings deleted.
    pub deleted: u64,
    /// Tenants whose deletion failed (logged; retried at the next sweep).
    pub failed: u64,
}

/// Deletes, for every tenant, the readings older than its tier's retention, about `batch` rows at a time.
/// A tenant whose deletion fails is logged and skipped; the others are still swept.
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<SweepReport, sqlx::Error> {
    let tenants: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, tier FROM tenants ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut report = SweepReport::default();
    let mut deleted_before: Option<DateTime<Utc>> = None;
    for (tenant, tier) in tenants {
        report.tenants += 1;
        let days = Tier::parse(&tier).retention_days();
        match sweep_tenant(pool, tenant, days, batch.max(1)).await {
            Ok((deleted, cutoff)) => {
                metrics::counter!(haltless_schemas::metric_names::RETENTION_DELETED)
                    .increment(deleted);
                report.deleted += deleted;
                if deleted > 0 {
                    deleted_before = deleted_before.max(Some(cutoff));
                }
            }
            Err(e) => {
                report.failed += 1;
                tracing::warn!(%tenant, error = %e, "retention: deleting old readings failed");
            }
        }
    }
    if let Some(cutoff) = deleted_before {
        refresh_aggregates(pool, cutoff).await?;
    }
    Ok(report)
}

/// Deletes the readings of `tenant` older than `days`; returns how many, and the cutoff.
async fn sweep_tenant(
    pool: &PgPool,
    tenant: Uuid,
    days: u32,
    batch: i64,
) -> Result<(u64, DateTime<Utc>), sqlx::Error> {
    let cutoff: DateTime<Utc> = sqlx::query_scalar("SELECT now() - make_interval(days => $1)")
        .bind(days as i32)
        .fetch_one(pool)
        .await?;
    let series: Vec<i32> = sqlx::query_scalar("SELECT id FROM reading_series WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(pool)
        .await?;
    let mut total = 0;
    let mut slice = TimeSpan::days(1);
    loop {
        let oldest: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT min(ts) FROM readings WHERE series_id = ANY($1) AND ts < $2",
        )
        .bind(&series)
        .bind(cutoff)
        .fetch_one(pool)
        .await?;
        let Some(oldest) = oldest else {
            return Ok((total, cutoff));
        };
        let end = oldest
            .checked_add_signed(slice)
            .map_or(cutoff, |end| end.min(cutoff));
        // One short transaction per slice; the slice grows or shrinks towards `batch` rows.
        let deleted = sqlx::query("DELETE FROM readings WHERE series_id = ANY($1) AND ts < $2")
            .bind(&series)
            .bind(end)
            .execute(pool)
            .await?
            .rows_affected();
        total += deleted;
        if deleted as i64 > batch {
            slice = (slice / 2).max(TimeSpan::seconds(1));
        } else if (deleted as i64) < batch / 2 {
            slice = (slice * 2).min(TimeSpan::days(366));
        }
    }
}

/// Recomputes the continuous aggregates (when there are any) up to the hour after `cutoff`, in one pass
/// (TimescaleDB's batched manual refresh, its default, may stop short of the window):
/// their buckets of deleted readings shrink or disappear. A refresh recomputes only the ranges that
/// changed. When a refresh job is running at that moment, its run (which covers the whole history)
/// does the work instead.
async fn refresh_aggregates(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<(), sqlx::Error> {
    // Whether there are aggregates, and whether this TimescaleDB batches refreshes (recent releases).
    let (present, batches): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('readings_1h') IS NOT NULL,
                EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'refresh_continuous_aggregate'
                        AND 'options' = ANY (proargnames))",
    )
    .fetch_one(pool)
    .await?;
    if !present {
        return Ok(());
    }
    let options = if batches {
        ", options => '{\"buckets_per_batch\": 0}'"
    } else {
        ""
    };
    for view in ["readings_1m", "readings_1h"] {
        let refreshed = sqlx::query(&format!(
            "CALL refresh_continuous_aggregate('{view}', NULL,
                 date_trunc('hour', $1::timestamptz) + interval '1 hour'{options})"
        ))
        .bind(cutoff)
        .execute(pool)
        .await;
        match refreshed {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                tracing::debug!(
                    view,
                    "retention: a refresh job is running; it refreshes instead"
                );
            }
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Sweeps every `interval` until cancelled; a failed sweep is logged and retried at the next tick.
pub async fn run(pool: PgPool, interval: Duration, batch: i64, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep(&pool, batch).await {
            Ok(r) if r.deleted > 0 => {
                tracing::info!(tenants = r.tenants, deleted = r.deleted, "retention sweep")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
    }
}
