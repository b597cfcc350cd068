//! Run-to-failure data as uploaded: a CSV with a header (`unit,cycle,` then one column per sensor, named
//! as the machines' metrics; columns named `setting:<name>` are operational settings), or C-MAPSS text.
//! Also the runs of a tenant's own history: a machine's cycles cut into lives at its replacements and
//! repairs.

use std::collections::BTreeMap;

use super::cmapss::{self, Cycle, Run};
use super::features::Layout;
use super::PredictionError;

/// The prefix of a setting column's name.
pub const SETTING_PREFIX: &str = "setting:";

/// Reads uploaded training data: CSV with a header when its first line has a comma, else C-MAPSS text.
pub fn parse_upload(text: &str) -> Result<(Layout, Vec<Run>), PredictionError> {
    let first = text.lines().find(|l| !l.trim().is_empty());
    match first {
        Some(line) if line.contains(',') => parse_csv(text),
        _ => Ok((Layout::cmapss(), cmapss::parse(text)?)),
    }
}

fn table_error(line: usize, message: impl Into<String>) -> PredictionError {
    PredictionError::Table {
        line,
        message: message.into(),
    }
}

/// Parses the CSV form: header `unit,cycle,<columns...>`, then one row per cycle.
pub fn parse_csv(text: &str) -> Result<(Layout, Vec<Run>), PredictionError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(PredictionError::Empty);
    };
    let names: Vec<String> = header.split(',').map(|s| s.trim().to_owned()).collect();
    if names.len() < 3
        || !names[0].eq_ignore_ascii_case("unit")
        || !names[1].eq_ignore_ascii_case("cycle")
    {
        return Err(table_error(
            1,
            "the header must start with `unit,cycle` and name at least one sensor column",
        ));
    }
    let columns = &names[2..];
    if let Some(empty) = columns.iter().position(String::is_empty) {
        return Err(table_error(1, format!("column {} has no name", empty + 3)));
    }
    for (i, n) in columns.iter().enumerate() {
        if columns[..i].contains(n) {
            return Err(table_error(1, format!("column `{n}` appears twice")));
        }
    }
    let is_setting: Vec<bool> = columns
        .iter()
        .map(|n| n.starts_with(SETTING_PREFIX))
        .collect();
    let layout = Layout {
        settings: columns
            .iter()
            .filter_map(|n| n.strip_prefix(SETTING_PREFIX).map(str::to_owned))
            .collect(),
        sensors: columns
            .iter()
            .filter(|n| !n.starts_with(SETTING_PREFIX))
            .cloned()
            .collect(),
    };
    if layout.sensors.is_empty() {
        return Err(table_error(1, "the header names no sensor column"));
    }
    let mut units: BTreeMap<u32, Vec<Cycle>> = BTreeMap::new();
    for (index, line) in lines {
        let line_no = index + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(table_error(
                line_no,
                format!(
                    "expected {} columns as the header names, found {}",
                    names.len(),
                    fields.len()
                ),
            ));
        }
        let id = |i: usize| {
            fields[i]
                .parse::<f64>()
                .ok()
                .filter(|v| {
                    v.is_finite() && *v >= 1.0 && v.fract() == 0.0 && *v <= f64::from(u32::MAX)
                })
                .map(|v| v as u32)
                .ok_or_else(|| PredictionError::NotAnId {
                    line: line_no,
                    name: if i == 0 { "unit" } else { "cycle" },
                    text: fields[i].to_owned(),
                })
        };
        let (unit, cycle) = (id(0)?, id(1)?);
        let mut settings = Vec::with_capacity(layout.settings.len());
        let mut sensors = Vec::with_capacity(layout.sensors.len());
        for (i, text) in fields[2..].iter().enumerate() {
            let value = text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| PredictionError::NotANumber {
                    line: line_no,
                    column: i + 3,
                    name: columns[i].clone(),
                    text: (*text).to_owned(),
                })?;
            if is_setting[i] {
                settings.push(value);
            } else {
                sensors.push(value);
            }
        }
        let c = Cycle {
            cycle,
            settings,
            sensors,
        };
        cmapss::push_cycle(&mut units, unit, c, line_no)?;
    }
    Ok((layout, cmapss::into_runs(units)?))
}

/// A machine's history as training runs: `cycles` (event time, sensor values in the order of the layout's
/// sensors), oldest first, cut at each end of life (a replacement or repair at that event time); only
/// lives that ended are runs to failure. Units are numbered from `first_unit`.
pub fn lives(cycles: &[(i64, Vec<f64>)], ends_ms: &[i64], first_unit: u32) -> Vec<Run> {
    let mut ends: Vec<i64> = ends_ms.to_vec();
    ends.sort_unstable();
    let mut runs = Vec::new();
    let mut start = 0;
    let mut unit = first_unit;
    for end in ends {
        let stop = start + cycles[start..].partition_point(|(ts, _)| *ts <= end);
        if stop > start {
            runs.push(Run {
                unit,
                cycles: cycles[start..stop]
                    .iter()
                    .enumerate()
                    .map(|(i, (_, values))| Cycle {
                        cycle: u32::try_from(i + 1).unwrap_or(u32::MAX),
                        settings: Vec::new(),
                        sensors: values.clone(),
                    })
                    .collect(),
            });
            unit += 1;
        }
        start = stop;
    }
    runs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_named_csv_gives_its_layout_and_runs() {
        let text =
            "unit,cycle,setting:load,temp,vib\n1,1,0.5,70,1.1\n1,2,0.5,71,1.2\n2,1,0.7,69,1.0\n";
        let (layout, runs) = parse_upload(text).unwrap();
        assert_eq!(layout.settings, vec!["load"]);
        assert_eq!(layout.sensors, vec!["temp", "vib"]);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].cycles[1].sensors, vec![71.0, 1.2]);
        assert_eq!(runs[1].cycles[0].settings, vec![0.7]);
    }

    #[test]
    fn bad_uploads_are_refused_naming_the_problem() {
        let cases = [
            ("", "the data holds no rows"),
            (
                "temp,vib\n1,2\n",
                "line 1: the header must start with `unit,cycle`",
            ),
            (
                "unit,cycle,temp,temp\n",
                "line 1: column `temp` appears twice",
            ),
            (
                "unit,cycle,temp\n1,1,70\n1,2\n",
                "line 3: expected 3 columns as the header names, found 2",
            ),
            (
                "unit,cycle,temp\n1,1,NaN\n",
                "line 2, column 3 (temp): `NaN` is not a finite number",
            ),
            (
                "unit,cycle,temp\n1,2,70\n1,1,70\n",
                "line 3: unit 1 goes from cycle 2 to cycle 1",
            ),
            ("unit,cycle,temp\n", "the data holds no rows"),
        ];
        for (text, want) in cases {
            let err = parse_upload(text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_history_is_cut_into_lives_at_its_ends() {
        let cycles: Vec<(i64, Vec<f64>)> = (0..10).map(|t| (t, vec![t as f64])).collect();
        let runs = lives(&cycles, &[3, 7], 1);
        // Cycles 0..=3 and 4..=7 ended in a replacement; 8 and 9 are a life still running.
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].cycles.len(), 4);
        assert_eq!(runs[1].cycles.len(), 4);
        assert_eq!(runs[1].cycles[0].sensors, vec![4.0]);
        assert_eq!((runs[0].unit, runs[1].unit), (1, 2));
        // An end before any data makes no run.
        assert!(lives(&cycles, &[-5], 1).is_empty());
    }
}
