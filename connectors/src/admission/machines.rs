//! Machine names to the tenant's machines: their ids and whether they are retired.

use sqlx::PgPool;
use uuid::Uuid;

/// A registered machine, as admission sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Its name.
    pub name: String,
    /// Its id, which readings carry.
    pub id: Uuid,
    /// Retired machines take no more readings.
    pub retired: bool,
}

/// The machines of `tenant` named in `names` (unknown names are simply absent).
pub async fn lookup(
    pool: &PgPool,
    tenant: Uuid,
    names: &[&str],
) -> Result<Vec<Machine>, sqlx::Error> {
    let rows: Vec<(String, Uuid, String)> = sqlx::query_as(
        "SELECT name, id, status FROM machines WHERE tenant_id = $1 AND name = ANY($2)",
    )
    .bind(tenant)
    .bind(names)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, id, status)| Machine {
            name,
            id,
            retired: status == "retired",
        })
        .collect())
}
