//! The composition root: connects the services, builds the [`AppState`], assembles the router and starts
//! the roles one process runs.

use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use fred::prelude::{Builder, ClientLike, Config as RedisClientConfig, ReconnectPolicy};
use haltless_connectors::admission::quota::Counters;
use haltless_connectors::admission::Admission;
use haltless_connectors::direct::Connectors;
use haltless_connectors::gateway::ReadingsSink;
use haltless_processors::detection::supervisor::follow_generations;
use haltless_processors::projection::readings::ReadingsProjection;
use haltless_processors::projection::retention;
use haltless_processors::runtime::codecs::readings_codec;
use haltless_processors::runtime::tasks::{spawn_projection, until_all_end};
use haltless_processors::runtime::topics::{ensure_partition_count, ensure_topics, TopicSpec};
use haltless_schemas::metric_names;
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::auth::store::AuthStore;
use crate::auth::tokens::TokenSigner;
use crate::config::Settings;
use crate::events::EventPublisher;
use crate::state::{AppState, Inner};
use crate::{routes, telemetry};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Which roles a process runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roles {
    /// `POST /api/v1/ingest`.
    pub gateway: bool,
    /// Machines, readings, rules, alerts, accounts, users and API keys.
    pub api: bool,
    /// The projections (readings, alerts, alert actions) and the retention sweep.
    pub projection: bool,
    /// The detectors.
    pub detector: bool,
    /// The pollers of OPC-UA and Modbus TCP sources.
    pub connectors: bool,
}

impl Roles {
    /// Every role, for a single node.
    pub fn all() -> Self {
        Self {
            gateway: true,
            api: true,
            projection: true,
            detector: true,
            connectors: true,
        }
    }
}

/// Connects to PostgreSQL.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(settings.database.url.expose_secret())
        .await
        .context("connecting to PostgreSQL (database.url)")
}

/// Applies the migrations and creates the topics: what `haltless migrate` does and every start repeats.
pub async fn migrate(settings: &Settings, pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations")?;
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
    Ok(())
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
        let pool = connect_database(&settings).await?;
        migrate(&settings, &pool).await?;
        let codec = readings_codec(&settings.kafka).await?;
        let sink = ReadingsSink::new(
            &settings.kafka.brokers,
            &settings.kafka.readings_topic,
            codec,
            Duration::from_millis(settings.gateway.produce_timeout_ms),
        )?;
        let events = EventPublisher::new(
            &settings.kafka.brokers,
            Duration::from_millis(settings.gateway.produce_timeout_ms),
        )?;
        let redis = Builder::from_config(
            RedisClientConfig::from_url(&settings.redis.url).context("redis.url")?,
        )
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()?;
        redis.connect();
        let auth_store = AuthStore::new(redis.clone(), &settings.redis.key_prefix);
        let counters = Counters::new(redis.clone(), &settings.redis.key_prefix);
        let rate_limits = settings.limits.rate_limits.then(|| counters.clone());
        let admission = Admission::new(pool.clone(), sink, rate_limits);
        let tokens = TokenSigner::new(&settings.auth)?;
        let listener = TcpListener::bind(&settings.http.bind)
            .await
            .with_context(|| format!("binding {}", settings.http.bind))?;
        let state = AppState::new(Inner {
            pool,
            admission,
            counters,
            events,
            redis,
            auth_store,
            tokens,
            settings,
            prometheus: telemetry::prometheus(),
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
        let mut tasks = Vec::new();
        if self.roles.projection {
            let projection = ReadingsProjection::new(readings_codec(&settings.kafka).await?);
            let topic = &settings.kafka.readings_topic;
            tasks.push(spawn_projection(
                &settings.processors(),
                state.pool(),
                projection,
                topic,
                &shutdown,
            )?);
            let limits = &settings.limits;
            tokio::spawn(retention::run(
                state.pool().clone(),
                Duration::from_secs(limits.retention_interval_secs),
                limits.retention_batch,
                shutdown.clone(),
            ));
        }
        if self.roles.projection || self.roles.detector {
            tasks.push(tokio::spawn(follow_generations(
                settings.processors(),
                state.pool().clone(),
                self.roles.detector,
                self.roles.projection,
                shutdown.clone(),
            )));
        }
        let connectors = if self.roles.connectors {
            let settings = state.settings();
            let runtime = Connectors::new(
                state.pool().clone(),
                state.admission().clone(),
                settings.gateway.clone(),
                settings.connectors.clone(),
            );
            let token = shutdown.clone();
            Some(tokio::spawn(runtime.run(token)))
        } else {
            None
        };
        tracing::info!(port = self.port(), roles = ?self.roles, "haltless running");
        let has_tasks = !tasks.is_empty();
        let serve = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let result = tokio::select! {
            r = serve => r.map_err(anyhow::Error::from),
            r = until_all_end(tasks), if has_tasks => {
                let stopping = shutdown.is_cancelled();
                shutdown.cancel();
                r.and_then(|()| if stopping { Ok(()) } else { anyhow::bail!("a background role stopped") })
            }
        };
        if let Some(task) = connectors {
            // Let the pollers release their leases so that peers take the sources at once.
            shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        state.admission().sink().flush(Duration::from_secs(5));
        result
    }
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
            .merge(routes::alerts::router())
            .merge(routes::sources::router())
            .merge(routes::accounts::router())
            .merge(routes::users::router())
            .merge(routes::api_keys::router())
            .merge(routes::maintenance::router())
            .merge(routes::work_orders::router())
            .merge(routes::fleet::router())
            .merge(routes::settings::router())
            .merge(routes::reports::router())
            .merge(crate::openapi::router());
    }
    let api = api.layer(middleware::from_fn_with_state(
        state.clone(),
        crate::auth::enforce,
    ));
    Router::new()
        .nest("/api/v1", api)
        .merge(routes::health::router())
        .fallback(crate::error::not_found_fallback)
        .layer(middleware::from_fn(record_request))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
