//! API keys of the caller's tenant (admins only): `GET /api-keys`, `POST /api-keys` (the secret is in that
//! answer only), `DELETE /api-keys/{id}` (revoked at once: keys are looked up on every request).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{generate_key, Caller, Permission, Scope};
use crate::error::{ApiError, Json, Path};
use crate::state::AppState;
use crate::time::format_instant;

/// The API key routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}", delete(revoke))
}

/// Body of `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// A label to tell keys apart (1 to 200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// `ingest` and/or `read`.
    #[schema(value_type = Vec<super::bodies::KeyScope>, min_items = 1)]
    pub scopes: Vec<String>,
    /// Machine names the key is restricted to; every machine when absent.
    pub machines: Option<Vec<String>>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    machines: Option<Vec<String>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// An API key, without its secret except in the answer that creates it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// `ingest` and/or `read`.
    pub scopes: Vec<String>,
    /// Machine names the key is restricted to; null for every machine.
    pub machines: Option<Vec<String>>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339; null while the key is valid.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The secret to send as `X-API-Key`: only in the answer to `POST /api-keys`, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub secret: Option<String>,
}

/// `GET /api/v1/api-keys`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub api_keys: Vec<KeyView>,
}

impl KeyRow {
    fn view(&self) -> KeyView {
        KeyView {
            id: self.id,
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            scopes: self.scopes.clone(),
            machines: self.machines.clone(),
            created_at: format_instant(self.created_at),
            revoked_at: self.revoked_at.map(format_instant),
            secret: None,
        }
    }
}

const SELECT: &str = "SELECT k.id, k.name, k.prefix, k.scopes,
        CASE WHEN k.machine_ids IS NULL THEN NULL ELSE
            ARRAY(SELECT m.name FROM machines m WHERE m.tenant_id = k.tenant_id AND m.id = ANY(k.machine_ids)
                  ORDER BY m.name) END AS machines,
        k.created_at, k.revoked_at
    FROM api_keys k";

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", responses((status = 200, description = "The tenant's keys, never their secrets", body = KeyList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    caller.require(Permission::Admin)?;
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE k.tenant_id = $1 ORDER BY k.created_at, k.id"
    ))
    .bind(caller.tenant_id)
    .fetch_all(state.pool())
    .await?;
    Ok(Json(KeyList {
        api_keys: rows.iter().map(KeyRow::view).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = NewApiKey, responses((status = 201, description = "The key with its secret, shown once", body = KeyView), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewApiKey>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    caller.require(Permission::Admin)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation("name must have 1 to 200 characters"));
    }
    let mut scopes: Vec<&str> = Vec::new();
    for s in &body.scopes {
        let scope = Scope::parse(s)
            .ok_or_else(|| ApiError::validation("scopes must be `ingest` and/or `read`"))?;
        if !scopes.contains(&scope.as_str()) {
            scopes.push(scope.as_str());
        }
    }
    if scopes.is_empty() {
        return Err(ApiError::validation(
            "give at least one scope: `ingest`, `read`",
        ));
    }
    let machine_ids = match &body.machines {
        None => None,
        Some(names) => Some(crate::routes::paging::machine_ids(&state, &caller, names).await?),
    };
    let key = generate_key();
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes, machine_ids, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(caller.tenant_id)
    .bind(name)
    .bind(&key.prefix)
    .bind(&key.hash)
    .bind(&scopes)
    .bind(&machine_ids)
    .bind(caller.user_id())
    .execute(state.pool())
    .await?;
    let row: KeyRow = sqlx::query_as(&format!("{SELECT} WHERE k.id = $1"))
        .bind(id)
        .fetch_one(state.pool())
        .await?;
    let view = KeyView {
        secret: Some(key.secret),
        ..row.view()
    };
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 204, description = "Revoked"), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Admin)?;
    let found = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE tenant_id = $1 AND id = $2",
    )
    .bind(caller.tenant_id)
    .bind(id)
    .execute(state.pool())
    .await?
    .rows_affected();
    if found == 0 {
        return Err(ApiError::not_found(format!("no API key {id}")));
    }
    state.key_cache().forget(id);
    Ok(StatusCode::NO_CONTENT)
}
