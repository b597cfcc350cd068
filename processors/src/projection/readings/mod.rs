//! The readings projection: `haltless.readings.v1` → the `readings` table. `writer` holds the projection
//! and its bulk write (`COPY` into a staging table, then one idempotent `INSERT`).

mod writer;

pub use writer::{copy_rows, copy_statement, ReadingsProjection};
