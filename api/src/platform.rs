//! What platform operators do with `haltless tenant ...`: create tenants (with a first admin), list them,
//! change their tier, override their limits.

use anyhow::Context as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::tenants::{create_tenant, upsert_user, TenantLimits, Tier};

/// A limit override: a number, or back to the tier's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// Use the tier's figure.
    Tier,
    /// Use this number.
    Value(u32),
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tier" | "default" => Ok(Override::Tier),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|v| *v <= i32::MAX as u32)
                .map(Override::Value)
                .ok_or_else(|| format!("`{s}` is neither a whole number nor `tier`")),
        }
    }
}

/// Finds a tenant by id or by name.
pub async fn find_tenant(pool: &PgPool, tenant: &str) -> anyhow::Result<Uuid> {
    let by_id = Uuid::parse_str(tenant).ok();
    sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1 OR name = $2")
        .bind(by_id)
        .bind(tenant)
        .fetch_optional(pool)
        .await?
        .with_context(|| format!("no tenant `{tenant}`"))
}

/// Creates a tenant, and its first admin when `admin` (email, password) is given; prints what it made.
pub async fn create(
    pool: &PgPool,
    name: &str,
    tier: Tier,
    admin: Option<(&str, &str)>,
) -> anyhow::Result<String> {
    let id = create_tenant(pool, name, tier)
        .await
        .with_context(|| format!("creating tenant `{name}` (names are unique)"))?;
    let mut out = format!("tenant {name} ({id}) created on the {} tier", tier.as_str());
    if let Some((email, password)) = admin {
        crate::auth::passwords::check_policy(password)?;
        let user = upsert_user(pool, id, email, password, "admin").await?;
        out.push_str(&format!("\nadmin {email} ({user}) created"));
    }
    Ok(out)
}

/// A table of every tenant with its tier, limits in force and usage.
pub async fn list(pool: &PgPool) -> anyhow::Result<String> {
    type Row = (
        Uuid,
        String,
        String,
        Option<i32>,
        Option<i32>,
        Option<i32>,
        i64,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT t.id, t.name, t.tier, t.max_machines, t.writes_per_minute, t.reads_per_minute,
                (SELECT count(*) FROM machines m WHERE m.tenant_id = t.id),
                (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.active)
         FROM tenants t ORDER BY t.name",
    )
    .fetch_all(pool)
    .await?;
    let mut out = format!(
        "{:<36}  {:<24} {:<10} {:>9} {:>8} {:>8} {:>9} {:>6}\n",
        "id", "name", "tier", "machines", "writes/m", "reads/m", "retention", "users"
    );
    for (id, name, tier, m, w, r, machines, users) in rows {
        let l = TenantLimits::from_row(Tier::parse(&tier), m, w, r);
        out.push_str(&format!(
            "{id}  {name:<24} {tier:<10} {:>9} {:>8} {:>8} {:>8}d {users:>6}\n",
            format!("{machines}/{}", l.max_machines),
            l.writes_per_minute,
            l.reads_per_minute,
            l.retention_days
        ));
    }
    Ok(out)
}

/// Moves a tenant to another tier.
pub async fn set_tier(pool: &PgPool, tenant: &str, tier: Tier) -> anyhow::Result<String> {
    let id = find_tenant(pool, tenant).await?;
    sqlx::query("UPDATE tenants SET tier = $2 WHERE id = $1")
        .bind(id)
        .bind(tier.as_str())
        .execute(pool)
        .await?;
    Ok(format!(
        "tenant {tenant} is now on the {} tier",
        tier.as_str()
    ))
}

/// Overrides some of a tenant's limits; `None` leaves a limit as it is.
pub async fn set_limits(
    pool: &PgPool,
    tenant: &str,
    max_machines: Option<Override>,
    writes_per_minute: Option<Override>,
    reads_per_minute: Option<Override>,
) -> anyhow::Result<String> {
    let id = find_tenant(pool, tenant).await?;
    // (change it?, new value) per column; Override::Tier stores NULL.
    let col = |o: Option<Override>| match o {
        None => (false, None),
        Some(Override::Tier) => (true, None),
        Some(Override::Value(v)) => (true, Some(v as i32)),
    };
    let ((cm, m), (cw, w), (cr, r)) = (
        col(max_machines),
        col(writes_per_minute),
        col(reads_per_minute),
    );
    sqlx::query(
        "UPDATE tenants SET
            max_machines = CASE WHEN $2 THEN $3 ELSE max_machines END,
            writes_per_minute = CASE WHEN $4 THEN $5 ELSE writes_per_minute END,
            reads_per_minute = CASE WHEN $6 THEN $7 ELSE reads_per_minute END
         WHERE id = $1",
    )
    .bind(id)
    .bind(cm)
    .bind(m)
    .bind(cw)
    .bind(w)
    .bind(cr)
    .bind(r)
    .execute(pool)
    .await?;
    let l = TenantLimits::load(pool, id)
        .await?
        .context("tenant vanished")?;
    Ok(format!(
        "tenant {tenant}: {} machines, {} writes and {} reads per minute",
        l.max_machines, l.writes_per_minute, l.reads_per_minute
    ))
}
