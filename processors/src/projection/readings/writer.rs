//! Bulk writes of reading batches: `COPY` straight into `readings`; when a reading of the batch is
//! already stored (same tenant, machine, metric and event time), the attempt is undone and the batch goes
//! through a staging table and one `INSERT ... ON CONFLICT DO NOTHING`, so nothing is ever doubled.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, SecondsFormat};
use haltless_schemas::{Codec, Quality, ReadingBatch};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::runtime::{Place, ProcessorError, Projection};

/// Materialises reading batches into `readings`.
#[derive(Debug)]
pub struct ReadingsProjection {
    codec: Codec,
    /// Months (year * 12 + month) whose partition is known to exist.
    months: BTreeSet<i32>,
    /// Per machine, the arrival time (ms) this instance last recorded in `machine_heartbeats`.
    heard: HashMap<(Uuid, Uuid), i64>,
}

impl ReadingsProjection {
    /// A projection decoding with `codec`.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            months: BTreeSet::new(),
            heard: HashMap::new(),
        }
    }
}

impl Projection for ReadingsProjection {
    type Item = ReadingBatch;

    fn name(&self) -> &str {
        "readings"
    }

    fn decode(&self, _at: Place, payload: &[u8]) -> Result<ReadingBatch, String> {
        ReadingBatch::decode(&self.codec, payload).map_err(|e| e.to_string())
    }

