//! Machines of the caller's tenant: register (within the tier's machine limit), list and query by name, tag,
//! site and status, show, update (`PUT` replaces the descriptive fields, `PATCH` changes the given ones) and
//! retire. A retired machine keeps its history but no longer counts against the tier and refuses ingest.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_connectors::gateway::validate::valid_name;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path, Query};
use crate::routes::paging::{like_escape, machine_id, one_of, Page};
use crate::state::AppState;
use crate::time::format_instant;

/// The machine routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/machines", get(list).post(create))
        .route("/machines/{machine}", get(show).put(replace).patch(update))
        .route("/machines/{machine}/retire", post(retire))
}

/// Body of `POST /api/v1/machines`, and of `PUT /api/v1/machines/{machine}`, which replaces every field
/// (absent optional ones are cleared; a new name renames the machine, whose readings and alerts follow its id).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMachine {
    /// Unique name within the tenant.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub name: String,
    /// Free labels (letters, digits, `_ . : - = /`, up to 64 characters; at most 32).
    #[serde(default)]
    #[schema(value_type = Vec<super::bodies::Tag>, max_items = 32)]
    pub tags: Vec<String>,
    /// Where the machine stands (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub site: Option<String>,
    /// Up to 2,000 characters.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
}

impl From<NewMachine> for MachineChange {
    /// A replacement: every field given, absent optional ones cleared.
    fn from(r: NewMachine) -> Self {
        Self {
            name: Some(r.name),
            tags: Some(r.tags),
            site: Some(r.site),
            description: Some(r.description),
        }
    }
}

/// Body of `PATCH /api/v1/machines/{machine}`: only the given fields change; `null` clears `site` or
/// `description`. (`PUT` takes a [`NewMachine`] into the same change.)
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineChange {
    /// A new name, unique within the tenant. Readings and alerts follow the machine's id, not its name.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
        min_length = 1,
        max_length = 128
    )]
    pub name: Option<String>,
    /// Replaces the tags.
    #[schema(value_type = Option<Vec<super::bodies::Tag>>, max_items = 32)]
    pub tags: Option<Vec<String>>,
    /// Where the machine stands.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    pub site: Option<Option<String>>,
    /// Description.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Filters of the machine list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MachineFilter {
    /// Names containing this text (case-insensitive).
    pub name: Option<String>,
    /// Machines carrying this tag.
    pub tag: Option<String>,
    /// Machines of this site.
    pub site: Option<String>,
    /// `active` or `retired`; both when absent.
    pub status: Option<String>,
    /// Page size (default 100, at most 1,000).
    pub limit: Option<i64>,
    /// Rows to skip.
    pub offset: Option<i64>,
}

/// A page of machines.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MachineList {
    pub machines: Vec<MachineRow>,
    /// The offset of the next page; null on the last one.
    pub next_offset: Option<i64>,
}

/// A machine as the API shows it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Machine)]
pub struct MachineRow {
    /// Id.
    pub id: Uuid,
    /// Name, unique within the tenant.
    pub name: String,
    /// Labels.
    pub tags: Vec<String>,
    /// Site.
    pub site: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `active` or `retired`.
    pub status: String,
    /// When it was registered.
    #[serde(serialize_with = "instant")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "instant")]
    pub updated_at: DateTime<Utc>,
    /// When it was retired.
    #[serde(serialize_with = "maybe_instant")]
    pub retired_at: Option<DateTime<Utc>>,
}

fn instant<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_instant(*t))
}

fn maybe_instant<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_instant(*t)),
        None => s.serialize_none(),
    }
}

/// The columns of [`MachineRow`].
pub const COLUMNS: &str =
    "id, name, tags, site, description, status, created_at, updated_at, retired_at";

fn validate_name(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(ApiError::validation(
        "name must be 1 to 128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
    ))
}

fn validate_tags(tags: &[String]) -> Result<(), ApiError> {
    let ok = |t: &String| {
        (1..=64).contains(&t.len())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-=/".contains(c))
    };
    if tags.len() > 32 {
        return Err(ApiError::validation("at most 32 tags"));
    }
    if let Some(bad) = tags.iter().find(|t| !ok(t)) {
        return Err(ApiError::validation(format!(
            "tag `{bad}` must be 1 to 64 characters of letters, digits, '_', '.', ':', '-', '=' or '/'"
        )));
    }
    Ok(())
}

fn validate_text(name: &str, value: Option<&str>, min: usize, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if !(min..=max).contains(&v.chars().count()) => Err(ApiError::validation(format!(
            "{name} must be {min} to {max} characters"
        ))),
        _ => Ok(()),
    }
}

fn dedup(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags.dedup();
    tags
}

