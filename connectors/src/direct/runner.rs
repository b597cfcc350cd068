//! The connectors loop: every refresh, renew leases, start a task for each newly leased or changed
//! source, stop the tasks of sources lost, disabled or deleted, and publish each source's health. A
//! source's batches are labelled on the topic by its protocol ([`crate::source::ErasedProtocol::source`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use haltless_schemas::metric_names;
use haltless_schemas::outbound::OutboundPolicy;
use haltless_schemas::secrets::Keyring;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::config::ConnectorsConfig;
use super::lease::{refresh, release_all, LeasedSource};
use super::outlet::KafkaOutlet;
use crate::admission::Admission;
use crate::gateway::GatewayConfig;
use crate::protocols::PROTOCOLS;
use crate::source::{run_source, secrets, CertificateTrust, RunOptions, SharedStatus, SourceSpec};

/// One running source.
struct Running {
    version: i64,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    status: SharedStatus,
    trust: CertificateTrust,
}

/// The pollers of one `haltless connectors` instance.
pub struct Connectors {
    pool: PgPool,
    admission: Admission,
    gateway: Arc<GatewayConfig>,
    config: ConnectorsConfig,
    outbound: Arc<OutboundPolicy>,
    keyring: Option<Arc<Keyring>>,
    me: String,
    running: HashMap<Uuid, Running>,
}

impl Connectors {
    /// An instance polling into `admission`, sharing sources with its peers through `pool`. It connects
    /// to public addresses only until [`Connectors::with_outbound`] says otherwise.
    pub fn new(
        pool: PgPool,
        admission: Admission,
        gateway: GatewayConfig,
        config: ConnectorsConfig,
    ) -> Self {
        let me = if config.instance_id.is_empty() {
            format!("connectors-{}", Uuid::new_v4().simple())
        } else {
            config.instance_id.clone()
        };
        Self {
            pool,
            admission,
            gateway: Arc::new(gateway),
            config,
            outbound: Arc::default(),
            keyring: None,
            me,
            running: HashMap::new(),
        }
    }

    /// Connects only where `outbound` allows.
    pub fn with_outbound(mut self, outbound: OutboundPolicy) -> Self {
        self.outbound = Arc::new(outbound);
        self
    }

    /// Opens the sealed secrets of definitions with `keyring` (without one, a source with a sealed
    /// secret shows a configuration error).
    pub fn with_keyring(mut self, keyring: Option<Arc<Keyring>>) -> Self {
        self.keyring = keyring;
        self
    }

    /// This instance's name in the leases.
    pub fn instance_id(&self) -> &str {
        &self.me
    }

    /// Runs until `shutdown`, then stops every source and releases the leases.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let ttl = Duration::from_millis(self.config.lease_ttl_ms);
        let every = Duration::from_millis(self.config.refresh_interval_ms.max(50));
        let mut last_renewal = Instant::now();
        tracing::info!(instance = %self.me, "connectors running");
        loop {
            // A renewal slower than half the lease counts as failed: a peer may soon take the sources.
            let renewed = tokio::time::timeout(ttl / 2, refresh(&self.pool, &self.me, ttl))
                .await
                .unwrap_or_else(|_| {
                    Err(sqlx::Error::Protocol(
                        "no answer within half the lease".into(),
                    ))
                });
            match renewed {
                Ok(sources) => {
                    last_renewal = Instant::now();
                    self.reconcile(sources);
                    self.publish().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing source leases failed");
                    // Past most of the lease, a peer may take the sources: stop polling them first.
                    if last_renewal.elapsed() > ttl.mul_f64(0.8) {
                        self.reconcile(Vec::new());
                    }
                }
            }
            metrics::gauge!(metric_names::SOURCES_OWNED).set(self.running.len() as f64);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        self.reconcile(Vec::new());
        if let Err(e) = release_all(&self.pool, &self.me).await {
            tracing::warn!(error = %e, "releasing source leases failed");
        }
        tracing::info!(instance = %self.me, "connectors stopped");
    }

    /// Starts, restarts and stops tasks so that exactly `sources` run.
    fn reconcile(&mut self, sources: Vec<LeasedSource>) {
        let wanted: HashMap<Uuid, &LeasedSource> = sources.iter().map(|s| (s.id, s)).collect();
        self.running.retain(|id, r| {
            let keep = wanted.get(id).is_some_and(|s| s.version == r.version);
            if !keep {
                r.stop.cancel();
                if let Some(task) = r.task.take() {
                    // The task ends at its next await point; nothing waits for it.
                    drop(task);
                }
            }
            keep
        });
        for source in sources {
            if self.running.contains_key(&source.id) {
                continue;
            }
            let status = SharedStatus::default();
            let stop = CancellationToken::new();
            let trust = CertificateTrust::new(source.certificate_sha256.clone());
            let task = match self.open(&source) {
                Ok(spec) => Some(self.spawn(&source, spec, status.clone(), &trust, stop.clone())),
                Err(message) => {
                    if let Ok(mut s) = status.lock() {
                        s.record(crate::now_ms(), 0, Some(message));
                    }
                    None
                }
            };
            self.running.insert(
                source.id,
                Running {
                    version: source.version,
                    stop,
                    task,
                    status,
                    trust,
                },
            );
        }
    }

