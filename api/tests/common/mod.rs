//! The test harness: every test gets its own database, topic and consumer group on the real services that
//! `compose/test` starts, and removes them when done.
#![allow(dead_code)]

pub mod peers;
pub mod private;
pub mod receiver;
pub mod socket;

use std::time::{Duration, Instant};

use haltless_api::app::{migrate, Application, Roles};
use haltless_api::auth::Scope;
use haltless_api::config::Settings;
use haltless_api::tenants::{create_api_key, create_tenant, Tier};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The key that seals the tests' secrets at rest.
pub const TEST_KEY: &str =
    "test-1:5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";

/// How a test's database stores readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// What the migrations choose: a TimescaleDB hypertable with continuous aggregates where the
    /// extension is installed (as `compose/` installs it).
    Default,
    /// A natively partitioned table, as for users without TimescaleDB: the database says
    /// `haltless.readings_storage = 'partitions'`, which the migrations honour.
    Partitions,
}

/// A database and a topic of one test.
pub struct Isolation {
    pub settings: Settings,
    pub pool: PgPool,
    admin_url: String,
    db_name: String,
}

impl Isolation {
    /// Creates the test's database (migrated) and readings topic.
    pub async fn create() -> Self {
        Self::create_with(|_| {}).await
    }

    /// Like [`Isolation::create`], after `tweak` adjusted the settings.
    pub async fn create_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::create_on(None, tweak).await
    }

    /// Like [`Isolation::create_with`], with the test's database on the PostgreSQL of `admin_url` (a
    /// database URL whose user may create databases) instead of the shared one.
    pub async fn create_on(admin_url: Option<String>, tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::create_full(admin_url, Storage::Default, tweak).await
    }

    /// Like [`Isolation::create`], with readings stored as `storage` says.
    pub async fn create_with_storage(storage: Storage) -> Self {
        Self::create_full(None, storage, |_| {}).await
    }

    async fn create_full(
        admin_url: Option<String>,
        storage: Storage,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = Settings::load(None).expect("settings from the environment");
        let suffix = Uuid::new_v4().simple().to_string();
        let admin_url =
            admin_url.unwrap_or_else(|| settings.database.url.expose_secret().to_owned());
        let db_name = format!("test_{suffix}");
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL runs (compose/test starts it)");
        sqlx::query(&format!("CREATE DATABASE \"{db_name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        if storage == Storage::Partitions {
            sqlx::query(&format!(
                "ALTER DATABASE \"{db_name}\" SET haltless.readings_storage = 'partitions'"
            ))
            .execute(&mut admin)
            .await
            .unwrap();
        }
        admin.close().await.ok();
        let base = &admin_url[..admin_url.rfind('/').unwrap()];
        settings.database.url = SecretString::from(format!("{base}/{db_name}"));
        settings.database.max_connections = 5;
        // Opening a connection on a loaded two-core machine (an unoptimised build, seven apps at once)
        // can outlast the shipped half-second; the outage tests put it back.
        settings.database.acquire_timeout_ms = 5_000;
        settings.kafka.readings_topic = format!("test.readings.{suffix}");
        settings.kafka.partitions = 3;
        settings.kafka.alerts_topic = format!("test.alerts.{suffix}");
        settings.kafka.rules_topic = format!("test.rules.{suffix}");
        settings.kafka.alert_actions_topic = format!("test.alert-actions.{suffix}");
        settings.kafka.detector_changelog_topic = format!("test.detector-state.{suffix}");
        settings.kafka.predictions_topic = format!("test.predictions.{suffix}");
        settings.kafka.models_topic = format!("test.models.{suffix}");
        settings.kafka.predictor_changelog_topic = format!("test.predictor-state.{suffix}");
        settings.projection.group_prefix = format!("test-projection-{suffix}");
        settings.detector.group = format!("test-detector-{suffix}");
        settings.predictor.group = format!("test-predictor-{suffix}");
        settings.http.bind = "127.0.0.1:0".into();
        // Throttles, rate limits and the token blocklist of this test only.
        settings.redis.key_prefix = format!("test:{suffix}:");
        // The device peers (pymodbus, asyncua, the link proxies) listen on 127.0.0.1 at free ports chosen
        // after the platform starts: that address, at any port but the stack's own services' ports.
        settings.outbound.allow = vec!["127.0.0.1".into()];
        settings.secrets.keys = vec![SecretString::from(TEST_KEY)];
        // The tenants' client keys (OPC-UA) of this test only.
        settings.connectors.state_dir =
            std::env::temp_dir().join(format!("haltless-state-{suffix}"));
        tweak(&mut settings);
        let pool = PgPool::connect(settings.database.url.expose_secret())
            .await
            .unwrap();
        migrate(&settings, &pool)
            .await
            .expect("migrations and topics");
        Self {
            settings,
            pool,
            admin_url,
            db_name,
        }
    }

    /// Environment variables that point a `haltless` subprocess at this test's database and topic.
    pub fn env(&self) -> Vec<(String, String)> {
        let s = &self.settings;
        vec![
            (
                "HALTLESS__DATABASE__URL".into(),
                s.database.url.expose_secret().to_owned(),
            ),
            ("HALTLESS__KAFKA__BROKERS".into(), s.kafka.brokers.clone()),
            (
                "HALTLESS__KAFKA__READINGS_TOPIC".into(),
                s.kafka.readings_topic.clone(),
            ),
            (
                "HALTLESS__KAFKA__PARTITIONS".into(),
                s.kafka.partitions.to_string(),
            ),
            (
                "HALTLESS__PROJECTION__GROUP_PREFIX".into(),
                s.projection.group_prefix.clone(),
            ),
            (
                "HALTLESS__KAFKA__ALERTS_TOPIC".into(),
                s.kafka.alerts_topic.clone(),
            ),
            (
                "HALTLESS__KAFKA__RULES_TOPIC".into(),
                s.kafka.rules_topic.clone(),
            ),
            (
                "HALTLESS__KAFKA__ALERT_ACTIONS_TOPIC".into(),
                s.kafka.alert_actions_topic.clone(),
            ),
            (
                "HALTLESS__KAFKA__DETECTOR_CHANGELOG_TOPIC".into(),
                s.kafka.detector_changelog_topic.clone(),
            ),
            ("HALTLESS__DETECTOR__GROUP".into(), s.detector.group.clone()),
            (
                "HALTLESS__KAFKA__PREDICTIONS_TOPIC".into(),
                s.kafka.predictions_topic.clone(),
            ),
            (
                "HALTLESS__KAFKA__MODELS_TOPIC".into(),
                s.kafka.models_topic.clone(),
            ),
            (
                "HALTLESS__KAFKA__PREDICTOR_CHANGELOG_TOPIC".into(),
                s.kafka.predictor_changelog_topic.clone(),
            ),
            (
                "HALTLESS__PREDICTOR__GROUP".into(),
                s.predictor.group.clone(),
            ),
            (
                "HALTLESS__REDIS__KEY_PREFIX".into(),
                s.redis.key_prefix.clone(),
            ),
            ("HALTLESS__HTTP__BIND".into(), "127.0.0.1:0".into()),
            (
                "HALTLESS__SECRETS__KEYS".into(),
                format!("[\"{TEST_KEY}\"]"),
            ),
            (
                "HALTLESS__OUTBOUND__ALLOW".into(),
                format!("{:?}", s.outbound.allow),
            ),
        ]
    }

    /// A tenant with an ingest+read key and the named machines; returns (tenant, key secret).
    pub async fn tenant_with_machines(&self, machines: &[&str]) -> (Uuid, String) {
        let tenant = create_tenant(&self.pool, &format!("tenant-{}", Uuid::new_v4()), Tier::Pro)
            .await
            .unwrap();
        let key = create_api_key(&self.pool, tenant, "test", &[Scope::Ingest, Scope::Read])
            .await
            .unwrap();
        for m in machines {
            sqlx::query("INSERT INTO machines (id, tenant_id, name) VALUES ($1, $2, $3)")
                .bind(Uuid::new_v4())
                .bind(tenant)
                .bind(m)
                .execute(&self.pool)
                .await
                .unwrap();
        }
        (tenant, key.secret)
    }

    /// Creates a user of `tenant` with `role` ("admin", "operator", "viewer"); returns (email, password).
    pub async fn user(&self, tenant: Uuid, role: &str) -> (String, String) {
        let email = format!("{role}-{}@test.haltless.local", Uuid::new_v4().simple());
        let password = format!("pw-{}", Uuid::new_v4().simple());
        haltless_api::tenants::upsert_user(&self.pool, tenant, &email, &password, role)
            .await
            .unwrap();
        (email, password)
    }

    /// Drops the database and deletes the topic.
    pub async fn drop(self) {
        self.pool.close().await;
        let _ = std::fs::remove_dir_all(&self.settings.connectors.state_dir);
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.db_name
            ))
            .execute(&mut admin)
            .await;
        }
        if let Ok(admin) = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.kafka.brokers)
            .create::<AdminClient<DefaultClientContext>>()
        {
            let k = &self.settings.kafka;
            let topics = [
                &k.readings_topic,
                &k.alerts_topic,
                &k.rules_topic,
                &k.detector_changelog_topic,
                &k.alert_actions_topic,
                &k.predictions_topic,
                &k.models_topic,
                &k.predictor_changelog_topic,
            ];
            // Replays add generations of the alert and state topics.
            let generations: Vec<String> = (2..5)
                .flat_map(|g| {
                    [&k.alerts_topic, &k.detector_changelog_topic].map(|t| format!("{t}.g{g}"))
                })
                .collect();
            let topics: Vec<&str> = topics
                .iter()
                .map(|t| t.as_str())
                .chain(generations.iter().map(String::as_str))
                .collect();
            let _ = admin.delete_topics(&topics, &AdminOptions::new()).await;
        }
    }
}

