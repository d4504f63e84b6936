//! Times on the command line and in output names: epoch milliseconds and UTC RFC 3339.

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};

/// Epoch milliseconds, or an RFC 3339 time such as `2024-03-01T12:30:15.250Z`.
pub fn parse_time(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| anyhow!("{s}: expected epoch milliseconds or YYYY-MM-DDTHH:MM:SS[.mmm]Z ({e})"))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of epoch milliseconds (UTC, whole seconds).
pub fn iso_utc(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("1704067200000").unwrap(), 1_704_067_200_000);
        assert_eq!(parse_time("2024-01-01T00:00:00Z").unwrap(), 1_704_067_200_000);
        assert_eq!(parse_time("2024-03-01T12:30:15.250Z").unwrap(), 1_709_296_215_250);
        assert_eq!(parse_time("1969-12-31T23:59:59Z").unwrap(), -1000);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn formats_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_709_296_215_250), "2024-03-01T12:30:15Z");
    }
}
