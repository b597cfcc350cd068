//! Data retention per tenant: readings older than the tenant's tier keeps are deleted, in bounded
//! batches, by a background task of the `project` (or `all`) role. Plain `DELETE`s work on both the
//! natively partitioned `readings` table and a TimescaleDB hypertable.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::tenants::Tier;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Tenants looked at.
    pub tenants: u64,
    /// Readings deleted.
    pub deleted: u64,
}

/// Deletes, for every tenant, the readings older than its tier's retention, `batch` rows at a time.
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<SweepReport, sqlx::Error> {
    let tenants: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, tier FROM tenants ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut report = SweepReport::default();
    for (tenant, tier) in tenants {
        report.tenants += 1;
        let days = Tier::parse(&tier).retention_days();
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
            report.deleted += deleted;
            if (deleted as i64) < batch.max(1) {
                break;
            }
        }
    }
    Ok(report)
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
