//! The engine's clock: every tick, the escalation steps that are due become notifications, recorded
//! (with one key per alert, firing and channel) in the same transaction that moves the escalation on,
//! before anything is sent. Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several engines share
//! the work and a killed one leaves nothing half done.

use std::collections::{BTreeMap, HashMap};

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::channels;
use super::config::AlertingConfig;
use super::intake::policies;
use super::message::{AlertSummary, Message, NoticeKind};
use super::mutes::{labels, MachineLabels, Mutes};
use super::policy::{PolicySpec, Step};
use super::record::{record, Notice};
use crate::runtime::ProcessorError;

/// Most escalations taken per tick.
const BATCH: i64 = 500;

#[derive(Debug, sqlx::FromRow)]
struct Due {
    tenant_id: Uuid,
    alert_id: Uuid,
    machine_id: Uuid,
    policy_id: Option<Uuid>,
    group_key: String,
    firings: i32,
    summary: sqlx::types::Json<AlertSummary>,
}

/// The tenant's channels among `wanted` (a policy may name a channel deleted since), with their kinds.
async fn existing_channels(
    tx: &mut PgConnection,
    tenant: Uuid,
    wanted: &[Uuid],
) -> Result<Vec<(Uuid, String)>, ProcessorError> {
    Ok(sqlx::query_as(
        "SELECT id, kind FROM notification_channels WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(wanted)
    .fetch_all(&mut *tx)
    .await?)
}

/// Who a channel tells for `step`: one notification, or, for a push channel, one per browser
/// subscribed with it by the people the step names (everyone subscribed, when it names nobody).
async fn recipients(
    tx: &mut PgConnection,
    tenant: Uuid,
    (channel, kind): &(Uuid, String),
    step: &Step,
) -> Result<Vec<Option<Uuid>>, ProcessorError> {
    if kind != channels::PUSH {
        return Ok(vec![None]);
    }
    let roles: Vec<&str> = step.roles.iter().map(|r| r.as_str()).collect();
    let subscriptions: Vec<Uuid> = sqlx::query_scalar(
        "SELECT s.id FROM push_subscriptions s JOIN users u ON u.id = s.user_id
         WHERE s.tenant_id = $1 AND s.channel_id = $2 AND u.active
           AND ($5 OR u.id = ANY($3) OR u.role = ANY($4))
         ORDER BY s.created_at, s.id",
    )
    .bind(tenant)
    .bind(channel)
    .bind(&step.users)
    .bind(&roles)
    .bind(!step.names_people())
    .fetch_all(&mut *tx)
    .await?;
    Ok(subscriptions.into_iter().map(Some).collect())
}

/// One tick: resumes ended snoozes, fires the due steps, records resolution notices. Returns the
/// notifications recorded.
pub async fn tick(pool: &PgPool, config: &AlertingConfig) -> Result<usize, ProcessorError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE alert_escalations SET state = 'escalating', next_at = now(), snoozed_until = NULL, updated_at = now()
         WHERE state = 'snoozed' AND snoozed_until <= now()",
    )
    .execute(&mut *tx)
    .await?;
    let due: Vec<Due> = sqlx::query_as(
        "SELECT tenant_id, alert_id, machine_id, policy_id, group_key, firings, summary FROM alert_escalations
         WHERE state = 'escalating' AND next_at <= now() ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_tenant: BTreeMap<Uuid, Vec<Due>> = BTreeMap::new();
    for d in due {
        by_tenant.entry(d.tenant_id).or_default().push(d);
    }
    let mut recorded = 0;
    for (tenant, due) in by_tenant {
        recorded += fire_tenant(&mut tx, config, tenant, due).await?;
    }
    recorded += super::notices::resolved(&mut tx).await?;
    tx.commit().await?;
    Ok(recorded)
}

/// Fires one tenant's due escalations, group by group.
async fn fire_tenant(
    tx: &mut PgConnection,
    config: &AlertingConfig,
    tenant: Uuid,
    due: Vec<Due>,
) -> Result<usize, ProcessorError> {
    let policies: HashMap<Uuid, PolicySpec> = policies(tx, tenant).await?.into_iter().collect();
    let machine_ids: Vec<Uuid> = due.iter().map(|d| d.machine_id).collect();
    let machines: HashMap<Uuid, MachineLabels> = sqlx::query_as::<_, MachineLabels>(
        "SELECT id, tags, site FROM machines WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(&machine_ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|m| (m.id, m))
    .collect();
    let mutes = Mutes::load(tx, tenant, &machine_ids).await?;
    let mut groups: BTreeMap<(Uuid, String, i32), Vec<Due>> = BTreeMap::new();
    for d in due {
        let Some(policy) = d.policy_id.filter(|p| policies.contains_key(p)) else {
            // Its policy was deleted: nothing left to escalate to.
            set_state(tx, tenant, &[d.alert_id], "done").await?;
            continue;
        };
        let l = labels(&d.summary, machines.get(&d.machine_id));
        if let Some(muted_by) = mutes.muting(d.alert_id, d.machine_id, &l) {
            sqlx::query(
                "UPDATE alert_escalations SET muted_by = $3, next_at = now() + make_interval(secs => $4), updated_at = now()
                 WHERE tenant_id = $1 AND alert_id = $2",
            )
            .bind(tenant)
            .bind(d.alert_id)
            .bind(muted_by)
            .bind(config.mute_recheck_secs as f64)
            .execute(&mut *tx)
            .await?;
            continue;
        }
        groups
            .entry((policy, d.group_key.clone(), d.firings))
            .or_default()
            .push(d);
    }
    let mut recorded = 0;
    for ((policy_id, group, firing), alerts) in groups {
        let ids: Vec<Uuid> = alerts.iter().map(|a| a.alert_id).collect();
        let Some((step, next)) = policies
            .get(&policy_id)
            .and_then(|p| p.firing(firing as usize))
        else {
            set_state(tx, tenant, &ids, "done").await?;
            continue;
        };
        let policy = policies.get(&policy_id).map(|p| p.name.clone());
        for channel in existing_channels(tx, tenant, &step.channels).await? {
            for recipient in recipients(tx, tenant, &channel, step).await? {
                let message = Message {
                    version: 1,
                    id: Uuid::new_v4(),
                    kind: NoticeKind::Alert,
                    tenant_id: tenant,
                    policy: policy.clone(),
                    step: Some(firing),
                    group: group.clone(),
                    alerts: alerts.iter().map(|a| a.summary.0.clone()).collect(),
                };
                let notice = Notice {
                    tenant,
                    channel: channel.0,
                    message,
                    firing,
                    recipient,
                };
                recorded += usize::from(record(tx, notice).await?);
            }
        }
        sqlx::query(
            "UPDATE alert_escalations SET firings = firings + 1, muted_by = NULL, updated_at = now(), fired_at = now(),
                state = CASE WHEN $3::float8 IS NULL THEN 'done' ELSE state END,
                next_at = CASE WHEN $3::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $3) END
             WHERE tenant_id = $1 AND alert_id = ANY($2)",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(next.map(f64::from))
        .execute(&mut *tx)
        .await?;
    }
    Ok(recorded)
}

async fn set_state(
    tx: &mut PgConnection,
    tenant: Uuid,
    alerts: &[Uuid],
    state: &str,
) -> Result<(), ProcessorError> {
    sqlx::query(
        "UPDATE alert_escalations SET state = $3, next_at = NULL, updated_at = now()
         WHERE tenant_id = $1 AND alert_id = ANY($2)",
    )
    .bind(tenant)
    .bind(alerts)
    .bind(state)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
