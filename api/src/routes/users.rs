//! Users of the caller's tenant (admins only): `GET /users`, `POST /users` (with a password, or as an
//! invitation whose token is shown once), `PATCH /users/{id}` (role, active). A role change or a
//! deactivation refuses the user's current access tokens at once; a deactivation also ends their sessions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::passwords::{check_policy, hash_password_async};
use crate::auth::{hash_key, random_token, Caller, Permission, Role};
use crate::error::{ApiError, Json, Path};
use crate::routes::accounts::{end_session, normalise_email};
use crate::state::AppState;
use crate::time::format_instant;

/// The user routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", patch(update).get(show))
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    role: String,
    active: bool,
    invited: bool,
    created_at: DateTime<Utc>,
}

/// A user of the tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// A deactivated user cannot sign in.
    pub active: bool,
    /// Invited and not yet accepted.
    pub invitation_pending: bool,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The one-time invitation token: only in the answer to `POST /users` without a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub invite_token: Option<String>,
}

/// `GET /api/v1/users`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

impl UserRow {
    fn view(&self) -> UserView {
        UserView {
            id: self.id,
            email: self.email.clone(),
            role: self.role.clone(),
            active: self.active,
            invitation_pending: self.invited,
            created_at: format_instant(self.created_at),
            invite_token: None,
        }
    }
}

const COLUMNS: &str = "id, email, role, active, invite_hash IS NOT NULL AS invited, created_at";

fn parse_role(role: &str) -> Result<Role, ApiError> {
    Role::parse(role).ok_or_else(|| ApiError::validation("role must be admin, operator or viewer"))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, description = "The tenant's users", body = UserList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserList>, ApiError> {
    caller.require(Permission::Admin)?;
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email"
    ))
    .bind(caller.tenant_id)
    .fetch_all(state.pool())
    .await?;
    Ok(Json(UserList {
        users: rows.iter().map(UserRow::view).collect(),
    }))
}

async fn find(state: &AppState, caller: &Caller, id: Uuid) -> Result<UserRow, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(caller.tenant_id)
    .bind(id)
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no user {id}")))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The user", body = UserView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    caller.require(Permission::Admin)?;
    Ok(Json(find(&state, &caller, id).await?.view()))
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Email address, unique within the tenant (the same person may belong to other tenants too).
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// The role.
    #[schema(value_type = super::bodies::RoleName)]
    pub role: String,
    /// The password (10 to 256 characters); without one the user is invited and the answer carries a
    /// one-time `invite_token`.
    #[schema(min_length = 10, max_length = 256)]
    pub password: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser, responses((status = 201, description = "The user; with an invite_token when invited", body = UserView), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require(Permission::Admin)?;
    let email = normalise_email(&body.email)?;
    let role = parse_role(&body.role)?;
    let (hash, invite) = match body.password {
        Some(password) => {
            check_policy(&password).map_err(|e| ApiError::validation(e.to_string()))?;
            (
                hash_password_async(password)
                    .await
                    .map_err(ApiError::internal)?,
                None,
            )
        }
        // "!" is no argon2 hash: nobody can sign in as an invited user until the invitation is accepted.
        None => ("!".to_owned(), Some(random_token("hli_"))),
    };
    let ttl = state.settings().auth.invite_ttl_secs as i64;
    let row: UserRow = sqlx::query_as(&format!(
        "INSERT INTO users (id, tenant_id, email, password_hash, role, invite_hash, invite_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6::bytea IS NULL THEN NULL ELSE now() + make_interval(secs => $7) END)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(caller.tenant_id)
    .bind(&email)
    .bind(&hash)
    .bind(role.as_str())
    .bind(invite.as_deref().map(hash_key))
    .bind(ttl as f64)
    .fetch_one(state.pool())
    .await?;
    let view = UserView {
        invite_token: invite,
        ..row.view()
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Body of `PATCH /api/v1/users/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New role.
    #[schema(value_type = Option<super::bodies::RoleName>)]
    pub role: Option<String>,
    /// `false` deactivates the user (ending their sessions), `true` reactivates them.
    pub active: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserChange, params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The user", body = UserView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 409, description = "The last admin", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    caller.require(Permission::Admin)?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    let mut tx = state.pool().begin().await?;
    // Serialises admin changes of one tenant so that two of them cannot remove the last admin together.
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(caller.tenant_id)
        .execute(&mut *tx)
        .await?;
    let before: Option<(String, bool)> =
        sqlx::query_as("SELECT role, active FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(caller.tenant_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (old_role, was_active) =
        before.ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
    let new_role = role.map(Role::as_str).unwrap_or(&old_role).to_owned();
    let active = body.active.unwrap_or(was_active);
    let row: UserRow = sqlx::query_as(&format!(
        "UPDATE users SET role = $3, active = $4, updated_at = now(),
            deactivated_at = CASE WHEN $4 THEN NULL ELSE COALESCE(deactivated_at, now()) END
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(caller.tenant_id)
    .bind(id)
    .bind(&new_role)
    .bind(active)
    .fetch_one(&mut *tx)
    .await?;
    let admins: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'admin' AND active",
    )
    .bind(caller.tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    if admins == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_admin",
            "a tenant keeps at least one active admin",
        ));
    }
    let sessions: Vec<Uuid> = if active {
        Vec::new()
    } else {
        sqlx::query_scalar(
            "SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(caller.tenant_id)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
    };
    tx.commit().await?;
    if new_role != old_role || !active {
        // Tokens carry the role: refuse the ones issued before the change; a refresh picks up the new role.
        state
            .auth_store()
            .block_user_until_now(id, state.tokens().ttl().as_secs())
            .await
            .map_err(|e| ApiError::unavailable("the token blocklist", e))?;
    }
    for session in sessions {
        end_session(&state, caller.tenant_id, session, Some(id), "deactivated").await?;
    }
    Ok(Json(row.view()))
}
