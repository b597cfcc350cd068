//! Accounts: `POST /signup`, `POST /auth/login`, `POST /auth/refresh`, `POST /auth/logout`,
//! `POST /invites/accept`, `GET /me`, `GET /sessions` and `DELETE /sessions/{id}`.
//!
//! A login opens a session: a family of refresh tokens, each usable once. Refreshing spends the token and
//! hands out the next; presenting a spent token again means it leaked, so the whole session is revoked.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_schemas::metric_names;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::passwords::{check_policy, hash_password_async, verify_password_async};
use crate::auth::{client_address, hash_key, random_token, Caller, Permission, Principal, Role};
use crate::error::{ApiError, Json, Path};
use crate::state::AppState;
use crate::time::format_instant;

/// The account routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", post(signup))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/invites/accept", post(accept_invite))
        .route("/me", get(me))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", delete(revoke_session))
}

/// The client's address and user agent, for throttles and the session list.
pub(crate) struct Client {
    address: String,
    user_agent: Option<String>,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            address: client_address(parts, state),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect()),
        })
    }
}

fn redis_down(e: fred::error::Error) -> ApiError {
    tracing::warn!(error = %e, "redis unreachable");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "retry shortly",
    )
    .retry_after(1)
}

fn too_many(message: &str, retry_after: u64) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
        .retry_after(retry_after.max(1))
}

/// Checks and normalises an email address.
pub fn normalise_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if ok {
        Ok(email)
    } else {
        Err(ApiError::validation(
            "email must be an address like name@example.com",
        ))
    }
}

fn policy(password: &str) -> Result<(), ApiError> {
    check_policy(password).map_err(|e| ApiError::validation(e.to_string()))
}

/// Body of `POST /api/v1/signup`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    /// The new tenant's name, unique on the platform (1 to 200 characters, not blank).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub tenant: String,
    /// The first admin's email.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// The first admin's password (10 to 256 characters).
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/signup", tag = "accounts", request_body = Signup, responses((status = 201, description = "The Free tenant and its admin", body = SignedUp), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 409, description = "Tenant name taken", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)))]
pub(crate) async fn signup(
    State(state): State<AppState>,
    client: Client,
    Json(body): Json<Signup>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let limit = u64::from(state.settings().auth.signups_per_address_per_hour);
    let counter = format!("throttle:signup:{}", client.address);
    let w = state
        .counters()
        .hit(&counter, 3_600, limit)
        .await
        .map_err(redis_down)?;
    if w.exceeded() {
        return Err(too_many(
            "too many sign-ups from this address",
            w.reset_secs,
        ));
    }
    let name = body.tenant.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation("tenant must have 1 to 200 characters"));
    }
    let email = normalise_email(&body.email)?;
    policy(&body.password)?;
    let hash = hash_password_async(body.password)
        .await
        .map_err(ApiError::internal)?;
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    // An email is an identity within a tenant (migration 0019): signing up never conflicts with, and so
    // never reveals, an account the address has elsewhere. Only a taken tenant name is refused.
    let mut tx = state.pool().begin().await?;
    sqlx::query("INSERT INTO tenants (id, name, tier) VALUES ($1, $2, 'free')")
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO users (id, tenant_id, email, password_hash, role) VALUES ($1, $2, $3, $4, 'admin')")
        .bind(user)
        .bind(tenant)
        .bind(&email)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tenant": { "id": tenant, "name": name, "tier": "free" },
            "user": { "id": user, "email": email, "role": "admin" },
        })),
    ))
}

