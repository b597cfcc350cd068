//! The state every request handler shares: the composition root builds it, handlers read it.

use std::sync::Arc;

use haltless_connectors::admission::quota::Counters;
use haltless_connectors::admission::Admission;
use haltless_processors::alerting::channels::Outbound;
use haltless_processors::alerting::secrets::ChannelSecrets;
use haltless_processors::runtime::tasks::RoleBoard;
use haltless_schemas::secrets::Keyring;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::store::AuthStore;
use crate::auth::tokens::TokenSigner;
use crate::auth::KeyCache;
use crate::config::Settings;
use crate::error::ApiError;
use crate::events::EventPublisher;
use crate::live::hub::Live;

/// State shared by every request handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The database pool.
    pub pool: PgPool,
    /// The one admission path of readings.
    pub admission: Admission,
    /// Fixed-window counters: rate limits and throttles.
    pub counters: Counters,
    /// The publisher of rule changes and alert actions.
    pub events: EventPublisher,
    /// The Redis client.
    pub redis: fred::clients::Client,
    /// The Redis side of auth.
    pub auth_store: AuthStore,
    /// API key lookups, kept for a database outage.
    pub key_cache: KeyCache,
    /// The state of the background roles this process runs, for readiness.
    pub roles: RoleBoard,
    /// Issues and verifies access tokens.
    pub tokens: TokenSigner,
    /// The settings the process started with.
    pub settings: Settings,
    /// Renders the Prometheus metrics.
    pub prometheus: PrometheusHandle,
    /// Seals and opens notification channels' secret fields.
    pub channel_secrets: ChannelSecrets,
    /// Seals and opens secrets at rest; `None` when no key is configured.
    pub keyring: Option<Arc<Keyring>>,
    /// The dashboard sockets' hub.
    pub live: Live,
}

impl AppState {
    /// The state of `inner`.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }
    /// The one admission path of readings.
    pub fn admission(&self) -> &Admission {
        &self.0.admission
    }
    /// Fixed-window counters: rate limits and throttles.
    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }
    /// The publisher of rule changes and alert actions.
    pub fn events(&self) -> &EventPublisher {
        &self.0.events
    }
    /// The Redis client.
    pub fn redis(&self) -> &fred::clients::Client {
        &self.0.redis
    }
    /// The Redis side of auth: token blocklist, throttles and rate limits.
    pub fn auth_store(&self) -> &AuthStore {
        &self.0.auth_store
    }
    /// API key lookups, kept for a database outage.
    pub fn key_cache(&self) -> &KeyCache {
        &self.0.key_cache
    }
    /// The state of the background roles this process runs.
    pub fn roles(&self) -> &RoleBoard {
        &self.0.roles
    }
    /// Issues and verifies access tokens.
    pub fn tokens(&self) -> &TokenSigner {
        &self.0.tokens
    }
    /// The settings the process started with.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    /// Renders the Prometheus metrics.
    pub fn prometheus(&self) -> &PrometheusHandle {
        &self.0.prometheus
    }

    /// Seals and opens notification channels' secret fields.
    pub fn channel_secrets(&self) -> &ChannelSecrets {
        &self.0.channel_secrets
    }

    /// `fields` sealed for `channel`; 503 when the platform has no secrets key.
    pub fn seal_channel_secret(
        &self,
        channel: Uuid,
        fields: &Map<String, Value>,
    ) -> Result<String, ApiError> {
        self.0
            .channel_secrets
            .seal(channel, fields)
            .map_err(|e| ApiError::unavailable("secret storage", e))
    }

    /// Where the alert engine's deliveries may connect, and their deadline.
    pub fn outbound(&self) -> Result<Outbound, ApiError> {
        let settings = &self.0.settings;
        Ok(Outbound::new(
            settings.outbound_policy().map_err(ApiError::internal)?,
            std::time::Duration::from_millis(settings.alerting.send_timeout_ms),
        ))
    }

    /// Seals and opens secrets at rest; `None` when no key is configured.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.0.keyring.as_deref()
    }
    /// The dashboard sockets' hub.
    pub fn live(&self) -> &Live {
        &self.0.live
    }
    /// The keyring, to share with a role.
    pub fn keyring_shared(&self) -> Option<Arc<Keyring>> {
        self.0.keyring.clone()
    }
}
