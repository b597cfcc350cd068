//! A tenant's detection settings (`detection.*` of `PUT /api/v1/settings`): what its default rules are, and
//! what a rule's `context` condition takes for the settings it does not name. A change reaches the detectors
//! as an event on the rules topic, in event-time order with the readings, so a replay reproduces it.

use serde::{Deserialize, Serialize};

pub use haltless_schemas::alerts::Severity;

/// The rest period of a default rule: evaluations with the tree off before its alert resolves. A further
/// anomaly during the rest extends it, so a signal that keeps misbehaving stays one alert.
pub const DEFAULT_CLEAR_AFTER: u32 = 96;

/// The sensitivity's bounds: an alert for a reading as unusual as one in `one_in`.
pub const ONE_IN: std::ops::RangeInclusive<f64> = 100.0..=1e12;
/// The rest period's bounds, in readings.
pub const REST: std::ops::RangeInclusive<u32> = 1..=10_000;

/// How the detectors judge the tenant's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionSettings {
    /// Sensitivity: an alert when a reading is as unusual as one reading in this many of its own series
    /// (100 to 10^12; default 100,000). The context detector's limit is its `log10` (5 by default). A rule's
    /// `context` condition that sets `limit` keeps its own.
    #[schema(minimum = 100, maximum = 1e12)]
    pub one_in: f64,
    /// Rest period of the default rules: readings with nothing unusual before their alert resolves; a
    /// further anomaly during it extends it (1 to 10,000; default 96). A rule sets its own `clear_after`.
    #[schema(minimum = 1, maximum = 10000)]
    pub rest_readings: u32,
    /// Which features of the context detector take part (the level and the new range always do).
    pub features: Features,
    /// The drift detector watches every metric with the default rule (default true).
    pub drift: bool,
    /// Severity of the default rules' alerts: `info`, `warning` (default) or `critical`.
    #[schema(pattern = "^(info|warning|critical)$")]
    pub severity: String,
}

/// The context detector's optional features. A rule's `context` condition that sets `profile`, `levels`
/// or `rate` keeps its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Features {
    /// The time-of-day profile (default true): off for metrics with no daily routine.
    pub profile: bool,
    /// Value transitions, "this step between levels has not happened before" (default true).
    pub transitions: bool,
    /// The rate of change (default false: on many series a jump is normal).
    pub rate: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            profile: true,
            transitions: true,
            rate: false,
        }
    }
}

impl Default for DetectionSettings {
    fn default() -> Self {
        Self {
            one_in: 100_000.0,
            rest_readings: DEFAULT_CLEAR_AFTER,
            features: Features::default(),
            drift: true,
            severity: "warning".into(),
        }
    }
}

impl DetectionSettings {
    /// The context detector's limit: `-log10` of the tail probability at which it fires.
    pub fn limit(&self) -> f64 {
        self.one_in.log10()
    }

    /// The default rules' severity (warning when the setting names none: [`Self::problems`] refuses that).
    pub fn severity(&self) -> Severity {
        match self.severity.as_str() {
            "info" => Severity::Info,
            "critical" => Severity::Critical,
            _ => Severity::Warning,
        }
    }

    /// Every setting out of bounds, as `(field, message)` (fields named as in `PUT /api/v1/settings`).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(self.one_in.is_finite() && ONE_IN.contains(&self.one_in)) {
            out.push((
                "detection.one_in",
                "must lie between 100 and 1000000000000 (one reading in that many)".to_owned(),
            ));
        }
        if !REST.contains(&self.rest_readings) {
            out.push((
                "detection.rest_readings",
                "must lie between 1 and 10000".to_owned(),
            ));
        }
        if !["info", "warning", "critical"].contains(&self.severity.as_str()) {
            out.push((
                "detection.severity",
                "must be info, warning or critical".to_owned(),
            ));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones_and_bounds_are_named() {
        let d = DetectionSettings::default();
        assert!(d.problems().is_empty());
        assert!((d.limit() - 5.0).abs() < 1e-12);
        let parsed: DetectionSettings =
            serde_json::from_value(serde_json::json!({"one_in": 1000, "features": {"rate": true}}))
                .unwrap();
        assert!((parsed.limit() - 3.0).abs() < 1e-12);
        assert!(parsed.features.rate && parsed.features.profile && parsed.drift);
        let bad = DetectionSettings {
            one_in: 10.0,
            rest_readings: 0,
            severity: "loud".into(),
            ..d
        };
        let fields: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(
            fields,
            [
                "detection.one_in",
                "detection.rest_readings",
                "detection.severity"
            ]
        );
        assert!(serde_json::from_value::<DetectionSettings>(
            serde_json::json!({"features": {"spikes": true}})
        )
        .is_err());
    }
}
