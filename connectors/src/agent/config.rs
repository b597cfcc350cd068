//! The agent's site file (`haltless agent --config site.toml`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::source::{FieldError, SourceSpec};

/// Everything the agent needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where readings go.
    pub cloud: CloudConfig,
    /// The store-and-forward buffer.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// The health and metrics listener.
    #[serde(default)]
    pub http: AgentHttpConfig,
    /// Local sources: each is `name` plus a source definition as the sources API takes it
    /// (protocol, endpoint, poll_interval_ms, timeout_ms, the protocol's settings section, points).
    #[serde(default)]
    pub sources: Vec<Value>,
}

/// The platform the agent pushes to.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// Base URL of the platform, e.g. `https://haltless.example.com`.
    pub url: String,
    /// An API key with the ingest scope (sent as `X-API-Key`); never logged.
    pub api_key: String,
    /// Most readings per request.
    #[serde(default = "default_batch")]
    pub batch_max_readings: usize,
    /// Time between two pushes when the buffer holds little (milliseconds).
    #[serde(default = "default_push_interval")]
    pub push_interval_ms: u64,
    /// How long a push may take (milliseconds).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// First wait after a failed push (milliseconds); it doubles up to `max_backoff_ms`.
    #[serde(default = "default_min_backoff")]
    pub min_backoff_ms: u64,
    /// Longest wait between two pushes while the cloud is unreachable (milliseconds).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    /// A PEM file of CA certificates trusted, besides the public roots, for an `https://` platform whose
    /// certificate a private CA issued. Without it only the public roots (Mozilla's list) are trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConfig")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn default_batch() -> usize {
    5_000
}
fn default_push_interval() -> u64 {
    1_000
}
fn default_timeout() -> u64 {
    10_000
}
fn default_min_backoff() -> u64 {
    500
}
fn default_max_backoff() -> u64 {
    30_000
}

/// The disk buffer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Folder of the buffer's segment files (created when missing).
    pub dir: PathBuf,
    /// Most readings kept; past it the oldest segments are dropped and counted.
    pub max_readings: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("haltless-agent-buffer"),
            max_readings: 5_000_000,
        }
    }
}

/// The agent's HTTP listener: `GET /healthz` and `GET /metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentHttpConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
}

impl Default for AgentHttpConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:9464".into(),
        }
    }
}

/// Why a site file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or missing settings.
    #[error("{0}")]
    Syntax(String),
    /// A source definition is invalid.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Sources(Vec<FieldError>),
}

impl AgentConfig {
    /// Reads a site file.
    pub fn load(path: &Path) -> Result<Self, AgentConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses a site file's text.
    pub fn parse(text: &str) -> Result<Self, AgentConfigError> {
        toml::from_str(text).map_err(|e| AgentConfigError::Syntax(e.to_string()))
    }

    /// The named, validated sources; every problem is reported, prefixed by `sources[i]`.
    pub fn sources(&self) -> Result<Vec<(String, SourceSpec)>, AgentConfigError> {
        let mut errors = Vec::new();
        let mut out = Vec::new();
        for (i, raw) in self.sources.iter().enumerate() {
            let mut raw = raw.clone();
            let name = raw
                .as_object_mut()
                .and_then(|o| o.remove("name"))
                .and_then(|n| n.as_str().map(str::to_owned));
            let Some(name) = name else {
                errors.push(FieldError::new(format!("sources[{i}].name"), "is required"));
                continue;
            };
            match SourceSpec::from_json(raw) {
                Ok(spec) => out.push((name, spec)),
                Err(problems) => errors.extend(
                    problems
                        .into_iter()
                        .map(|e| FieldError::new(format!("sources[{i}].{}", e.field), e.reason)),
                ),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(AgentConfigError::Sources(errors))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_site_file() {
        let config = AgentConfig::parse(
            r#"
            [cloud]
            url = "http://127.0.0.1:8080"
            api_key = "hlk_x"
            [buffer]
            dir = "/tmp/b"
            max_readings = 100
            [[sources]]
            name = "plc"
            protocol = "modbus_tcp"
            endpoint = "127.0.0.1:502"
            [[sources.points]]
            machine = "press-01"
            metric = "temp"
            register = "holding"
            address = 0
            data_type = "f32"
            word_order = "little"
            "#,
        )
        .unwrap();
        assert_eq!(config.buffer.max_readings, 100);
        let sources = config.sources().unwrap();
        assert_eq!(sources[0].0, "plc");
        assert!(
            !format!("{config:?}").contains("hlk_x"),
            "the key never prints"
        );
    }

    #[test]
    fn names_bad_sources_by_position() {
        let config = AgentConfig::parse(
            r#"
            [cloud]
            url = "http://x"
            api_key = "k"
            [[sources]]
            name = "plc"
            protocol = "modbus_tcp"
            endpoint = "nope"
            points = []
            "#,
        )
        .unwrap();
        let e = config.sources().unwrap_err().to_string();
        assert!(
            e.contains("sources[0].endpoint") && e.contains("sources[0].points"),
            "{e}"
        );
        assert!(AgentConfig::parse("[cloud]\nurl = 1").is_err());
    }
}
