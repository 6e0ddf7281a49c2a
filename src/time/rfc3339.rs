//! Instants written as RFC 3339 on the clinic's clock (`2026-11-25T09:00:00+09:00`), the form
//! `plan --format json` and `csv` print three times per send. chrono's `to_rfc3339` on a
//! `DateTime<Tz>` asks chrono-tz for the offset and goes through its formatter; here the offset
//! comes from the zone's table (as [`super::wall_clock`] has it) and the digits are written
//! directly, byte for byte what chrono writes (tested against it).

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

/// Appends `seconds` (since the epoch) as RFC 3339 in `tz` to `out`.
pub fn push_rfc3339(out: &mut String, seconds: i64, tz: Tz) {
    let Some(instant) = DateTime::<Utc>::from_timestamp(seconds, 0) else {
        out.push_str(&DateTime::<Utc>::default().with_timezone(&tz).to_rfc3339());
        return;
    };
    let local = super::wall_clock(instant, tz);
    let offset = (local - instant.naive_utc()).num_seconds();
    // Years of four digits and whole-minute offsets are what the digits below write the same
    // way chrono does; anything else (local mean time before 1900, far years) is chrono's.
    if !(1000..=9999).contains(&local.year()) || offset % 60 != 0 {
        out.push_str(&instant.with_timezone(&tz).to_rfc3339());
        return;
    }
    let minutes = (offset.unsigned_abs() / 60) as u32;
    let mut text = *b"0000-00-00T00:00:00+00:00";
    put_digits(&mut text[0..4], local.year() as u32);
    put_digits(&mut text[5..7], local.month());
    put_digits(&mut text[8..10], local.day());
    put_digits(&mut text[11..13], local.hour());
    put_digits(&mut text[14..16], local.minute());
    put_digits(&mut text[17..19], local.second());
    if offset < 0 {
        text[19] = b'-';
    }
    put_digits(&mut text[20..22], minutes / 60);
    put_digits(&mut text[23..25], minutes % 60);
    // Digits and ASCII punctuation only.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// `at` as RFC 3339 in UTC to the second (`2026-11-25T00:00:00Z`): what chrono's
/// `to_rfc3339_opts(SecondsFormat::Secs, true)` writes, the form the ledger keeps its instants
/// in. A first run writes three for every send it claims; chrono's formatter took ~290
/// instructions for each. Years outside 0–9999 and leap seconds are chrono's.
pub fn utc_stamp(at: DateTime<Utc>) -> String {
    let year = at.year();
    if !(0..=9999).contains(&year) || at.nanosecond() >= 1_000_000_000 {
        return at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    }
    let mut text = *b"0000-00-00T00:00:00Z";
    put_digits(&mut text[0..4], year as u32);
    put_digits(&mut text[5..7], at.month());
    put_digits(&mut text[8..10], at.day());
    put_digits(&mut text[11..13], at.hour());
    put_digits(&mut text[14..16], at.minute());
    put_digits(&mut text[17..19], at.second());
    // Digits and ASCII punctuation only.
    std::str::from_utf8(&text).unwrap_or_default().to_owned()
}

/// `value`'s last decimal digits into `slots`, right-aligned.
fn put_digits(slots: &mut [u8], mut value: u32) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        // Years -250 to 10208, every instant within chrono's range (none skipped); leap
        // seconds, which exist only at a minute's 59th second, are the edges' test.
        #[test]
        fn utc_stamps_are_chronos(
            seconds in -70_000_000_000i64..260_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let at = DateTime::<Utc>::from_timestamp(seconds, nanos).unwrap();
            proptest::prop_assert_eq!(
                utc_stamp(at),
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
    }

    #[test]
    fn utc_stamps_at_the_edges_are_chronos() {
        for seconds in [
            0,
            -1,
            1_795_564_800,
            253_402_300_799,
            253_402_300_800,
            -62_167_219_200,
            -62_167_219_201,
        ] {
            for nanos in [0, 999_999_999, 1_500_000_000] {
                let Some(at) = DateTime::<Utc>::from_timestamp(seconds, nanos) else {
                    continue;
                };
                assert_eq!(
                    utc_stamp(at),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "{seconds} {nanos}"
                );
            }
        }
        let at = DateTime::<Utc>::from_timestamp(1_795_564_800, 0).unwrap();
        assert_eq!(utc_stamp(at), "2026-11-25T00:00:00Z");
    }

    fn ours(seconds: i64, tz: Tz) -> String {
        let mut out = String::new();
        push_rfc3339(&mut out, seconds, tz);
        out
    }

    fn chronos(seconds: i64, tz: Tz) -> String {
        DateTime::<Utc>::from_timestamp(seconds, 0)
            .unwrap()
            .with_timezone(&tz)
            .to_rfc3339()
    }

    #[test]
    fn byte_for_byte_what_chrono_writes() {
        use chrono_tz::{America, Asia, Australia, Europe, Pacific, UTC};
        let zones = [
            Asia::Tokyo,
            America::New_York,
            America::St_Johns,
            Asia::Kolkata,
            Asia::Kathmandu,
            Australia::Lord_Howe,
            Pacific::Chatham,
            Europe::London,
            UTC,
        ];
        // Every 7 hours and 13 minutes from 1890 (local mean times) to 2100, and the edges.
        let (start, end) = (-2_524_608_000_i64, 4_102_444_800_i64);
        for tz in zones {
            let mut seconds = start;
            while seconds < end {
                assert_eq!(ours(seconds, tz), chronos(seconds, tz), "{tz} {seconds}");
                seconds += 7 * 3600 + 13 * 60 + 17;
            }
        }
        assert_eq!(
            ours(1_795_564_800, Asia::Tokyo),
            "2026-11-25T09:00:00+09:00"
        );
        assert_eq!(ours(-62_135_596_800, UTC), chronos(-62_135_596_800, UTC));
        assert_eq!(ours(i64::MAX, UTC), chronos(0, UTC));
    }
}
