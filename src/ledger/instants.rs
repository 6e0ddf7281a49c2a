//! How the ledger writes and reads instants: as RFC 3339 text (a send's `occurrence`, events,
//! links and the other tables) or, since ledger version 15, as whole seconds (the other
//! instants of `sends`, see schema.rs).

use chrono::{DateTime, Utc};

use super::error::UnreadableInstant;

/// An instant as the ledger writes it in text: `2026-11-25T09:00:00Z` (UTC, whole seconds), so
/// that text order is time order.
pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    crate::time::utc_stamp(at)
}

/// Text [`stamp`] wrote, or any other RFC 3339 instant; `None` for anything else.
pub(crate) fn parse_stamp(text: &str) -> Option<DateTime<Utc>> {
    stamp_fast(text).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .ok()
    })
}

/// An instant as the `sends` table holds it (ledger version 15): whole seconds since the Unix
/// epoch, UTC. [`stamp`] writes the same second, so the two orders agree.
pub(crate) fn unix(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

/// A `sends` instant read back; `None` past chrono's calendar (no instant steprule writes).
pub(crate) fn from_unix(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

/// A `sends` instant where showing nothing is better than failing (`status`, `explain`): NULL
/// and any value steprule does not write are `None`.
pub(super) fn unix_if_readable(value: rusqlite::types::ValueRef<'_>) -> Option<DateTime<Utc>> {
    match value {
        rusqlite::types::ValueRef::Integer(seconds) => from_unix(seconds),
        _ => None,
    }
}

/// A `sends` instant in column `index` (named `column`), NULL as `None`, or the error that
/// stops the read: any other value is a ledger steprule did not write.
pub(super) fn unix_or_null(
    value: rusqlite::types::ValueRef<'_>,
    index: usize,
    column: &'static str,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    use rusqlite::types::ValueRef;
    let unreadable = |kind| {
        rusqlite::Error::FromSqlConversionFailure(index, kind, Box::new(UnreadableInstant(column)))
    };
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(seconds) => from_unix(seconds)
            .map(Some)
            .ok_or_else(|| unreadable(rusqlite::types::Type::Integer)),
        other => Err(unreadable(other.data_type())),
    }
}

/// A sent row's text instant (its `occurrence`) in column `index` (named `column`), or the
/// error that stops the read: skipping the row would forget a send that counts toward a cap;
/// [`unix_or_null`] reads the others. Taken as bytes: the form
/// steprule writes is ASCII and read without checking UTF-8 first; any other text is checked,
/// then read by RFC 3339's general parser.
pub(super) fn instant(
    text: &[u8],
    index: usize,
    column: &'static str,
) -> rusqlite::Result<DateTime<Utc>> {
    let general = || std::str::from_utf8(text).ok().and_then(parse_stamp);
    stamp_fast(text).or_else(general).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(UnreadableInstant(column)),
        )
    })
}

/// What [`stamp`] writes, `2026-11-25T09:00:00Z`, read without chrono's general parser: a
/// pass reads two of them for each of a few hundred thousand sends. Anything else is `None`.
pub(super) fn stamp_fast(text: impl AsRef<[u8]>) -> Option<DateTime<Utc>> {
    let bytes = text.as_ref();
    if bytes.len() != 20 || bytes[19] != b'Z' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes[from..to].iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let year = i32::try_from(number(0, 4)?).ok()?;
    let day = chrono::NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?)?;
    Some(day.and_time(time).and_utc())
}