    /// The definition of `source` with its secrets opened, or what is wrong with it.
    fn open(&self, source: &LeasedSource) -> Result<SourceSpec, String> {
        let mut definition = source.definition.clone();
        let protocol = definition["protocol"]
            .as_str()
            .and_then(|name| PROTOCOLS.get(name));
        if let Some(protocol) = protocol {
            secrets::open(
                &mut definition,
                protocol,
                self.keyring.as_deref(),
                source.tenant_id.as_bytes(),
            )
            .map_err(|e| {
                tracing::warn!(source = %source.name, id = %source.id, error = %e, "a secret does not open");
                format!("configuration: the source's secrets do not open: {e}")
            })?;
        }
        SourceSpec::from_json(definition).map_err(|errors| {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            format!("invalid definition: {message}")
        })
    }

    fn spawn(
        &self,
        source: &LeasedSource,
        spec: SourceSpec,
        status: SharedStatus,
        trust: &CertificateTrust,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let outlet = KafkaOutlet::new(
            self.admission.clone(),
            self.gateway.clone(),
            source.tenant_id,
            spec.protocol.source(),
        );
        let options = RunOptions {
            min_backoff: Duration::from_millis(self.config.min_backoff_ms),
            max_backoff: Duration::from_millis(
                self.config.max_backoff_ms.max(self.config.min_backoff_ms),
            ),
            outbound: self.outbound.clone(),
            trust: Some(trust.clone()),
            state_dir: Some(self.config.state_dir.join(source.tenant_id.to_string())),
            metrics_label: Some(spec.protocol.name().to_owned()),
        };
        tracing::info!(source = %source.name, id = %source.id, version = source.version, "polling source");
        tokio::spawn(run_source(
            source.name.clone(),
            spec,
            outlet,
            status,
            options,
            stop,
        ))
    }

    /// Writes the health of every running source, in one statement.
    async fn publish(&self) {
        let now = crate::now_ms();
        let at = |ms: Option<i64>| ms.and_then(chrono::DateTime::from_timestamp_millis);
        let mut rows = StatusRows::default();
        for (id, running) in &self.running {
            let snapshot = running.status.lock().ok().map(|mut s| {
                let per_minute = s.readings_per_minute(now);
                (s.clone(), per_minute)
            });
            let Some((status, per_minute)) = snapshot else {
                continue;
            };
            rows.ids.push(*id);
            rows.versions.push(running.version);
            rows.healthy.push(status.healthy);
            rows.success.push(at(status.last_success_ms));
            rows.errors.push(status.last_error);
            rows.error_at.push(at(status.last_error_ms));
            rows.per_minute.push(per_minute as i64);
            let trust = running.trust.state();
            rows.presented.push(trust.presented);
            rows.pinned.push(trust.pinned);
        }
        if rows.ids.is_empty() {
            return;
        }
        let result = sqlx::query(
            "INSERT INTO ingest_source_status (source_id, version, healthy, last_success_at, last_error,
                 last_error_at, readings_per_minute, polled_by, updated_at, presented_certificate_sha256)
             SELECT r.id, r.version, r.healthy, r.success, r.error, r.error_at, r.per_minute, $8, now(), r.presented
             FROM UNNEST($1::uuid[], $2::bigint[], $3::bool[], $4::timestamptz[], $5::text[], $6::timestamptz[],
                         $7::bigint[], $9::text[])
                 AS r(id, version, healthy, success, error, error_at, per_minute, presented)
             WHERE EXISTS (SELECT 1 FROM ingest_sources s WHERE s.id = r.id)
             ON CONFLICT (source_id) DO UPDATE SET version = EXCLUDED.version, healthy = EXCLUDED.healthy,
                 last_success_at = COALESCE(EXCLUDED.last_success_at, ingest_source_status.last_success_at),
                 last_error = COALESCE(EXCLUDED.last_error, ingest_source_status.last_error),
                 last_error_at = COALESCE(EXCLUDED.last_error_at, ingest_source_status.last_error_at),
                 readings_per_minute = EXCLUDED.readings_per_minute, polled_by = EXCLUDED.polled_by,
                 updated_at = now(),
                 presented_certificate_sha256 = COALESCE(EXCLUDED.presented_certificate_sha256,
                     ingest_source_status.presented_certificate_sha256)",
        )
        .bind(&rows.ids)
        .bind(&rows.versions)
        .bind(&rows.healthy)
        .bind(&rows.success)
        .bind(&rows.errors)
        .bind(&rows.error_at)
        .bind(&rows.per_minute)
        .bind(&self.me)
        .bind(&rows.presented)
        .execute(&self.pool)
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, sources = rows.ids.len(), "publishing source health failed");
        }
        // Trust on first use: a certificate pinned by a task is stored where the source has none yet; a
        // pin an administrator set meanwhile is never overwritten.
        let pinned = sqlx::query(
            "UPDATE ingest_sources s SET certificate_sha256 = r.pin, certificate_pinned_at = now()
             FROM UNNEST($1::uuid[], $2::text[]) AS r(id, pin)
             WHERE s.id = r.id AND r.pin IS NOT NULL AND s.certificate_sha256 IS NULL",
        )
        .bind(&rows.ids)
        .bind(&rows.pinned)
        .execute(&self.pool)
        .await;
        if let Err(e) = pinned {
            tracing::warn!(error = %e, "storing pinned server certificates failed");
        }
    }
}

/// Column arrays of the status rows written at once.
#[derive(Default)]
struct StatusRows {
    ids: Vec<Uuid>,
    versions: Vec<i64>,
    healthy: Vec<bool>,
    success: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    errors: Vec<Option<String>>,
    error_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    per_minute: Vec<i64>,
    presented: Vec<Option<String>>,
    pinned: Vec<Option<String>>,
}
