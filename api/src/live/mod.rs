//! The dashboard WebSocket, `GET /api/v1/ws/dashboard`: live readings, alerts, actions, machine
//! statuses, predictions and notifications for the tenant's machines.
//!
//! - [`protocol`]: the messages and close codes (protocol version 1).
//! - [`hub`]: per tenant, the latest value of each series and a bounded log of changes.
//! - [`feed`]: the instance's one Kafka reader that fills the hub.
//! - [`notices`]: the notifications' deliveries, heard from PostgreSQL.
//! - [`socket`]: one socket: sign-in, subscriptions, flow control, revocation.
//! - [`config`]: `[live]` settings.
//!
//! Every API instance runs one feed and serves its own sockets, so any number of instances behind a load
//! balancer each carry their share of the sockets.

pub mod config;
pub mod feed;
pub mod hub;
pub mod notices;
pub mod protocol;
pub mod socket;

use std::collections::HashMap;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use config::LiveConfig;
pub use hub::Live;
use hub::{Feed, Status};

use crate::state::AppState;

/// `GET /api/v1/ws/dashboard`.
pub fn router() -> Router<AppState> {
    Router::new().route("/ws/dashboard", get(socket::dashboard))
}

/// Loads the statuses of every active machine of the feed's tenant, logging the changes.
pub async fn load_statuses(state: &AppState, feed: &Feed) {
    match crate::routes::fleet::statuses_of(state, feed.tenant, None).await {
        Ok(all) => {
            let now: HashMap<_, _> = all
                .into_iter()
                .map(|m| {
                    let status = Status {
                        name: m.name,
                        status: m.status,
                        open_alerts: m.open_alerts,
                    };
                    (m.id, status)
                })
                .collect();
            feed.lock().set_statuses(now);
        }
        Err(e) => tracing::debug!(error = ?e, tenant = %feed.tenant, "live: statuses not loaded"),
    }
}

/// Runs the feed, the hub's ticker and the status refresher until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = state.settings().live.clone();
    let hub = state.live().hub.clone();
    let ticker = {
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        let interval = Duration::from_millis(config.series_interval_ms);
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(config.tick_ms.max(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !shutdown.is_cancelled() {
                tick.tick().await;
                hub.tick(interval);
            }
        }
    };
    let statuses = {
        let (state, hub, shutdown) = (state.clone(), hub.clone(), shutdown.clone());
        async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(config.status_interval_ms.max(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !shutdown.is_cancelled() {
                tick.tick().await;
                for feed in hub.live_feeds() {
                    load_statuses(&state, &feed).await;
                }
            }
        }
    };
    let reader = async {
        while !shutdown.is_cancelled() {
            if let Err(e) = feed::run(state.clone(), hub.clone(), shutdown.clone()).await {
                tracing::warn!(error = %e, "live feed stopped; starting again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let notices = notices::follow(state.clone(), hub.clone(), shutdown.clone());
    tokio::select! {
        () = ticker => {}
        () = statuses => {}
        () = reader => {}
        () = notices => {}
        () = shutdown.cancelled() => {}
    }
    Ok(())
}
