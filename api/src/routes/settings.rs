//! `GET /api/v1/settings` (every role) and `PUT /api/v1/settings` (admins): the tenant's fleet and
//! detection defaults as one validated JSON document. A tenant that never saved any gets the defaults.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use haltless_processors::detection::logic::settings::DetectionSettings;
use haltless_processors::detection::processor::RuleChange;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json};
use crate::state::AppState;
use crate::time::format_instant;

/// The settings routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/settings", get(show).put(replace))
}

/// A tenant's settings. Every field is optional in a `PUT`; absent ones take their default.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSettings {
    /// A machine with no reading (by event time) for this many minutes is `silent` in the fleet view
    /// (1 to 10,080; default 15).
    pub silent_after_minutes: u32,
    /// How the detectors judge the tenant's metrics: the default rule of every metric no rule names, and
    /// what a rule's `context` condition leaves unset. A change applies to readings from the moment it is saved.
    pub detection: DetectionSettings,
    /// Remaining-useful-life predictions.
    pub ai: AiSettings,
}

/// AI config: how predictions are shown, which model serves the fleet, and when they raise an alert.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AiSettings {
    /// Unit of remaining life in predictions: `cycles` (default), `hours` or `days` (at each machine's
    /// recent pace of cycles).
    pub horizon_unit: String,
    /// The model (id of a ready model of the tenant) serving every machine no activation names; saving
    /// it activates it for the fleet.
    pub model: Option<Uuid>,
    /// A prediction whose remaining life falls below this many cycles raises an alert, resolved when it
    /// rises a fifth above or the machine is replaced (0 to 100,000; 0: never; default 20).
    pub alert_below_cycles: f64,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            horizon_unit: "cycles".into(),
            model: None,
            alert_below_cycles: 20.0,
        }
    }
}

impl AiSettings {
    /// The threshold the predictor applies, if any.
    pub fn alert_threshold(&self) -> Option<f64> {
        (self.alert_below_cycles > 0.0).then_some(self.alert_below_cycles)
    }
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            silent_after_minutes: 15,
            detection: DetectionSettings::default(),
            ai: AiSettings::default(),
        }
    }
}

impl TenantSettings {
    /// Every rule broken, as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut check = |ok: bool, field: &'static str, message: &str| {
            if !ok {
                out.push((field, message.to_owned()));
            }
        };
        check(
            (1..=10_080).contains(&self.silent_after_minutes),
            "silent_after_minutes",
            "must lie between 1 and 10080",
        );
        check(
            ["cycles", "hours", "days"].contains(&self.ai.horizon_unit.as_str()),
            "ai.horizon_unit",
            "must be cycles, hours or days",
        );
        check(
            self.ai.alert_below_cycles.is_finite()
                && (0.0..=100_000.0).contains(&self.ai.alert_below_cycles),
            "ai.alert_below_cycles",
            "must lie between 0 and 100000",
        );
        out.extend(self.detection.problems());
        out
    }

    /// The tenant's settings, or the defaults.
    pub async fn load(pool: &sqlx::PgPool, tenant: Uuid) -> Result<Self, ApiError> {
        let stored: Option<Value> =
            sqlx::query_scalar("SELECT settings FROM tenant_settings WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_optional(pool)
                .await?;
        // A stored document always passed validation; should a later version drop a field, fall back.
        Ok(stored
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }
}

async fn answer(state: &AppState, tenant: Uuid) -> Result<Json<Value>, ApiError> {
    let settings = TenantSettings::load(state.pool(), tenant).await?;
    let meta: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT updated_by, updated_at FROM tenant_settings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(state.pool())
            .await?;
    Ok(Json(json!({
        "settings": settings,
        "updated_by": meta.as_ref().map(|m| m.0.clone()),
        "updated_at": meta.map(|m| format_instant(m.1)),
    })))
}

/// The answer of `GET` and `PUT /api/v1/settings` (documentation of the JSON the handlers build).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SettingsAnswer {
    pub settings: TenantSettings,
    /// Who saved them last; null while the tenant has the defaults.
    pub updated_by: Option<String>,
    /// When (RFC 3339); null while the tenant has the defaults.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", responses((status = 200, description = "`{\"settings\": TenantSettings, \"updated_by\", \"updated_at\"}`", body = SettingsAnswer), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    key: Caller,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Read)?;
    answer(&state, key.tenant_id).await
}

