//! Model activations as events: the newest activation of each of a tenant's models, published to the
//! models topic that the RUL predictor follows (with the model and the tenant's alert threshold).

use chrono::Utc;
use haltless_schemas::models::ModelChange;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Publishes the newest activation of the tenant's models (of `only` that model, when given) to the models
/// topic, with the tenant's alert threshold in force now (`alert_below`).
pub async fn publish_activations(
    state: &AppState,
    tenant: Uuid,
    only: Option<Uuid>,
    alert_below: Option<f64>,
) -> Result<(), ApiError> {
    let active: Vec<(Uuid, String, String, Vec<String>)> = sqlx::query_as(
        "SELECT DISTINCT ON (a.model_id) a.model_id, r.version, r.model, a.machines
         FROM rul_model_activations a JOIN rul_models r ON r.id = a.model_id AND r.tenant_id = a.tenant_id
         WHERE a.tenant_id = $1 AND ($2::uuid IS NULL OR a.model_id = $2) AND r.status = 'ready'
         ORDER BY a.model_id, a.activated_at DESC",
    )
    .bind(tenant)
    .bind(only)
    .fetch_all(state.pool())
    .await?;
    let codec = ModelChange::codec().map_err(|e| ApiError::internal(e.to_string()))?;
    let now = Utc::now().timestamp_millis();
    for (model_id, version, model, machines) in active {
        let change = ModelChange {
            tenant_id: tenant,
            model_id,
            version,
            effective_from_ms: now,
            active: true,
            machines,
            model,
            alert_below,
        };
        let payload = change
            .encode(&codec)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        state
            .events()
            .publish(
                &state.settings().kafka.models_topic,
                &change.key(),
                &payload,
            )
            .await?;
    }
    Ok(())
}
