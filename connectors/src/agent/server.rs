//! `haltless agent --config site.toml`: the edge agent with its HTTP endpoints, `/healthz` (the agent's
//! health as JSON) and `/metrics` (Prometheus text).

use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::AgentConfig;
use super::run::{Agent, AgentHealth};

/// Renders the process's metrics in Prometheus text format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// A started agent.
pub struct RunningAgent {
    /// The port of `/healthz` and `/metrics`.
    pub port: u16,
    /// The agent, for its health.
    pub agent: Arc<Agent>,
    /// Ends when the agent has stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Starts the agent and its HTTP listener; both stop when `shutdown` is cancelled.
pub async fn start(
    config: AgentConfig,
    metrics: RenderMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningAgent> {
    let agent = Arc::new(Agent::start(&config, shutdown.clone()).context("starting the agent")?);
    let listener = TcpListener::bind(&config.http.bind)
        .await
        .with_context(|| format!("binding {}", config.http.bind))?;
    let port = listener.local_addr()?.port();
    let app = Router::new()
        .route("/healthz", get(health))
        .route(
            "/metrics",
            get(move || {
                let render = metrics.clone();
                async move { render() }
            }),
        )
        .with_state(agent.clone());
    let handle = agent.clone();
    tracing::info!(port, "agent health on /healthz, metrics on /metrics");
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        handle.stopped().await;
        Ok(())
    });
    Ok(RunningAgent { port, agent, task })
}

async fn health(State(agent): State<Arc<Agent>>) -> Json<AgentHealth> {
    Json(agent.health())
}
