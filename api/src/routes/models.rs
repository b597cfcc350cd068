//! Remaining-useful-life models of a tenant: train one from an uploaded run-to-failure table or from the
//! tenant's own history (a job: `training` until `ready` or `failed`), list them with their cross-validated
//! metrics, and activate one for machines by name or tag. An activation travels to the predictor as an event
//! on the models topic, with the tenant's alert threshold; a model serves only its own tenant's machines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use haltless_processors::prediction::features::Layout;
use haltless_processors::prediction::model::MIN_TRAINING_CYCLES;
use haltless_processors::prediction::table::{lives, parse_upload};
use haltless_processors::prediction::{cmapss, PredictionError, RulModel, TrainOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::error::{ApiError, Json, Path};
use crate::routes::activations::publish_activations;
use crate::routes::paging::machine_ids;
use crate::routes::settings::TenantSettings;
use crate::state::AppState;
use crate::time::format_instant;

/// The largest upload (FD001's training file is 3.5 MB).
const MAX_UPLOAD_BYTES: usize = 64 << 20;
/// The most readings a training from history reads.
const MAX_HISTORY_READINGS: i64 = 5_000_000;
/// Trainings run one at a time in a process (one uses every core for up to a few minutes).
static TRAINING_SLOT: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(1));
/// Trainings started and not finished in this process, each holding its data; past the limit a new one is
/// refused (503) rather than queued, so a burst of uploads cannot exhaust memory.
static TRAININGS_PENDING: AtomicUsize = AtomicUsize::new(0);
const MAX_PENDING_TRAININGS: usize = 8;
/// A job still `training` this long after it started cannot be running any more (the process that ran it
/// stopped): it is reported as failed, so that nobody waits for it for ever.
const INTERRUPTED_AFTER: &str = "1 hour";

/// One pending training, counted until dropped.
struct Pending;

impl Pending {
    fn take() -> Result<Self, ApiError> {
        if TRAININGS_PENDING.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_TRAININGS {
            TRAININGS_PENDING.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "training_queue_full",
                format!(
                    "{MAX_PENDING_TRAININGS} trainings are already waiting or running; retry later"
                ),
            )
            .retry_after(60));
        }
        Ok(Self)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        TRAININGS_PENDING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks the tenant's trainings that can no longer be running as failed.
async fn mark_interrupted(pool: &PgPool, tenant: Uuid) -> Result<(), ApiError> {
    sqlx::query(&format!(
        "UPDATE rul_models SET status = 'failed', finished_at = now(),
             error = 'interrupted: no result {INTERRUPTED_AFTER} after it started (the platform stopped while training); train again'
         WHERE tenant_id = $1 AND status = 'training' AND created_at < now() - interval '{INTERRUPTED_AFTER}'"
    ))
    .bind(tenant)
    .execute(pool)
    .await?;
    Ok(())
}

/// The model routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/models",
            get(list)
                .post(train)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/models/{id}", get(show))
        .route("/models/{id}/activate", post(activate))
}

/// Body of `POST /api/v1/models`: a name and exactly one source of run-to-failure data (its schema, one
/// per source: [`NewModelBody`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    /// 1 to 200 characters.
    pub name: String,
    /// A run-to-failure table: CSV with a header `unit,cycle,<sensor>,...` (a column `setting:<name>` is an
    /// operational setting), sensors named as the machines' metrics; or C-MAPSS text (26 columns).
    pub csv: Option<String>,
    /// Train from the tenant's own readings: each machine's lives end at its maintenance events of kind
    /// replacement or repair.
    pub history: Option<HistorySource>,
    /// The quick recipe (25 larger boosting steps, 3 folds): seconds instead of minutes, for small fleets
    /// and trials; the default is the full recipe.
    #[serde(default)]
    pub quick: bool,
}

/// Which of the tenant's metrics a model trained from history reads.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistorySource {
    /// The sensors (metric names), 1 to 100; a cycle is a machine's readings of all of them at one time.
    #[schema(min_items = 1, max_items = 100)]
    pub metrics: Vec<String>,
}

/// The schema of `POST /api/v1/models`'s body: a name and exactly one source of data, an uploaded
/// table or the tenant's history. Whether the data can train a model (enough units and cycles, the
/// tenant's lives ended by replacements or repairs) is the server's to find: 422 naming the problem.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = NewModel)]
#[allow(dead_code)] // a schema only
enum NewModelBody {
    /// From an uploaded table.
    Upload(UploadModel),
    /// From the tenant's history.
    History(HistoryModel),
}

