//! Explanations: which feature of a detector fired and why, in words a maintenance engineer reads ("40.1 at
//! 14:00 UTC, usually 80 ± 2 at this hour on weekdays; about 1 in 100,000 readings"), with every feature's
//! contribution as a number (its calibrated score, `-log10` of how often a reading that unusual is expected).

use chrono::DateTime;

use super::calibrate::tail_score;
use super::context::{slot_of, FEATURES, SLOTS};
use super::{feature_of_reason, Verdict, NOT_JUDGED, REASONS};

/// An alert's explanation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Explanation {
    /// In words.
    pub text: String,
    /// Per feature (or the detector, for the detectors without features): its score, strongest first.
    pub contributions: Vec<(String, f64)>,
}

/// A number as a person writes it: about four significant digits, no exponent between 0.0001 and 10^9.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a == 0.0 {
        return "0".to_owned();
    }
    if !(1e-4..1e9).contains(&a) {
        return format!("{x:.3e}");
    }
    // `a` is in [1e-4, 1e9): the magnitude is in -4..=8 and the decimals in 0..=6.
    let magnitude = a.log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    let text = format!("{x:.decimals$}");
    if decimals > 0 && text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// "about 1 in 100,000 readings" for a calibrated score (`-log10` of a probability).
pub fn rarity(score: f64) -> String {
    if !score.is_finite() || score < 1.0 {
        return "not unusual".to_owned();
    }
    if score > 9.0 {
        return "rarer than 1 in a billion readings".to_owned();
    }
    // 10^score in [10, 10^9], rounded to two significant digits.
    let n = 10f64.powf(score);
    let unit = 10f64.powf(n.log10().floor() - 1.0);
    let rounded = ((n / unit).round() * unit) as u64;
    let digits = rounded.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("about 1 in {grouped} readings")
}