/// The platform with every role, in this process, on a free port.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub key: String,
    pub tenant: Uuid,
    /// An access token of an admin of `tenant`.
    pub admin: String,
    pub iso: Isolation,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// Spawns the platform with the default test settings and a tenant owning `machines`.
    pub async fn spawn(machines: &[&str]) -> Self {
        Self::spawn_with(machines, |_| {}).await
    }

    /// Spawns the platform after `tweak` adjusted the settings.
    pub async fn spawn_with(machines: &[&str], tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(None, machines, tweak).await
    }

    /// Like [`TestApp::spawn_with`], with readings stored as `storage` says.
    pub async fn spawn_storage(
        storage: Storage,
        machines: &[&str],
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::start_full(None, storage, machines, Roles::all(), tweak).await
    }

    /// Like [`TestApp::spawn_with`], with the test's database on the PostgreSQL of `admin_url`.
    pub async fn spawn_on(
        admin_url: Option<String>,
        machines: &[&str],
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::start(admin_url, machines, Roles::all(), tweak).await
    }

    /// Like [`TestApp::spawn_with`], running only `roles` in this process (a test runs the others as
    /// processes of their own, to kill them).
    pub async fn spawn_roles(
        machines: &[&str],
        roles: Roles,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::start(None, machines, roles, tweak).await
    }

    async fn start(
        admin_url: Option<String>,
        machines: &[&str],
        roles: Roles,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::start_full(admin_url, Storage::Default, machines, roles, tweak).await
    }

    async fn start_full(
        admin_url: Option<String>,
        storage: Storage,
        machines: &[&str],
        roles: Roles,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        if std::env::var("TEST_LOG").is_ok() {
            haltless_api::telemetry::init_logs(false);
        }
        let iso = Isolation::create_full(admin_url, storage, tweak).await;
        let (tenant, key) = iso.tenant_with_machines(machines).await;
        let app = Application::build(iso.settings.clone(), roles)
            .await
            .expect("the platform starts");
        let url = format!("http://127.0.0.1:{}", app.port());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        let mut app = Self {
            url,
            client: reqwest::Client::new(),
            key,
            tenant,
            admin: String::new(),
            iso,
            shutdown,
            task,
        };
        app.admin = app.token_for(tenant, "admin").await;
        app
    }

    /// `POST /api/v1/auth/login`: status and body.
    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A new user of `tenant` with `role`, signed in: their access token.
    pub async fn token_for(&self, tenant: Uuid, role: &str) -> String {
        let (email, password) = self.iso.user(tenant, role).await;
        let (status, body) = self.login(&email, &password).await;
        assert_eq!(status, 200, "login: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `method path` with `Authorization: Bearer token` and an optional JSON body: status and body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/v1/ingest` with the tenant's key.
    pub async fn ingest(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/ingest", self.url))
            .header("x-api-key", &self.key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with the tenant's key, returning status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Spawns the platform with fast lease refreshes and short reconnect waits, for tests of sources.
    pub async fn spawn_polling(machines: &[&str]) -> Self {
        Self::spawn_with(machines, |s| {
            s.connectors.refresh_interval_ms = 200;
            s.connectors.lease_ttl_ms = 3_000;
            s.connectors.min_backoff_ms = 100;
            s.connectors.max_backoff_ms = 500;
        })
        .await
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls source `id`'s status until `done` holds (or panics after `secs`).
    pub async fn wait_source_status(
        &self,
        id: &str,
        secs: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, body) = self.get(&format!("/api/v1/sources/{id}/status")).await;
            assert_eq!(status, 200, "{body}");
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "status never matched: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the raw readings query of `machine` until it returns `n` rows (or panics after 60 s).
    pub async fn wait_for_readings(&self, machine: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self
                .get(&format!("/api/v1/machines/{machine}/readings?limit=100000"))
                .await;
            assert_eq!(status, 200, "{body}");
            let rows = body["readings"].as_array().cloned().unwrap_or_default();
            if rows.len() >= n {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} readings of {machine} arrived",
                rows.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the platform and removes the test's database and topic.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        self.iso.drop().await;
    }
}

/// Materializes the continuous aggregates up to `to` (an SQL expression), in one pass (TimescaleDB's batched manual refresh may stop
/// short), waiting while a refresh job's run holds the aggregate.
pub async fn refresh_aggregates(pool: &PgPool, to: &str) {
    for view in ["readings_1m", "readings_1h"] {
        call_while_busy(
            pool,
            &format!(
                "CALL refresh_continuous_aggregate('{view}', NULL, {to},
                     options => '{{\"buckets_per_batch\": 0}}')"
            ),
        )
        .await;
    }
}

/// Runs `call` (a `CALL` of a refresh), again while a concurrent refresh of the same aggregate holds it
/// (`55P03`), for up to a minute.
pub async fn call_while_busy(pool: &PgPool, call: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match sqlx::query(call).execute(pool).await {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55P03") && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            other => break other.map(|_| ()).unwrap(),
        }
    }
}
