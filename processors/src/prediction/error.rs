//! What can go wrong between a C-MAPSS file and a prediction, each case naming the problem.

use std::path::PathBuf;

/// Why training or prediction refused its input.
#[derive(Debug, thiserror::Error)]
pub enum PredictionError {
    /// A line does not hold the 26 C-MAPSS columns.
    #[error("line {line}: expected 26 columns (unit, cycle, 3 operational settings, 21 sensors), found {found}")]
    Columns {
        /// 1-based line number.
        line: usize,
        /// Columns found on it.
        found: usize,
    },
    /// A field is not a finite number (`NaN`, `inf`, text).
    #[error("line {line}, column {column} ({name}): `{text}` is not a finite number")]
    NotANumber {
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// The column's name (`unit`, `cycle`, `setting1`, `s7`, ...).
        name: String,
        /// The text found.
        text: String,
    },
    /// The unit or cycle column is not a positive whole number.
    #[error("line {line}: {name} `{text}` is not a positive whole number")]
    NotAnId {
        /// 1-based line number.
        line: usize,
        /// `unit` or `cycle`.
        name: &'static str,
        /// The text found.
        text: String,
    },
    /// A unit's cycles do not increase.
    #[error("line {line}: unit {unit} goes from cycle {previous} to cycle {cycle}; cycles must increase")]
    CycleOrder {
        /// 1-based line number.
        line: usize,
        /// The unit.
        unit: u32,
        /// Its cycle before.
        previous: u32,
        /// The cycle on this line.
        cycle: u32,
    },
    /// An uploaded table is malformed.
    #[error("line {line}: {message}")]
    Table {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file holds no rows.
    #[error("the data holds no rows")]
    Empty,
    /// A unit has too few cycles to describe its health.
    #[error("unit {unit} has {cycles} cycle(s); at least {min} are needed")]
    TooFewCycles {
        /// The unit.
        unit: u32,
        /// Cycles it has.
        cycles: usize,
        /// Cycles needed.
        min: usize,
    },
    /// Too few run-to-failure units to train and cross-validate.
    #[error(
        "{units} unit(s) in the training data; training needs at least {min} run-to-failure units"
    )]
    TooFewUnits {
        /// Units found.
        units: usize,
        /// Units needed.
        min: usize,
    },
    /// A failure (end of life) recorded before any data of its machine.
    #[error("{0}")]
    History(String),
    /// Every sensor is constant: nothing to learn from.
    #[error("every sensor is constant in the training data (within each operating condition); nothing to learn from")]
    AllSensorsConstant,
    /// The model file is not one this build reads.
    #[error("model: {0}")]
    Model(String),
    /// A model produced a value that is not finite; a defect, reported rather than printed.
    #[error("unit {unit}: the model produced a non-finite prediction")]
    NonFinite {
        /// The unit.
        unit: u32,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}
