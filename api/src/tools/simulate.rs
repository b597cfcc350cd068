//! A small plant simulator: registers demo machines and posts their readings through the gateway, as an
//! edge agent would, with faults on a schedule ([`super::faults`]).

use std::time::Duration;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::faults;

/// What to simulate and where to send it.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Base URL of the platform, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// API key with the ingest scope.
    pub api_key: String,
    /// Email and password of an operator or admin, to register the machines; without it they must exist.
    pub login: Option<(String, String)>,
    /// Machine names.
    pub machines: Vec<String>,
    /// Time between two readings of one machine.
    pub interval: Duration,
}

/// Signs in as `email` and returns an access token.
pub(crate) async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .context("signing in")?;
    anyhow::ensure!(
        response.status() == StatusCode::OK,
        "signing in as {email}: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token in the login answer")
}

/// Registers the machines (keeping those that exist) when a login is given, then posts one reading per
/// metric and machine every interval until cancelled. Failed posts are logged and the simulator carries on.
pub async fn run(config: SimulatorConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = config.url.trim_end_matches('/');
    let token = match &config.login {
        Some((email, password)) => Some(sign_in(&client, base, email, password).await?),
        None => None,
    };
    for name in config.machines.iter().filter(|_| token.is_some()) {
        let response = client
            .post(format!("{base}/api/v1/machines"))
            .bearer_auth(token.as_deref().unwrap_or_default())
            .json(&json!({ "name": name }))
            .send()
            .await
            .context("registering a machine")?;
        match response.status() {
            StatusCode::CREATED | StatusCode::CONFLICT => {}
            status => anyhow::bail!("registering {name}: {status}: {}", response.text().await?),
        }
    }
    let mut tick = tokio::time::interval(config.interval);
    let mut step: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let ts = crate::time::now_ms();
        let elapsed = step as f64 * config.interval.as_secs_f64();
        let readings: Vec<_> = config
            .machines
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                faults::apply(
                    faults::fault_at(i, elapsed),
                    machine_readings(m, i as f64, step, ts),
                )
            })
            .collect();
        match client
            .post(format!("{base}/api/v1/ingest"))
            .header("x-api-key", &config.api_key)
            .json(&json!({ "readings": readings }))
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::ACCEPTED => {}
            Ok(r) => tracing::warn!(status = %r.status(), "simulator post refused"),
            Err(e) => tracing::warn!(error = %e, "simulator post failed"),
        }
        step += 1;
    }
}

/// Readings of one machine at one step: a warm spindle with a slow swing, vibration and speed.
pub(crate) fn machine_readings(
    machine: &str,
    phase: f64,
    step: u64,
    ts: i64,
) -> Vec<serde_json::Value> {
    let t = step as f64;
    let wobble = ((t * 12.9898 + phase * 78.233).sin() * 43_758.547).fract();
    vec![
        json!({"machine": machine, "metric": "spindle_temp", "ts": ts,
               "value": 65.0 + 5.0 * (t / 60.0 + phase).sin() + wobble}),
        json!({"machine": machine, "metric": "vibration_rms", "ts": ts,
               "value": 2.0 + 0.3 * (t / 7.0 + phase).cos() + 0.1 * wobble}),
        json!({"machine": machine, "metric": "spindle_rpm", "ts": ts,
               "value": 1_450.0 + 20.0 * (t / 30.0).sin()}),
    ]
}
