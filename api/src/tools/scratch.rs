//! A throw-away database on the configured PostgreSQL for one benchmark run.

use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::Settings;

/// A database made for one run; [`ScratchDatabase::remove`] drops it.
pub struct ScratchDatabase {
    admin: PgConnection,
    name: String,
    /// A pool on it.
    pub pool: PgPool,
}

impl ScratchDatabase {
    /// Creates database `name` with the given per-database settings (`ALTER DATABASE … SET key = 'value'`)
    /// and connects to it.
    pub async fn create(
        settings: &Settings,
        name: &str,
        options: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let admin_url = settings.database.url.expose_secret().to_owned();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .context("PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await?;
        for (key, value) in options {
            sqlx::query(&format!("ALTER DATABASE \"{name}\" SET {key} = '{value}'"))
                .execute(&mut admin)
                .await?;
        }
        let base = &admin_url[..admin_url.rfind('/').unwrap_or(admin_url.len())];
        let pool = PgPool::connect(&format!("{base}/{name}")).await?;
        Ok(Self {
            admin,
            name: name.to_owned(),
            pool,
        })
    }

    /// Closes the pool and drops the database.
    pub async fn remove(mut self) -> anyhow::Result<()> {
        self.pool.close().await;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await?;
        Ok(())
    }
}
