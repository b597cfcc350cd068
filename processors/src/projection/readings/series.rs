//! The ids of reading series: `readings` refers to each (tenant, machine, metric) by the id of its row in
//! `reading_series` (migration 0029). A series' id never changes, so a writer keeps every id it has seen.

use std::collections::{HashMap, HashSet};

use haltless_schemas::ReadingBatch;
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
        self.of_machine(tenant, machine)?.get(metric).copied()
    }

    /// The known ids of a machine's series, by metric: looked up once per batch, not per reading.
    pub(crate) fn of_machine(&self, tenant: Uuid, machine: Uuid) -> Option<&HashMap<String, i32>> {
        self.ids.get(&(tenant, machine))
    }

    /// The series of `items` whose id is not known yet, each once.
    pub fn unknown<'a>(&self, items: &'a [ReadingBatch]) -> Vec<(Uuid, Uuid, &'a str)> {
        let mut unknown = HashSet::new();
        for b in items {
            let known = self.of_machine(b.tenant_id, b.machine_id);
            for r in &b.readings {
                if known.is_none_or(|ids| !ids.contains_key(&r.metric)) {
                    unknown.insert((b.tenant_id, b.machine_id, r.metric.as_str()));
                }
            }
        }
        unknown.into_iter().collect()
    }

    /// Learns the ids of `series`, making the series that do not exist. Runs on its own (not in a batch's
    /// transaction): a series made here stays even if the batch is rolled back, so the id remembered stays
    /// valid.
    pub async fn resolve(
        &mut self,
        pool: &PgPool,
        series: &[(Uuid, Uuid, &str)],
    ) -> Result<(), sqlx::Error> {
        if series.is_empty() {
            return Ok(());
        }
        let tenants: Vec<Uuid> = series.iter().map(|s| s.0).collect();
        let machines: Vec<Uuid> = series.iter().map(|s| s.1).collect();
        let metrics: Vec<&str> = series.iter().map(|s| s.2).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use haltless_schemas::{Reading, Source};

    fn batch(machine: u128, metrics: &[&str]) -> ReadingBatch {
        ReadingBatch {
            tenant_id: Uuid::from_u128(1),
            machine_id: Uuid::from_u128(machine),
            machine: format!("m{machine}"),
            source: Source::Gateway,
            ingest_time_ms: 0,
            readings: metrics
                .iter()
                .enumerate()
                .map(|(i, m)| Reading {
                    metric: (*m).into(),
                    event_time_ms: i as i64,
                    value: 0.0,
                    quality: None,
                })
                .collect(),
        }
    }

    #[test]
    fn unknown_names_each_series_without_an_id_once() {
        let mut series = SeriesIds::default();
        series.learn(Uuid::from_u128(1), Uuid::from_u128(2), "temp".into(), 7);
        let items = [
            batch(2, &["temp", "rpm", "rpm"]),
            batch(3, &["temp"]),
            batch(2, &["rpm", "temp"]),
        ];
        let mut unknown = series.unknown(&items);
        unknown.sort();
        let (t, m2, m3) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert_eq!(unknown, vec![(t, m2, "rpm"), (t, m3, "temp")]);
        series.learn(t, m2, "rpm".into(), 8);
        series.learn(t, m3, "temp".into(), 9);
        assert!(series.unknown(&items).is_empty());
        assert_eq!(series.get(t, m3, "temp"), Some(9));
    }
}
