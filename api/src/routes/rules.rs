//! Rules: `GET/POST /api/v1/rules`, `GET/PUT/DELETE /api/v1/rules/{id}`. Every change is a new version
//! published to the rules topic (the record the detectors and replays read) in the same step as the
//! `rules` table is updated; it applies to readings from the moment of the change on.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_connectors::gateway::validate::valid_name;
use haltless_processors::detection::logic::rules::Rule;
use haltless_processors::detection::processor::RuleChange;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path};
use crate::state::AppState;
use crate::time::format_instant;

/// The rule routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rules", get(list).post(create))
        .route("/rules/{id}", get(show).put(update).delete(remove))
}

/// Body of `POST` and `PUT`: the rule, and the machines it applies to (all when empty or absent). In a
/// `PUT`, the rule's `id` is the path's: absent, or the same (a rule across the path and the body that
/// the schema leaves to the server). Machines are the tenant's (an unknown one answers 422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// The rule.
    #[schema(value_type = haltless_processors::detection::logic::rules::Rule)]
    pub rule: Value,
    /// Machine names; every machine of the tenant when empty.
    #[serde(default)]
    #[schema(value_type = Vec<super::bodies::MachineName>)]
    pub machines: Vec<String>,
}

/// A stored rule.
#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    version: i64,
    definition: Value,
    machines: Vec<String>,
    updated_at: DateTime<Utc>,
}

fn view(
    id: &str,
    version: i64,
    definition: &Value,
    machines: &[String],
    updated_at: DateTime<Utc>,
) -> RuleView {
    RuleView {
        id: id.to_owned(),
        version,
        rule: definition.clone(),
        machines: machines.to_vec(),
        updated_at: format_instant(updated_at),
    }
}

/// A rule's current version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: String,
    /// Starts at 1; every update adds one.
    pub version: i64,
    /// The definition.
    #[schema(value_type = haltless_processors::detection::logic::rules::Rule)]
    pub rule: Value,
    /// The machines (names) it applies to; every machine when empty.
    pub machines: Vec<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// `GET /api/v1/rules`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleList {
    pub rules: Vec<RuleView>,
}

/// Parses and checks a rule body; `id` is the rule's id (generated for a new rule when absent).
async fn parse(
    state: &AppState,
    key: &Caller,
    body: RuleBody,
    id: Option<&str>,
) -> Result<(Rule, Vec<String>), ApiError> {
    let rule = rule_from(body.rule, id)?;
    crate::routes::paging::machine_ids(state, key, &body.machines).await?;
    Ok((rule, body.machines))
}

/// Parses and checks a rule definition; `id` is the rule's id when it has one (a path's), else the
/// definition's, else a new one.
pub(crate) fn rule_from(definition: Value, id: Option<&str>) -> Result<Rule, ApiError> {
    let mut definition = definition;
    let Some(obj) = definition.as_object_mut() else {
        return Err(ApiError::validation("rule must be a JSON object"));
    };
    match (id, obj.get("id").and_then(Value::as_str)) {
        (Some(path_id), Some(body_id)) if path_id != body_id => {
            return Err(ApiError::validation("the rule's id cannot change"));
        }
        (Some(path_id), _) => {
            obj.insert("id".into(), json!(path_id));
        }
        (None, None) => {
            obj.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        (None, Some(_)) => {}
    }
    let rule: Rule = serde_json::from_value(definition)
        .map_err(|e| ApiError::validation(format!("rule: {e}")))?;
    if !valid_name(&rule.id) {
        return Err(ApiError::validation(
            "rule id: letters, digits, '_', '.', ':' or '-', up to 128",
        ));
    }
    if rule.id.starts_with("default:") {
        return Err(ApiError::validation(
            "rule ids starting with `default:` are reserved",
        ));
    }
    if !(0.0..=1.0).contains(&rule.clear_ratio) {
        return Err(ApiError::validation("clear_ratio must lie between 0 and 1"));
    }
    Ok(rule)
}

/// Stores version `version` of `rule` and publishes it; the row is committed only once Kafka has the event.
async fn store(
    state: &AppState,
    tx: &mut PgConnection,
    key: &Caller,
    rule: Rule,
    machines: Vec<String>,
    version: i64,
    deleted: bool,
) -> Result<RuleView, ApiError> {
    let definition = serde_json::to_value(&rule).map_err(ApiError::internal)?;
    let updated_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO rules (tenant_id, id, version, definition, machines, deleted) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, id) DO UPDATE SET version = EXCLUDED.version, definition = EXCLUDED.definition,
            machines = EXCLUDED.machines, deleted = EXCLUDED.deleted, updated_at = now()
         RETURNING updated_at",
    )
    .bind(key.tenant_id)
    .bind(&rule.id)
    .bind(version)
    .bind(&definition)
    .bind(&machines)
    .bind(deleted)
    .fetch_one(&mut *tx)
    .await?;
    let change = RuleChange {
        tenant_id: key.tenant_id,
        version,
        effective_from_ms: updated_at.timestamp_millis(),
        machines: machines.clone(),
        rule: rule.clone(),
        deleted,
        reset: None,
        settings: None,
    };
    publish(state, &change).await?;
    Ok(view(&rule.id, version, &definition, &machines, updated_at))
}

