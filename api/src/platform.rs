//! What platform operators do with `haltless tenant ...`: create tenants (with a first admin), list them,
//! change their tier, override their limits.

use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::passwords::{check_policy, hash_password, PasswordError};
use crate::tenants::{TenantLimits, Tier};

/// Why a tenant command failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// No tenant has that name or id.
    #[error("no tenant `{0}`")]
    NoTenant(String),
    /// The name or the admin's email is taken.
    #[error("a tenant named `{0}` or a user with that email exists already")]
    Exists(String),
    /// The admin's password breaks the policy.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

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
pub async fn find_tenant(pool: &PgPool, tenant: &str) -> Result<Uuid, PlatformError> {
    let by_id = Uuid::parse_str(tenant).ok();
    sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1 OR name = $2")
        .bind(by_id)
        .bind(tenant)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| PlatformError::NoTenant(tenant.to_owned()))
}

/// Creates a tenant, and its first admin when `admin` (email, password) is given, in one transaction;
/// returns what it made.
pub async fn create(
    pool: &PgPool,
    name: &str,
    tier: Tier,
    admin: Option<(&str, &str)>,
) -> Result<String, PlatformError> {
    let exists = |e: sqlx::Error| {
        if unique_violation(&e) {
            PlatformError::Exists(name.to_owned())
        } else {
            PlatformError::Database(e)
        }
    };
    let hash = match admin {
        Some((_, password)) => {
            check_policy(password)?;
            Some(hash_password(password)?)
        }
        None => None,
    };
    let mut tx = pool.begin().await?;
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO tenants (id, name, tier) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(tier.as_str())
        .execute(&mut *tx)
        .await
        .map_err(exists)?;
    let mut out = format!("tenant {name} ({id}) created on the {} tier", tier.as_str());
    if let (Some((email, _)), Some(hash)) = (admin, hash) {
        let user = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, password_hash, role) VALUES ($1, $2, lower($3), $4, 'admin')",
        )
        .bind(user)
        .bind(id)
        .bind(email)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(exists)?;
        out.push_str(&format!("\nadmin {email} ({user}) created"));
    }
    tx.commit().await?;
    Ok(out)
}

/// A table of every tenant with its tier, limits in force and usage.
pub async fn list(pool: &PgPool) -> Result<String, PlatformError> {
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
pub async fn set_tier(pool: &PgPool, tenant: &str, tier: Tier) -> Result<String, PlatformError> {
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
) -> Result<String, PlatformError> {
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
    let l = crate::tenants::load_limits(pool, id)
        .await?
        .ok_or_else(|| PlatformError::NoTenant(tenant.to_owned()))?;
    Ok(format!(
        "tenant {tenant}: {} machines, {} writes and {} reads per minute",
        l.max_machines, l.writes_per_minute, l.reads_per_minute
    ))
}
