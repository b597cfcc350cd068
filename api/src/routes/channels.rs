//! Notification channels (admins): `GET/POST /api/v1/channels`, `GET/PUT/DELETE /api/v1/channels/{id}`,
//! and `POST /api/v1/channels/{id}/test`, which sends a test message at once and says how it went (a
//! push channel's test goes to the newest browser the admin asking subscribed with it).
//!
//! A channel's secret fields (named by its kind: webhook URLs, signing secrets, SMTP passwords) are
//! sealed before they are stored, shown back as `"(hidden)"`, and kept as they are when an update
//! leaves them out.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_processors::alerting::channels::{self, Channel};
use haltless_processors::alerting::delivery::{finish, send_notice, StoredChannel};
use haltless_processors::alerting::message::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::{Caller, Permission, Principal};
use crate::error::{ApiError, Json, Path};
use crate::routes::channel_bodies::HIDDEN;
use crate::routes::paging::delete_owned;
use crate::state::AppState;
use crate::time::format_instant;

/// The channel routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/channels", get(list).post(create))
        .route("/channels/{id}", get(show).put(update).delete(remove))
        .route("/channels/{id}/test", post(test))
}

/// Body of `POST /api/v1/channels` (its schema, one per kind: [`crate::routes::channel_bodies`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// 1 to 100 characters, unique in the tenant.
    pub name: String,
    /// `webhook`, `slack`, `teams` or `email`.
    pub kind: String,
    /// The kind's configuration, checked by the kind.
    pub config: Map<String, Value>,
    /// Deliveries in flight at once to this channel (1 to 32, default 4).
    pub max_concurrency: Option<i32>,
}

/// Body of `PUT /api/v1/channels/{id}`: secret fields left out keep their stored values (its schema:
/// [`crate::routes::channel_bodies`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    /// 1 to 100 characters, unique in the tenant.
    pub name: String,
    /// The configuration; secret fields may be left out (or sent as `"(hidden)"`) to keep them.
    pub config: Map<String, Value>,
    /// Deliveries in flight at once to this channel (1 to 32).
    pub max_concurrency: Option<i32>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    kind: String,
    config: sqlx::types::Json<Map<String, Value>>,
    secret: String,
    max_concurrency: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const SELECT: &str =
    "SELECT id, name, kind, config, secret, max_concurrency, created_at, updated_at
    FROM notification_channels";

fn kind_of(name: &str) -> Result<&'static dyn Channel, ApiError> {
    channels::kind(name).ok_or_else(|| {
        ApiError::validation(format!(
            "kind must be one of {}",
            channels::kind_names().join(", ")
        ))
    })
}

/// A notification channel, its secret fields shown as `"(hidden)"`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: Uuid,
    pub name: String,
    /// `webhook`, `slack`, `teams`, `email` or `push`.
    pub kind: String,
    /// The kind's configuration (see the README).
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// The configuration's fields that are secret (shown as `"(hidden)"`).
    pub secret_fields: Vec<&'static str>,
    /// Deliveries in flight at once to this channel.
    pub max_concurrency: i32,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// `GET /api/v1/channels`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelView>,
}

/// The answer to `POST /api/v1/channels/{id}/test`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelTest {
    /// The test notification's id.
    pub notification_id: Uuid,
    /// `delivered` or `failed`.
    pub status: &'static str,
    /// Why the delivery failed; absent when it was delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

fn view(r: &Row) -> ChannelView {
    let mut config = r.config.0.clone();
    let secret_fields = kind_of(&r.kind)
        .map(|k| k.secret_fields())
        .unwrap_or_default();
    for field in secret_fields {
        config.insert((*field).into(), Value::String(HIDDEN.into()));
    }
    ChannelView {
        id: r.id,
        name: r.name.clone(),
        kind: r.kind.clone(),
        config,
        secret_fields: secret_fields.to_vec(),
        max_concurrency: r.max_concurrency,
        created_at: format_instant(r.created_at),
        updated_at: format_instant(r.updated_at),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if (1..=100).contains(&name.trim().chars().count()) && name.chars().count() <= 100 {
        Ok(())
    } else {
        Err(ApiError::validation("name must be 1 to 100 characters"))
    }
}

fn check_concurrency(n: Option<i32>) -> Result<i32, ApiError> {
    let n = n.unwrap_or(4);
    if (1..=32).contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::validation("max_concurrency must be 1 to 32"))
    }
}

