//! The composition root: connects the services, builds the [`AppState`], assembles the router and starts
//! the roles one process runs.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use fred::prelude::{Builder, Client, ClientLike, Config as RedisClientConfig, ReconnectPolicy};
use haltless_connectors::admission::quota::Counters;
use haltless_connectors::admission::Admission;
use haltless_connectors::direct::sealing::{reseal_stored, Resealed};
use haltless_connectors::direct::Connectors;
use haltless_connectors::gateway::ReadingsSink;
use haltless_processors::alerting;
use haltless_processors::alerting::secrets::{rewrap_stored, ChannelSecrets};
use haltless_processors::detection::supervisor::{follow_generations, GenerationParts};
use haltless_processors::projection::predictions::PredictionsProjection;
use haltless_processors::projection::readings::ReadingsProjection;
use haltless_processors::projection::retention;
use haltless_processors::runtime::codecs::{predictions_codec, readings_codec};
use haltless_processors::runtime::tasks::{spawn_projection, supervise, Backoff, Fatal, RoleBoard};
use haltless_processors::runtime::topics::{ensure_partition_count, ensure_topics, TopicSpec};
use haltless_processors::runtime::Projection;
use haltless_schemas::metric_names;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::auth::store::AuthStore;
use crate::auth::tokens::TokenSigner;
use crate::auth::KeyCache;
use crate::config::Settings;
use crate::events::EventPublisher;
use crate::state::{AppState, Inner};
use crate::{routes, telemetry};

/// How long the roles may take to stop at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Which roles a process runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roles {
    /// `POST /api/v1/ingest`.
    pub gateway: bool,
    /// Machines, readings, rules, alerts, accounts, users and API keys.
    pub api: bool,
    /// The projections (readings, alerts, alert actions, predictions) and the retention sweep.
    pub projection: bool,
    /// The detectors.
    pub detector: bool,
    /// The RUL predictor.
    pub predictor: bool,
    /// The pollers of OPC-UA and Modbus TCP sources.
    pub connectors: bool,
    /// The alert engine.
    pub alerting: bool,
}

impl Roles {
    /// Every role, for a single node.
    pub fn all() -> Self {
        Self {
            gateway: true,
            api: true,
            projection: true,
            detector: true,
            predictor: true,
            connectors: true,
            alerting: true,
        }
    }
}

/// Connects to PostgreSQL.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<PgPool> {
    let mut options = PgConnectOptions::from_str(settings.database.url.expose_secret())
        .context("database.url")?;
    let statement_timeout = settings.database.statement_timeout_ms;
    if statement_timeout > 0 {
        // Sent in the startup packet: every pooled connection has it from its first query on.
        options = options.options([("statement_timeout", statement_timeout.to_string())]);
    }
    PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        // Also the deadline of every query while PostgreSQL is unreachable: 503 instead of a hang.
        .acquire_timeout(Duration::from_millis(settings.database.acquire_timeout_ms))
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL (database.url)")
}

/// A Redis client whose commands and connections have deadlines, and which reconnects for as long as it
/// takes, at most two seconds apart. A command while it is disconnected fails at its deadline (the
/// counters and the blocklist fail at once: they check the connection first), never hangs.
pub async fn connect_redis(redis: &crate::config::RedisConfig) -> anyhow::Result<Client> {
    let timeout = Duration::from_millis(redis.command_timeout_ms.max(1));
    let mut config = RedisClientConfig::from_url(&redis.url).context("redis.url")?;
    // Keep reconnecting when the first connection fails too: the platform starts without Redis.
    config.fail_fast = false;
    let client = Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = timeout)
        .with_connection_config(|c| {
            c.connection_timeout = timeout.max(Duration::from_secs(1));
            c.internal_command_timeout = timeout.max(Duration::from_secs(1));
            // A server that stops answering (frozen, or a lost peer without a reset) is dropped and
            // reconnected rather than waited on.
            c.unresponsive.max_timeout = Some(timeout * 4);
            c.unresponsive.interval = timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build()?;
    client.connect();
    // Start without Redis if it is down (ingest does not need it), but with it when it answers.
    match tokio::time::timeout(Duration::from_secs(2), client.wait_for_connect()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Redis unreachable at start; retrying in the background")
        }
        Err(_) => tracing::warn!("Redis did not answer at start; retrying in the background"),
    }
    Ok(client)
}

