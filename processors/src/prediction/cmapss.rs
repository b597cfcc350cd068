//! The C-MAPSS text format: one row per operating cycle, 26 whitespace-separated columns (unit, cycle,
//! three operational settings, 21 sensors), grouped here into one run per unit.

use std::collections::BTreeMap;

use super::PredictionError;

/// Sensors per row.
pub const SENSORS: usize = 21;
/// Operational settings per row.
pub const SETTINGS: usize = 3;
const COLUMNS: usize = 2 + SETTINGS + SENSORS;

/// One operating cycle of a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    /// The cycle number, increasing within a unit.
    pub cycle: u32,
    /// The operational settings (altitude, Mach number, throttle resolver angle in C-MAPSS), in the order
    /// of [`Layout::settings`](super::features::Layout).
    pub settings: Vec<f64>,
    /// The sensor measurements (s1 … s21 in C-MAPSS), in the order of
    /// [`Layout::sensors`](super::features::Layout).
    pub sensors: Vec<f64>,
}

/// A unit's cycles in order: a whole run to failure in training data, a partial run in test data.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The unit id.
    pub unit: u32,
    /// Its cycles, cycle numbers increasing.
    pub cycles: Vec<Cycle>,
}

/// The name of sensor `i` (0-based): `s1` … `s21`.
pub fn sensor_name(i: usize) -> String {
    format!("s{}", i + 1)
}

/// The name of operational setting `i` (0-based): `setting1` … `setting3`.
pub fn setting_name(i: usize) -> String {
    format!("setting{}", i + 1)
}

fn column_name(column: usize) -> String {
    match column {
        0 => "unit".into(),
        1 => "cycle".into(),
        c if c < 2 + SETTINGS => setting_name(c - 2),
        c => sensor_name(c - 2 - SETTINGS),
    }
}

/// Parses C-MAPSS text into runs ordered by unit id. Blank lines are skipped; every other line must hold
/// 26 finite numbers, and a unit's cycles must increase.
pub fn parse(text: &str) -> Result<Vec<Run>, PredictionError> {
    let mut units: BTreeMap<u32, Vec<Cycle>> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() != COLUMNS {
            return Err(PredictionError::Columns {
                line: line_no,
                found: fields.len(),
            });
        }
        let unit = parse_id(fields[0], line_no, "unit")?;
        let cycle = parse_id(fields[1], line_no, "cycle")?;
        let mut values = [0.0; SETTINGS + SENSORS];
        for (i, (slot, text)) in values.iter_mut().zip(&fields[2..]).enumerate() {
            *slot = text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| PredictionError::NotANumber {
                    line: line_no,
                    column: i + 3,
                    name: column_name(i + 2),
                    text: (*text).to_owned(),
                })?;
        }
        let c = Cycle {
            cycle,
            settings: values[..SETTINGS].to_vec(),
            sensors: values[SETTINGS..].to_vec(),
        };
        push_cycle(&mut units, unit, c, line_no)?;
    }
    into_runs(units)
}

/// Adds a unit's next cycle, refusing one that does not come after the unit's last (naming `line`).
pub(crate) fn push_cycle(
    units: &mut BTreeMap<u32, Vec<Cycle>>,
    unit: u32,
    c: Cycle,
    line: usize,
) -> Result<(), PredictionError> {
    let cycles = units.entry(unit).or_default();
    if let Some(previous) = cycles.last() {
        if c.cycle <= previous.cycle {
            return Err(PredictionError::CycleOrder {
                line,
                unit,
                previous: previous.cycle,
                cycle: c.cycle,
            });
        }
    }
    cycles.push(c);
    Ok(())
}

/// The units' runs in unit order; no units is [`PredictionError::Empty`].
pub(crate) fn into_runs(units: BTreeMap<u32, Vec<Cycle>>) -> Result<Vec<Run>, PredictionError> {
    if units.is_empty() {
        return Err(PredictionError::Empty);
    }
    Ok(units
        .into_iter()
        .map(|(unit, cycles)| Run { unit, cycles })
        .collect())
}

/// Fails naming the first unit with fewer than `min` cycles.
pub fn require_cycles(runs: &[Run], min: usize) -> Result<(), PredictionError> {
    match runs.iter().find(|r| r.cycles.len() < min) {
        Some(run) => Err(PredictionError::TooFewCycles {
            unit: run.unit,
            cycles: run.cycles.len(),
            min,
        }),
        None => Ok(()),
    }
}

