//! The predictions projection: `haltless.predictions.v1` → `predictions`, one row per machine cycle.

use chrono::DateTime;
use haltless_schemas::predictions::PredictionRecord;
use haltless_schemas::Codec;
use sqlx::PgConnection;

use crate::runtime::{Place, ProcessorError, Projection};

/// Projects the predictions.
pub struct PredictionsProjection {
    codec: Codec,
}

impl PredictionsProjection {
    /// A projection decoding with `codec`.
    pub fn new(codec: Codec) -> Self {
        Self { codec }
    }
}

impl Projection for PredictionsProjection {
    type Item = PredictionRecord;

    fn name(&self) -> &str {
        "predictions"
    }

    fn decode(&self, _at: Place, payload: &[u8]) -> Result<Self::Item, String> {
        PredictionRecord::decode(&self.codec, payload).map_err(|e| e.to_string())
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        items: &[Self::Item],
    ) -> Result<u64, ProcessorError> {
        let mut rows = 0;
        for p in items {
            let contributors = serde_json::Value::Array(
                p.contributors
                    .iter()
                    .map(|(sensor, effect)| serde_json::json!({"sensor": sensor, "effect": effect}))
                    .collect(),
            );
            rows += sqlx::query(
                "INSERT INTO predictions (tenant_id, machine_id, ts, cycle, rul, rul_lower, rul_upper, interval,
                    health, model_id, model_version, contributors)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
                 -- a deleted machine's (or tenant's) late predictions are dropped
                 WHERE EXISTS (SELECT 1 FROM machines WHERE id = $2 AND tenant_id = $1)
                 ON CONFLICT (tenant_id, machine_id, ts) DO NOTHING",
            )
            .bind(p.tenant_id)
            .bind(p.machine_id)
            .bind(DateTime::from_timestamp_millis(p.event_time_ms).unwrap_or_default())
            .bind(p.cycle)
            .bind(p.rul)
            .bind(p.lower)
            .bind(p.upper)
            .bind(p.interval)
            .bind(p.health.clamp(0.0, 1.0))
            .bind(p.model_id)
            .bind(&p.model_version)
            .bind(contributors)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        Ok(rows)
    }
}
