//! Synthetic patients of a mid-sized internal-medicine clinic, for benchmarks: a CSV export in
//! the columns of `rules/patients.csv`, generated row by row from a seed.
//!
//! The numbers are meant to look like a real clinic's export, so that the bench exercises
//! every step of `benches/fixtures/thirty_steps.step` in roughly the mix a clinic would see:
//! booked 25% (appointment in 0–14 days, booked 0–10 days ago, 5% cancelled), first_visit 20%
//! (first visit 0–10 days ago), follow_up 35% (last visit 0–7 months ago), regular 20% (regular
//! for 0–24 months); ages 20–85; ~5% without a LINE user id and ~3% opted out; tags `chronic`,
//! `flu_season`, `flu_vaccinated` and `vip` some of the time. Names are fictional (`患者123`).
//!
//! One implementation serves both the `generate_patients` example and the `evaluate` bench.

use std::fmt::Write as _;
use std::io::{self, Read};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The header of `rules/patients.csv`.
pub const HEADER: &str = "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,\
appointment_at,visited_at,last_visit_at,next_booking_at,cancelled_at,doctor,department,marketing_ok";

/// Doctors and their departments, as in `rules/patients.csv` (田中 runs the health checks).
const DOCTORS: [(&str, &str); 4] = [
    ("佐藤", "内科"),
    ("鈴木", "内科"),
    ("高橋", "内科"),
    ("田中", "健診"),
];

/// SplitMix64: tiny, fast, and the same sequence on every platform and Rust version, which is
/// all a benchmark's data needs (it is no source of secrets).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is far below what a benchmark could notice).
    fn below(&mut self, n: i64) -> i64 {
        (self.next_u64() % n.max(1) as u64) as i64
    }

    /// True `percent` times in a hundred.
    fn percent(&mut self, percent: i64) -> bool {
        self.below(100) < percent
    }
}

/// Writes `count` patients as CSV (header first) through [`Read`], a few hundred rows at a
/// time: memory stays flat however many patients are asked for.
pub struct PatientCsv {
    rng: SplitMix64,
    now: NaiveDateTime,
    next: u64,
    count: u64,
    buffer: String,
    read: usize,
}

impl PatientCsv {
    /// `now` is the clinic's wall-clock time the dates are relative to; the same `seed` gives
    /// the same file.
    pub fn new(count: u64, now: NaiveDateTime, seed: u64) -> Self {
        let mut buffer = String::with_capacity(64 * 1024);
        buffer.push_str(HEADER);
        buffer.push('\n');
        PatientCsv {
            rng: SplitMix64(seed),
            now,
            next: 1,
            count,
            buffer,
            read: 0,
        }
    }

    fn fill(&mut self) {
        self.buffer.clear();
        self.read = 0;
        while self.next <= self.count && self.buffer.len() < 60 * 1024 {
            let n = self.next;
            self.next += 1;
            self.row(n);
        }
    }

    /// Appends patient `n`'s row.
    fn row(&mut self, n: u64) {
        let now = self.now;
        let rng = &mut self.rng;
        let stage = match rng.below(100) {
            0..=24 => Stage::Booked,
            25..=44 => Stage::FirstVisit,
            45..=79 => Stage::FollowUp,
            _ => Stage::Regular,
        };
        let age = 20 + rng.below(66);
        let birth = now.date() - Duration::days(age * 365 + age / 4 + rng.below(365));
        let mut dates = Dates::default();
        let entered = match stage {
            Stage::Booked => booked(rng, now, &mut dates),
            Stage::FirstVisit => first_visit(rng, now, &mut dates),
            Stage::FollowUp => follow_up(rng, now, &mut dates),
            Stage::Regular => regular(rng, now, &mut dates),
        };
        let line_user_id = (!rng.percent(5)).then(|| (rng.next_u64(), rng.next_u64()));
        let opted_out = rng.percent(3);
        let tags = tags(rng, age, stage);
        let (doctor, department) = DOCTORS[rng.below(DOCTORS.len() as i64) as usize];
        let department = if department == "内科" && rng.percent(5) {
            "発熱外来"
        } else {
            department
        };

        // Marketing consent (the rules' `consent` field): 70% consent. From the row number,
        // not the generator, so that every other column is what it was before this one.
        let marketing_ok = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57 < 90;

        let out = &mut self.buffer;
        let _ = write!(out, "P{n:07},");
        if let Some((high, low)) = line_user_id {
            let _ = write!(out, "U{high:016x}{low:016x}");
        }
        let _ = write!(out, ",患者{n},{},", stage.name());
        minute(out, Some(entered));
        let _ = write!(
            out,
            ",{:04}-{:02}-{:02},{tags},{opted_out},",
            birth.year(),
            birth.month(),
            birth.day()
        );
        for date in [
            dates.appointment,
            dates.visited,
            dates.last_visit,
            dates.next_booking,
            dates.cancelled,
        ] {
            minute(out, date);
            out.push(',');
        }
        let _ = writeln!(out, "{doctor},{department},{marketing_ok}");
    }
}

impl Read for PatientCsv {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read == self.buffer.len() {
            self.fill();
        }
        let pending = &self.buffer.as_bytes()[self.read..];
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        self.read += n;
        Ok(n)
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Booked,
    FirstVisit,
    FollowUp,
    Regular,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Booked => "booked",
            Stage::FirstVisit => "first_visit",
            Stage::FollowUp => "follow_up",
            Stage::Regular => "regular",
        }
    }
}

