//! Machine names to the tenant's machines: their ids and whether they are retired, asked of PostgreSQL
//! each time and answered from the last answers while it is unreachable ([`MachineLookup`]).

use std::time::Duration;

use haltless_schemas::metric_names;
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::{is_unavailable, Breaker, Fallback};

/// Machines a lookup cache holds at most.
const CACHE_CAPACITY: usize = 100_000;

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

/// Machine lookups that survive a database outage with answers at most `max_age` old.
#[derive(Debug, Clone)]
pub struct MachineLookup {
    pool: PgPool,
    cache: Fallback<(Uuid, String), Machine>,
    breaker: Breaker,
}

impl MachineLookup {
    /// Lookups in `pool`, falling back on answers younger than `max_age` when it is unreachable.
    pub fn new(pool: PgPool, max_age: Duration) -> Self {
        Self {
            pool,
            cache: Fallback::new(max_age, CACHE_CAPACITY),
            breaker: Breaker::default(),
        }
    }

    /// The breaker that remembers a failure of the database, to share with the other lookups of a request
    /// (the request then waits for the database's deadline once, not once per lookup).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The machines of `tenant` named in `names`, from the database, or from the cache when the database
    /// is unreachable and the cache knows every name (names it does not know are not assumed unknown).
    pub async fn lookup(&self, tenant: Uuid, names: &[&str]) -> Result<Vec<Machine>, sqlx::Error> {
        let cached = || -> Option<Vec<Machine>> {
            let found = names
                .iter()
                .map(|n| self.cache.fresh(&(tenant, (*n).to_owned())))
                .collect::<Option<Vec<_>>>();
            if found.is_some() {
                metrics::counter!(metric_names::LOOKUP_CACHE_FALLBACKS, "lookup" => "machines")
                    .increment(1);
            }
            found
        };
        if self.breaker.is_open() {
            if let Some(found) = cached() {
                return Ok(found);
            }
        }
        match lookup(&self.pool, tenant, names).await {
            Ok(found) => {
                self.breaker.reset();
                for m in &found {
                    self.cache.put((tenant, m.name.clone()), m.clone());
                }
                Ok(found)
            }
            Err(e) if is_unavailable(&e) => {
                self.breaker.trip();
                cached().ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets what the cache holds of `tenant`'s machine `name` (after this instance retired, renamed or
    /// deleted it, so that an outage right after cannot bring the old answer back).
    pub fn forget(&self, tenant: Uuid, name: &str) {
        self.cache.forget(|(t, n), _| *t == tenant && n == name);
    }

    /// Forgets what the cache holds of the machine `id` of `tenant`, whatever its name.
    pub fn forget_id(&self, tenant: Uuid, id: Uuid) {
        self.cache.forget(|(t, _), m| *t == tenant && m.id == id);
    }
}
