//! `POST /api/v1/machines` and `GET /api/v1/machines` for the key's tenant.
//! (The full machines group arrives with tenancy and roles.)

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_connectors::gateway::validate::valid_name;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{ApiKey, Scope};
use crate::error::{ApiError, Json};
use crate::time::format_instant;

/// The machine routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/machines", get(list).post(create))
}

/// Body of `POST /api/v1/machines`.
#[derive(Debug, Deserialize)]
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

async fn create(
    State(state): State<AppState>,
    key: ApiKey,
    Json(body): Json<NewMachine>,
) -> Result<(StatusCode, Json<MachineView>), ApiError> {
    key.require(Scope::Ingest)?;
    if !valid_name(&body.name) {
        return Err(ApiError::validation(
            "name must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
        ));
    }
    let row: (Uuid, String, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, $3) RETURNING id, name, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(key.tenant_id)
    .bind(&body.name)
    .fetch_one(state.pool())
    .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

async fn list(
    State(state): State<AppState>,
    key: ApiKey,
) -> Result<Json<serde_json::Value>, ApiError> {
    key.require(Scope::Read)?;
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