/// Publishes `change` on the rules topic (rules, and maintenance events that reset detectors).
pub(crate) async fn publish(state: &AppState, change: &RuleChange) -> Result<(), ApiError> {
    let codec = RuleChange::codec().map_err(ApiError::internal)?;
    let payload = change.encode(&codec).map_err(ApiError::internal)?;
    state
        .events()
        .publish(&state.settings().kafka.rules_topic, &change.key(), &payload)
        .await?;
    Ok(())
}

async fn current(tx: &mut PgConnection, key: &Caller, id: &str) -> Result<(i64, bool), ApiError> {
    sqlx::query_as("SELECT version, deleted FROM rules WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
        .bind(key.tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .filter(|(_, deleted): &(i64, bool)| !deleted)
        .ok_or_else(|| ApiError::not_found(format!("no rule {id}")))
}

#[utoipa::path(post, path = "/api/v1/rules", tag = "rules", request_body = RuleBody, responses((status = 201, description = "The rule, version 1", body = RuleView), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 409, description = "The rule exists", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<RuleBody>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    key.require(Permission::Operate)?;
    let (rule, machines) = parse(&state, &key, body, None).await?;
    let mut tx = state.pool().begin().await?;
    let existing: Option<(i64, bool)> = sqlx::query_as(
        "SELECT version, deleted FROM rules WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(key.tenant_id)
    .bind(&rule.id)
    .fetch_optional(&mut *tx)
    .await?;
    let version = match existing {
        Some((_, false)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("rule {} exists", rule.id),
            ))
        }
        Some((v, true)) => v + 1,
        None => 1,
    };
    let view = store(&state, &mut tx, &key, rule, machines, version, false).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(put, path = "/api/v1/rules/{id}", tag = "rules", request_body = RuleBody, params(("id" = String, Path, description = "Rule id")), responses((status = 200, description = "The next version", body = RuleView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
    Json(body): Json<RuleBody>,
) -> Result<Json<RuleView>, ApiError> {
    key.require(Permission::Operate)?;
    let (rule, machines) = parse(&state, &key, body, Some(&id)).await?;
    let mut tx = state.pool().begin().await?;
    let (version, _) = current(&mut tx, &key, &id).await?;
    let view = store(&state, &mut tx, &key, rule, machines, version + 1, false).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = String, Path, description = "Rule id")), responses((status = 204, description = "Deleted from now on"), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    key.require(Permission::Operate)?;
    let mut tx = state.pool().begin().await?;
    let (version, _) = current(&mut tx, &key, &id).await?;
    let (definition, machines): (Value, Vec<String>) =
        sqlx::query_as("SELECT definition, machines FROM rules WHERE tenant_id = $1 AND id = $2")
            .bind(key.tenant_id)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
    let rule: Rule = serde_json::from_value(definition).map_err(ApiError::internal)?;
    store(&state, &mut tx, &key, rule, machines, version + 1, true).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// For an API key restricted to machines (`$R`, NULL otherwise): the rules that name only its machines,
/// or none (a rule for every machine applies to its machines too and names no other). Others answer 404.
const RESTRICTED: &str = "($R::uuid[] IS NULL OR rules.machines <@ ARRAY(
    SELECT m.name FROM machines m WHERE m.tenant_id = rules.tenant_id AND m.id = ANY($R::uuid[])))";

#[utoipa::path(get, path = "/api/v1/rules", tag = "rules", responses((status = 200, description = "The tenant's rules", body = RuleList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    key: Caller,
) -> Result<Json<RuleList>, ApiError> {
    key.require(Permission::Read)?;
    let rows: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT id, version, definition, machines, updated_at FROM rules
         WHERE tenant_id = $1 AND NOT deleted AND {} ORDER BY id",
        RESTRICTED.replace("$R", "$2")
    ))
    .bind(key.tenant_id)
    .bind(key.machine_restriction())
    .fetch_all(state.pool())
    .await?;
    let rules = rows
        .iter()
        .map(|r| view(&r.id, r.version, &r.definition, &r.machines, r.updated_at))
        .collect();
    Ok(Json(RuleList { rules }))
}

#[utoipa::path(get, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = String, Path, description = "Rule id")), responses((status = 200, description = "The rule", body = RuleView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    key.require(Permission::Read)?;
    let row: Option<RuleRow> = sqlx::query_as(&format!(
        "SELECT id, version, definition, machines, updated_at FROM rules
         WHERE tenant_id = $1 AND id = $2 AND NOT deleted AND {}",
        RESTRICTED.replace("$R", "$3")
    ))
    .bind(key.tenant_id)
    .bind(&id)
    .bind(key.machine_restriction())
    .fetch_optional(state.pool())
    .await?;
    let r = row.ok_or_else(|| ApiError::not_found(format!("no rule {id}")))?;
    Ok(Json(view(
        &r.id,
        r.version,
        &r.definition,
        &r.machines,
        r.updated_at,
    )))
}