fn hour_of(ts_ms: i64) -> String {
    DateTime::from_timestamp_millis(ts_ms)
        .map(|t| t.format("%H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Explains the verdict `v` of `detector` on `metric` at event time `ts_ms`; `cleared` for a resolution.
pub fn explain(
    detector: &str,
    metric: &str,
    v: &Verdict,
    ts_ms: i64,
    cleared: bool,
) -> Explanation {
    let (obs, exp) = (number(v.observed), number(v.expected));
    let mut contributions: Vec<(String, f64)> = match v.why {
        Some(why) if feature_of_reason(why.reason).is_some() => FEATURES
            .iter()
            .zip(why.scores)
            .filter(|(_, z)| *z != NOT_JUDGED)
            .map(|(name, z)| ((*name).to_owned(), round2(tail_score(f64::from(z)))))
            .collect(),
        _ => vec![(detector.to_owned(), round2(v.score))],
    };
    contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
    if cleared {
        return Explanation {
            text: format!(
                "cleared (no longer unusual to the detector): {metric} {obs}, expected {exp}"
            ),
            contributions,
        };
    }
    let reason = v
        .why
        .and_then(|w| REASONS.get(usize::from(w.reason)).map(|r| (w, *r)));
    let text = match (detector, reason) {
        (_, Some((why, "drift"))) => {
            let way = if why.detail >= v.expected { "up" } else { "down" };
            format!(
                "{metric} drifts {way}: its daily mean moved {way} day after day, by at least {} noise standard \
                 deviations a day (noise ± {}), from {exp} to {} yesterday",
                number(v.score),
                number(why.spread),
                number(why.detail)
            )
        }
        (_, Some((why, feature))) => {
            let spread = number(why.spread);
            let words = match feature {
                "profile" => {
                    let days = if slot_of(ts_ms) >= SLOTS / 2 {
                        "at weekends"
                    } else {
                        "on weekdays"
                    };
                    format!(
                        "{metric} {obs} at {}, usually {exp} ± {spread} at this hour {days}",
                        hour_of(ts_ms)
                    )
                }
                "transitions" => {
                    let [from, to, levels] = why.levels;
                    let seen = if why.detail < 1e-3 {
                        "never seen before".to_owned()
                    } else {
                        format!("seen in {} % of the steps from there", number(100.0 * why.detail))
                    };
                    format!(
                        "{metric} {obs}: a step from level {} to level {} of {levels} (of its learned range), {seen}",
                        u32::from(from) + 1,
                        u32::from(to) + 1
                    )
                }
                "range" if v.observed >= v.expected => format!(
                    "new maximum: {metric} {obs}, above the highest value of recent days ({exp})"
                ),
                "range" => format!(
                    "new minimum: {metric} {obs}, below the lowest value of recent days ({exp})"
                ),
                "rate" => format!("{metric} changing at {obs} per second, usually {exp} ± {spread}"),
                "density" => format!(
                    "{metric} {obs}: often far from its level {exp} lately ({} % of recent readings beyond 3 \
                     standard deviations, usually {} %)",
                    number(100.0 * why.detail),
                    number(100.0 * why.spread)
                ),
                _ => format!("{metric} {obs}, usually {exp} ± {spread}"),
            };
            format!("{words}; {}", rarity(v.score))
        }
        ("threshold_above", None) => format!("{metric} {obs} is above the limit {exp}"),
        ("threshold_below", None) => format!("{metric} {obs} is below the limit {exp}"),
        ("rate_of_change", None) => format!(
            "{metric} changing at {obs} per second, usually {exp}: score {} over the limit {}",
            number(v.score),
            number(v.limit)
        ),
        (detector, None) => format!(
            "{metric} {obs}, expected {exp}: {} standard deviations by the {detector} detector (limit {})",
            number(v.score),
            number(v.limit)
        ),
    };
    Explanation {
        text,
        contributions,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::logic::{Why, FEATURE_COUNT};

    #[test]
    fn numbers_and_rarities_read_as_people_write_them() {
        assert_eq!(number(80.0), "80");
        assert_eq!(number(40.123), "40.1");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.01234), "0.0123");
        assert_eq!(number(123_456.7), "123457");
        assert_eq!(number(1e300), "1.000e300");
        assert_eq!(rarity(5.0), "about 1 in 100,000 readings");
        assert_eq!(rarity(3.31), "about 1 in 2,000 readings");
        assert_eq!(rarity(0.5), "not unusual");
        assert_eq!(rarity(30.0), "rarer than 1 in a billion readings");
    }

    #[test]
    fn a_profile_verdict_says_the_hour_and_what_is_usual_then() {
        // 2026-11-30 (a Monday) 14:00 UTC.
        let ts = 1_796_004_000_000 - 1_796_004_000_000 % 86_400_000 + 14 * 3_600_000;
        let z = |score: f64| {
            // the z whose tail score is `score`
            let (mut lo, mut hi) = (0.0, 40.0);
            for _ in 0..100 {
                let mid = (lo + hi) / 2.0;
                if tail_score(mid) < score {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            lo as f32
        };
        let v = Verdict::new(40.1, 80.0, 5.0, 5.0).because(Why {
            reason: 1,
            scores: [z(2.0), z(5.6), NOT_JUDGED, z(0.5), NOT_JUDGED, NOT_JUDGED],
            spread: 2.0,
            detail: 0.0,
            levels: [0; 3],
        });
        let e = explain("context", "spindle_temp", &v, ts, false);
        assert_eq!(
            e.text,
            "spindle_temp 40.1 at 14:00 UTC, usually 80 ± 2 at this hour on weekdays; about 1 in 100,000 readings"
        );
        let names: Vec<&str> = e.contributions.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["profile", "level", "range"]);
        assert!((e.contributions[0].1 - 5.6).abs() < 0.02, "{e:?}");
        let cleared = explain("context", "spindle_temp", &v, ts, true);
        assert!(cleared.text.starts_with("cleared"), "{cleared:?}");
    }

    #[test]
    fn transitions_ranges_drifts_and_plain_detectors_explain_themselves() {
        let why = |reason: u8, detail: f64, levels: [u8; 3]| Why {
            reason,
            scores: [NOT_JUDGED; FEATURE_COUNT],
            spread: 0.5,
            detail,
            levels,
        };
        let v = Verdict::new(3.0, 6.0, 6.0, 5.0);
        let t = explain(
            "context",
            "m",
            &v.because(why(2, 0.0001, [5, 2, 8])),
            0,
            false,
        );
        assert_eq!(
            t.text,
            "m 3: a step from level 6 to level 3 of 8 (of its learned range), never seen before; about 1 in 1,000,000 readings"
        );
        let high = Verdict::new(95.0, 90.0, 6.0, 5.0).because(why(3, 0.0, [0; 3]));
        assert!(explain("context", "m", &high, 0, false)
            .text
            .starts_with("new maximum: m 95, above the highest value of recent days (90)"));
        let dense = Verdict::new(58.0, 50.0, 6.0, 5.0).because(Why {
            spread: 0.01,
            ..why(6, 0.125, [0; 3])
        });
        assert_eq!(
            explain("context", "m", &dense, 0, false).text,
            "m 58: often far from its level 50 lately (12.5 % of recent readings beyond 3 standard deviations, \
             usually 1 %); about 1 in 1,000,000 readings"
        );
        let drift = Verdict::new(64.0, 59.0, 0.4, 0.25).because(why(5, 63.0, [0; 3]));
        let d = explain("context", "m", &drift, 0, false);
        assert!(d.text.starts_with("m drifts up"), "{d:?}");
        assert_eq!(d.contributions, vec![("context".to_owned(), 0.4)]);
        let above = explain(
            "threshold_above",
            "m",
            &Verdict::new(95.0, 90.0, 95.0, 90.0),
            0,
            false,
        );
        assert_eq!(above.text, "m 95 is above the limit 90");
    }
}
