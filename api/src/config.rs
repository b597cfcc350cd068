//! Layered settings: built-in defaults, then an optional TOML file, then `HALTLESS__SECTION__KEY`
//! environment variables (e.g. `HALTLESS__DATABASE__URL`).

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use haltless_connectors::direct::ConnectorsConfig;
use haltless_connectors::gateway::GatewayConfig;
use haltless_processors::alerting::AlertingConfig;
use haltless_processors::config::{KafkaConfig, ProcessorsConfig};
use haltless_processors::detection::processor::DetectorConfig;
use haltless_processors::projection::ProjectionConfig;
use haltless_schemas::outbound::OutboundPolicy;
use haltless_schemas::secrets::Keyring;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Every setting of the platform.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// HTTP listener.
    pub http: HttpConfig,
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// Kafka.
    pub kafka: KafkaConfig,
    /// Ingest gateway limits.
    pub gateway: GatewayConfig,
    /// Projections (readings, alerts, alert actions).
    pub projection: ProjectionConfig,
    /// Detector processor.
    pub detector: DetectorConfig,
    /// Query limits.
    pub query: QueryConfig,
    /// Logins, tokens and throttles.
    pub auth: AuthConfig,
    /// Tier enforcement: rate limits and data retention.
    pub limits: LimitsConfig,
    /// Pollers of OPC-UA and Modbus TCP sources (`haltless connectors`).
    pub connectors: ConnectorsConfig,
    /// The alert engine: its clock, delivery deadlines, retries and limits.
    pub alerting: AlertingConfig,
    /// Where the platform may connect on a tenant's behalf (device sources, notification channels).
    pub outbound: OutboundConfig,
    /// The keys that seal secrets at rest.
    pub secrets: SecretsConfig,
}

impl Settings {
    /// Loads the settings from the defaults, `file` (if given, it must exist) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment
            .merge(Env::prefixed("HALTLESS__").split("__"))
            .extract()
            .map_err(Box::new)
    }

    /// The outbound policy: public addresses, `outbound.allow`, and the ports of this platform's own
    /// PostgreSQL, Redis, Kafka and HTTP listener refused on every non-public address unless an entry
    /// names the exact port. A malformed entry is an error naming it.
    pub fn outbound_policy(&self) -> Result<OutboundPolicy, String> {
        let mut ports = Vec::new();
        ports.extend(url_port(self.database.url.expose_secret()));
        ports.extend(url_port(&self.redis.url));
        ports.extend(
            self.kafka
                .brokers
                .split(',')
                .filter_map(|b| url_port(b.trim())),
        );
        ports.extend(url_port(&self.http.bind));
        OutboundPolicy::new(&self.outbound.allow, &ports)
            .map_err(|errors| format!("outbound.allow: {}", errors.join("; ")))
    }

    /// The keyring of `secrets.keys` and `secrets.key_file`, or none when neither is set.
    pub fn keyring(&self) -> Result<Option<Keyring>, String> {
        let mut entries = self.secrets.keys.clone();
        if let Some(file) = &self.secrets.key_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("secrets.key_file {}: {e}", file.display()))?;
            entries.extend(text.lines().map(str::to_owned));
        }
        if entries
            .iter()
            .all(|e| e.trim().is_empty() || e.trim().starts_with('#'))
        {
            return Ok(None);
        }
        Keyring::parse(&entries)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The sections the processors' roles read (Kafka, detectors, projections, the alert engine).
    pub fn processors(&self) -> ProcessorsConfig {
        ProcessorsConfig {
            kafka: self.kafka.clone(),
            detector: self.detector.clone(),
            projection: self.projection.clone(),
            alerting: self.alerting.clone(),
        }
    }
}

/// The port of a URL or `host:port` (`scheme://user:password@host:port/path`), when it names one.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (_, port) = host_port.rsplit_once(':')?;
    port.parse().ok()
}

/// Which addresses the platform may connect to for a tenant.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Addresses and CIDR blocks, each with an optional port, that tenants' sources and channels may
    /// reach besides public addresses.
    pub allow: Vec<String>,
}

/// The keys that seal secrets at rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Keys written `id:hex` (64 hex digits), the first the current one.
    pub keys: Vec<String>,
    /// A file of such keys, one per line.
    pub key_file: Option<std::path::PathBuf>,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
        }
    }
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Connection URL, e.g. `postgres://user:password@127.0.0.1:55432/haltless`. Never logged.
    pub url: SecretString,
    /// Largest number of pooled connections per process.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (opening one included) before it answers 503:
    /// the deadline of every database call while PostgreSQL is unreachable.
    pub acquire_timeout_ms: u64,
    /// How old a remembered API key or machine lookup may be when ingest falls back on it because
    /// PostgreSQL is unreachable (0: no fallback, ingest answers 503 with the database).
    pub cache_max_age_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://haltless:haltless@127.0.0.1:55432/haltless"),
            max_connections: 20,
            acquire_timeout_ms: 500,
            cache_max_age_secs: 300,
        }
    }
}

/// Redis settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Connection URL, e.g. `redis://127.0.0.1:56379`.
    pub url: String,
    /// Prefix of every key the platform writes (token blocklist, throttles, rate limits), so that
    /// several deployments or tests can share one Redis.
    pub key_prefix: String,
    /// The deadline of every Redis command, and of opening a connection.
    pub command_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:56379".into(),
            key_prefix: "haltless:".into(),
            command_timeout_ms: 500,
        }
    }
}

/// Limits of the readings query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Rows returned when the request gives no `limit`.
    pub default_limit: i64,
    /// Largest `limit` a request may ask for.
    pub max_limit: i64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            default_limit: 10_000,
            max_limit: 100_000,
        }
    }
}

/// Logins, tokens and login throttling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC secret signing the access tokens (HS256), at least 32 bytes; every API instance needs the
    /// same one. When empty, each process draws a random secret at start (tokens then die with the
    /// process and are valid on that instance only). Never logged.
    pub jwt_secret: SecretString,
    /// Lifetime of an access token, in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a login session (its refresh tokens), in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of an invitation, in seconds.
    pub invite_ttl_secs: u64,
    /// Failed logins of one account allowed per window before 429.
    pub login_failures_per_account: u32,
    /// Failed logins from one client address allowed per window before 429.
    pub login_failures_per_address: u32,
    /// The login throttle's window, in seconds.
    pub login_window_secs: u64,
    /// Sign-ups allowed from one client address per hour.
    pub signups_per_address_per_hour: u32,
    /// Take the client address from the first `X-Forwarded-For` entry (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: SecretString::from(""),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 86_400,
            invite_ttl_secs: 7 * 86_400,
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            login_window_secs: 900,
            signups_per_address_per_hour: 10,
            trust_forwarded_for: false,
        }
    }
}

/// Tier enforcement. The figures per tier are fixed (see README); a tenant can carry overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Enforce the per-tenant API rate limits (reads and writes per minute).
    pub rate_limits: bool,
    /// Seconds between two retention sweeps (run by the `project` and `all` roles).
    pub retention_interval_secs: u64,
    /// Readings deleted per statement during a sweep, to keep transactions short.
    pub retention_batch: i64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_limits: true,
            retention_interval_secs: 3_600,
            retention_batch: 50_000,
        }
    }
}
