//! The readings projection: `haltless.readings.v1` → the `readings` table.

mod writer;

pub use writer::{copy_text_rows, ReadingsProjection};
