//! One admission path for every reading, whichever door it came through: `POST /api/v1/ingest` (the API
//! crate's route, which the edge agent posts to as well) and the pollers of `haltless connectors`.
//!
//! Readings arrive checked by [`crate::gateway::validate`] and grouped by machine name. Admission resolves
//! the names to the tenant's machines and refuses unknown and retired machines and those an API key may not
//! write; charges the tenant's API writes per minute when the door has not already (an HTTP request is
//! charged by the API's middleware; a poller's delivery is charged here, one write each); then writes one
//! batch per machine through the gateway's `acks=all` writer, and counts what it admitted and refused.
//!
//! - [`machines`]: machine names to ids and status.
//! - [`cache`]: the last answers of PostgreSQL, for an outage.
//! - [`quota`]: fixed-window counters in Redis and a tenant's limits in force.

pub mod cache;
pub mod machines;
pub mod quota;

use std::time::Duration;

use haltless_schemas::{metric_names, ReadingBatch, Source};
use sqlx::PgPool;
use uuid::Uuid;

use crate::gateway::validate::MachineReadings;
use crate::gateway::{ReadingsSink, SinkError};
use quota::Counters;

/// How old a cached machine lookup may be when PostgreSQL is unreachable, unless set otherwise.
pub const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(300);

/// The `source` label of the readings counters: the door's name as on the topic.
pub fn source_label(source: Source) -> String {
    source.label().to_owned()
}

/// Whether a delivery still has to be charged against the tenant's writes per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// The door charged it already (the API's middleware charges every request).
    Charged,
    /// One write, charged by admission (a poller's delivery).
    OneWrite,
}

/// Readings of one tenant, checked and grouped by machine, on their way in.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The door, recorded on the topic.
    pub source: Source,
    /// The readings, one group per machine name.
    pub machines: Vec<MachineReadings>,
    /// The machines an API key is restricted to; `None` for every machine of the tenant.
    pub allowed: Option<&'a [Uuid]>,
    /// Whether admission charges the delivery against the tier's writes per minute.
    pub charge: Charge,
}

impl Delivery<'_> {
    /// Total readings.
    pub fn len(&self) -> usize {
        self.machines.iter().map(|m| m.readings.len()).sum()
    }

    /// True when the delivery holds no readings.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why admission refused a delivery. Refusals are whole: nothing of a refused delivery is written.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Names the tenant has not registered.
    #[error("unknown machine(s): {}; register them with POST /api/v1/machines", .0.join(", "))]
    UnknownMachines(Vec<String>),
    /// Machines retired: their history stays, they take no more readings.
    #[error("machine(s) retired, they take no more readings: {}", .0.join(", "))]
    RetiredMachines(Vec<String>),
    /// Machines outside the API key's restriction.
    #[error("this API key may not write to: {}", .0.join(", "))]
    Forbidden(Vec<String>),
    /// The tenant's API writes for this minute are used up.
    #[error("this tenant ({tier} tier) may make {limit} API writes per minute; retry in {retry_after_secs} s")]
    RateLimited {
        /// The tenant's tier.
        tier: &'static str,
        /// Writes per minute in force.
        limit: u64,
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// Kafka did not acknowledge every record in time; retrying is safe.
    #[error("the readings could not be stored durably in time: {0}")]
    Unavailable(String),
    /// The records waiting for Kafka fill the writer's bounded queue: the process is at capacity; retrying
    /// shortly is safe.
    #[error("the gateway is at capacity: {0}")]
    Overloaded(String),
    /// The database failed while resolving machines or limits.
    #[error("looking up machines: {0}")]
    Database(#[from] sqlx::Error),
    /// The writer failed otherwise (e.g. a record could not be encoded).
    #[error("writing the readings: {0}")]
    Write(SinkError),
}

impl Refusal {
    /// The `reason` label of the rejected-readings counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownMachines(_) => "unknown_machine",
            Refusal::RetiredMachines(_) => "retired_machine",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::Overloaded(_) => "overloaded",
            Refusal::Database(e) if cache::is_unavailable(e) => "unavailable",
            Refusal::Database(_) | Refusal::Write(_) => "internal",
        }
    }
}

/// The admission path: machine checks, the tier's write limit, and the writer.
#[derive(Clone)]
pub struct Admission {
    pool: PgPool,
    machines: machines::MachineLookup,
    sink: ReadingsSink,
    counters: Option<Counters>,
}

