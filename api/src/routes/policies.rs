//! Escalation policies (admins): `GET/POST /api/v1/escalation-policies`,
//! `GET/PUT/DELETE /api/v1/escalation-policies/{id}`. A raised alert follows the first policy, in
//! `position` order, whose matchers hold; one that no policy takes is recorded but notifies nobody.
//!
//! Inhibition rules (admins): `GET/POST /api/v1/inhibition-rules`, `GET/DELETE
//! /api/v1/inhibition-rules/{id}`: while an open alert meets a rule's `source`, alerts meeting its `target`
//! that share its `equal` labels notify nobody.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_processors::alerting::channels::PUSH;
use haltless_processors::alerting::policy::{InhibitionSpec, PolicySpec};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path};
use crate::routes::paging::{delete_owned, refuse_unknown};
use crate::state::AppState;
use crate::time::format_instant;

/// The policy routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/escalation-policies", get(list).post(create))
        .route(
            "/escalation-policies/{id}",
            get(show).put(update).delete(remove),
        )
        .route(
            "/inhibition-rules",
            get(list_inhibitions).post(create_inhibition),
        )
        .route(
            "/inhibition-rules/{id}",
            get(show_inhibition).delete(delete_inhibition),
        )
}

#[derive(Debug, sqlx::FromRow)]
struct InhibitionRow {
    id: Uuid,
    spec: sqlx::types::Json<InhibitionSpec>,
    created_at: DateTime<Utc>,
}

/// An inhibition rule: its specification, id and creation time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InhibitionView {
    #[serde(flatten)]
    pub spec: InhibitionSpec,
    pub id: Uuid,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `GET /api/v1/inhibition-rules`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InhibitionList {
    pub inhibition_rules: Vec<InhibitionView>,
}

fn inhibition_view(r: &InhibitionRow) -> InhibitionView {
    InhibitionView {
        spec: r.spec.0.clone(),
        id: r.id,
        created_at: format_instant(r.created_at),
    }
}