#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", request_body = TenantSettings, responses((status = 200, description = "The saved settings", body = SettingsAnswer), (status = 422, description = "Invalid settings; `details.fields` names each problem", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<TenantSettings>,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Admin)?;
    let problems = body.problems();
    if !problems.is_empty() {
        let fields: serde_json::Map<String, Value> = problems
            .iter()
            .map(|(f, m)| ((*f).to_owned(), json!(m)))
            .collect();
        let summary: Vec<String> = problems.iter().map(|(f, m)| format!("{f} {m}")).collect();
        return Err(
            ApiError::validation(summary.join("; ")).with_details(json!({ "fields": fields }))
        );
    }
    if let Some(model) = body.ai.model {
        let ready: Option<bool> = sqlx::query_scalar(
            "SELECT status = 'ready' FROM rul_models WHERE tenant_id = $1 AND id = $2",
        )
        .bind(key.tenant_id)
        .bind(model)
        .fetch_optional(state.pool())
        .await?;
        if ready != Some(true) {
            return Err(ApiError::validation(format!(
                "ai.model: the tenant has no ready model {model}"
            ))
            .with_details(
                json!({ "fields": { "ai.model": "must be a ready model of the tenant" } }),
            ));
        }
    }
    let previous = TenantSettings::load(state.pool(), key.tenant_id).await?;
    let before = previous.ai;
    let mut tx = state.pool().begin().await?;
    sqlx::query(
        "INSERT INTO tenant_settings (tenant_id, settings, updated_by, updated_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (tenant_id) DO UPDATE SET settings = $2, updated_by = $3, updated_at = now()",
    )
    .bind(key.tenant_id)
    .bind(json!(body))
    .bind(key.actor())
    .execute(&mut *tx)
    .await?;
    if body.detection != previous.detection {
        // The detectors see the settings on the rules topic, in event-time order with the readings, so a
        // replay applies them at the same reading; the row is committed only once Kafka has the event.
        let change =
            RuleChange::settings(key.tenant_id, crate::time::now_ms(), body.detection.clone());
        crate::routes::rules::publish(&state, &change).await?;
    }
    tx.commit().await?;
    let ai = &body.ai;
    if ai.model.is_some() && ai.model != before.model {
        sqlx::query(
            "INSERT INTO rul_model_activations (id, tenant_id, model_id, machines, activated_by)
             VALUES ($1, $2, $3, '{}', $4)",
        )
        .bind(Uuid::new_v4())
        .bind(key.tenant_id)
        .bind(ai.model)
        .bind(key.actor())
        .execute(state.pool())
        .await?;
    }
    if ai.model != before.model || ai.alert_threshold() != before.alert_threshold() {
        // The predictor learns of the fleet's model and of the threshold with the activations.
        crate::routes::activations::publish_activations(
            &state,
            key.tenant_id,
            None,
            ai.alert_threshold(),
        )
        .await?;
    }
    answer(&state, key.tenant_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_values_are_named() {
        assert!(TenantSettings::default().problems().is_empty());
        let mut s = TenantSettings {
            silent_after_minutes: 0,
            ..Default::default()
        };
        s.detection.one_in = f64::INFINITY;
        s.detection.severity = "loud".into();
        let fields: Vec<&str> = s.problems().iter().map(|p| p.0).collect();
        assert_eq!(
            fields,
            [
                "silent_after_minutes",
                "detection.one_in",
                "detection.severity"
            ]
        );
    }
}
