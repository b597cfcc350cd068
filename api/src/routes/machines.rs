//! `POST /api/v1/machines` (operators and admins, within the tier's machine limit) and
//! `GET /api/v1/machines` for the caller's tenant.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_connectors::gateway::validate::valid_name;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json};
use crate::time::format_instant;

/// The machine routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/machines", get(list).post(create))
}

/// Body of `POST /api/v1/machines`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMachine {
    /// Unique name within the tenant.
    pub name: String,
}

/// A machine as the API shows it.
#[derive(Debug, Serialize)]
pub struct MachineView {
    /// Id.
    pub id: Uuid,
    /// Name, unique within the tenant.
    pub name: String,
    /// When it was registered.
    pub created_at: String,
}

impl From<(Uuid, String, DateTime<Utc>)> for MachineView {
    fn from((id, name, created_at): (Uuid, String, DateTime<Utc>)) -> Self {
        Self {
            id,
            name,
            created_at: format_instant(created_at),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/machines", tag = "machines", request_body = NewMachine, responses((status = 201, description = "The machine"), (status = 422, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 409, description = "The name exists", body = crate::openapi::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::openapi::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<NewMachine>,
) -> Result<(StatusCode, Json<MachineView>), ApiError> {
    key.require(Permission::Operate)?;
    if !valid_name(&body.name) {
        return Err(ApiError::validation(
            "name must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
        ));
    }
    let mut tx = state.pool().begin().await?;
    // Locking the tenant row serialises registrations, so concurrent ones cannot overshoot the limit.
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(key.tenant_id)
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM machines WHERE tenant_id = $1")
        .bind(key.tenant_id)
        .fetch_one(&mut *tx)
        .await?;
    let max = key.limits.max_machines;
    if count as u64 >= max {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tier_limit",
            format!(
                "the {} tier allows at most {max} machines and this tenant has {count}; \
                 upgrade the tier or retire a machine",
                key.limits.tier.as_str()
            ),
        )
        .with_details(
            serde_json::json!({ "limit": max, "machines": count, "tier": key.limits.tier }),
        ));
    }
    let row: (Uuid, String, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, $3) RETURNING id, name, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(key.tenant_id)
    .bind(&body.name)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[utoipa::path(get, path = "/api/v1/machines", tag = "machines", responses((status = 200, description = "The tenant's machines"), (status = 401, description = "No or invalid credentials", body = crate::openapi::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::openapi::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    key: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    key.require(Permission::Read)?;
    let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, name, created_at FROM machines WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(key.tenant_id)
    .fetch_all(state.pool())
    .await?;
    let machines: Vec<MachineView> = rows
        .into_iter()
        .filter(|(id, _, _)| key.may_access(*id))
        .map(MachineView::from)
        .collect();
    Ok(Json(serde_json::json!({ "machines": machines })))
}