/// Whether a migration failed by losing a race with TimescaleDB's background jobs over the extension's
/// catalog: in a new database the continuous aggregates' refresh jobs (migration 0028) run at once, while a
/// later migration (0029) drops those aggregates, and PostgreSQL refuses to delete a catalog row that the
/// job deleted meanwhile ("tuple concurrently deleted"). Each migration runs in its own transaction, so the
/// failed one was rolled back whole, and running it again succeeds.
fn raced_a_background_job(e: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    let (MigrateError::Execute(sqlx::Error::Database(db))
    | MigrateError::ExecuteMigration(sqlx::Error::Database(db), _)) = e
    else {
        return false;
    };
    db.code().as_deref() == Some("XX000") && db.message().starts_with("tuple concurrently")
}

/// Applies the migrations and creates the topics: what `haltless migrate` does and every start repeats.
pub async fn migrate(settings: &Settings, pool: &PgPool) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        let mut conn = pool.acquire().await.context("applying migrations")?;
        let Err(e) = MIGRATOR.run(&mut *conn).await else {
            break;
        };
        // sqlx keeps its advisory lock when a migration fails: closing the session releases it, so that
        // neither the next attempt nor another process waits for it.
        conn.detach().close().await.ok();
        if attempt == 5 || !raced_a_background_job(&e) {
            return Err(e).context("applying migrations");
        }
        tracing::warn!(error = %e, attempt, "a migration raced a TimescaleDB job; trying it again");
        tokio::time::sleep(Duration::from_secs(1)).await;
        attempt += 1;
    }
    let k = &settings.kafka;
    let topic = |name: &str, partitions: i32, compact: bool| TopicSpec {
        name: name.to_owned(),
        partitions,
        replication: k.replication,
        config: if compact {
            vec![("cleanup.policy".into(), "compact".into())]
        } else {
            vec![("compression.type".into(), "producer".into())]
        },
    };
    let created = ensure_topics(
        &k.brokers,
        &[
            topic(&k.readings_topic, k.partitions, false),
            topic(&k.alerts_topic, k.partitions, false),
            topic(&k.detector_changelog_topic, k.partitions, true),
            topic(&k.rules_topic, 1, true),
            topic(&k.alert_actions_topic, k.partitions, false),
            topic(&k.predictions_topic, k.partitions, false),
            topic(&k.predictor_changelog_topic, k.partitions, true),
            TopicSpec {
                // A model is a few hundred kB to a few MB of JSON.
                config: vec![
                    ("cleanup.policy".into(), "compact".into()),
                    (
                        "max.message.bytes".into(),
                        crate::events::MODEL_MESSAGE_BYTES.to_string(),
                    ),
                ],
                ..topic(&k.models_topic, 1, true)
            },
        ],
    )
    .await
    .context("creating Kafka topics (kafka.brokers)")?;
    for topic in created {
        tracing::info!(%topic, "created topic");
    }
    // The detectors keep a machine's state in the changelog partition of its readings partition.
    let readings = ensure_partition_count(&k.brokers, &k.readings_topic, 0).await?;
    ensure_partition_count(&k.brokers, &k.detector_changelog_topic, readings).await?;
    ensure_partition_count(&k.brokers, &k.predictor_changelog_topic, readings).await?;
    seal_secrets(settings, pool).await?;
    Ok(())
}

