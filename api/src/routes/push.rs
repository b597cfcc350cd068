//! Browsers that receive Web Push notifications (every signed-in user, for themselves):
//!
//! - `GET /api/v1/push/channels`: the tenant's push channels with their VAPID public keys, which a
//!   browser subscribes with (`pushManager.subscribe({applicationServerKey})`).
//! - `GET/POST /api/v1/push/subscriptions`, `DELETE /api/v1/push/subscriptions/{id}`: the caller's
//!   subscriptions; the body of a POST is the browser's `PushSubscription.toJSON()` plus the channel.
//!
//! Escalation steps tell users and roles through these subscriptions; a push service that answers
//! 404 or 410 ended one, and the engine deletes it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_processors::alerting::channels::{check_endpoint, check_push_keys, PUSH};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Caller, Permission, Principal};
use crate::error::{ApiError, Json, Path};
use crate::state::AppState;
use crate::time::format_instant;

/// Subscriptions one user keeps at most (browsers and devices).
const MAX_PER_USER: i64 = 20;

/// The push routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/push/channels", get(channels))
        .route("/push/subscriptions", get(list).post(create))
        .route("/push/subscriptions/{id}", axum::routing::delete(remove))
}

/// A browser's keys, as `PushSubscription.toJSON()` gives them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key: a SEC1 point (65 bytes uncompressed, or 33 compressed) in base64url;
    /// that it lies on the curve is the server's to check.
    #[schema(
        pattern = "^(B[A-P][A-Za-z0-9_-]{84}[AEIMQUYcgkosw048]|A[g-z0-9_-][A-Za-z0-9_-]{42})=*$"
    )]
    pub p256dh: String,
    /// The browser's authentication secret: 16 bytes in base64url.
    #[schema(pattern = "^[A-Za-z0-9_-]{21}[AQgw]=*$")]
    pub auth: String,
}

/// Body of `POST /api/v1/push/subscriptions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewSubscription {
    /// The push channel (of the caller's tenant) whose VAPID public key the browser subscribed with.
    pub channel_id: Uuid,
    /// The push service's URL for this browser, at most 2,000 bytes.
    #[schema(value_type = super::channel_bodies::HttpUrl)]
    pub endpoint: String,
    /// When the subscription expires (ignored; browsers send `null`).
    #[serde(default, rename = "expirationTime")]
    #[schema(value_type = Option<i64>)]
    pub expiration_time: Option<Value>,
    /// The browser's keys.
    pub keys: SubscriptionKeys,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    channel_id: Uuid,
    endpoint: String,
    created_at: DateTime<Utc>,
}

/// A subscription as shown: the push service's origin, not the whole endpoint (a capability).
fn view(r: &Row) -> SubscriptionView {
    let service = reqwest::Url::parse(&r.endpoint)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    SubscriptionView {
        id: r.id,
        channel_id: r.channel_id,
        push_service: service,
        created_at: format_instant(r.created_at),
    }
}

