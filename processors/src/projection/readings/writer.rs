//! Bulk writes of reading batches: `COPY` straight into `readings` (each row naming its series by id);
//! when a reading of the batch is already stored (same series and event time), the attempt is undone and
//! the batch goes through a staging table and one `INSERT ... ON CONFLICT DO NOTHING`, so nothing is ever
//! doubled.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike};
use haltless_schemas::{Codec, Quality, ReadingBatch};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::SeriesIds;
use crate::runtime::{Place, ProcessorError, Projection};

/// Materialises reading batches into `readings`.
#[derive(Debug)]
pub struct ReadingsProjection {
    codec: Codec,
    /// Months (year * 12 + month) whose partition is known to exist.
    months: BTreeSet<i32>,
    /// Per machine, the arrival time (ms) this instance last recorded in `machine_heartbeats`.
    heard: HashMap<(Uuid, Uuid), i64>,
    /// The ids of the series written so far.
    series: SeriesIds,
}

impl ReadingsProjection {
    /// A projection decoding with `codec`.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            months: BTreeSet::new(),
            heard: HashMap::new(),
            series: SeriesIds::default(),
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

    fn another(&self) -> Option<Self> {
        Some(Self::new(self.codec.clone()))
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
        let unknown = self.series.unknown(items);
        self.series.resolve(pool, &unknown).await?;
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
        let data = copy_rows(items, &self.series).map_err(ProcessorError::Internal)?;
        // The fast path: straight into `readings`. A reading already stored (a client re-posting after a
        // lost answer, a batch replayed) breaks the key and undoes only this attempt; the batch then goes
        // the slow way, which skips what is there.
        // The commit waits for the write-ahead log's flush (`synchronous_commit` stays on): the runner moves
        // on from a batch once it is committed and fetches past it, so a commit PostgreSQL lost in a crash
        // would be a batch never written. (Turned off once for speed; the fault suite's kill -9 of
        // PostgreSQL then lost readings.)
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
            "INSERT INTO readings (series_id, ts, value, quality, ingested_at)
             SELECT series_id, ts, value, quality, ingested_at FROM readings_stage
             ON CONFLICT DO NOTHING",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        heard(tx, &mut self.heard, items).await?;
        Ok(inserted)
    }
}

/// The `COPY` statement that reads [`copy_rows`] into `table`.
pub fn copy_statement(table: &str) -> String {
    format!(
        "COPY {table} (series_id, ts, value, quality, ingested_at) FROM STDIN \
         WITH (FORMAT binary)"
    )
}

/// Copies `data` (of [`copy_rows`]) into `table`: the number of rows.
async fn copy_into(tx: &mut PgConnection, table: &str, data: &[u8]) -> Result<u64, sqlx::Error> {
    let mut copy = tx.copy_in_raw(&copy_statement(table)).await?;
    copy.send(data).await?;
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

/// The batches as PostgreSQL's binary `COPY` format, in the column order
/// `series_id, ts, value, quality, ingested_at`, as [`copy_statement`] reads them, each series' id from
/// `series` (an error names a series it does not know). The server takes ids, times and numbers as they
/// are instead of parsing their text (two timestamps, two uuids and a number per row were most of its work).
pub fn copy_rows(items: &[ReadingBatch], series: &SeriesIds) -> Result<Vec<u8>, String> {
    let rows: usize = items.iter().map(|b| b.readings.len()).sum();
    let mut out = Vec::with_capacity(19 + 2 + rows * 60);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for b in items {
        let ingested = pg_micros(b.ingest_time_ms);
        let ids = series.of_machine(b.tenant_id, b.machine_id);
        for r in &b.readings {
            let id = ids
                .and_then(|ids| ids.get(&r.metric).copied())
                .ok_or_else(|| {
                    format!(
                        "no series id for metric {:?} of machine {} of tenant {}",
                        r.metric, b.machine_id, b.tenant_id
                    )
                })?;
            out.extend_from_slice(&5i16.to_be_bytes());
            field(&mut out, &id.to_be_bytes());
            field(&mut out, &pg_micros(r.event_time_ms).to_be_bytes());
            field(&mut out, &r.value.to_bits().to_be_bytes());
            match r.quality {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(q) => field(&mut out, quality_label(q).as_bytes()),
            }
            field(&mut out, &ingested.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(out)
}

/// One field: its length, then its bytes.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // A field is 4 or 8 bytes, or a quality's label.
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Milliseconds since the Unix epoch as PostgreSQL's binary `timestamptz`: microseconds since
/// 2000-01-01T00:00:00Z. A time chrono cannot represent is written as the epoch, as the text format did.
fn pg_micros(ms: i64) -> i64 {
    const PG_EPOCH_MS: i64 = 946_684_800_000;
    let ms = if DateTime::from_timestamp_millis(ms).is_some() {
        ms
    } else {
        0
    };
    (ms - PG_EPOCH_MS) * 1000
}

fn quality_label(q: Quality) -> &'static str {
    match q {
        Quality::Good => "good",
        Quality::Uncertain => "uncertain",
        Quality::Bad => "bad",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use haltless_schemas::{Reading, Source};
    use uuid::Uuid;

    #[test]
    fn renders_binary_copy_rows_with_nulls() {
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
        let mut series = SeriesIds::default();
        assert!(
            copy_rows(std::slice::from_ref(&batch), &series).is_err(),
            "a series without an id"
        );
        series.learn(Uuid::from_u128(1), Uuid::from_u128(2), "temp".into(), 7);
        series.learn(
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            "odd\tname".into(),
            70_000,
        );
        let rows = copy_rows(&[batch], &series).unwrap();
        assert_eq!(&rows[..19], b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        assert_eq!(&rows[rows.len() - 2..], &[0xFF, 0xFF], "the trailer");
        // Field by field: (length, bytes); -1 is NULL.
        let mut at = 19;
        let mut next = |n: usize| {
            let bytes = rows[at..at + n].to_vec();
            at += n;
            bytes
        };
        let mut row = || {
            assert_eq!(next(2), 5i16.to_be_bytes(), "five columns");
            (0..5)
                .map(|_| {
                    let len = i32::from_be_bytes(next(4).try_into().unwrap());
                    (len >= 0).then(|| next(len as usize))
                })
                .collect::<Vec<_>>()
        };
        let first = row();
        assert_eq!(first[0].as_deref(), Some(7i32.to_be_bytes().as_slice()));
        // 2026-11-26T10:00:00.500Z in microseconds since 2000-01-01T00:00:00Z.
        let micros = (1_795_687_200_500i64 - 946_684_800_000) * 1000;
        assert_eq!(first[1].as_deref(), Some(micros.to_be_bytes().as_slice()));
        assert_eq!(first[2].as_deref(), Some(71.5f64.to_be_bytes().as_slice()));
        assert_eq!(first[3], None);
        let ingested = (1_000i64 - 946_684_800_000) * 1000;
        assert_eq!(first[4].as_deref(), Some(ingested.to_be_bytes().as_slice()));
        let second = row();
        assert_eq!(
            second[0].as_deref(),
            Some(70_000i32.to_be_bytes().as_slice()),
            "the series of its own metric"
        );
        assert_eq!(second[3].as_deref(), Some(b"bad".as_slice()));
    }
}
