//! Timestamp parsing shared by the sources.

/// Parses an RFC 3339 / ISO 8601 timestamp (`2026-11-23T03:08:41.177Z`) to milliseconds since the epoch.
/// Returns `None` for anything else.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC with millisecond precision.
pub fn format_utc_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => ms.to_string(),
    }
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC to the second (`2026-12-01T20:00:00Z`): block
/// starts and the live views' times. Empty for a time out of range.
pub fn format_utc_s(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pi_timestamps() {
        assert_eq!(
            parse_iso_ms("2026-11-23T03:08:41.177Z"),
            Some(1_795_403_321_177)
        );
        assert_eq!(parse_iso_ms("not a time"), None);
        assert_eq!(format_utc_ms(1_795_403_321_177), "2026-11-23T03:08:41.177Z");
        assert_eq!(format_utc_s(1_795_403_321_177), "2026-11-23T03:08:41Z");
    }
}
