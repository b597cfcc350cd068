//! Notifications for the dashboard sockets: PostgreSQL says which notification was recorded or changed
//! status (`NOTIFY haltless_notifications`, migration 0026), so every instance hears every delivery
//! whichever alert engine made it; the instance reads the row only when a socket of its tenant is open.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::hub::Hub;
use crate::routes::silences::notification_for_live;
use crate::state::AppState;

/// The channel migration 0026's triggers notify.
pub const CHANNEL: &str = "haltless_notifications";

#[derive(Deserialize)]
struct Changed {
    tenant_id: Uuid,
    id: Uuid,
}

/// Listens until `shutdown`. After a lost connection it listens again on a new one; what changed meanwhile
/// is not sent (the delivery log, `GET /notifications`, has it).
pub async fn run(
    state: AppState,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(state.pool()).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let notice = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            n = listener.try_recv() => n?,
        };
        let Some(notice) = notice else {
            tracing::warn!("live notifications: connection lost; listening again");
            continue;
        };
        let Ok(changed) = serde_json::from_str::<Changed>(notice.payload()) else {
            continue;
        };
        if !hub.watches(changed.tenant_id) {
            continue;
        }
        match notification_for_live(state.pool(), changed.tenant_id, changed.id).await {
            Ok(Some((machines, view))) => hub.on_notification(changed.tenant_id, machines, view),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "live: notification not read"),
        }
    }
}

/// Restarts [`run`] after a failure, a second later, until `shutdown`.
pub async fn follow(state: AppState, hub: Arc<Hub>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(e) = run(state.clone(), hub.clone(), shutdown.clone()).await {
            tracing::warn!(error = %e, "live notifications stopped; starting again in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