/// Body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
    /// The tenant's name; needed only when the address has accounts in more than one tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    tenant_id: Uuid,
    password_hash: String,
    role: String,
    active: bool,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = Login, responses((status = 200, description = "Access and refresh tokens", body = Tokens), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: Client,
    Json(body): Json<Login>,
) -> Result<Json<Tokens>, ApiError> {
    let auth = &state.settings().auth;
    let window = auth.login_window_secs;
    let email = body.email.trim().to_lowercase();
    let counters = [
        (
            format!("throttle:login:account:{email}"),
            u64::from(auth.login_failures_per_account),
        ),
        (
            format!("throttle:login:address:{}", client.address),
            u64::from(auth.login_failures_per_address),
        ),
    ];
    // Every attempt is counted before its password is checked, in one atomic increment per counter: of
    // any number of parallel guesses, at most the limit get as far as a password check. A success takes
    // its count back below.
    for (counter, limit) in &counters {
        let w = state
            .counters()
            .hit(counter, window, *limit)
            .await
            .map_err(redis_down)?;
        if w.exceeded() {
            metrics::counter!(metric_names::AUTH_LOGINS, "outcome" => "throttled").increment(1);
            return Err(too_many(
                "too many failed logins; wait before trying again",
                w.reset_secs,
            ));
        }
    }
    // Only usable accounts are candidates (a pending invitation or a deactivated user elsewhere never gets
    // in the way). At most two are read and exactly one hash is checked whatever they are: no account, one
    // account, or an address with accounts in several tenants (which needs `tenant` to pick one) all cost
    // the same and fail with the same answer.
    let mut rows: Vec<LoginRow> = sqlx::query_as(
        "SELECT u.id, u.tenant_id, u.password_hash, u.role, u.active FROM users u
         JOIN tenants t ON t.id = u.tenant_id
         WHERE u.email = $1 AND ($2::text IS NULL OR t.name = $2)
           AND u.active AND u.password_hash <> '!' LIMIT 2",
    )
    .bind(&email)
    .bind(body.tenant.as_deref().map(str::trim))
    .fetch_all(state.pool())
    .await?;
    let row = if rows.len() == 1 { rows.pop() } else { None };
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    let matches = verify_password_async(body.password, stored).await;
    let user = match row {
        Some(user) if matches && user.active => user,
        _ => {
            metrics::counter!(metric_names::AUTH_LOGINS, "outcome" => "invalid").increment(1);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong email or password (an address with accounts in several tenants also needs `tenant`)",
            ));
        }
    };
    // A success clears the account's failures and does not count against its address.
    state
        .counters()
        .reset(&counters[0].0, window)
        .await
        .map_err(redis_down)?;
    state
        .counters()
        .undo(&counters[1].0, window)
        .await
        .map_err(redis_down)?;
    metrics::counter!(metric_names::AUTH_LOGINS, "outcome" => "ok").increment(1);
    let role =
        Role::parse(&user.role).ok_or_else(|| ApiError::internal("unknown role in users"))?;
    let session = Uuid::new_v4();
    let expires_at = Utc::now() + chrono::Duration::seconds(auth.refresh_token_ttl_secs as i64);
    let refresh = random_token("hlr_");
    let mut tx = state.pool().begin().await?;
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, expires_at, user_agent, address) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(session)
    .bind(user.tenant_id)
    .bind(user.id)
    .bind(expires_at)
    .bind(&client.user_agent)
    .bind(&client.address)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(hash_key(&refresh))
        .bind(session)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    token_answer(
        &state,
        user.id,
        user.tenant_id,
        role,
        session,
        refresh,
        expires_at,
    )
}

fn token_answer(
    state: &AppState,
    user: Uuid,
    tenant: Uuid,
    role: Role,
    session: Uuid,
    refresh: String,
    refresh_expires_at: DateTime<Utc>,
) -> Result<Json<Tokens>, ApiError> {
    let (access, _) = state
        .tokens()
        .issue(user, tenant, role, session)
        .map_err(ApiError::internal)?;
    Ok(Json(Tokens {
        access_token: access,
        token_type: "Bearer",
        expires_in: state.tokens().ttl().as_secs(),
        refresh_token: refresh,
        refresh_expires_at: format_instant(refresh_expires_at),
        session_id: session,
        user: TokenUser {
            id: user,
            tenant_id: tenant,
            role,
        },
    }))
}

