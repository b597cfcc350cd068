//! Layered settings: built-in defaults, then an optional TOML file, then `HALTLESS__SECTION__KEY`
//! environment variables (e.g. `HALTLESS__DATABASE__URL`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use haltless_connectors::direct::ConnectorsConfig;
use haltless_connectors::gateway::GatewayConfig;
use haltless_processors::alerting::AlertingConfig;
use haltless_processors::config::{KafkaConfig, ProcessorsConfig};
use haltless_processors::detection::processor::DetectorConfig;
use haltless_processors::prediction::predictor::PredictorConfig;
use haltless_processors::projection::ProjectionConfig;
use haltless_schemas::outbound::{Cidr, OutboundPolicy};
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
    /// RUL predictor processor.
    pub predictor: PredictorConfig,
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
    /// The keys that seal secrets at rest (OPC-UA passwords, channel secrets).
    pub secrets: SecretsConfig,
    /// The dashboard WebSocket.
    pub live: crate::live::config::LiveConfig,
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

    /// The key-encryption keys of secrets at rest: `secrets.keys`, then the lines of `secrets.key_file`;
    /// the first is the current one. `None` when neither is set.
    pub fn keyring(&self) -> anyhow::Result<Option<Keyring>> {
        let mut entries: Vec<String> = self
            .secrets
            .keys
            .iter()
            .map(|k| k.expose_secret().to_owned())
            .collect();
        if let Some(path) = &self.secrets.key_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading secrets.key_file {}", path.display()))?;
            warn_if_readable_by_others(path);
            entries.extend(text.lines().map(str::to_owned));
        }
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(Keyring::parse(&entries)?))
    }

    /// The sections the processors' roles read (Kafka, detectors, predictor, projections, the alert engine).
    pub fn processors(&self) -> ProcessorsConfig {
        ProcessorsConfig {
            kafka: self.kafka.clone(),
            detector: self.detector.clone(),
            predictor: self.predictor.clone(),
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

/// A key file others than its owner may read is worth a warning (not a refusal: containers often run
/// with other owners).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "secrets.key_file is readable by others than its owner (chmod 600)");
            }
        }
    }
}

/// The key-encryption keys of secrets at rest, each written `id:<64 hexadecimal digits>` (make one with
/// `haltless secrets generate-key`). The first key seals; every key opens, so that after a new key is
/// put first, `haltless secrets rotate` can re-wrap what the older ones sealed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// A file with one key per line (`#` comments allowed), the current one first. Never logged.
    pub key_file: Option<PathBuf>,
    /// Keys given directly, before those of `key_file`. Never logged.
    pub keys: Vec<SecretString>,
}

/// Which addresses the platform may connect to for a tenant.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Addresses and CIDR blocks, each with an optional port, that tenants' sources (and channels) may
    /// reach besides public addresses: `10.0.0.5:502`, `10.0.0.0/8`, `[fd12::/16]:4840`. Everything
    /// else that is not public (loopback, private, link-local, metadata, ...) is refused. An entry
    /// without a port does not cover the ports of the platform's own services.
    pub allow: Vec<String>,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// Longest a request may take, body included, before it is answered 503 `timeout` (seconds; 0: no
    /// limit). Bounds what a slow client or a stuck dependency can hold.
    pub request_timeout_secs: u64,
    /// When set, `GET /metrics` answers only requests with `Authorization: Bearer <this token>` (401
    /// otherwise), for a listener that the internet reaches. Never logged.
    pub metrics_token: Option<SecretString>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            request_timeout_secs: 30,
            metrics_token: None,
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
    /// PostgreSQL's `statement_timeout` on every pooled connection (milliseconds; 0: none): a query that
    /// runs longer is cancelled by the server.
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://haltless:haltless@127.0.0.1:55432/haltless"),
            max_connections: 20,
            acquire_timeout_ms: 500,
            cache_max_age_secs: 300,
            statement_timeout_ms: 30_000,
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
    /// Invitation acceptances (right or wrong) allowed from one client address per hour.
    pub invite_attempts_per_address_per_hour: u32,
    /// The addresses or CIDR blocks of the reverse proxies in front of the API. When the peer is one,
    /// the client's address is the rightmost `X-Forwarded-For` entry that is not one of them (the
    /// entries to its left are the client's own writing).
    pub trusted_proxies: Vec<Cidr>,
    /// Trust the peer as a proxy whatever its address (one proxy in front): the client's address is then
    /// the rightmost `X-Forwarded-For` entry not in `trusted_proxies`.
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
            invite_attempts_per_address_per_hour: 20,
            trusted_proxies: Vec::new(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_platforms_own_ports_are_refused_even_where_loopback_is_allowed() {
        let mut settings = Settings::default();
        settings.outbound.allow = vec!["127.0.0.1".into(), "127.0.0.1:56379".into()];
        let policy = settings.outbound_policy().unwrap();
        let at = |port: u16| policy.check(([127, 0, 0, 1], port).into());
        assert!(at(5020).is_ok());
        assert!(at(55432).is_err(), "PostgreSQL");
        assert!(at(59092).is_err(), "Kafka");
        assert!(at(8080).is_err(), "the platform's own listener");
        assert!(at(56379).is_ok(), "named exactly");
        settings.outbound.allow = vec!["127.0.0.1/40".into()];
        assert!(settings
            .outbound_policy()
            .unwrap_err()
            .contains("127.0.0.1/40"));
    }

    #[test]
    fn reads_ports_from_urls() {
        assert_eq!(url_port("postgres://u:p@db:5432/x"), Some(5432));
        assert_eq!(url_port("redis://127.0.0.1:56379"), Some(56379));
        assert_eq!(url_port("127.0.0.1:59092"), Some(59092));
        assert_eq!(url_port("redis://cache"), None);
    }

    #[test]
    fn the_allow_list_comes_from_the_environment_as_a_list() {
        // A prefix of this test alone: the other tests read the real one.
        std::env::set_var(
            "HALTLESS_OUTBOUND_TEST__OUTBOUND__ALLOW",
            r#"["127.0.0.1:55020", "127.0.0.1:54840"]"#,
        );
        let settings: Settings = Figment::new()
            .merge(Env::prefixed("HALTLESS_OUTBOUND_TEST__").split("__"))
            .extract()
            .unwrap();
        assert_eq!(
            settings.outbound.allow,
            ["127.0.0.1:55020", "127.0.0.1:54840"]
        );
    }
}
