//! The life of an alert: raised once when its rule holds, updated while it persists and grows, resolved once
//! the rule has been off for a few evaluations. Ids derive from the input, so a replay gives the same ids.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::rules::Hold;

/// Namespace of alert ids (UUID v5).
const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x6861_6c74_6c65_7373_2e61_6c65_7274_7331);

/// The deterministic id of the alert `rule` raised on `machine` of `tenant` at event time `raised_ms`.
pub fn alert_id(tenant: &str, machine: &str, rule: &str, raised_ms: i64) -> Uuid {
    Uuid::new_v5(
        &ALERT_NAMESPACE,
        format!("{tenant}/{machine}/{rule}/{raised_ms}").as_bytes(),
    )
}

pub use haltless_schemas::alerts::Transition;

/// The state of one (machine, rule).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// No alert open.
    #[default]
    Idle,
    /// The rule holds but not yet for long enough.
    Pending {
        /// Event time it started to hold.
        since_ms: i64,
        /// Evaluations it has held.
        count: u32,
    },
    /// An alert is open.
    Active {
        /// Its id.
        id: Uuid,
        /// Event time it was raised.
        raised_ms: i64,
        /// The strongest severity ratio reported so far.
        peak: f64,
        /// Consecutive evaluations with the rule off.
        off: u32,
    },
}

/// A step of the lifecycle: the rule's truth at one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Event time of the evaluation.
    pub ts_ms: i64,
    /// The rule holds by the raising limits.
    pub raise: bool,
    /// The rule holds by the (looser) sustaining limits.
    pub sustain: bool,
    /// The strongest severity ratio among the rule's true conditions.
    pub ratio: f64,
}

/// A report is made again only when the alert grew this much since the last one.
const UPDATE_GROWTH: f64 = 1.5;

impl Phase {
    /// Advances the lifecycle; returns the transition, if any, and the alert's id and raise time.
    pub fn step(
        &mut self,
        s: Step,
        hold: Hold,
        clear_after: u32,
        id_of: impl FnOnce(i64) -> Uuid,
    ) -> Option<(Transition, Uuid)> {
        match self {
            Phase::Active { id, peak, off, .. } => {
                let id = *id;
                if s.sustain {
                    *off = 0;
                    if s.ratio > *peak * UPDATE_GROWTH {
                        *peak = s.ratio;
                        return Some((Transition::Updated, id));
                    }
                    return None;
                }
                *off += 1;
                if *off >= clear_after.max(1) {
                    *self = Phase::Idle;
                    return Some((Transition::Resolved, id));
                }
                None
            }
            Phase::Idle | Phase::Pending { .. } if !s.raise => {
                *self = Phase::Idle;
                None
            }
            Phase::Idle => {
                *self = Phase::Pending {
                    since_ms: s.ts_ms,
                    count: 0,
                };
                self.step(s, hold, clear_after, id_of)
            }
            Phase::Pending { since_ms, count } => {
                *count += 1;
                let held_ms = s.ts_ms - *since_ms;
                if held_ms >= hold.secs as i64 * 1000 && *count >= hold.readings.max(1) {
                    let id = id_of(s.ts_ms);
                    *self = Phase::Active {
                        id,
                        raised_ms: s.ts_ms,
                        peak: s.ratio,
                        off: 0,
                    };
                    Some((Transition::Raised, id))
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn drive(
        phase: &mut Phase,
        hold: Hold,
        steps: &[(i64, bool, bool, f64)],
    ) -> Vec<(i64, Transition)> {
        steps
            .iter()
            .filter_map(|&(ts_ms, raise, sustain, ratio)| {
                let t = phase.step(
                    Step {
                        ts_ms,
                        raise,
                        sustain,
                        ratio,
                    },
                    hold,
                    3,
                    |t| alert_id("t", "m", "r", t),
                );
                t.map(|(tr, _)| (ts_ms, tr))
            })
            .collect()
    }

    #[test]
    fn raises_once_updates_on_growth_and_resolves_after_three_clear_steps() {
        let mut p = Phase::Idle;
        let out = drive(
            &mut p,
            Hold::default(),
            &[
                (1, true, true, 1.2),
                (2, true, true, 1.3),
                (3, false, true, 0.9), // hovering: no flapping
                (4, true, true, 2.0),
                (5, false, false, 0.1),
                (6, false, false, 0.1),
                (7, true, true, 1.1), // back before the third clear step: same alert
                (8, false, false, 0.1),
                (9, false, false, 0.1),
                (10, false, false, 0.1),
            ],
        );
        assert_eq!(
            out,
            vec![
                (1, Transition::Raised),
                (4, Transition::Updated),
                (10, Transition::Resolved)
            ]
        );
    }

    #[test]
    fn hold_delays_raising_in_time_and_readings() {
        let mut p = Phase::Idle;
        let hold = Hold {
            secs: 10,
            readings: 0,
        };
        let out = drive(
            &mut p,
            hold,
            &[
                (0, true, true, 2.0),
                (5_000, true, true, 2.0),
                (10_000, true, true, 2.0),
            ],
        );
        assert_eq!(out, vec![(10_000, Transition::Raised)]);
        let mut p = Phase::Idle;
        let hold = Hold {
            secs: 0,
            readings: 3,
        };
        let out = drive(
            &mut p,
            hold,
            &[
                (0, true, true, 2.0),
                (1, true, true, 2.0),
                (2, false, false, 0.0),
                (3, true, true, 2.0),
                (4, true, true, 2.0),
                (5, true, true, 2.0),
            ],
        );
        assert_eq!(out, vec![(5, Transition::Raised)]);
    }

    #[test]
    fn ids_depend_only_on_the_input() {
        assert_eq!(alert_id("t", "m", "r", 5), alert_id("t", "m", "r", 5));
        assert_ne!(alert_id("t", "m", "r", 5), alert_id("t", "m", "r", 6));
        assert_ne!(alert_id("t", "m", "r", 5), alert_id("t", "m2", "r", 5));
    }
}
