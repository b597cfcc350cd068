//! The demo's fault schedule: what goes wrong with which simulated machine, and when, so that a new user sees
//! alerts with their explanations within ten minutes of `compose/up`, and sees them resolve. The detectors
//! learn each series for its first 288 readings (under five minutes at the simulator's one reading a second),
//! so the faults start after six minutes; each lasts a few minutes and the schedule repeats every half hour.

use serde_json::Value;

/// A fault the simulator plays on one machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// A bearing wearing out: vibration and spindle temperature rise slowly (`progress` from 0 to 1), until
    /// it is replaced.
    BearingWear {
        /// How far the wear has gone, 0 to 1.
        progress: f64,
    },
    /// One reading of vibration far above the usual.
    Spike,
    /// The temperature sensor stuck at one value.
    Stuck,
    /// The speed stops its regular swing and sits below it.
    BrokenPattern,
    /// No readings at all (the alert engine's watchdog reports a silent machine).
    Silent,
}

/// Minutes of one round of the schedule.
pub const ROUND_MINUTES: f64 = 30.0;

/// Machine `i` plays fault `i % 5` from the first to the second minute of each round.
const SCHEDULE: [(f64, f64); 5] = [
    (6.0, 12.0),
    (7.0, 7.02),
    (8.0, 12.0),
    (8.5, 12.5),
    (9.0, 12.0),
];

/// The fault of the `machine`-th simulated machine `elapsed_secs` after the simulator started, if any.
pub fn fault_at(machine: usize, elapsed_secs: f64) -> Option<Fault> {
    let slot = machine % SCHEDULE.len();
    let (from, to) = SCHEDULE[slot];
    let minute = (elapsed_secs / 60.0).rem_euclid(ROUND_MINUTES);
    if !(from..to).contains(&minute) {
        return None;
    }
    Some(match slot {
        0 => Fault::BearingWear {
            progress: (minute - from) / (to - from),
        },
        1 => Fault::Spike,
        2 => Fault::Stuck,
        3 => Fault::BrokenPattern,
        _ => Fault::Silent,
    })
}

/// `readings` (one machine's, at one step: objects with `metric` and `value`) as the fault makes them; none
/// for a silent machine.
pub fn apply(fault: Option<Fault>, mut readings: Vec<Value>) -> Vec<Value> {
    let Some(fault) = fault else {
        return readings;
    };
    if fault == Fault::Silent {
        return Vec::new();
    }
    for r in &mut readings {
        let value = r["value"].as_f64().unwrap_or_default();
        let changed = match (fault, r["metric"].as_str().unwrap_or_default()) {
            (Fault::BearingWear { progress }, "vibration_rms") => value + 4.0 * progress,
            (Fault::BearingWear { progress }, "spindle_temp") => value + 30.0 * progress,
            (Fault::Spike, "vibration_rms") => value * 3.0,
            (Fault::Stuck, "spindle_temp") => 65.0,
            (Fault::BrokenPattern, "spindle_rpm") => 1_300.0,
            _ => value,
        };
        r["value"] = changed.into();
    }
    readings
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use haltless_processors::detection::logic::engine::{Input, MachineState};
    use haltless_processors::detection::logic::lifecycle::Transition;
    use haltless_processors::detection::logic::Sample;

    use super::*;
    use crate::tools::simulate::machine_readings;

    /// 20 minutes of five simulated machines at one reading a second, through the default detectors: per
    /// machine, (second, transition, explanation) of each alert event.
    fn demo() -> BTreeMap<usize, Vec<(i64, Transition, String)>> {
        let mut out: BTreeMap<usize, Vec<(i64, Transition, String)>> = BTreeMap::new();
        let mut states: Vec<MachineState> = (0..5).map(|_| MachineState::default()).collect();
        for step in 0..20 * 60u64 {
            let ts = 1_796_000_000_000 + step as i64 * 1000;
            for (i, state) in states.iter_mut().enumerate() {
                let name = format!("m-{i}");
                let fault = fault_at(i, step as f64);
                for r in apply(fault, machine_readings(&name, i as f64, step, ts)) {
                    let input = Input {
                        metric: r["metric"].as_str().unwrap(),
                        sample: Sample {
                            ts_ms: ts,
                            value: r["value"].as_f64().unwrap(),
                        },
                        offset: None,
                    };
                    for e in state.observe("demo", &name, &[], input) {
                        out.entry(i)
                            .or_default()
                            .push((step as i64, e.transition, e.explanation));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_demo_shows_alerts_with_explanations_within_ten_minutes_and_they_resolve() {
        let alerts = demo();
        for (machine, events) in &alerts {
            for e in events {
                println!("m-{machine} {:>5} s {:?}: {}", e.0, e.1, e.2);
            }
        }
        // Wear, the spike and the broken pattern each raise, within ten minutes, once the faults start.
        for machine in [0, 1, 3] {
            let raised: Vec<_> = alerts
                .get(&machine)
                .into_iter()
                .flatten()
                .filter(|e| e.1 == Transition::Raised)
                .collect();
            assert!(
                raised.iter().any(|e| (360..600).contains(&e.0)),
                "m-{machine}: {raised:?}"
            );
            assert!(raised.iter().all(|e| !e.2.is_empty()));
            assert!(raised.len() <= 3, "no flood on m-{machine}: {raised:?}");
        }
        // Nothing before the faults: the learning period and the healthy minutes are quiet.
        assert!(alerts.values().flatten().all(|e| e.0 >= 360), "{alerts:?}");
        // Every alert raised resolves by the end of the 20 minutes.
        for events in alerts.values() {
            let raised = events.iter().filter(|e| e.1 == Transition::Raised).count();
            let resolved = events
                .iter()
                .filter(|e| e.1 == Transition::Resolved)
                .count();
            assert_eq!(raised, resolved, "{events:?}");
        }
    }

    #[test]
    fn the_schedule_repeats_every_round() {
        assert_eq!(fault_at(0, 0.0), None);
        assert_eq!(
            fault_at(0, 6.0 * 60.0),
            Some(Fault::BearingWear { progress: 0.0 })
        );
        assert_eq!(fault_at(1, 7.0 * 60.0), Some(Fault::Spike));
        assert_eq!(fault_at(1, 7.0 * 60.0 + 2.0), None);
        assert_eq!(fault_at(9, 39.5 * 60.0), Some(Fault::Silent));
        assert!(apply(Some(Fault::Silent), vec![serde_json::json!({})]).is_empty());
    }
}
