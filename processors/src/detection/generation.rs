//! Generations of detection. A replay reprocesses history into a new generation (its own detector group,
//! state changelog, alert topic and alert rows) while the active one goes on; switching over makes the new
//! one active in one database transaction, and every process that runs the detectors or the alerts
//! projections follows within seconds.
//!
//! Generation 1 uses the configured names as they are; generation `n > 1` appends `.g<n>`, so a platform
//! that never replayed looks exactly as before.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::runtime::ProcessorError;

/// A generation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub i32);

impl Generation {
    /// The generation a fresh platform starts with.
    pub const FIRST: Generation = Generation(1);

    /// The name of this generation's copy of a topic, consumer group or projection called `base`.
    pub fn name(self, base: &str) -> String {
        if self == Self::FIRST {
            base.to_owned()
        } else {
            format!("{base}.g{}", self.0)
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A replay is building it.
    Building,
    /// The API serves it and the processors run it.
    Active,
    /// Replaced by a newer generation.
    Retired,
    /// Its replay stopped before switching over.
    Abandoned,
    /// Built over a bounded range (`--to`) for inspection; never made active.
    Inspect,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Building => "building",
            Status::Active => "active",
            Status::Retired => "retired",
            Status::Abandoned => "abandoned",
            Status::Inspect => "inspect",
        }
    }
}

/// The generation the API serves and the processors run.
pub async fn active(pool: &PgPool) -> Result<Generation, ProcessorError> {
    let g: Option<i32> = sqlx::query_scalar("SELECT active_generation()")
        .fetch_one(pool)
        .await?;
    Ok(Generation(g.unwrap_or(1)))
}

/// Registers a new generation, built by a replay of `[from, to)`.
pub async fn create(
    pool: &PgPool,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Generation, ProcessorError> {
    let g: i32 = sqlx::query_scalar(
        "INSERT INTO detection_generations (generation, status, replay_from, replay_to)
         SELECT coalesce(max(generation), 0) + 1, 'building', $1, $2 FROM detection_generations
         RETURNING generation",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    Ok(Generation(g))
}

/// Sets a building generation's final status other than active.
pub async fn finish(pool: &PgPool, g: Generation, status: Status) -> Result<(), ProcessorError> {
    sqlx::query("UPDATE detection_generations SET status = $2 WHERE generation = $1 AND status = 'building'")
        .bind(g.0)
        .bind(status.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

/// Makes `g` the active generation and retires the one before it, in one transaction. Returns the retired
/// generation.
pub async fn activate(pool: &PgPool, g: Generation) -> Result<Generation, ProcessorError> {
    let mut tx = pool.begin().await?;
    let old: Option<i32> = sqlx::query_scalar(
        "UPDATE detection_generations SET status = 'retired' WHERE status = 'active' RETURNING generation",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let changed = sqlx::query(
        "UPDATE detection_generations SET status = 'active', activated_at = now()
         WHERE generation = $1 AND status = 'building'",
    )
    .bind(g.0)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed != 1 {
        return Err(ProcessorError::Internal(format!(
            "generation {g} is not being built; not switching over"
        )));
    }
    tx.commit().await?;
    Ok(Generation(old.unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_generation_keeps_the_configured_names() {
        assert_eq!(
            Generation::FIRST.name("haltless.alerts.v1"),
            "haltless.alerts.v1"
        );
        assert_eq!(
            Generation(3).name("haltless.alerts.v1"),
            "haltless.alerts.v1.g3"
        );
    }
}
