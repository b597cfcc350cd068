//! Timestamps as the API accepts and prints them.

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 timestamp or integer epoch milliseconds.
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("`{s}` is out of range"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is neither RFC 3339 nor epoch milliseconds ({e})"))
}

/// Formats a timestamp as RFC 3339 in UTC with milliseconds.
pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let a = parse_instant("2026-11-26T10:00:00Z").unwrap();
        let b = parse_instant("1795687200000").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_instant(a), "2026-11-26T10:00:00.000Z");
        assert!(parse_instant("yesterday").is_err());
    }
}