#[derive(Default)]
struct Dates {
    appointment: Option<NaiveDateTime>,
    visited: Option<NaiveDateTime>,
    last_visit: Option<NaiveDateTime>,
    next_booking: Option<NaiveDateTime>,
    cancelled: Option<NaiveDateTime>,
}

/// Booked 0–10 days ago at any hour (web bookings come in at night too), for a slot 0–14 days
/// ahead; one in five has been to the clinic before; 5% cancelled since.
fn booked(rng: &mut SplitMix64, now: NaiveDateTime, dates: &mut Dates) -> NaiveDateTime {
    let entered = now - Duration::minutes(rng.below(10 * 24 * 60));
    let day = now.date() + Duration::days(rng.below(15));
    dates.appointment = Some(slot(rng, day));
    if rng.percent(20) {
        let day = now.date() - Duration::days(60 + rng.below(1500));
        dates.visited = Some(slot(rng, day));
    }
    if rng.percent(5) {
        dates.cancelled = Some(between(rng, entered, now));
    }
    entered
}

/// First visit 0–10 days ago; 40% booked the next visit on the way out.
fn first_visit(rng: &mut SplitMix64, now: NaiveDateTime, dates: &mut Dates) -> NaiveDateTime {
    let visit = past_slot(rng, now, 0, 11);
    dates.visited = Some(visit);
    next_booking(rng, now, dates, 40, 7, 60);
    visit
}

/// Last visit 0–7 months ago (which is when they entered the stage); 35% have a next visit
/// booked within 3 months.
fn follow_up(rng: &mut SplitMix64, now: NaiveDateTime, dates: &mut Dates) -> NaiveDateTime {
    let last = past_slot(rng, now, 0, 214);
    dates.last_visit = Some(last);
    let first = last.date() - Duration::days(rng.below(1000));
    dates.visited = Some(slot(rng, first));
    next_booking(rng, now, dates, 35, 1, 90);
    last
}

/// Regular for 0–24 months, last seen some time since; half have a next visit booked.
fn regular(rng: &mut SplitMix64, now: NaiveDateTime, dates: &mut Dates) -> NaiveDateTime {
    let entered = past_slot(rng, now, 0, 731);
    let since = (now.date() - entered.date()).num_days();
    let last = past_slot(rng, now, 0, since + 1).max(entered);
    dates.last_visit = Some(last);
    let first = entered.date() - Duration::days(rng.below(2000));
    dates.visited = Some(slot(rng, first));
    next_booking(rng, now, dates, 50, 1, 60);
    entered
}

/// With `percent` chance, a next visit `min_days`–`max_days` from now; 3% of those cancelled.
fn next_booking(
    rng: &mut SplitMix64,
    now: NaiveDateTime,
    dates: &mut Dates,
    percent: i64,
    min_days: i64,
    max_days: i64,
) {
    if !rng.percent(percent) {
        return;
    }
    let day = now.date() + Duration::days(min_days + rng.below(max_days - min_days + 1));
    dates.next_booking = Some(slot(rng, day));
    if rng.percent(3) {
        let from = now - Duration::days(30);
        dates.cancelled = Some(between(rng, from, now));
    }
}

fn tags(rng: &mut SplitMix64, age: i64, stage: Stage) -> String {
    let chronic = rng.percent(if age >= 60 { 40 } else { 15 });
    let returning = matches!(stage, Stage::FollowUp | Stage::Regular);
    // November: staff have tagged the vaccination campaign's patients.
    let flu_season = rng.percent(if returning { 55 } else { 20 });
    let vaccinated = flu_season && rng.percent(35);
    let vip = rng.percent(3);
    let mut tags = String::new();
    for (on, tag) in [
        (chronic, "chronic"),
        (flu_season, "flu_season"),
        (vaccinated, "flu_vaccinated"),
        (vip, "vip"),
    ] {
        if on {
            if !tags.is_empty() {
                tags.push(';');
            }
            tags.push_str(tag);
        }
    }
    tags
}

/// A consultation slot (09:00–17:30, every 30 minutes) on `day`.
fn slot(rng: &mut SplitMix64, day: NaiveDate) -> NaiveDateTime {
    let minutes = 9 * 60 + 30 * rng.below(18);
    day.and_time(NaiveTime::MIN) + Duration::minutes(minutes)
}

/// A slot `min_days`–`max_days - 1` days ago, never after `now`.
fn past_slot(
    rng: &mut SplitMix64,
    now: NaiveDateTime,
    min_days: i64,
    max_days: i64,
) -> NaiveDateTime {
    let day = now.date() - Duration::days(min_days + rng.below(max_days - min_days));
    let at = slot(rng, day);
    if at > now {
        at - Duration::days(1)
    } else {
        at
    }
}

/// A minute in `[from, to)`.
fn between(rng: &mut SplitMix64, from: NaiveDateTime, to: NaiveDateTime) -> NaiveDateTime {
    from + Duration::minutes(rng.below((to - from).num_minutes()))
}

/// `2026-11-25 09:00`, or nothing for an empty cell.
fn minute(out: &mut String, at: Option<NaiveDateTime>) {
    if let Some(at) = at {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02}",
            at.year(),
            at.month(),
            at.day(),
            at.hour(),
            at.minute()
        );
    }
}