#[utoipa::path(get, path = "/api/v1/inhibition-rules", tag = "alerting", responses((status = 200, description = "`{\"inhibition_rules\": [...]}`", body = InhibitionList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_inhibitions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<InhibitionList>, ApiError> {
    caller.require(Permission::Admin)?;
    let rows = sqlx::query_as::<_, InhibitionRow>(
        "SELECT id, spec, created_at FROM inhibition_rules WHERE tenant_id = $1 ORDER BY created_at, id",
    )
    .bind(caller.tenant_id)
    .fetch_all(state.pool())
    .await?;
    Ok(Json(InhibitionList {
        inhibition_rules: rows.iter().map(inhibition_view).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/inhibition-rules", tag = "alerting", request_body = InhibitionSpec, responses((status = 201, description = "The rule", body = InhibitionView), (status = 409, description = "A rule with this name exists", body = crate::error::ErrorBody), (status = 422, description = "Invalid rule", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_inhibition(
    State(state): State<AppState>,
    caller: Caller,
    Json(spec): Json<InhibitionSpec>,
) -> Result<(StatusCode, Json<InhibitionView>), ApiError> {
    caller.require(Permission::Admin)?;
    spec.check().map_err(ApiError::validation)?;
    let row = sqlx::query_as::<_, InhibitionRow>(
        "INSERT INTO inhibition_rules (id, tenant_id, name, spec) VALUES ($1, $2, $3, $4)
         RETURNING id, spec, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(caller.tenant_id)
    .bind(spec.name.trim())
    .bind(sqlx::types::Json(&spec))
    .fetch_one(state.pool())
    .await?;
    Ok((StatusCode::CREATED, Json(inhibition_view(&row))))
}

#[utoipa::path(get, path = "/api/v1/inhibition-rules/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Rule id")), responses((status = 200, description = "The rule", body = InhibitionView), (status = 404, description = "No such rule in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show_inhibition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<InhibitionView>, ApiError> {
    caller.require(Permission::Admin)?;
    let row = sqlx::query_as::<_, InhibitionRow>(
        "SELECT id, spec, created_at FROM inhibition_rules WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(caller.tenant_id)
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no inhibition rule {id}")))?;
    Ok(Json(inhibition_view(&row)))
}

#[utoipa::path(delete, path = "/api/v1/inhibition-rules/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Rule id")), responses((status = 204, description = "Deleted: what it muted notifies within seconds"), (status = 404, description = "No such rule in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_inhibition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Admin)?;
    delete_owned(&state, &caller, "inhibition_rules", "inhibition rule", id).await
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    spec: sqlx::types::Json<PolicySpec>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An escalation policy: its specification, id and times.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub spec: PolicySpec,
    pub id: Uuid,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// `GET /api/v1/escalation-policies`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    pub policies: Vec<PolicyView>,
}

fn view(r: &Row) -> PolicyView {
    PolicyView {
        spec: r.spec.0.clone(),
        id: r.id,
        created_at: format_instant(r.created_at),
        updated_at: format_instant(r.updated_at),
    }
}

/// Checks a policy, that every channel and user it names is the tenant's, and that a step naming people
/// has a push channel to tell them through.
async fn check(state: &AppState, caller: &Caller, spec: &PolicySpec) -> Result<(), ApiError> {
    spec.check().map_err(ApiError::validation)?;
    let named: Vec<Uuid> = spec
        .steps
        .iter()
        .flat_map(|s| s.channels.iter().copied())
        .collect();
    let known: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, kind FROM notification_channels WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(caller.tenant_id)
    .bind(&named)
    .fetch_all(state.pool())
    .await?;
    let known: HashMap<Uuid, String> = known.into_iter().collect();
    let mut unknown: Vec<Uuid> = named
        .into_iter()
        .filter(|c| !known.contains_key(c))
        .collect();
    unknown.dedup();
    refuse_unknown(&unknown, "unknown_channel", "channel", "channels")?;
    for (i, step) in spec.steps.iter().enumerate() {
        let has_push = step
            .channels
            .iter()
            .any(|c| known.get(c).is_some_and(|k| k == PUSH));
        if step.names_people() && !has_push {
            return Err(ApiError::validation(format!(
                "steps[{i}]: users and roles are told through a push channel; name one in channels"
            )));
        }
    }
    let users: Vec<Uuid> = spec
        .steps
        .iter()
        .flat_map(|s| s.users.iter().copied())
        .collect();
    let known_users: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND id = ANY($2)")
            .bind(caller.tenant_id)
            .bind(&users)
            .fetch_all(state.pool())
            .await?;
    let mut unknown: Vec<Uuid> = users
        .into_iter()
        .filter(|u| !known_users.contains(u))
        .collect();
    unknown.dedup();
    refuse_unknown(&unknown, "unknown_user", "user", "users")
}

const RETURNING: &str = "RETURNING id, spec, created_at, updated_at";

#[utoipa::path(get, path = "/api/v1/escalation-policies", tag = "alerting", responses((status = 200, description = "`{\"policies\": [...]}` in the order they are tried", body = PolicyList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PolicyList>, ApiError> {
    caller.require(Permission::Admin)?;
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, spec, created_at, updated_at FROM escalation_policies WHERE tenant_id = $1
         ORDER BY position, created_at, id",
    )
    .bind(caller.tenant_id)
    .fetch_all(state.pool())
    .await?;
    Ok(Json(PolicyList {
        policies: rows.iter().map(view).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/escalation-policies", tag = "alerting", request_body = PolicySpec, responses((status = 201, description = "The policy", body = PolicyView), (status = 409, description = "A policy with this name exists", body = crate::error::ErrorBody), (status = 422, description = "Invalid policy, or `unknown_channel`", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(spec): Json<PolicySpec>,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    caller.require(Permission::Admin)?;
    check(&state, &caller, &spec).await?;
    let row = sqlx::query_as::<_, Row>(&format!(
        "INSERT INTO escalation_policies (id, tenant_id, name, position, spec) VALUES ($1, $2, $3, $4, $5) {RETURNING}"
    ))
    .bind(Uuid::new_v4())
    .bind(caller.tenant_id)
    .bind(spec.name.trim())
    .bind(spec.position)
    .bind(sqlx::types::Json(&spec))
    .fetch_one(state.pool())
    .await?;
    Ok((StatusCode::CREATED, Json(view(&row))))
}

#[utoipa::path(get, path = "/api/v1/escalation-policies/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Policy id")), responses((status = 200, description = "The policy", body = PolicyView), (status = 404, description = "No such policy in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<PolicyView>, ApiError> {
    caller.require(Permission::Admin)?;
    let row = sqlx::query_as::<_, Row>(
        "SELECT id, spec, created_at, updated_at FROM escalation_policies WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(caller.tenant_id)
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no escalation policy {id}")))?;
    Ok(Json(view(&row)))
}

#[utoipa::path(put, path = "/api/v1/escalation-policies/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Policy id")), request_body = PolicySpec, responses((status = 200, description = "The policy; alerts already escalating go on with it from their next step", body = PolicyView), (status = 404, description = "No such policy in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "A policy with this name exists", body = crate::error::ErrorBody), (status = 422, description = "Invalid policy, or `unknown_channel`", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(spec): Json<PolicySpec>,
) -> Result<Json<PolicyView>, ApiError> {
    caller.require(Permission::Admin)?;
    // Another tenant's policy is not found, whatever the body says.
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM escalation_policies WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(caller.tenant_id)
            .fetch_optional(state.pool())
            .await?;
    if exists.is_none() {
        return Err(ApiError::not_found(format!("no escalation policy {id}")));
    }
    check(&state, &caller, &spec).await?;
    let row = sqlx::query_as::<_, Row>(&format!(
        "UPDATE escalation_policies SET name = $3, position = $4, spec = $5, updated_at = now()
         WHERE id = $1 AND tenant_id = $2 {RETURNING}"
    ))
    .bind(id)
    .bind(caller.tenant_id)
    .bind(spec.name.trim())
    .bind(spec.position)
    .bind(sqlx::types::Json(&spec))
    .fetch_optional(state.pool())
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no escalation policy {id}")))?;
    Ok(Json(view(&row)))
}

#[utoipa::path(delete, path = "/api/v1/escalation-policies/{id}", tag = "alerting", params(("id" = Uuid, Path, description = "Policy id")), responses((status = 204, description = "Deleted; alerts it was escalating stop"), (status = 404, description = "No such policy in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "Admins only", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Admin)?;
    delete_owned(
        &state,
        &caller,
        "escalation_policies",
        "escalation policy",
        id,
    )
    .await
}