/// A model trained from an uploaded run-to-failure table.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only
struct UploadModel {
    /// 1 to 200 characters, not only blanks (surrounding blanks are trimmed).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    /// CSV with a header `unit,cycle,<sensor>,...` (a column `setting:<name>` is an operational
    /// setting), sensors named as the machines' metrics; or C-MAPSS text (26 columns).
    #[schema(min_length = 1)]
    csv: String,
    /// The quick recipe (default false).
    #[serde(default)]
    quick: bool,
}

/// A model trained from the tenant's own readings.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only
struct HistoryModel {
    /// 1 to 200 characters, not only blanks (surrounding blanks are trimmed).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    /// The metrics read.
    history: HistorySource,
    /// The quick recipe (default false).
    #[serde(default)]
    quick: bool,
}

/// Body of `POST /api/v1/models/{id}/activate`; `{}` activates the model for every machine.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Activation {
    /// Machine names.
    pub machines: Vec<String>,
    /// Machines with any of these tags.
    pub tags: Vec<String>,
}

/// `GET /api/v1/models`: the tenant's models, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelView>,
}

/// A model as listed.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ModelView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// `upload`, `history` or `demo`.
    pub source: String,
    /// `training`, `ready` or `failed`.
    pub status: String,
    /// Why training failed.
    pub error: Option<String>,
    /// The model's version (its content digest), once trained.
    pub version: Option<String>,
    /// The sensors it reads (metric names).
    pub sensors: Vec<String>,
    /// Run-to-failure units it was trained on.
    pub units: i32,
    /// Their cycles.
    pub cycles: i32,
    /// Cross-validated metrics (by unit): RMSE, NASA score, interval coverage.
    #[schema(value_type = Object)]
    pub metrics: Option<Value>,
    /// Seconds training took.
    pub train_seconds: Option<f64>,
    /// The machines its newest activation serves (empty: every machine); null when never activated.
    pub active_for: Option<Vec<String>>,
    /// Who asked for it.
    pub created_by: String,
    /// When.
    #[serde(serialize_with = "ser_instant")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

fn ser_instant<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_instant(*t))
}

const MODEL_SELECT: &str = "SELECT r.id, r.name, r.source, r.status, r.error, r.version, r.sensors, r.units,
        r.cycles, r.metrics, r.train_seconds, r.created_by, r.created_at,
        (SELECT a.machines FROM rul_model_activations a WHERE a.model_id = r.id ORDER BY a.activated_at DESC LIMIT 1)
            AS active_for
    FROM rul_models r";

fn refused(e: PredictionError) -> ApiError {
    ApiError::validation(e.to_string())
}

#[utoipa::path(post, path = "/api/v1/models", tag = "predictions", request_body = NewModelBody, responses((status = 202, description = "The model, `training`; poll it until `ready` or `failed`", body = ModelView), (status = 422, description = "The data cannot train a model; the message names the problem", body = crate::error::ErrorBody), (status = 503, description = "`training_queue_full`: eight trainings are waiting or running in this process; see Retry-After", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn train(
    State(state): State<AppState>,
    key: Caller,
    Json(body): Json<NewModel>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    key.require(Permission::Admin)?;
    let name = body.name.trim();
    if !(1..=200).contains(&name.chars().count()) {
        return Err(ApiError::validation("name must be 1 to 200 characters"));
    }
    let (source, layout, runs) = match (&body.csv, &body.history) {
        (Some(csv), None) => {
            let (layout, runs) = parse_upload(csv).map_err(refused)?;
            ("upload", layout, runs)
        }
        (None, Some(history)) => {
            let (layout, runs) =
                history_runs(state.pool(), key.tenant_id, &history.metrics).await?;
            ("history", layout, runs)
        }
        _ => {
            return Err(ApiError::validation(
                "give exactly one of `csv` (a run-to-failure table) and `history`",
            ))
        }
    };
    let recipe = if body.quick {
        TrainOptions::quick()
    } else {
        TrainOptions::default()
    };
    let options = TrainOptions { layout, ..recipe };
    let id = start_training(
        state.pool(),
        key.tenant_id,
        name,
        source,
        &key.actor(),
        runs,
        options,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(find(state.pool(), key.tenant_id, id).await?),
    ))
}