/// A browser's push subscription.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    pub channel_id: Uuid,
    /// The push service's origin (the endpoint itself is a capability, never shown).
    pub push_service: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `GET /api/v1/push/subscriptions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<SubscriptionView>,
}

/// A push channel a browser can subscribe with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PushChannel {
    pub id: Uuid,
    pub name: String,
    /// The channel's VAPID public key (base64url), for `PushManager.subscribe`.
    pub vapid_public_key: Option<String>,
}

/// `GET /api/v1/push/channels`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PushChannelList {
    pub channels: Vec<PushChannel>,
}

/// The signed-in user behind the request: subscriptions belong to people, not to API keys.
fn user(caller: &Caller) -> Result<Uuid, ApiError> {
    caller.require(Permission::Read)?;
    match caller.principal {
        Principal::User { user_id, .. } => Ok(user_id),
        Principal::Key { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "push subscriptions belong to signed-in users, not to API keys",
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/push/channels", tag = "alerting", responses((status = 200, description = "`{\"channels\": [{\"id\", \"name\", \"vapid_public_key\"}]}`: the tenant's push channels, to subscribe a browser with", body = PushChannelList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn channels(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PushChannelList>, ApiError> {
    caller.require(Permission::Read)?;
    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, name, config->>'vapid_public_key' FROM notification_channels
         WHERE tenant_id = $1 AND kind = $2 ORDER BY name",
    )
    .bind(caller.tenant_id)
    .bind(PUSH)
    .fetch_all(state.pool())
    .await?;
    let channels = rows
        .into_iter()
        .map(|(id, name, vapid_public_key)| PushChannel {
            id,
            name,
            vapid_public_key,
        })
        .collect();
    Ok(Json(PushChannelList { channels }))
}

#[utoipa::path(get, path = "/api/v1/push/subscriptions", tag = "alerting", responses((status = 200, description = "`{\"subscriptions\": [...]}`: the caller's browsers", body = SubscriptionList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "API keys have no subscriptions", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SubscriptionList>, ApiError> {
    let user = user(&caller)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, channel_id, endpoint, created_at FROM push_subscriptions
         WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id",
    )
    .bind(caller.tenant_id)
    .bind(user)
    .fetch_all(state.pool())
    .await?;
    Ok(Json(SubscriptionList {
        subscriptions: rows.iter().map(view).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "alerting", request_body = NewSubscription, responses((status = 201, description = "The subscription (a browser subscribing again is the same one, now the caller's)", body = SubscriptionView), (status = 422, description = "Not a push channel of the tenant, or keys or endpoint not valid; the message says which", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "API keys have no subscriptions", body = crate::error::ErrorBody), (status = 429, description = "Rate limited, or the caller has 20 subscriptions", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewSubscription>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    let user = user(&caller)?;
    if body.endpoint.len() > 2000 {
        return Err(ApiError::validation("endpoint: at most 2,000 characters"));
    }
    // Stored as parsed: control characters come out percent-encoded.
    let endpoint = check_endpoint("endpoint", &body.endpoint)
        .map_err(ApiError::validation)?
        .to_string();
    check_push_keys(&body.keys.p256dh, &body.keys.auth).map_err(ApiError::validation)?;
    let is_push: Option<bool> = sqlx::query_scalar(
        "SELECT kind = $3 FROM notification_channels WHERE id = $1 AND tenant_id = $2",
    )
    .bind(body.channel_id)
    .bind(caller.tenant_id)
    .bind(PUSH)
    .fetch_optional(state.pool())
    .await?;
    if is_push != Some(true) {
        return Err(ApiError::validation(format!(
            "channel_id: {} is not a push channel of this tenant",
            body.channel_id
        )));
    }
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM push_subscriptions WHERE user_id = $1 AND endpoint <> $2",
    )
    .bind(user)
    .bind(&endpoint)
    .fetch_one(state.pool())
    .await?;
    if held >= MAX_PER_USER {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_subscriptions",
            format!("a user keeps at most {MAX_PER_USER} subscriptions; delete one first"),
        ));
    }
    let row: Row = sqlx::query_as(
        "INSERT INTO push_subscriptions (id, tenant_id, user_id, channel_id, endpoint, p256dh, auth)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (channel_id, endpoint) DO UPDATE SET user_id = EXCLUDED.user_id,
            p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, created_at = now()
         RETURNING id, channel_id, endpoint, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(caller.tenant_id)
    .bind(user)
    .bind(body.channel_id)
    .bind(&endpoint)
    .bind(&body.keys.p256dh)
    .bind(&body.keys.auth)
    .fetch_one(state.pool())
    .await?;
    Ok((StatusCode::CREATED, Json(view(&row))))
}

#[utoipa::path(delete, path = "/api/v1/push/subscriptions/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Subscription id")), responses((status = 204, description = "Deleted: the browser is told nothing more"), (status = 404, description = "No such subscription of the caller", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "API keys have no subscriptions", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let user = user(&caller)?;
    let deleted = sqlx::query(
        "DELETE FROM push_subscriptions WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
    )
    .bind(id)
    .bind(caller.tenant_id)
    .bind(user)
    .execute(state.pool())
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found(format!("no subscription {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