/// Seals the secrets stored in plain text (before secrets were sealed, or while no key was configured)
/// and re-wraps those sealed under an older key: what no SQL migration can do, the key being the
/// operator's and not the database's. Every start and `haltless migrate` does it; `haltless secrets
/// rotate` does it on demand.
pub async fn seal_secrets(settings: &Settings, pool: &PgPool) -> anyhow::Result<Resealed> {
    let Some(keyring) = settings.keyring()? else {
        return Ok(Resealed::default());
    };
    let done = reseal_stored(pool, &keyring)
        .await
        .context("sealing stored secrets")?;
    let channels = ChannelSecrets::new(Some(keyring.clone()));
    let rewrapped = rewrap_stored(pool, &channels)
        .await
        .context("re-wrapping channel secrets")?;
    if rewrapped > 0 {
        tracing::info!(
            channels = rewrapped,
            key = keyring.current_id(),
            "re-wrapped channel secrets under the current key"
        );
    }
    for (source, error) in &done.failed {
        tracing::warn!(%source, %error, "a stored secret does not open with the configured keys");
    }
    if done.secrets > 0 {
        tracing::info!(
            sources = done.sources,
            secrets = done.secrets,
            key = keyring.current_id(),
            "sealed stored secrets under the current key"
        );
    }
    Ok(done)
}

/// A bound, ready-to-run instance of the platform.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    roles: Roles,
}