/// A configuration's fields.
type Fields = Map<String, Value>;

/// Completes and checks a whole configuration, and splits it into its plain and its secret fields.
fn split(kind: &dyn Channel, mut config: Map<String, Value>) -> Result<(Fields, Fields), ApiError> {
    kind.complete(&mut config)
        .and_then(|()| kind.check(&config))
        .map_err(|reason| ApiError::validation(format!("config: {reason}")))?;
    let (secret, plain) = config
        .into_iter()
        .partition(|(k, _)| kind.secret_fields().contains(&k.as_str()));
    Ok((plain, secret))
}

async fn fetch(state: &AppState, caller: &Caller, id: Uuid) -> Result<Row, ApiError> {
    sqlx::query_as::<_, Row>(&format!("{SELECT} WHERE id = $1 AND tenant_id = $2"))
        .bind(id)
        .bind(caller.tenant_id)
        .fetch_optional(state.pool())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no channel {id}")))
}

#[utoipa::path(get, path = "/api/v1/channels", tag = "alerting", responses((status = 200, description = "`{\"channels\": [...]}`, secret fields shown as \"(hidden)\"", body = ChannelList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ChannelList>, ApiError> {
    caller.require(Permission::Admin)?;
    let rows = sqlx::query_as::<_, Row>(&format!("{SELECT} WHERE tenant_id = $1 ORDER BY name"))
        .bind(caller.tenant_id)
        .fetch_all(state.pool())
        .await?;
    Ok(Json(ChannelList {
        channels: rows.iter().map(view).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/channels", tag = "alerting", request_body = super::channel_bodies::NewChannelBody, responses((status = 201, description = "The channel, secret fields hidden", body = ChannelView), (status = 409, description = "A channel with this name exists", body = crate::error::ErrorBody), (status = 422, description = "Invalid configuration; the message names the field", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewChannel>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    caller.require(Permission::Admin)?;
    check_name(&body.name)?;
    let kind = kind_of(&body.kind)?;
    let concurrency = check_concurrency(body.max_concurrency)?;
    let (plain, secret) = split(kind, body.config)?;
    let id = Uuid::new_v4();
    let sealed = state.seal_channel_secret(id, &secret)?;
    let row = sqlx::query_as::<_, Row>(
        "INSERT INTO notification_channels (id, tenant_id, name, kind, config, secret, max_concurrency)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, name, kind, config, secret, max_concurrency, created_at, updated_at",
    )
    .bind(id)
    .bind(caller.tenant_id)
    .bind(body.name.trim())
    .bind(kind.name())
    .bind(sqlx::types::Json(&plain))
    .bind(sealed)
    .bind(concurrency)
    .fetch_one(state.pool())
    .await?;
    Ok((StatusCode::CREATED, Json(view(&row))))
}

#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Channel id")), responses((status = 200, description = "The channel, secret fields hidden", body = ChannelView), (status = 404, description = "No such channel in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<ChannelView>, ApiError> {
    caller.require(Permission::Admin)?;
    Ok(Json(view(&fetch(&state, &caller, id).await?)))
}

#[utoipa::path(put, path = "/api/v1/channels/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Channel id")), request_body = super::channel_bodies::ChannelUpdateBody, responses((status = 200, description = "The channel, secret fields hidden", body = ChannelView), (status = 404, description = "No such channel in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "A channel with this name exists", body = crate::error::ErrorBody), (status = 422, description = "Invalid configuration", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<ChannelUpdate>,
) -> Result<Json<ChannelView>, ApiError> {
    caller.require(Permission::Admin)?;
    check_name(&body.name)?;
    let concurrency = body
        .max_concurrency
        .map(|n| check_concurrency(Some(n)))
        .transpose()?;
    let stored = fetch(&state, &caller, id).await?;
    let kind = kind_of(&stored.kind)?;
    let mut config = body.config;
    config.retain(|_, v| v.as_str() != Some(HIDDEN));
    let kept = StoredChannel {
        id,
        kind: stored.kind.clone(),
        config: sqlx::types::Json(Map::new()),
        secret: stored.secret.clone(),
    }
    .opened(state.channel_secrets())
    .map_err(ApiError::internal)?;
    for (field, value) in kept {
        config.entry(field).or_insert(value);
    }
    let (plain, secret) = split(kind, config)?;
    let sealed = state.seal_channel_secret(id, &secret)?;
    let row = sqlx::query_as::<_, Row>(
        "UPDATE notification_channels SET name = $3, config = $4, secret = $5,
            max_concurrency = coalesce($6, max_concurrency), updated_at = now()
         WHERE id = $1 AND tenant_id = $2
         RETURNING id, name, kind, config, secret, max_concurrency, created_at, updated_at",
    )
    .bind(id)
    .bind(caller.tenant_id)
    .bind(body.name.trim())
    .bind(sqlx::types::Json(&plain))
    .bind(sealed)
    .bind(concurrency)
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no channel {id}")))?;
    Ok(Json(view(&row)))
}

