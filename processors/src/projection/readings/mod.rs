//! The readings projection: `haltless.readings.v1` → the `readings` table. `writer` holds the projection
//! and its bulk write (`COPY` straight in, or through a staging table and one idempotent `INSERT` when a
//! reading is already stored); `series` the ids by which rows name their (tenant, machine, metric).

mod series;
mod writer;

pub use series::SeriesIds;
pub use writer::{copy_rows, copy_statement, ReadingsProjection};