/// The answer to a login or a refresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    /// The access token (a JWT), sent as `Authorization: Bearer ...`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// The refresh token, for `POST /auth/refresh` (single use: the answer carries the next one).
    pub refresh_token: String,
    /// RFC 3339: when the refresh token expires.
    #[schema(format = DateTime)]
    pub refresh_expires_at: String,
    /// The session the tokens belong to.
    pub session_id: Uuid,
    pub user: TokenUser,
}

/// The signed-in user of a [`Tokens`] answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[schema(value_type = super::bodies::RoleName)]
    pub role: Role,
}

/// Body of `POST /api/v1/auth/refresh`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// The refresh token from the login or the previous refresh.
    pub refresh_token: String,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    session_id: Uuid,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    user_id: Uuid,
    tenant_id: Uuid,
    role: String,
    active: bool,
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "accounts", request_body = Refresh, responses((status = 200, description = "New tokens; the old refresh token is spent", body = Tokens), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<Refresh>,
) -> Result<Json<Tokens>, ApiError> {
    let invalid = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_refresh_token", m);
    let mut tx = state.pool().begin().await?;
    let row: RefreshRow = sqlx::query_as(
        "SELECT rt.session_id, rt.used_at, s.revoked_at, s.expires_at, s.user_id, s.tenant_id, u.role, u.active
         FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id
         WHERE rt.token_hash = $1 FOR UPDATE OF rt, s",
    )
    .bind(hash_key(body.refresh_token.trim()))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| invalid("unknown refresh token"))?;
    if row.used_at.is_some() {
        // A spent token came back: someone holds a copy. End the whole session, access tokens included.
        sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_reason = 'reuse' WHERE id = $1 AND revoked_at IS NULL")
            .bind(row.session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        state
            .auth_store()
            .block_session(row.session_id, state.tokens().ttl().as_secs())
            .await
            .map_err(redis_down)?;
        tracing::warn!(session = %row.session_id, "refresh token reused; session revoked");
        metrics::counter!(metric_names::AUTH_REFRESH_REUSE).increment(1);
        return Err(invalid(
            "this refresh token was already used; the session is revoked",
        ));
    }
    if row.revoked_at.is_some() || row.expires_at <= Utc::now() || !row.active {
        return Err(invalid("the session has ended; sign in again"));
    }
    let role = Role::parse(&row.role).ok_or_else(|| ApiError::internal("unknown role in users"))?;
    let next = random_token("hlr_");
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(hash_key(body.refresh_token.trim()))
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(hash_key(&next))
        .bind(row.session_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sessions SET last_used_at = now() WHERE id = $1")
        .bind(row.session_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    token_answer(
        &state,
        row.user_id,
        row.tenant_id,
        role,
        row.session_id,
        next,
        row.expires_at,
    )
}

/// Ends a session in the database and refuses its access tokens at once.
pub async fn end_session(
    state: &AppState,
    tenant: Uuid,
    session: Uuid,
    user: Option<Uuid>,
    reason: &str,
) -> Result<bool, ApiError> {
    let ended = sqlx::query(
        "UPDATE sessions SET revoked_at = COALESCE(revoked_at, now()), revoked_reason = COALESCE(revoked_reason, $4)
         WHERE id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR user_id = $3)",
    )
    .bind(session)
    .bind(tenant)
    .bind(user)
    .bind(reason)
    .execute(state.pool())
    .await?
    .rows_affected();
    if ended > 0 {
        state
            .auth_store()
            .block_session(session, state.tokens().ttl().as_secs())
            .await
            .map_err(redis_down)?;
    }
    Ok(ended > 0)
}

fn user_of(caller: &Caller) -> Result<(Uuid, Uuid, Uuid, u64), ApiError> {
    match &caller.principal {
        Principal::User {
            user_id,
            session_id,
            jti,
            expires_at,
            ..
        } => Ok((*user_id, *session_id, *jti, *expires_at)),
        Principal::Key { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint is for signed-in users, not API keys",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", responses((status = 204, description = "The token and its session are revoked"), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let (user, session, jti, exp) = user_of(&caller)?;
    state
        .auth_store()
        .block_token(jti, exp)
        .await
        .map_err(redis_down)?;
    end_session(&state, caller.tenant_id, session, Some(user), "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/v1/invites/accept`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    /// The invitation token an admin received when inviting the user.
    #[schema(min_length = 1)]
    pub token: String,
    /// The password to set (10 to 256 characters).
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/invites/accept", tag = "accounts", request_body = AcceptInvite, responses((status = 200, description = "The password is set", body = InviteAccepted), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)))]
pub(crate) async fn accept_invite(
    State(state): State<AppState>,
    client: Client,
    Json(body): Json<AcceptInvite>,
) -> Result<Json<Value>, ApiError> {
    let limit = u64::from(state.settings().auth.invite_attempts_per_address_per_hour);
    let w = state
        .counters()
        .hit(&format!("throttle:invite:{}", client.address), 3_600, limit)
        .await
        .map_err(redis_down)?;
    if w.exceeded() {
        return Err(too_many(
            "too many invitation attempts from this address",
            w.reset_secs,
        ));
    }
    policy(&body.password)?;
    let token = hash_key(body.token.trim());
    let gone = || ApiError::not_found("no such invitation, or it has expired");
    // The token first: a wrong or expired one costs a lookup, never a password hash.
    let pending: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE invite_hash = $1 AND invite_expires_at > now() AND active",
    )
    .bind(&token)
    .fetch_optional(state.pool())
    .await?;
    pending.ok_or_else(gone)?;
    let hash = hash_password_async(body.password)
        .await
        .map_err(ApiError::internal)?;
    // The same conditions again: the invitation may have been used while the password was hashed.
    let row: Option<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "UPDATE users SET password_hash = $2, invite_hash = NULL, invite_expires_at = NULL, updated_at = now()
         WHERE invite_hash = $1 AND invite_expires_at > now() AND active
         RETURNING id, tenant_id, email, role",
    )
    .bind(&token)
    .bind(&hash)
    .fetch_optional(state.pool())
    .await?;
    let (id, tenant, email, role) = row.ok_or_else(gone)?;
    Ok(Json(
        json!({ "user": { "id": id, "tenant_id": tenant, "email": email, "role": role } }),
    ))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", responses((status = 200, description = "The caller, the tenant, its tier, limits and usage", body = Me), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let (name, machines, sources, points): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT name, (SELECT count(*) FROM machines WHERE tenant_id = $1),
             (SELECT count(*) FROM ingest_sources WHERE tenant_id = $1),
             (SELECT COALESCE(sum(jsonb_array_length(definition -> 'points')), 0)::bigint
              FROM ingest_sources WHERE tenant_id = $1)
         FROM tenants WHERE id = $1",
    )
    .bind(caller.tenant_id)
    .fetch_one(state.pool())
    .await?;
    let tenant = json!({ "id": caller.tenant_id, "name": name, "limits": caller.limits,
                         "usage": { "machines": machines, "sources": sources, "points": points } });
    let who = match &caller.principal {
        Principal::User {
            user_id,
            role,
            session_id,
            ..
        } => {
            let email: String =
                sqlx::query_scalar("SELECT email FROM users WHERE id = $1 AND tenant_id = $2")
                    .bind(user_id)
                    .bind(caller.tenant_id)
                    .fetch_one(state.pool())
                    .await?;
            json!({ "user": { "id": user_id, "email": email, "role": role, "session_id": session_id } })
        }
        Principal::Key { key_id, scopes } => {
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            json!({ "api_key": { "id": key_id, "scopes": scopes, "machines": caller.machine_restriction() } })
        }
    };
    let mut body = who;
    body["tenant"] = tenant;
    Ok(Json(body))
}

/// `GET /api/v1/sessions`: the caller's sessions, newest first (at most 200).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// A session: one sign-in and the refresh tokens that follow from it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    /// The session of the request.
    pub current: bool,
    /// Neither revoked nor expired.
    pub active: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// Why it was revoked (`logout`, `revoked`, `deactivated`, `reuse`...).
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    /// The client address at sign-in.
    pub address: Option<String>,
}

/// The answer to `POST /api/v1/signup` (documentation of the JSON the handler builds).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SignedUp {
    pub tenant: SignedUpTenant,
    pub user: SignedUpUser,
}

/// The tenant a sign-up created.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SignedUpTenant {
    pub id: Uuid,
    pub name: String,
    /// Always `free`.
    pub tier: String,
}

