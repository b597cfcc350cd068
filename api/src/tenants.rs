//! Tenants and their tiers, and creation of tenants, users and API keys, shared by the CLI, sign-up, the
//! demo and the tests.

use std::path::Path;

use anyhow::Context as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{generate_key, hash_key, NewKey, Scope};
pub use haltless_connectors::admission::quota::load_limits;
pub use haltless_schemas::tier::{TenantLimits, Tier};

/// Creates a tenant and returns its id.
pub async fn create_tenant(pool: &PgPool, name: &str, tier: Tier) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO tenants (id, name, tier) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(tier.as_str())
        .execute(pool)
        .await?;
    Ok(id)
}

/// Creates an API key with `scopes` for `tenant`; the returned secret is not stored anywhere.
pub async fn create_api_key(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    scopes: &[Scope],
) -> Result<NewKey, sqlx::Error> {
    let key = generate_key();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query("INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(Uuid::new_v4())
        .bind(tenant)
        .bind(name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(&scopes)
        .execute(pool)
        .await?;
    Ok(key)
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Ok(crate::auth::passwords::hash_password(password)?)
}

/// Creates or updates the user `email` of `tenant` with `role` and `password`.
pub async fn upsert_user(
    pool: &PgPool,
    tenant: Uuid,
    email: &str,
    password: &str,
    role: &str,
) -> anyhow::Result<Uuid> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (id, tenant_id, email, password_hash, role) VALUES ($1, $2, lower($3), $4, $5)
         ON CONFLICT (tenant_id, email) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role
         RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(tenant)
    .bind(email)
    .bind(hash_password(password)?)
    .bind(role)
    .fetch_one(pool)
    .await?;
    Ok(id)
}

/// The demo tenant's name.
pub const DEMO_TENANT: &str = "demo";
/// The demo admin's email.
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.haltless.local";

/// Creates the demo tenant, its admin and an ingest+read API key, and writes them to `env_file` as
/// `HALTLESS_URL`, `HALTLESS_API_KEY`, `HALTLESS_ADMIN_EMAIL` and `HALTLESS_ADMIN_PASSWORD`.
/// When `env_file` already holds a key that still works, it is kept as it is.
pub async fn seed_demo(pool: &PgPool, env_file: &Path, url: &str) -> anyhow::Result<()> {
    // The simulator posts for ever and people try things on the demo: the largest tier, also for a demo
    // tenant seeded before tiers were enforced.
    sqlx::query("UPDATE tenants SET tier = 'enterprise' WHERE name = $1 AND tier <> 'enterprise'")
        .bind(DEMO_TENANT)
        .execute(pool)
        .await?;
    if let Ok(existing) = std::fs::read_to_string(env_file) {
        let key = existing
            .lines()
            .find_map(|l| l.strip_prefix("HALTLESS_API_KEY="))
            .unwrap_or_default();
        let valid: Option<Uuid> = sqlx::query_scalar(
            "SELECT k.id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND t.name = $2",
        )
        .bind(hash_key(key))
        .bind(DEMO_TENANT)
        .fetch_optional(pool)
        .await?;
        if valid.is_some() && existing.contains(&format!("HALTLESS_URL={url}\n")) {
            return Ok(());
        }
    }
    let tenant = match sqlx::query_scalar::<_, Uuid>("SELECT id FROM tenants WHERE name = $1")
        .bind(DEMO_TENANT)
        .fetch_optional(pool)
        .await?
    {
        Some(id) => id,
        None => create_tenant(pool, DEMO_TENANT, Tier::Enterprise).await?,
    };

    let password = hex::encode(rand::random::<[u8; 12]>());
    upsert_user(pool, tenant, DEMO_ADMIN_EMAIL, &password, "admin").await?;
    let key = create_api_key(pool, tenant, "demo", &[Scope::Ingest, Scope::Read]).await?;
    if let Some(dir) = env_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!(
        "HALTLESS_URL={url}\nHALTLESS_API_KEY={}\nHALTLESS_ADMIN_EMAIL={DEMO_ADMIN_EMAIL}\nHALTLESS_ADMIN_PASSWORD={password}\n",
        key.secret
    );
    std::fs::write(env_file, text).with_context(|| format!("writing {}", env_file.display()))?;
    Ok(())
}