impl Admission {
    /// Admission resolving machines in `pool`, writing through `sink`, and charging deliveries on
    /// `counters` (`None` when rate limits are off).
    pub fn new(pool: PgPool, sink: ReadingsSink, counters: Option<Counters>) -> Self {
        Self {
            machines: machines::MachineLookup::new(pool.clone(), DEFAULT_CACHE_MAX_AGE),
            pool,
            sink,
            counters,
        }
    }

    /// Lets cached machine lookups be at most `max_age` old when PostgreSQL is unreachable.
    pub fn with_cache_max_age(mut self, max_age: Duration) -> Self {
        self.machines = machines::MachineLookup::new(self.pool.clone(), max_age);
        self
    }

    /// The machine lookups, to forget a machine this instance changed.
    pub fn machines(&self) -> &machines::MachineLookup {
        &self.machines
    }

    /// The writer, for flushing at shutdown.
    pub fn sink(&self) -> &ReadingsSink {
        &self.sink
    }

    /// Admits `delivery` whole or refuses it whole; answers the readings written once Kafka acknowledged
    /// every record.
    pub async fn admit(&self, delivery: Delivery<'_>) -> Result<usize, Refusal> {
        let count = delivery.len() as u64;
        let source = source_label(delivery.source);
        let result = self.try_admit(delivery).await;
        match &result {
            Ok(n) => metrics::counter!(metric_names::READINGS_ACCEPTED, "source" => source)
                .increment(*n as u64),
            Err(refusal) => {
                metrics::counter!(metric_names::READINGS_REJECTED, "reason" => refusal.reason(), "source" => source)
                    .increment(count)
            }
        }
        result
    }

    async fn try_admit(&self, delivery: Delivery<'_>) -> Result<usize, Refusal> {
        let names: Vec<&str> = delivery
            .machines
            .iter()
            .map(|m| m.machine.as_str())
            .collect();
        let known = self.machines.lookup(delivery.tenant_id, &names).await?;
        let may_write = |id: Uuid| delivery.allowed.is_none_or(|ids| ids.contains(&id));
        let find = |name: &str| known.iter().find(|m| m.name == name);
        let retired: Vec<String> = known
            .iter()
            .filter(|m| m.retired && may_write(m.id))
            .map(|m| m.name.clone())
            .collect();
        if !retired.is_empty() {
            return Err(Refusal::RetiredMachines(retired));
        }
        let unknown: Vec<String> = names
            .iter()
            .filter(|n| find(n).is_none())
            .map(|n| n.to_string())
            .collect();
        if !unknown.is_empty() {
            return Err(Refusal::UnknownMachines(unknown));
        }
        let denied: Vec<String> = known
            .iter()
            .filter(|m| !may_write(m.id))
            .map(|m| m.name.clone())
            .collect();
        if !denied.is_empty() {
            return Err(Refusal::Forbidden(denied));
        }
        if delivery.charge == Charge::OneWrite {
            self.charge(delivery.tenant_id).await?;
        }
        let ingest_time_ms = crate::now_ms();
        let accepted = delivery.len();
        let batches: Vec<ReadingBatch> = delivery
            .machines
            .into_iter()
            .filter_map(|m| {
                Some(ReadingBatch {
                    tenant_id: delivery.tenant_id,
                    machine_id: find(&m.machine)?.id,
                    machine: m.machine,
                    source: delivery.source,
                    ingest_time_ms,
                    readings: m.readings,
                })
            })
            .collect();
        self.sink.write(&batches).await.map_err(|e| match e {
            SinkError::Unavailable(cause) => Refusal::Unavailable(cause),
            SinkError::Full(cause) => Refusal::Overloaded(cause),
            other => Refusal::Write(other),
        })?;
        Ok(accepted)
    }

    /// Charges one write to `tenant`; lets it through when the counter cannot be reached in time.
    async fn charge(&self, tenant: Uuid) -> Result<(), Refusal> {
        let Some(counters) = &self.counters else {
            return Ok(());
        };
        let Some(limits) = quota::load_limits(&self.pool, tenant).await? else {
            return Ok(());
        };
        let counter = quota::writes_counter(tenant);
        // None: Redis is unreachable and the delivery passes (the counters log and count the outage).
        match counters
            .limit(&counter, 60, limits.writes_per_minute, "writes")
            .await
        {
            Some(window) if window.exceeded() => {
                metrics::counter!(metric_names::RATE_LIMITED, "kind" => "writes").increment(1);
                Err(Refusal::RateLimited {
                    tier: limits.tier.as_str(),
                    limit: window.limit,
                    retry_after_secs: window.reset_secs.max(1),
                })
            }
            _ => Ok(()),
        }
    }
}
