//! LINE's (or a proxy's) `Retry-After`: delta-seconds or an HTTP-date. A run must not sleep for
//! as long as a server asks: one attempt waits at most [`RETRY_AFTER_CAP`], and the full wish
//! is kept so that the delivery loop can leave a send for the next run instead.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest one attempt waits on a server's word: the same minute the backoff is capped at.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// Asks beyond a year are read as a year: every send expires long before, and the value stays
/// convertible to a `chrono::Duration` and addable to any instant the run meets.
pub const RETRY_AFTER_ASKED_LIMIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What a `Retry-After` header asked for, bounded by [`RETRY_AFTER_ASKED_LIMIT`]; `None` when
/// it is neither a number of seconds nor an HTTP-date (RFC 9110's IMF-fixdate; the obsolete
/// RFC 850 and asctime forms are treated as absent). A date in the past asks for no wait.
pub(super) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too long for u64: a very long wait, not a malformed header.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(RETRY_AFTER_ASKED_LIMIT));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = (date.with_timezone(&Utc) - now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(wait.min(RETRY_AFTER_ASKED_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 1, 0, 0).unwrap()
    }

    #[test]
    fn seconds_are_read_and_bounded() {
        let parse = |v| parse_retry_after(v, now());
        assert_eq!(parse("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse(" 3600 "), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("99999999999"), Some(RETRY_AFTER_ASKED_LIMIT));
        assert_eq!(
            parse("999999999999999999999999999999"),
            Some(RETRY_AFTER_ASKED_LIMIT)
        );
    }

    #[test]
    fn an_http_date_is_the_time_until_then() {
        let parse = |v| parse_retry_after(v, now());
        assert_eq!(
            parse("Wed, 25 Nov 2026 02:00:00 GMT"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse("Wed, 25 Nov 2026 00:00:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past: no wait"
        );
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(RETRY_AFTER_ASKED_LIMIT)
        );
    }

    #[test]
    fn anything_else_is_absent() {
        for bad in ["", "-5", "1.5", "soon", "Wednesday, 25-Nov-26 02:00:00 GMT"] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad}");
        }
    }
}