impl Application {
    /// Connects to every service, applies migrations, creates topics and binds the HTTP listener.
    pub async fn build(settings: Settings, roles: Roles) -> anyhow::Result<Self> {
        // A malformed allow list or key stops the start, rather than the first source that needs it.
        settings.outbound_policy().map_err(anyhow::Error::msg)?;
        let keyring = settings.keyring()?.map(Arc::new);
        if keyring.is_none() {
            tracing::warn!("no key for secrets at rest (secrets.key_file): sources with a password cannot be stored");
        }
        let pool = connect_database(&settings).await?;
        migrate(&settings, &pool).await?;
        let codec = readings_codec(&settings.kafka).await?;
        let sink = ReadingsSink::bounded(
            &settings.kafka.brokers,
            &settings.kafka.readings_topic,
            codec,
            Duration::from_millis(settings.gateway.produce_timeout_ms),
            settings.gateway.producer_queue_kbytes,
            settings.gateway.producer_linger_ms,
        )?;
        let events = EventPublisher::new(
            &settings.kafka.brokers,
            Duration::from_millis(settings.gateway.produce_timeout_ms),
        )?;
        let redis = connect_redis(&settings.redis).await?;
        let auth_store = AuthStore::new(redis.clone(), &settings.redis.key_prefix);
        let counters = Counters::new(redis.clone(), &settings.redis.key_prefix);
        let rate_limits = settings.limits.rate_limits.then(|| counters.clone());
        let cache_max_age = Duration::from_secs(settings.database.cache_max_age_secs);
        let admission =
            Admission::new(pool.clone(), sink, rate_limits).with_cache_max_age(cache_max_age);
        let tokens = TokenSigner::new(&settings.auth)?;
        let listener = TcpListener::bind(&settings.http.bind)
            .await
            .with_context(|| format!("binding {}", settings.http.bind))?;
        let key_cache = KeyCache::new(cache_max_age, admission.machines().breaker().clone());
        let live = crate::live::Live::new(&settings.live);
        let state = AppState::new(Inner {
            pool,
            admission,
            counters,
            events,
            redis,
            auth_store,
            key_cache,
            roles: RoleBoard::default(),
            tokens,
            channel_secrets: ChannelSecrets::new(keyring.as_deref().cloned()),
            settings,
            prometheus: telemetry::prometheus(),
            keyring,
            live,
        });
        Ok(Self {
            listener,
            state,
            roles,
        })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The router for the configured roles.
    pub fn router(&self) -> Router {
        router(self.state.clone(), self.roles)
    }

    /// Serves until `shutdown` is cancelled, then drains requests and flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let app = self.router();
        let state = self.state.clone();
        let settings = state.settings();
        let board = state.roles().clone();
        let mut tasks = tokio::task::JoinSet::new();
        if self.roles.projection {
            let codec = readings_codec(&settings.kafka).await?;
            let readings = move || ReadingsProjection::new(codec.clone());
            let topic = settings.kafka.readings_topic.clone();
            tasks.spawn(supervised_projection(
                &state, "readings", readings, topic, &shutdown,
            ));
            let codec = predictions_codec(&settings.kafka).await?;
            let predictions = move || PredictionsProjection::new(codec.clone());
            let topic = settings.kafka.predictions_topic.clone();
            tasks.spawn(supervised_projection(
                &state,
                "predictions",
                predictions,
                topic,
                &shutdown,
            ));
            let limits = &settings.limits;
            tokio::spawn(retention::run(
                state.pool().clone(),
                Duration::from_secs(limits.retention_interval_secs),
                limits.retention_batch,
                shutdown.clone(),
            ));
        }
        if self.roles.predictor {
            // Its alerts go to the active generation's alert topic, following a replay's switch-over.
            let (processors, pool, token) = (
                settings.processors(),
                state.pool().clone(),
                shutdown.clone(),
            );
            let parts = GenerationParts {
                predictor: true,
                ..GenerationParts::default()
            };
            tasks.spawn(supervise(
                "predictor".into(),
                board.clone(),
                Backoff::default(),
                shutdown.clone(),
                move || follow_generations(processors.clone(), pool.clone(), parts, token.clone()),
            ));
        }
        if self.roles.projection || self.roles.detector || self.roles.alerting {
            let name = match (self.roles.detector, self.roles.projection) {
                (true, true) => "detection",
                (true, false) => "detectors",
                (false, true) => "projection alerts",
                (false, false) => "alerting intake",
            };
            let (processors, pool, token) = (
                settings.processors(),
                state.pool().clone(),
                shutdown.clone(),
            );
            let parts = GenerationParts {
                detectors: self.roles.detector,
                projections: self.roles.projection,
                alerting: self.roles.alerting,
                predictor: false,
            };
            tasks.spawn(supervise(
                name.into(),
                board.clone(),
                Backoff::default(),
                shutdown.clone(),
                move || follow_generations(processors.clone(), pool.clone(), parts, token.clone()),
            ));
        }
        if self.roles.alerting {
            let (processors, pool, token) = (
                settings.processors(),
                state.pool().clone(),
                shutdown.clone(),
            );
            let out = state
                .outbound()
                .map_err(|_| anyhow::anyhow!("outbound.allow is malformed"))?;
            let secrets = state.channel_secrets().clone();
            tasks.spawn(supervise(
                "alerting".into(),
                board.clone(),
                Backoff::default(),
                shutdown.clone(),
                move || {
                    alerting::run::run(
                        processors.clone(),
                        pool.clone(),
                        out.clone(),
                        secrets.clone(),
                        token.clone(),
                    )
                },
            ));
        }
        if self.roles.api {
            tokio::spawn(crate::live::run(state.clone(), shutdown.clone()));
        }
        let connectors = if self.roles.connectors {
            let settings = state.settings();
            let runtime = Connectors::new(
                state.pool().clone(),
                state.admission().clone(),
                settings.gateway.clone(),
                settings.connectors.clone(),
            )
            .with_outbound(settings.outbound_policy().map_err(anyhow::Error::msg)?)
            .with_keyring(state.keyring_shared());
            let token = shutdown.clone();
            Some(tokio::spawn(runtime.run(token)))
        } else {
            None
        };
        tracing::info!(port = self.port(), roles = ?self.roles, "haltless running");
        let serve = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        // Supervised roles restart themselves; one ends only at shutdown or on a configuration error,
        // which ends the process (after the server drained its requests).
        let roles = async {
            let ended = async {
                while let Some(ended) = tasks.join_next().await {
                    if let Err(e) = ended.map_err(anyhow::Error::from).and_then(|r| r) {
                        shutdown.cancel();
                        return Err(e);
                    }
                }
                Ok(())
            };
            // At shutdown the roles finish their batch; a role that does not within the grace time is
            // left behind (the process ends with it).
            let grace = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                r = ended => r,
                () = grace => {
                    tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "a role did not stop in time");
                    Ok(())
                }
            }
        };
        let serve = async {
            let served = serve.await;
            shutdown.cancel();
            served
        };
        let (served, roles) = tokio::join!(serve, roles);
        let result = roles.and(served.map_err(anyhow::Error::from));
        if let Some(task) = connectors {
            // Let the pollers release their leases so that peers take the sources at once.
            shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        state.admission().sink().flush(Duration::from_secs(5));
        result
    }
}

