//! Data retention per tenant: readings older than the tenant's tier keeps are deleted, in bounded
//! batches, by a background task of the `project` (or `all`) role. Plain `DELETE`s work on both the
//! natively partitioned `readings` table and a TimescaleDB hypertable.

use std::time::Duration;

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

/// Deletes, for every tenant, the readings older than its tier's retention, `batch` rows at a time.
/// A tenant whose deletion fails is logged and skipped; the others are still swept.
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<SweepReport, sqlx::Error> {
    let tenants: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, tier FROM tenants ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut report = SweepReport::default();
    for (tenant, tier) in tenants {
        report.tenants += 1;
        let days = Tier::parse(&tier).retention_days();
        match sweep_tenant(pool, tenant, days, batch).await {
            Ok(deleted) => {
                metrics::counter!(haltless_schemas::metric_names::RETENTION_DELETED)
                    .increment(deleted);
                report.deleted += deleted
            }
            Err(e) => {
                report.failed += 1;
                tracing::warn!(%tenant, error = %e, "retention: deleting old readings failed");
            }
        }
    }
    Ok(report)
}

/// Deletes the readings of `tenant` older than `days`; returns how many.
async fn sweep_tenant(
    pool: &PgPool,
    tenant: Uuid,
    days: u32,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        // Deleting by primary key in batches keeps each transaction (and its locks) short.
        let deleted = sqlx::query(
            "DELETE FROM readings r USING (
                     SELECT tenant_id, machine_id, metric, ts FROM readings
                     WHERE tenant_id = $1 AND ts < now() - make_interval(days => $2)
                     LIMIT $3
                 ) old
                 WHERE r.tenant_id = old.tenant_id AND r.machine_id = old.machine_id
                   AND r.metric = old.metric AND r.ts = old.ts",
        )
        .bind(tenant)
        .bind(days as i32)
        .bind(batch.max(1))
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if (deleted as i64) < batch.max(1) {
            return Ok(total);
        }
    }
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