/// Checks what can be checked at once (so bad data is a 422 now, not a failed job later), records the job
/// and trains in the background. Returns the model's id.
pub async fn start_training(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    source: &str,
    by: &str,
    runs: Vec<cmapss::Run>,
    options: TrainOptions,
) -> Result<Uuid, ApiError> {
    cmapss::require_cycles(&runs, MIN_TRAINING_CYCLES).map_err(refused)?;
    let min_units = options.folds.max(2);
    if runs.len() < min_units {
        return Err(refused(PredictionError::TooFewUnits {
            units: runs.len(),
            min: min_units,
        }));
    }
    let all: Vec<&cmapss::Run> = runs.iter().collect();
    haltless_processors::prediction::features::Normaliser::fit(&all, &options.layout)
        .map_err(refused)?;
    let pending = Pending::take()?;
    let id = Uuid::new_v4();
    let cycles: usize = runs.iter().map(|r| r.cycles.len()).sum();
    sqlx::query(
        "INSERT INTO rul_models (id, tenant_id, name, source, status, sensors, units, cycles, created_by)
         VALUES ($1, $2, $3, $4, 'training', $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .bind(source)
    .bind(&options.layout.sensors)
    .bind(i32::try_from(runs.len()).unwrap_or(i32::MAX))
    .bind(i32::try_from(cycles).unwrap_or(i32::MAX))
    .bind(by)
    .execute(pool)
    .await?;
    let pool = pool.clone();
    tokio::spawn(async move {
        let _pending = pending;
        // Never closed, so the wait ends with a slot.
        let _slot = TRAINING_SLOT.acquire().await;
        let started = Instant::now();
        let trained = tokio::task::spawn_blocking(move || RulModel::train(&runs, &options)).await;
        let seconds = started.elapsed().as_secs_f64();
        let result = match trained {
            Ok(Ok(model)) => sqlx::query(
                "UPDATE rul_models SET status = 'ready', version = $2, metrics = $3, train_seconds = $4,
                     sensors = $5, model = $6, finished_at = now() WHERE id = $1",
            )
            .bind(id)
            .bind(&model.version)
            .bind(json!(model.metrics))
            .bind(seconds)
            .bind(
                model
                    .normaliser
                    .sensors
                    .iter()
                    .map(|&j| model.normaliser.sensor_name(j))
                    .collect::<Vec<_>>(),
            )
            .bind(model.to_json())
            .execute(&pool)
            .await,
            Ok(Err(e)) => failed(&pool, id, &e.to_string()).await,
            Err(e) => failed(&pool, id, &format!("training stopped: {e}")).await,
        };
        if let Err(e) = result {
            tracing::error!(model = %id, error = %e, "could not record the end of a training job");
        }
    });
    Ok(id)
}

async fn failed(
    pool: &PgPool,
    id: Uuid,
    error: &str,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    sqlx::query(
        "UPDATE rul_models SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await
}

/// The tenant's lives as training runs: per machine, its cycles (readings of every metric at one event
/// time), cut at its replacements and repairs.
async fn history_runs(
    pool: &PgPool,
    tenant: Uuid,
    metrics: &[String],
) -> Result<(Layout, Vec<cmapss::Run>), ApiError> {
    if !(1..=100).contains(&metrics.len()) {
        return Err(ApiError::validation(
            "history.metrics must name 1 to 100 metrics",
        ));
    }
    let ends: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT e.machine_id, m.name, e.performed_at FROM maintenance_events e JOIN machines m ON m.id = e.machine_id
         WHERE e.tenant_id = $1 AND e.kind IN ('replacement', 'repair') ORDER BY m.name, e.performed_at",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    if ends.is_empty() {
        return Err(ApiError::validation(
            "no maintenance event of kind replacement or repair marks an end of life in this tenant's history",
        ));
    }
    let rows: Vec<(Uuid, DateTime<Utc>, String, f64)> = sqlx::query_as(
        "SELECT machine_id, ts, metric, value FROM named_readings
         WHERE tenant_id = $1 AND metric = ANY($2) AND machine_id = ANY($3)
         ORDER BY machine_id, ts LIMIT $4",
    )
    .bind(tenant)
    .bind(metrics)
    .bind(ends.iter().map(|e| e.0).collect::<Vec<_>>())
    .bind(MAX_HISTORY_READINGS)
    .fetch_all(pool)
    .await?;
    let mut per_machine: BTreeMap<Uuid, BTreeMap<i64, BTreeMap<&str, f64>>> = BTreeMap::new();
    for (machine, ts, metric, value) in &rows {
        per_machine
            .entry(*machine)
            .or_default()
            .entry(ts.timestamp_millis())
            .or_default()
            .insert(metric.as_str(), *value);
    }
    let mut runs = Vec::new();
    let mut machine_ends: BTreeMap<Uuid, (String, Vec<i64>)> = BTreeMap::new();
    for (machine, name, at) in &ends {
        let entry = machine_ends
            .entry(*machine)
            .or_insert_with(|| (name.clone(), Vec::new()));
        entry.1.push(at.timestamp_millis());
    }
    for (machine, (name, at)) in &machine_ends {
        let cycles: Vec<(i64, Vec<f64>)> = per_machine
            .get(machine)
            .map(|times| {
                times
                    .iter()
                    .filter_map(|(ts, values)| {
                        metrics
                            .iter()
                            .map(|m| values.get(m.as_str()).copied())
                            .collect::<Option<Vec<f64>>>()
                            .map(|v| (*ts, v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let first = cycles.first().map(|c| c.0);
        if let Some(early) = at.iter().find(|&&end| first.is_none_or(|f| end < f)) {
            return Err(refused(PredictionError::History(format!(
                "machine `{name}`: its end of life at {} lies before any of its cycles (readings of every metric named)",
                DateTime::from_timestamp_millis(*early).map(format_instant).unwrap_or_default()
            ))));
        }
        let unit = u32::try_from(runs.len() + 1).unwrap_or(u32::MAX);
        runs.extend(lives(&cycles, at, unit));
    }
    Ok((
        Layout {
            settings: Vec::new(),
            sensors: metrics.to_vec(),
        },
        runs,
    ))
}

async fn find(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<ModelView, ApiError> {
    mark_interrupted(pool, tenant).await?;
    sqlx::query_as(&format!(
        "{MODEL_SELECT} WHERE r.tenant_id = $1 AND r.id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no model {id}")))
}

#[utoipa::path(get, path = "/api/v1/models", tag = "predictions", responses((status = 200, description = "`{\"models\": [...]}`, newest first", body = ModelList), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    key: Caller,
) -> Result<Json<ModelList>, ApiError> {
    key.require(Permission::Read)?;
    mark_interrupted(state.pool(), key.tenant_id).await?;
    let models: Vec<ModelView> = sqlx::query_as(&format!(
        "{MODEL_SELECT} WHERE r.tenant_id = $1 ORDER BY r.created_at DESC, r.id"
    ))
    .bind(key.tenant_id)
    .fetch_all(state.pool())
    .await?;
    Ok(Json(ModelList { models }))
}

#[utoipa::path(get, path = "/api/v1/models/{id}", tag = "predictions", params(("id" = uuid::Uuid, Path, description = "Id")), responses((status = 200, description = "The model (its status while training)", body = ModelView), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<ModelView>, ApiError> {
    key.require(Permission::Read)?;
    Ok(Json(find(state.pool(), key.tenant_id, id).await?))
}

/// The answer to `POST /api/v1/models/{id}/activate` (documentation of the JSON the handler builds).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Activated {
    pub model_id: Uuid,
    /// The activation covers every machine of the tenant.
    pub all: bool,
    /// The machines (names) it covers; empty when `all`.
    pub machines: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/models/{id}/activate", tag = "predictions", params(("id" = uuid::Uuid, Path, description = "Id")), request_body = Activation, responses((status = 200, description = "`{\"model_id\", \"machines\": [...], \"all\"}`: the machines it now serves", body = Activated), (status = 404, description = "Not in the caller's tenant", body = crate::error::ErrorBody), (status = 409, description = "The model is not ready (training or failed)", body = crate::error::ErrorBody), (status = 422, description = "Unknown machine, or no machine has the tags", body = crate::error::ErrorBody), (status = 401, description = "No or invalid credentials", body = crate::error::ErrorBody), (status = 403, description = "The role or key scope does not allow it", body = crate::error::ErrorBody), (status = 503, description = "The activation could not be stored durably in time; retry", body = crate::error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::error::ErrorBody)), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    key: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<Activation>,
) -> Result<Json<Value>, ApiError> {
    key.require(Permission::Admin)?;
    let model = find(state.pool(), key.tenant_id, id).await?;
    if model.status != "ready" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "model_not_ready",
            format!(
                "model {id} is {}; only a ready model can be activated",
                model.status
            ),
        ));
    }
    machine_ids(&state, &key, &body.machines).await?;
    let mut machines = body.machines.clone();
    if !body.tags.is_empty() {
        let tagged: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM machines WHERE tenant_id = $1 AND tags && $2 ORDER BY name",
        )
        .bind(key.tenant_id)
        .bind(&body.tags)
        .fetch_all(state.pool())
        .await?;
        if tagged.is_empty() {
            return Err(ApiError::validation(format!(
                "no machine has any of the tags {}",
                body.tags.join(", ")
            )));
        }
        machines.extend(tagged);
    }
    machines.sort();
    machines.dedup();
    sqlx::query(
        "INSERT INTO rul_model_activations (id, tenant_id, model_id, machines, tags, activated_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::new_v4())
    .bind(key.tenant_id)
    .bind(id)
    .bind(&machines)
    .bind(&body.tags)
    .bind(key.actor())
    .execute(state.pool())
    .await?;
    let threshold = TenantSettings::load(state.pool(), key.tenant_id)
        .await?
        .ai
        .alert_threshold();
    publish_activations(&state, key.tenant_id, Some(id), threshold).await?;
    Ok(Json(
        json!({ "model_id": id, "all": machines.is_empty(), "machines": machines }),
    ))
}
