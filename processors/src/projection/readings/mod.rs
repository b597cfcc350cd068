//! The readings projection: `haltless.readings.v1` → the `readings` table.

mod config;
mod writer;

pub use config::ReadingsProjectionConfig;
pub use writer::{copy_text_rows, ReadingsProjection};