#[utoipa::path(post, path = "/api/v1/machines", tag = "machines", request_body = NewMachine, responses((status = 201, description = "The machine", body = MachineRow), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 409, description = "The name exists", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it, or the tier's machine limit is reached", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<NewMachine>,
) -> Result<(StatusCode, Json<MachineRow>), ApiError> {
    key.require(Permission::Operate)?;
    validate_name(&body.name)?;
    validate_tags(&body.tags)?;
    validate_text("site", body.site.as_deref(), 1, 200)?;
    validate_text("description", body.description.as_deref(), 0, 2000)?;
    let mut tx = state.pool().begin().await?;
    // Locking the tenant row serialises registrations, so concurrent ones cannot overshoot the limit.
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(key.tenant_id)
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM machines WHERE tenant_id = $1 AND status = 'active'",
    )
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
    let row: MachineRow = sqlx::query_as(&format!(
        "INSERT INTO machines (id, tenant_id, name, tags, site, description) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(key.tenant_id)
    .bind(&body.name)
    .bind(dedup(body.tags))
    .bind(&body.site)
    .bind(&body.description)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[utoipa::path(get, path = "/api/v1/machines", tag = "machines", params(MachineFilter), responses((status = 200, description = "`{\"machines\": [...], \"next_offset\"}`", body = MachineList), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    key: Caller,
    Query(f): Query<MachineFilter>,
) -> Result<Json<MachineList>, ApiError> {
    key.require(Permission::Read)?;
    one_of("status", f.status.as_deref(), &["active", "retired"])?;
    let page = Page::new(f.limit, f.offset, 100, 1_000)?;
    let mut rows = query(&state, &key, &f, page).await?;
    let next = page.cut(&mut rows);
    Ok(Json(MachineList {
        machines: rows,
        next_offset: next,
    }))
}

/// The caller's machines matching `f`, one page (plus one row, see [`Page::cut`]), ordered by name.
pub async fn query(
    state: &AppState,
    key: &Caller,
    f: &MachineFilter,
    page: Page,
) -> Result<Vec<MachineRow>, ApiError> {
    let name = f.name.as_deref().map(|n| format!("%{}%", like_escape(n)));
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM machines
         WHERE tenant_id = $1 AND ($2::text IS NULL OR name ILIKE $2)
           AND ($3::text IS NULL OR $3 = ANY(tags)) AND ($4::text IS NULL OR site = $4)
           AND ($5::text IS NULL OR status = $5) AND ($6::uuid[] IS NULL OR id = ANY($6))
         ORDER BY name LIMIT $7 OFFSET $8"
    ))
    .bind(key.tenant_id)
    .bind(name)
    .bind(&f.tag)
    .bind(&f.site)
    .bind(&f.status)
    .bind(key.machine_restriction())
    .bind(page.fetch())
    .bind(page.offset)
    .fetch_all(state.pool())
    .await?)
}

async fn find(state: &AppState, key: &Caller, name: &str) -> Result<MachineRow, ApiError> {
    let id = machine_id(state, key, name).await?;
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM machines WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(key.tenant_id)
    .bind(id)
    .fetch_one(state.pool())
    .await?)
}

#[utoipa::path(get, path = "/api/v1/machines/{machine}", tag = "machines", params(("machine" = String, Path, description = "Machine name")), responses((status = 200, description = "The machine", body = MachineRow), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
) -> Result<Json<MachineRow>, ApiError> {
    key.require(Permission::Read)?;
    Ok(Json(find(&state, &key, &machine).await?))
}

async fn apply(
    state: &AppState,
    key: &Caller,
    machine: &str,
    change: MachineChange,
) -> Result<Json<MachineRow>, ApiError> {
    key.require(Permission::Operate)?;
    let current = find(state, key, machine).await?;
    // A field the change leaves out keeps its value (a replacement gives every field).
    let name = change.name.unwrap_or(current.name);
    validate_name(&name)?;
    let tags = change.tags.unwrap_or(current.tags);
    validate_tags(&tags)?;
    let site = change.site.unwrap_or(current.site);
    let description = change.description.unwrap_or(current.description);
    validate_text("site", site.as_deref(), 1, 200)?;
    validate_text("description", description.as_deref(), 0, 2000)?;
    let row: MachineRow = sqlx::query_as(&format!(
        "UPDATE machines SET name = $3, tags = $4, site = $5, description = $6, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(key.tenant_id)
    .bind(current.id)
    .bind(&name)
    .bind(dedup(tags))
    .bind(&site)
    .bind(&description)
    .fetch_one(state.pool())
    .await?;
    // A rename frees the old name: no outage may bring its old answer back on this instance.
    state
        .admission()
        .machines()
        .forget_id(key.tenant_id, current.id);
    Ok(Json(row))
}

#[utoipa::path(put, path = "/api/v1/machines/{machine}", tag = "machines", request_body = NewMachine, params(("machine" = String, Path, description = "Machine name")), responses((status = 200, description = "The machine", body = MachineRow), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "The new name exists", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
    Json(body): Json<NewMachine>,
) -> Result<Json<MachineRow>, ApiError> {
    apply(&state, &key, &machine, body.into()).await
}

#[utoipa::path(patch, path = "/api/v1/machines/{machine}", tag = "machines", request_body = MachineChange, params(("machine" = String, Path, description = "Machine name")), responses((status = 200, description = "The machine", body = MachineRow), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "The new name exists", body = crate::error::ErrorBody), (status = 422, description = "Invalid input", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
    Json(body): Json<MachineChange>,
) -> Result<Json<MachineRow>, ApiError> {
    apply(&state, &key, &machine, body).await
}

#[utoipa::path(post, path = "/api/v1/machines/{machine}/retire", tag = "machines", params(("machine" = String, Path, description = "Machine name")), responses((status = 200, description = "The retired machine (retiring twice is a no-op)", body = MachineRow), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn retire(
    State(state): State<AppState>,
    key: Caller,
    Path(machine): Path<String>,
) -> Result<Json<MachineRow>, ApiError> {
    key.require(Permission::Operate)?;
    let id = machine_id(&state, &key, &machine).await?;
    let row: MachineRow = sqlx::query_as(&format!(
        "UPDATE machines SET status = 'retired', retired_at = coalesce(retired_at, now()), updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(key.tenant_id)
    .bind(id)
    .fetch_one(state.pool())
    .await?;
    // Ingest asks the database while it answers; this keeps the cache from admitting readings of the
    // retired machine on this instance should the database go away right after.
    state.admission().machines().forget_id(key.tenant_id, id);
    Ok(Json(row))
}