/// A projection of `topic` as a supervised role, `projection <name>`, made afresh by `make` at each start.
fn supervised_projection<P: Projection>(
    state: &AppState,
    name: &str,
    make: impl Fn() -> P + Send + 'static,
    topic: String,
    shutdown: &CancellationToken,
) -> impl std::future::Future<Output = anyhow::Result<()>> {
    let (processors, pool, token) = (
        state.settings().processors(),
        state.pool().clone(),
        shutdown.clone(),
    );
    supervise(
        format!("projection {name}"),
        state.roles().clone(),
        Backoff::default(),
        shutdown.clone(),
        move || {
            // The consumer's settings are checked here: a refusal is a configuration error.
            let task = spawn_projection(&processors, &pool, make(), &topic, &token)
                .map_err(|e| anyhow::Error::new(Fatal(format!("{e:#}"))));
            async move { task?.await? }
        },
    )
}

/// The HTTP routes of the given roles, with request metrics and the uniform 404.
pub fn router(state: AppState, roles: Roles) -> Router {
    let mut api = Router::new();
    if roles.gateway {
        api = api.merge(routes::ingest::router());
    }
    if roles.api {
        api = api
            .merge(routes::machines::router())
            .merge(routes::readings::router())
            .merge(routes::rules::router())
            .merge(routes::rule_preview::router())
            .merge(routes::alerts::router())
            .merge(routes::sources::router())
            .merge(routes::accounts::router())
            .merge(routes::users::router())
            .merge(routes::api_keys::router())
            .merge(routes::maintenance::router())
            .merge(routes::channels::router())
            .merge(routes::policies::router())
            .merge(routes::silences::router())
            .merge(routes::push::router())
            .merge(routes::work_orders::router())
            .merge(routes::fleet::router())
            .merge(routes::settings::router())
            .merge(routes::predictions::router())
            .merge(routes::models::router())
            .merge(routes::reports::router())
            .merge(crate::live::router())
            .merge(crate::openapi::router());
    }
    let mut api = api.layer(middleware::from_fn_with_state(
        state.clone(),
        crate::auth::enforce,
    ));
    if roles.gateway {
        let gateway = &state.settings().gateway;
        api = routes::ingest::limit_concurrency(
            api,
            gateway.max_concurrent_requests,
            gateway.max_body_bytes,
        );
    }
    let portal = if roles.api {
        crate::assets::portal_router()
    } else {
        Router::new()
    };
    let deadline = Duration::from_secs(state.settings().http.request_timeout_secs);
    Router::new()
        .nest("/api/v1", api)
        .merge(portal)
        .merge(routes::health::router())
        .fallback(crate::error::not_found_fallback)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            within_deadline(deadline, request, next)
        }))
        .layer(middleware::from_fn(record_request))
        .layer(middleware::from_fn(security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Headers every answer carries unless its handler set its own (the docs page sets its CSP): no MIME
/// sniffing, no framing, no referrer, and HSTS (which browsers heed only over HTTPS, i.e. behind a TLS
/// proxy).
async fn security_headers(request: Request, next: Next) -> Response {
    use axum::http::{header, HeaderValue};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Answers 503 `timeout` when a request (its body included) takes longer than `deadline` (zero: no
/// limit). Rather than tower-http's `TimeoutLayer`, whose answer has an empty body: this one is the API's
/// uniform error, with `Retry-After`.
async fn within_deadline(deadline: Duration, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse as _;
    if deadline.is_zero() {
        return next.run(request).await;
    }
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => crate::error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} s (http.request_timeout_secs)",
                deadline.as_secs()
            ),
        )
        .retry_after(1)
        .into_response(),
    }
}

async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(metric_names::HTTP_REQUEST_SECONDS, "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(metric_names::HTTP_REQUESTS, "method" => method, "route" => route, "status" => status).increment(1);
    response
}