/// The admin a sign-up created.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SignedUpUser {
    pub id: Uuid,
    pub email: String,
    /// Always `admin`.
    pub role: String,
}

/// The answer to `POST /api/v1/invites/accept` (documentation of the JSON the handler builds).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct InviteAccepted {
    pub user: InvitedUser,
}

/// The user who accepted an invitation.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct InvitedUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    #[schema(value_type = super::bodies::RoleName)]
    pub role: String,
}

/// The answer to `GET /api/v1/me`: `user` for a signed-in user, `api_key` for a key (documentation of the
/// JSON the handler builds).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Me {
    pub user: Option<MeUser>,
    pub api_key: Option<MeKey>,
    pub tenant: MeTenant,
}

/// The signed-in user of [`Me`].
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct MeUser {
    pub id: Uuid,
    pub email: String,
    #[schema(value_type = super::bodies::RoleName)]
    pub role: String,
    pub session_id: Uuid,
}

/// The API key of [`Me`].
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct MeKey {
    pub id: Uuid,
    /// `ingest` and/or `read`.
    pub scopes: Vec<String>,
    /// The machine names the key is restricted to; null for every machine.
    pub machines: Option<Vec<String>>,
}

/// The caller's tenant: its limits in force and its usage.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct MeTenant {
    pub id: Uuid,
    pub name: String,
    pub limits: Limits,
    pub usage: Usage,
}