/// A small simulated fleet in C-MAPSS format, for tests and demos: `units` engines run to failure, lives
/// of 130 to 229 cycles, one operating condition, six constant sensors (as in FD001) and fifteen that
/// drift from about 100 cycles before failure, with noise. Deterministic in `seed`.
pub fn simulate(units: u32, seed: u64) -> String {
    let mut rng = super::gbt::SplitMix64(seed);
    let mut noise = move || (0..4).map(|_| rng.unit()).sum::<f64>() - 2.0;
    let constant = [0, 4, 9, 15, 17, 18];
    let mut text = String::new();
    for unit in 1..=units {
        let life = 130 + (unit * 37 + seed as u32) % 100;
        for cycle in 1..=life {
            let wear = (f64::from(cycle) - f64::from(life) + 100.0).max(0.0) / 100.0;
            let mut row = vec![
                unit.to_string(),
                cycle.to_string(),
                format!("{:.4}", noise() * 0.002),
                format!("{:.4}", noise() * 0.0003),
                "100".into(),
            ];
            for j in 0..SENSORS {
                let value = if constant.contains(&j) {
                    100.0 + j as f64
                } else {
                    let direction = if j % 3 == 0 { -1.0 } else { 1.0 };
                    500.0
                        + 10.0 * j as f64
                        + direction * (2.0 * wear + 3.0 * wear * wear)
                        + 0.3 * noise()
                };
                row.push(format!("{value:.4}"));
            }
            text.push_str(&row.join(" "));
            text.push('\n');
        }
    }
    text
}

fn parse_id(text: &str, line: usize, name: &'static str) -> Result<u32, PredictionError> {
    // C-MAPSS writes ids as integers; some exports write them as `1.0`, which is still a whole number.
    let value = text.parse::<f64>().ok().filter(|v| v.is_finite());
    match value {
        Some(v) if v >= 1.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) => Ok(v as u32),
        _ => Err(PredictionError::NotAnId {
            line,
            name,
            text: text.to_owned(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(unit: u32, cycle: u32) -> String {
        let mut fields = vec![unit.to_string(), cycle.to_string()];
        fields.extend((0..24).map(|i| format!("{}.5", i)));
        fields.join(" ")
    }

    #[test]
    fn groups_rows_by_unit_in_unit_order() {
        let text = [row(2, 1), row(1, 1), row(2, 2), row(1, 2), row(1, 3)].join("\n");
        let runs = parse(&text).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].unit, runs[0].cycles.len()), (1, 3));
        assert_eq!((runs[1].unit, runs[1].cycles.len()), (2, 2));
        assert_eq!(runs[0].cycles[0].sensors[0], 3.5);
    }

    #[test]
    fn a_missing_column_is_named_with_its_line() {
        let mut short = row(1, 2);
        short.truncate(short.rfind(' ').unwrap());
        let err = parse(&format!("{}\n{short}", row(1, 1))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: expected 26 columns (unit, cycle, 3 operational settings, 21 sensors), found 25"
        );
    }

    #[test]
    fn nan_text_is_refused_naming_the_sensor() {
        let text = row(1, 1).replace("7.5", "NaN");
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 10 (s5): `NaN` is not a finite number"
        );
        let err = parse(&row(1, 1).replacen("0.5", "abc", 1)).unwrap_err();
        assert!(err.to_string().contains("(setting1): `abc`"), "{err}");
    }

    #[test]
    fn cycles_must_increase_and_ids_be_whole() {
        let err = parse(&[row(1, 2), row(1, 2)].join("\n")).unwrap_err();
        assert!(
            matches!(err, PredictionError::CycleOrder { line: 2, .. }),
            "{err}"
        );
        let err = parse(&row(1, 1).replacen("1 1 ", "1.5 1 ", 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: unit `1.5` is not a positive whole number"
        );
        assert!(matches!(parse("\n \n"), Err(PredictionError::Empty)));
    }

    #[test]
    fn units_with_too_few_cycles_are_named() {
        let runs = parse(&[row(1, 1), row(1, 2), row(7, 1)].join("\n")).unwrap();
        let err = require_cycles(&runs, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unit 7 has 1 cycle(s); at least 2 are needed"
        );
    }
}