#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Channel id")), responses((status = 204, description = "Deleted, with its pending notifications; policies naming it skip it"), (status = 404, description = "No such channel in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Admin)?;
    delete_owned(&state, &caller, "notification_channels", "channel", id).await
}

#[utoipa::path(post, path = "/api/v1/channels/{id}/test", tag = "alerting", params(("id" = Uuid, Path, description = "Channel id")), responses((status = 200, description = "`{\"notification_id\", \"status\": \"delivered\"|\"failed\", \"error\"?}`: the test message was sent now; the attempt is in the delivery log", body = ChannelTest), (status = 404, description = "No such channel in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<ChannelTest>, ApiError> {
    caller.require(Permission::Admin)?;
    let row = fetch(&state, &caller, id).await?;
    // A push channel's test goes to the newest browser the admin asking subscribed with it.
    let subscription: Option<Uuid> = match (&caller.principal, row.kind.as_str()) {
        (Principal::User { user_id, .. }, channels::PUSH) => {
            sqlx::query_scalar(
                "SELECT id FROM push_subscriptions WHERE channel_id = $1 AND user_id = $2
             ORDER BY created_at DESC LIMIT 1",
            )
            .bind(id)
            .bind(user_id)
            .fetch_optional(state.pool())
            .await?
        }
        _ => None,
    };
    let message = Message::test(Uuid::new_v4(), caller.tenant_id);
    sqlx::query(
        "INSERT INTO notifications (id, tenant_id, channel_id, kind, message, status, attempts, lease_until, recipient)
         VALUES ($1, $2, $3, 'test', $4, 'sending', 1, now() + interval '1 hour', $5)",
    )
    .bind(message.id)
    .bind(caller.tenant_id)
    .bind(id)
    .bind(sqlx::types::Json(&message))
    .bind(subscription)
    .execute(state.pool())
    .await?;
    let channel = StoredChannel {
        id,
        kind: row.kind,
        config: row.config,
        secret: row.secret,
    };
    let began = Instant::now();
    let mut config = state.settings().alerting.clone();
    // A test is tried once: its answer is for the admin who asked, not for a retry later.
    config.max_attempts = 1;
    let result = send_notice(
        state.pool(),
        &state.outbound()?,
        state.channel_secrets(),
        &channel,
        &message,
        subscription,
    )
    .await;
    finish(
        state.pool(),
        &config,
        message.id,
        1,
        began.elapsed(),
        &result,
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(match result {
        Ok(()) => ChannelTest {
            notification_id: message.id,
            status: "delivered",
            error: None,
        },
        Err(e) => ChannelTest {
            notification_id: message.id,
            status: "failed",
            error: Some(e.message),
        },
    }))
}
