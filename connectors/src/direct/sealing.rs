//! Bringing the secrets stored in `ingest_sources` up to date with the keyring: plain text (written before
//! secrets were sealed) is sealed, and values sealed under an older key are re-wrapped under the current
//! one. Run at every start-up and migration (which cannot encrypt in SQL: the key is not the database's)
//! and by `haltless secrets rotate`.

use haltless_schemas::secrets::Keyring;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::protocols::PROTOCOLS;
use crate::source::secrets::{reseal, SecretError};

/// What a sweep did.
#[derive(Debug, Default)]
pub struct Resealed {
    /// Sources whose definition changed.
    pub sources: usize,
    /// Secrets sealed or re-wrapped.
    pub secrets: usize,
    /// Sources whose secrets do not open with the keyring (e.g. their key was removed before a
    /// rotation re-wrapped them), left as they are.
    pub failed: Vec<(Uuid, SecretError)>,
}

/// Seals plain-text secrets and re-wraps older seals in every stored definition. A definition changed
/// meanwhile by the API is left for the next sweep (the update compares the old text).
pub async fn reseal_stored(pool: &PgPool, keyring: &Keyring) -> Result<Resealed, sqlx::Error> {
    let rows: Vec<(Uuid, Uuid, String, Value)> =
        sqlx::query_as("SELECT id, tenant_id, protocol, definition FROM ingest_sources")
            .fetch_all(pool)
            .await?;
    let mut done = Resealed::default();
    for (id, tenant, protocol, before) in rows {
        let Some(protocol) = PROTOCOLS.get(&protocol) else {
            continue;
        };
        let mut after = before.clone();
        let n = match reseal(&mut after, protocol, keyring, tenant.as_bytes()) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                done.failed.push((id, e));
                continue;
            }
        };
        // The meaning is unchanged, so the version (which restarts pollers) stays.
        let updated = sqlx::query(
            "UPDATE ingest_sources SET definition = $2 WHERE id = $1 AND definition = $3",
        )
        .bind(id)
        .bind(&after)
        .bind(&before)
        .execute(pool)
        .await?;
        if updated.rows_affected() == 1 {
            done.sources += 1;
            done.secrets += n;
        }
    }
    Ok(done)
}
