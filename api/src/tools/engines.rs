//! The demo's turbofan engines: machines that degrade to failure, so that a new user sees remaining useful
//! life count down, an alert before the end, and a replacement start a new life.
//!
//! At start the simulator trains a model through the API from simulated run-to-failure engines
//! ([`cmapss::simulate`], so it needs no data set on disk) with the quick recipe, activates it for the
//! machines tagged `turbofan`, then replays a simulated engine per machine, one cycle every interval (its 3
//! operational settings and 21 sensors as metrics `setting1` … `s21`). The engines start at different
//! points of their lives (their first cycles are sent at once), so one nears its end within minutes. At the
//! end of a life the simulator records a replacement and the machine starts a fresh engine.

use std::time::Duration;

use anyhow::Context as _;
use haltless_processors::prediction::cmapss::{self, Run};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::simulate::sign_in;

/// The tag of the demo's engines; the model serves the machines with it.
pub const TAG: &str = "turbofan";
/// The name of the demo's model; a ready model of this name is reused.
pub const MODEL_NAME: &str = "demo turbofans (simulated C-MAPSS)";

/// The engines to run.
#[derive(Debug, Clone)]
pub struct EnginesConfig {
    /// Base URL of the platform.
    pub url: String,
    /// API key with the ingest scope.
    pub api_key: String,
    /// Email and password of an admin (registers the machines, trains and activates the model, records
    /// replacements); the simulator signs in again when its access token expires.
    pub login: (String, String),
    /// How many engines (machines `engine-01` …).
    pub engines: usize,
    /// Time between two cycles of an engine.
    pub cycle: Duration,
}

struct Api<'a> {
    client: reqwest::Client,
    config: &'a EnginesConfig,
    token: std::sync::Mutex<String>,
}

impl Api<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.config.url.trim_end_matches('/'))
    }

    async fn sign_in(&self) -> anyhow::Result<String> {
        let (email, password) = &self.config.login;
        let token = sign_in(&self.client, &self.config.url, email, password).await?;
        if let Ok(mut t) = self.token.lock() {
            t.clone_from(&token);
        }
        Ok(token)
    }

    /// Calls the API as the admin, signing in again once when the token expired.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut token = self.token.lock().map(|t| t.clone()).unwrap_or_default();
        for attempt in 0..2 {
            let mut req = self
                .client
                .request(method.clone(), self.url(path))
                .bearer_auth(&token);
            if let Some(body) = body {
                req = req.json(body);
            }
            let response = req
                .send()
                .await
                .with_context(|| format!("calling {path}"))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                token = self.sign_in().await?;
                continue;
            }
            return Ok((status, response.json().await.unwrap_or(Value::Null)));
        }
        anyhow::bail!("{path}: still unauthorised after signing in again")
    }

    async fn ingest(&self, readings: &[Value]) {
        for chunk in readings.chunks(5_000) {
            match self
                .client
                .post(self.url("/ingest"))
                .header("x-api-key", &self.config.api_key)
                .json(&json!({ "readings": chunk }))
                .send()
                .await
            {
                Ok(r) if r.status() == StatusCode::ACCEPTED => {}
                Ok(r) => tracing::warn!(status = %r.status(), "engine readings refused"),
                Err(e) => tracing::warn!(error = %e, "engine readings not sent"),
            }
        }
    }
}

/// The ready demo model, trained now if the tenant has none; returns its id.
async fn model(api: &Api<'_>) -> anyhow::Result<String> {
    let (_, list) = api.call(reqwest::Method::GET, "/models", None).await?;
    let existing = list["models"].as_array().and_then(|models| {
        models
            .iter()
            .find(|m| m["name"] == MODEL_NAME && m["status"] == "ready")
            .and_then(|m| m["id"].as_str().map(str::to_owned))
    });
    let id = match existing {
        Some(id) => id,
        None => {
            let body = json!({"name": MODEL_NAME, "csv": cmapss::simulate(12, 7), "quick": true});
            let (status, m) = api
                .call(reqwest::Method::POST, "/models", Some(&body))
                .await?;
            anyhow::ensure!(
                status == StatusCode::ACCEPTED,
                "training the demo model: {status}: {m}"
            );
            m["id"].as_str().context("no model id")?.to_owned()
        }
    };
    loop {
        let (_, m) = api
            .call(reqwest::Method::GET, &format!("/models/{id}"), None)
            .await?;
        match m["status"].as_str() {
            Some("ready") => return Ok(id),
            Some("training") => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => anyhow::bail!("the demo model did not train: {m}"),
        }
    }
}

