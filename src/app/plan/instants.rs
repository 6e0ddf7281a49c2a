//! The three instants of each send (at, occurrence, expires) as RFC 3339, remembered: a
//! million sends are three million instants but far fewer distinct ones (sends go out at the
//! steps' clock times, and many patients share an appointment's minute), and each one written
//! afresh asks the zone's table for its offset and works out the calendar date again.

use chrono_tz::Tz;

/// Slots in the table (3 MB): a week's plan of a million sends has ~2,600 distinct instants,
/// which then rarely share a slot (at 4,096 slots a third of them did, and each pair that
/// shares one is written afresh each time they alternate). Only the slots in use are touched.
const SLOTS_BITS: u32 = 16;
const SLOTS: usize = 1 << SLOTS_BITS;

/// The longest text a slot holds; `push_rfc3339`'s usual form is 25 bytes, and anything
/// longer (chrono's seconds-precise offsets, far years) is written afresh each time.
const LONGEST: usize = 32;

/// Instants already written, each in the slot its seconds pick; a slot holds the last
/// instant that picked it. What a slot holds is always the text for its own seconds, so a
/// collision costs only the writing it would have cost anyway.
pub(super) struct InstantTexts {
    tz: Tz,
    slots: Vec<Slot>,
    scratch: String,
}

#[derive(Clone, Copy)]
struct Slot {
    seconds: i64,
    /// 0 while the slot is empty (no instant's text is empty).
    len: u8,
    text: [u8; LONGEST],
}

impl InstantTexts {
    pub(super) fn new(tz: Tz) -> Self {
        let empty = Slot {
            seconds: 0,
            len: 0,
            text: [0; LONGEST],
        };
        InstantTexts {
            tz,
            slots: vec![empty; SLOTS],
            scratch: String::new(),
        }
    }

    /// `seconds` (since the epoch) as RFC 3339 on the clinic's clock, appended to `out`:
    /// byte for byte what [`crate::time::push_rfc3339`] appends.
    pub(super) fn push(&mut self, out: &mut Vec<u8>, seconds: i64) {
        let slot = &mut self.slots[slot_of(seconds)];
        if slot.len > 0 && slot.seconds == seconds {
            out.extend_from_slice(&slot.text[..slot.len as usize]);
            return;
        }
        self.scratch.clear();
        crate::time::push_rfc3339(&mut self.scratch, seconds, self.tz);
        let text = self.scratch.as_bytes();
        out.extend_from_slice(text);
        if text.len() <= LONGEST && !text.is_empty() {
            slot.seconds = seconds;
            slot.len = text.len() as u8;
            slot.text[..text.len()].copy_from_slice(text);
        }
    }
}

/// The slot `seconds` is remembered in. Fibonacci hashing: instants a whole number of minutes
/// or days apart spread over the slots instead of piling up on the multiples of 60.
fn slot_of(seconds: i64) -> usize {
    ((seconds as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS_BITS)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Australia, UTC};

    fn fresh(seconds: i64, tz: Tz) -> Vec<u8> {
        let mut text = String::new();
        crate::time::push_rfc3339(&mut text, seconds, tz);
        text.into_bytes()
    }

    /// Remembered or not, colliding or not, each instant's text is the one written afresh:
    /// whole minutes, odd seconds, weeks apart, two instants in one slot, the hours around a
    /// daylight-saving change, years chrono writes its own way, and the same instants again
    /// once remembered.
    #[test]
    fn every_instant_is_written_as_push_rfc3339_writes_it() {
        let base = 1_795_564_800_i64; // 2026-11-25T09:00:00+09:00
        let mut instants = Vec::new();
        for k in 0..3000 {
            instants.push(base + k * 60);
            instants.push(base + k * 60 + 17);
            instants.push(base + k * 86_400 * 7);
        }
        // Two instants in one slot, one after the other, back and forth.
        let shares = (1..)
            .map(|k| base + k * 60)
            .find(|&s| slot_of(s) == slot_of(base));
        let shares = shares.unwrap();
        instants.extend([base, shares, base, shares]);
        // New York's clocks go back at 2026-11-01T06:00Z: an hour either side, minute by minute.
        for minute in -60..60 {
            instants.push(1_793_512_800 + minute * 60);
        }
        instants.extend([
            -2_524_608_000,  // 1890: local mean time, offsets with seconds
            -62_135_596_800, // year 1
            253_402_300_800, // year 10000
            i64::MAX,
            i64::MIN,
            0,
        ]);
        for tz in [Asia::Tokyo, America::New_York, Australia::Lord_Howe, UTC] {
            let mut texts = InstantTexts::new(tz);
            for round in 0..2 {
                for &seconds in &instants {
                    let mut got = Vec::new();
                    texts.push(&mut got, seconds);
                    assert_eq!(got, fresh(seconds, tz), "{tz} {seconds} round {round}");
                }
            }
        }
    }
}