/// A tenant's limits in force: its tier's figures unless a platform operator overrode them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Limits {
    /// `free`, `pro` or `enterprise`.
    pub tier: String,
    pub max_machines: u64,
    pub writes_per_minute: u64,
    pub reads_per_minute: u64,
    pub retention_days: u32,
    pub max_sources: u64,
    pub max_points_per_source: u64,
    pub max_points: u64,
}

/// What a tenant uses of its limits.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Usage {
    pub machines: i64,
    pub sources: i64,
    pub points: i64,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    revoked_reason: Option<String>,
    user_agent: Option<String>,
    address: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "accounts", responses((status = 200, description = "The user's sessions", body = SessionList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SessionList>, ApiError> {
    caller.require(Permission::Read)?;
    let (user, current, _, _) = user_of(&caller)?;
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT id, created_at, last_used_at, expires_at, revoked_at, revoked_reason, user_agent, address
         FROM sessions WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT 200",
    )
    .bind(caller.tenant_id)
    .bind(user)
    .fetch_all(state.pool())
    .await?;
    let sessions = rows
        .into_iter()
        .map(|s| SessionView {
            id: s.id,
            current: s.id == current,
            active: s.revoked_at.is_none() && s.expires_at > Utc::now(),
            created_at: format_instant(s.created_at),
            last_used_at: format_instant(s.last_used_at),
            expires_at: format_instant(s.expires_at),
            revoked_at: s.revoked_at.map(format_instant),
            revoked_reason: s.revoked_reason,
            user_agent: s.user_agent,
            address: s.address,
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "accounts", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 204, description = "Revoked"), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Read)?;
    let (user, _, _, _) = user_of(&caller)?;
    if end_session(&state, caller.tenant_id, id, Some(user), "revoked").await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no session {id}")))
    }
}