/// A machine's engine: its current run and where it is in it.
struct Engine {
    name: String,
    run: Run,
    at: usize,
    lives: u64,
}

/// One cycle's readings.
fn cycle_readings(machine: &str, run: &Run, at: usize, ts: i64) -> Vec<Value> {
    let c = &run.cycles[at];
    let settings = c
        .settings
        .iter()
        .enumerate()
        .map(|(j, v)| (cmapss::setting_name(j), *v));
    let sensors = c
        .sensors
        .iter()
        .enumerate()
        .map(|(j, v)| (cmapss::sensor_name(j), *v));
    settings
        .chain(sensors)
        .map(|(metric, value)| json!({"machine": machine, "metric": metric, "ts": ts, "value": value}))
        .collect()
}

/// A fresh simulated engine for `machine`'s `life`-th life.
fn fresh_run(machine: usize, life: u64) -> anyhow::Result<Run> {
    let seed = 1_000 + machine as u64 * 7_919 + life * 104_729;
    cmapss::parse(&cmapss::simulate(1, seed))?
        .pop()
        .context("the simulator made no engine")
}

/// Registers the engines, trains and activates the model, then runs the engines until cancelled.
pub async fn run(config: EnginesConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let api = Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        config: &config,
        token: std::sync::Mutex::new(String::new()),
    };
    api.sign_in().await?;
    let mut engines = Vec::new();
    for i in 0..config.engines {
        let name = format!("engine-{:02}", i + 1);
        let (status, answer) = api
            .call(
                reqwest::Method::POST,
                "/machines",
                Some(&json!({"name": name, "tags": [TAG]})),
            )
            .await?;
        anyhow::ensure!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "registering {name}: {status}: {answer}"
        );
        engines.push(Engine {
            name,
            run: fresh_run(i, 0)?,
            at: 0,
            lives: 0,
        });
    }
    let id = model(&api).await?;
    let (status, answer) = api
        .call(
            reqwest::Method::POST,
            &format!("/models/{id}/activate"),
            Some(&json!({"tags": [TAG]})),
        )
        .await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "activating the demo model: {status}: {answer}"
    );
    tracing::info!(model = %id, engines = config.engines, "demo engines running");

    // The engines start at different points of their lives: the first part is sent at once, a
    // millisecond apart in event time (the model applies from its activation on, so not in the past).
    let now = crate::time::now_ms();
    let count = engines.len().max(1);
    let mut burst = Vec::new();
    for (i, e) in engines.iter_mut().enumerate() {
        let life = e.run.cycles.len();
        e.at = (life - 25) * i / count;
        for at in 0..e.at {
            burst.extend(cycle_readings(&e.name, &e.run, at, now + at as i64));
        }
    }
    api.ingest(&burst).await;

    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + config.cycle, config.cycle);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let ts = crate::time::now_ms();
        let mut readings = Vec::new();
        for (i, e) in engines.iter_mut().enumerate() {
            if e.at >= e.run.cycles.len() {
                // The engine failed: a replacement, and a new engine's life from the next cycle on.
                let body = json!({"machine": e.name, "kind": "replacement", "performed_at": (ts - 1).to_string(),
                                  "notes": "engine replaced at the end of its life (demo)"});
                match api
                    .call(reqwest::Method::POST, "/maintenance-events", Some(&body))
                    .await
                {
                    Ok((StatusCode::CREATED, _)) => {}
                    other => {
                        tracing::warn!(machine = %e.name, answer = ?other, "replacement not recorded")
                    }
                }
                e.lives += 1;
                e.run = fresh_run(i, e.lives)?;
                e.at = 0;
            }
            readings.extend(cycle_readings(&e.name, &e.run, e.at, ts));
            e.at += 1;
        }
        api.ingest(&readings).await;
    }
}
