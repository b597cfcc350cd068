//! Polled readings to Kafka by the gateway's path: the same checks as `POST /api/v1/ingest`
//! ([`check_reading`]), the same batches keyed by tenant and machine, the same `acks=all` writer.

use std::collections::HashMap;
use std::sync::Arc;

use haltless_schemas::{ReadingBatch, Source};
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::gateway::validate::check_reading;
use crate::gateway::{GatewayConfig, ReadingsSink};
use crate::source::{Outlet, PointReading, SourceError};

/// Writes one source's readings to the readings topic.
#[derive(Clone)]
pub struct KafkaOutlet {
    sink: ReadingsSink,
    pool: PgPool,
    gateway: Arc<GatewayConfig>,
    tenant_id: Uuid,
    source: Source,
    machine_ids: Arc<Mutex<HashMap<String, Uuid>>>,
}

impl KafkaOutlet {
    /// An outlet for a source of `tenant_id` whose batches are labelled `source`.
    pub fn new(
        sink: ReadingsSink,
        pool: PgPool,
        gateway: Arc<GatewayConfig>,
        tenant_id: Uuid,
        source: Source,
    ) -> Self {
        Self {
            sink,
            pool,
            gateway,
            tenant_id,
            source,
            machine_ids: Arc::default(),
        }
    }

    /// The ids of `names` in the tenant, looked up once and remembered.
    async fn resolve(&self, names: &[&str]) -> Result<HashMap<String, Uuid>, SourceError> {
        let mut known = self.machine_ids.lock().await;
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !known.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            let rows: Vec<(String, Uuid)> = sqlx::query_as(
                "SELECT name, id FROM machines WHERE tenant_id = $1 AND name = ANY($2)",
            )
            .bind(self.tenant_id)
            .bind(&missing)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| SourceError::Delivery(format!("looking up machines: {e}")))?;
            known.extend(rows);
            let unknown: Vec<&str> = missing
                .into_iter()
                .filter(|n| !known.contains_key(*n))
                .collect();
            if !unknown.is_empty() {
                return Err(SourceError::Config(format!(
                    "unknown machine(s): {}; register them with POST /api/v1/machines",
                    unknown.join(", ")
                )));
            }
        }
        Ok(known.clone())
    }
}

impl Outlet for KafkaOutlet {
    async fn deliver(&self, readings: Vec<PointReading>) -> Result<(), SourceError> {
        let now = crate::now_ms();
        let mut groups: Vec<(String, Vec<haltless_schemas::Reading>)> = Vec::new();
        let mut invalid = Vec::new();
        for r in readings {
            if let Err(e) = check_reading(&r.machine, &r.reading, &self.gateway, now) {
                invalid.push(format!(
                    "{}/{}: {} {}",
                    r.machine, r.reading.metric, e.field, e.reason
                ));
                continue;
            }
            match groups.iter_mut().find(|(m, _)| *m == r.machine) {
                Some((_, group)) => group.push(r.reading),
                None => groups.push((r.machine, vec![r.reading])),
            }
        }
        let names: Vec<&str> = groups.iter().map(|(m, _)| m.as_str()).collect();
        let ids = self.resolve(&names).await?;
        let batches: Vec<ReadingBatch> = groups
            .into_iter()
            .filter_map(|(machine, readings)| {
                Some(ReadingBatch {
                    tenant_id: self.tenant_id,
                    machine_id: *ids.get(&machine)?,
                    machine,
                    source: self.source,
                    ingest_time_ms: now,
                    readings,
                })
            })
            .collect();
        if !batches.is_empty() {
            self.sink
                .write(&batches)
                .await
                .map_err(|e| SourceError::Delivery(e.to_string()))?;
        }
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(SourceError::Value(format!(
                "readings refused: {}",
                invalid.join("; ")
            )))
        }
    }
}
