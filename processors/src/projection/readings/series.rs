//! The ids of reading series: `readings` refers to each (tenant, machine, metric) by the id of its row in
//! `reading_series` (migration 0029). A series' id never changes, so a writer keeps every id it has seen.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

/// The series ids a writer knows, by machine and then metric (looked up by `&str`, without allocating).
#[derive(Debug, Default)]
pub struct SeriesIds {
    ids: HashMap<(Uuid, Uuid), HashMap<String, i32>>,
}

impl SeriesIds {
    /// The id of a series, if known.
    pub fn get(&self, tenant: Uuid, machine: Uuid, metric: &str) -> Option<i32> {
        self.ids.get(&(tenant, machine))?.get(metric).copied()
    }

    /// Learns the ids of the `wanted` series not known yet, making the series that do not exist. Runs
    /// on its own (not in a batch's transaction): a series made here stays even if the batch is rolled
    /// back, so the id remembered stays valid.
    pub async fn resolve(
        &mut self,
        pool: &PgPool,
        wanted: &[(Uuid, Uuid, &str)],
    ) -> Result<(), sqlx::Error> {
        let (mut tenants, mut machines, mut metrics) = (Vec::new(), Vec::new(), Vec::new());
        for &(tenant, machine, metric) in wanted {
            if self.get(tenant, machine, metric).is_none() {
                tenants.push(tenant);
                machines.push(machine);
                metrics.push(metric);
            }
        }
        if tenants.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i32, Uuid, Uuid, String)> =
            sqlx::query_as("SELECT * FROM haltless_series_ids($1, $2, $3)")
                .bind(&tenants)
                .bind(&machines)
                .bind(&metrics)
                .fetch_all(pool)
                .await?;
        for (id, tenant, machine, metric) in rows {
            self.learn(tenant, machine, metric, id);
        }
        Ok(())
    }

    /// Remembers the id of a series.
    pub(crate) fn learn(&mut self, tenant: Uuid, machine: Uuid, metric: String, id: i32) {
        self.ids
            .entry((tenant, machine))
            .or_default()
            .insert(metric, id);
    }
}
