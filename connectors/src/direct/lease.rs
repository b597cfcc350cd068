//! Source leases in PostgreSQL: heartbeats, a fair share per live instance, claims that only one
//! instance can win.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// A source this instance holds the lease of.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeasedSource {
    /// Source id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Source name, unique in the tenant.
    pub name: String,
    /// The stored definition.
    pub definition: serde_json::Value,
    /// Changes with every update of the source.
    pub version: i64,
    /// The server certificate's fingerprint pinned for the source, if any.
    pub certificate_sha256: Option<String>,
}

/// Renews this instance's heartbeat and leases, rebalances towards a fair share, and returns the
/// sources it now holds.
pub async fn refresh(
    pool: &PgPool,
    me: &str,
    ttl: Duration,
) -> Result<Vec<LeasedSource>, sqlx::Error> {
    let ttl_ms = ttl.as_millis() as i64;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO connector_instances (id, heartbeat_at) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
    )
    .bind(me)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM connector_instances WHERE heartbeat_at < now() - make_interval(secs => $1::float8 / 1000)")
        .bind(ttl_ms)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE ingest_source_leases SET expires_at = now() + make_interval(secs => $2::float8 / 1000)
         WHERE owner = $1 AND expires_at > now()",
    )
    .bind(me)
    .bind(ttl_ms)
    .execute(&mut *tx)
    .await?;
    // Sources disabled or deleted since: let go (deleted ones cascade).
    sqlx::query(
        "DELETE FROM ingest_source_leases l USING ingest_sources s
         WHERE l.source_id = s.id AND l.owner = $1 AND NOT s.enabled",
    )
    .bind(me)
    .execute(&mut *tx)
    .await?;
    let (instances, enabled, mine): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM connector_instances),
                (SELECT count(*) FROM ingest_sources WHERE enabled),
                (SELECT count(*) FROM ingest_source_leases WHERE owner = $1 AND expires_at > now())",
    )
    .bind(me)
    .fetch_one(&mut *tx)
    .await?;
    let share = (enabled + instances.max(1) - 1) / instances.max(1);
    if mine > share {
        // Hand the surplus back: another instance joined.
        sqlx::query(
            "DELETE FROM ingest_source_leases WHERE source_id IN (
                 SELECT source_id FROM ingest_source_leases WHERE owner = $1 ORDER BY source_id LIMIT $2)",
        )
        .bind(me)
        .bind(mine - share)
        .execute(&mut *tx)
        .await?;
    } else if mine < share {
        // Only a free or expired lease can be taken; of two instances racing for one, one wins.
        sqlx::query(
            "INSERT INTO ingest_source_leases (source_id, owner, expires_at)
             SELECT s.id, $1, now() + make_interval(secs => $2::float8 / 1000)
             FROM ingest_sources s LEFT JOIN ingest_source_leases l ON l.source_id = s.id
             WHERE s.enabled AND (l.source_id IS NULL OR l.expires_at <= now())
             ORDER BY s.id LIMIT $3
             ON CONFLICT (source_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
             WHERE ingest_source_leases.expires_at <= now()",
        )
        .bind(me)
        .bind(ttl_ms)
        .bind(share - mine)
        .execute(&mut *tx)
        .await?;
    }
    let sources = sqlx::query_as::<_, LeasedSource>(
        "SELECT s.id, s.tenant_id, s.name, s.definition, s.version, s.certificate_sha256
         FROM ingest_sources s JOIN ingest_source_leases l ON l.source_id = s.id
         WHERE l.owner = $1 AND l.expires_at > now() AND s.enabled ORDER BY s.id",
    )
    .bind(me)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(sources)
}

/// Gives up every lease and the heartbeat, so that other instances take the sources at once.
pub async fn release_all(pool: &PgPool, me: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ingest_source_leases WHERE owner = $1")
        .bind(me)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM connector_instances WHERE id = $1")
        .bind(me)
        .execute(pool)
        .await?;
    Ok(())
}