    async fn before_batch(
        &mut self,
        pool: &PgPool,
        items: &[ReadingBatch],
    ) -> Result<(), ProcessorError> {
        let months: BTreeSet<i32> = items
            .iter()
            .flat_map(|b| b.readings.iter())
            .filter_map(|r| DateTime::from_timestamp_millis(r.event_time_ms))
            .map(|t| t.year() * 12 + t.month0() as i32)
            .filter(|m| !self.months.contains(m))
            .collect();
        for month in months {
            let (year, month0) = (month.div_euclid(12), month.rem_euclid(12));
            let start = format!("{year:04}-{:02}-01T00:00:00Z", month0 + 1);
            sqlx::query(
                "SELECT haltless_ensure_readings_partitions($1::timestamptz, $1::timestamptz)",
            )
            .bind(&start)
            .execute(pool)
            .await?;
            self.months.insert(month);
        }
        Ok(())
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        items: &[ReadingBatch],
    ) -> Result<u64, ProcessorError> {
        if items.is_empty() {
            return Ok(0);
        }
        let data = copy_text_rows(items);
        // The fast path: straight into `readings`. A reading already stored (a client re-posting after a
        // lost answer, a batch replayed) breaks the key and undoes only this attempt; the batch then goes
        // the slow way, which skips what is there.
        sqlx::query("SAVEPOINT readings_copy")
            .execute(&mut *tx)
            .await?;
        match copy_into(tx, "readings", &data).await {
            Ok(copied) => {
                sqlx::query("RELEASE SAVEPOINT readings_copy")
                    .execute(&mut *tx)
                    .await?;
                heard(tx, &mut self.heard, items).await?;
                return Ok(copied);
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                sqlx::query("ROLLBACK TO SAVEPOINT readings_copy")
                    .execute(&mut *tx)
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS readings_stage
               (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
        )
        .execute(&mut *tx)
        .await?;
        copy_into(tx, "readings_stage", &data).await?;
        let inserted = sqlx::query(
            "INSERT INTO readings (tenant_id, machine_id, metric, ts, value, quality, ingested_at)
             SELECT tenant_id, machine_id, metric, ts, value, quality, ingested_at FROM readings_stage
             ON CONFLICT DO NOTHING",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        heard(tx, &mut self.heard, items).await?;
        Ok(inserted)
    }
}

/// Copies `data` (rows of [`copy_text_rows`]) into `table`: the number of rows.
async fn copy_into(tx: &mut PgConnection, table: &str, data: &str) -> Result<u64, sqlx::Error> {
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY {table} (tenant_id, machine_id, metric, ts, value, quality, ingested_at) FROM STDIN"
        ))
        .await?;
    copy.send(data.as_bytes()).await?;
    copy.finish().await
}

/// Records when each machine of the batches was last heard from (the gateway's arrival time), for the
/// connectivity watchdog; a machine's row is rewritten at most every few seconds, and a batch whose
/// machines were all recorded within them costs no query.
async fn heard(
    tx: &mut PgConnection,
    recorded: &mut HashMap<(Uuid, Uuid), i64>,
    items: &[ReadingBatch],
) -> Result<(), ProcessorError> {
    const EVERY_MS: i64 = 2_000;
    let mut last: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for b in items {
        let t = last
            .entry((b.tenant_id, b.machine_id))
            .or_insert(b.ingest_time_ms);
        *t = (*t).max(b.ingest_time_ms);
    }
    last.retain(|k, ms| recorded.get(k).is_none_or(|r| *ms >= r + EVERY_MS));
    if last.is_empty() {
        return Ok(());
    }
    let (mut tenants, mut machines, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for ((tenant, machine), ms) in last {
        // Remembered before the commit: a batch rolled back delays the next record by EVERY_MS at most.
        recorded.insert((tenant, machine), ms);
        tenants.push(tenant);
        machines.push(machine);
        times.push(DateTime::from_timestamp_millis(ms).unwrap_or_default());
    }
    sqlx::query(
        // Only machines that still exist: readings of a machine or tenant deleted while they waited in
        // Kafka are stored like any (the log is the truth) but leave no heartbeat, whose foreign key would
        // otherwise fail the batch again on every retry and stall the projection for everyone.
        "INSERT INTO machine_heartbeats (tenant_id, machine_id, heard_at)
         SELECT h.tenant_id, h.machine_id, h.heard_at
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS h (tenant_id, machine_id, heard_at)
         JOIN machines m ON m.tenant_id = h.tenant_id AND m.id = h.machine_id
         ON CONFLICT (tenant_id, machine_id) DO UPDATE SET heard_at = EXCLUDED.heard_at
         WHERE machine_heartbeats.heard_at < EXCLUDED.heard_at",
    )
    .bind(&tenants)
    .bind(&machines)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The batches as rows of PostgreSQL's `COPY` text format, in the column order
/// `tenant_id, machine_id, metric, ts, value, quality, ingested_at`.
pub fn copy_text_rows(items: &[ReadingBatch]) -> String {
    let mut out = String::with_capacity(items.iter().map(|b| b.readings.len() * 120).sum());
    for b in items {
        let ingested = millis_rfc3339(b.ingest_time_ms);
        for r in &b.readings {
            let quality = match r.quality {
                None => "\\N",
                Some(Quality::Good) => "good",
                Some(Quality::Uncertain) => "uncertain",
                Some(Quality::Bad) => "bad",
            };
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                b.tenant_id,
                b.machine_id,
                escape(&r.metric),
                millis_rfc3339(r.event_time_ms),
                r.value,
                quality,
                ingested
            );
        }
    }
    out
}

fn millis_rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Escapes the characters that `COPY` text format gives meaning to.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\t', '\n', '\r']) {
        return s.into();
    }
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use haltless_schemas::{Reading, Source};
    use uuid::Uuid;

    #[test]
    fn renders_copy_rows_with_nulls_and_escapes() {
        let batch = ReadingBatch {
            tenant_id: Uuid::from_u128(1),
            machine_id: Uuid::from_u128(2),
            machine: "m".into(),
            source: Source::Gateway,
            ingest_time_ms: 1_000,
            readings: vec![
                Reading {
                    metric: "temp".into(),
                    event_time_ms: 1_795_687_200_500,
                    value: 71.5,
                    quality: None,
                },
                Reading {
                    metric: "odd\tname".into(),
                    event_time_ms: 0,
                    value: 1e-7,
                    quality: Some(Quality::Bad),
                },
            ],
        };
        let rows = copy_text_rows(&[batch]);
        let lines: Vec<&str> = rows.lines().collect();
        assert_eq!(
            lines[0],
            "00000000-0000-0000-0000-000000000001\t00000000-0000-0000-0000-000000000002\ttemp\t\
             2026-11-26T10:00:00.500Z\t71.5\t\\N\t1970-01-01T00:00:01.000Z"
        );
        assert!(lines[1].contains("odd\\tname\t1970-01-01T00:00:00.000Z\t0.0000001\tbad"));
    }
}
