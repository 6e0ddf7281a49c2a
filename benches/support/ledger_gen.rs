//! Writes a synthetic ledger: months of sends of a rule file's steps to generated patients,
//! and the events `serve` would have stored for them (clicks, blocks, bookings, visits,
//! follows). Shared by `benches/report.rs` (10,000,000 sends) and `examples/demo_ledger.rs`
//! (a few months for the sample clinic).
//!
//! Fast on purpose: the schema comes from `Ledger::open` (so it is the current one), then one
//! transaction of prepared inserts in primary-key order with the secondary indexes dropped and
//! rebuilt at the end (SQLite builds an index from sorted keys far faster than it maintains
//! one under random inserts). Memory is one patient's sends at a time.

use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rusqlite::{params, Connection};

/// A step as the ledger names it: its id, and its templates when it has several (A/B arms).
pub struct StepSpec {
    pub id: String,
    pub variants: Vec<String>,
}

impl StepSpec {
    /// The steps of checked rules: each id, and its arms' names when it has more than one (the
    /// ledger's `variant`, as `run` records it).
    pub fn of(rules: &steprule::RuleSet) -> Vec<StepSpec> {
        rules
            .steps
            .iter()
            .map(|step| StepSpec {
                id: step.id.clone(),
                variants: if step.variants.len() > 1 {
                    step.variants
                        .iter()
                        .map(|v| v.template.name.clone())
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect()
    }
}

/// How much to write.
pub struct Spec {
    pub sends: u64,
    /// Sends per patient on average.
    pub sends_per_patient: u64,
    /// Events per delivered send on average.
    pub events_per_send: f64,
    /// Sends are spread over the `months` × 30 days before `end`.
    pub months: u32,
    pub end: DateTime<Utc>,
    pub seed: u64,
}

/// What was written.
pub struct Written {
    pub sends: u64,
    pub events: u64,
    pub patients: u64,
}

/// SplitMix64: small, fast and the same everywhere for one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn seconds(&mut self, max: i64) -> Duration {
        Duration::seconds(self.below(max.max(1) as u64) as i64)
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn event_stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What happens after a delivery, with its share of the events and how long after it.
const RESPONSES: [(&str, f64, i64); 5] = [
    // Clicks: some after the 14 days that count.
    ("click", 0.50, 20 * 86_400),
    ("booked", 0.20, 30 * 86_400),
    ("revisited", 0.15, 120 * 86_400),
    ("follow", 0.10, 30 * 86_400),
    ("unfollow", 0.05, 72 * 3_600),
];

/// Writes the ledger at `path` (which must not exist yet).
pub fn write_ledger(path: &Path, steps: &[StepSpec], spec: &Spec) -> Result<Written, String> {
    let fail = |e: rusqlite::Error| e.to_string();
    drop(steprule::ledger::Ledger::open(path).map_err(|e| e.to_string())?);
    let mut conn = Connection::open(path).map_err(fail)?;
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )
    .map_err(fail)?;
    let indexes: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
               AND tbl_name IN ('sends', 'events')",
        )
        .and_then(|mut s| {
            s.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(fail)?;
    let tx = conn.transaction().map_err(fail)?;
    for (name, _) in &indexes {
        tx.execute_batch(&format!("DROP INDEX {name}"))
            .map_err(fail)?;
    }
    let written = insert_all(&tx, steps, spec).map_err(fail)?;
    for (_, sql) in &indexes {
        tx.execute_batch(sql).map_err(fail)?;
    }
    tx.commit().map_err(fail)?;
    conn.execute_batch("ANALYZE").map_err(fail)?;
    Ok(written)
}

fn insert_all(
    tx: &rusqlite::Transaction<'_>,
    steps: &[StepSpec],
    spec: &Spec,
) -> rusqlite::Result<Written> {
    let mut send = tx.prepare(
        "INSERT OR IGNORE INTO sends (sink, patient, step, occurrence, variant, template, status,
             retry_key, attempts, due_at, expires_at, created_at, updated_at, sent_at,
             line_request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?13, ?9, ?13, ?10, ?11, ?12)",
    )?;
    let mut event = tx.prepare(
        "INSERT INTO events (id, type, at, received_at, line_user, patient, sink, step,
                             occurrence, detail)
         VALUES (?1, ?2, ?3, ?3, NULL, ?4, ?5, ?6, ?7, NULL)",
    )?;
    let mut rng = Rng(spec.seed);
    let span = i64::from(spec.months) * 30 * 86_400;
    let start = spec.end - Duration::seconds(span);
    let mut written = Written {
        sends: 0,
        events: 0,
        patients: 0,
    };
    let mut remaining = spec.sends;
    let mut mine: Vec<(usize, DateTime<Utc>, bool)> = Vec::new();
    while remaining > 0 {
        let patient = format!("P{:08}", written.patients);
        written.patients += 1;
        let count = (1 + rng.below(2 * spec.sends_per_patient.max(1) - 1)).min(remaining);
        remaining -= count;
        mine.clear();
        for _ in 0..count {
            // Early steps (each stage's first messages) go out more often than late ones.
            let n = steps.len() as u64;
            let step = rng.below(n).min(rng.below(n)) as usize;
            let occurrence = start + rng.seconds(span);
            // 3% went to the outbox (a clinic trying `--dry-run`).
            mine.push((step, occurrence, rng.chance(0.03)));
        }
        mine.sort_by(|a, b| (a.2, &steps[a.0].id, a.1).cmp(&(b.2, &steps[b.0].id, b.1)));
        for &(index, occurrence, outbox) in &mine {
            let step = &steps[index];
            let arm = rng.below(step.variants.len().max(1) as u64) as usize;
            let variant = step.variants.get(arm);
            let delivered = rng.chance(0.95);
            let sent_at = occurrence + rng.seconds(2 * 3_600);
            let sink = if outbox { "outbox" } else { "line" };
            let occurrence_stamp = stamp(occurrence);
            // The ledger's other instants are seconds (version 15).
            let sent_seconds = delivered.then(|| sent_at.timestamp());
            let inserted = send.execute(params![
                sink,
                patient,
                step.id,
                occurrence_stamp,
                variant,
                variant.unwrap_or(&step.id),
                if delivered { "sent" } else { "expired" },
                format!("k{}", written.sends),
                (occurrence + Duration::days(1)).timestamp(),
                sent_seconds.unwrap_or(occurrence.timestamp()),
                sent_seconds,
                (delivered && !outbox).then_some("req"),
                occurrence.timestamp(),
            ])?;
            written.sends += inserted as u64;
            if !delivered || outbox || inserted == 0 {
                continue;
            }
            // Steps differ (some links are tapped more, some steps annoy), and a later arm
            // of an A/B step books a little better, so that a report has something to say.
            let tilt = kind_tilt(index, arm);
            for (kind, share, within) in RESPONSES {
                let weight = match kind {
                    "click" => tilt,
                    "unfollow" => 2.0 - tilt.min(1.6),
                    "booked" => 1.0 + 0.3 * arm as f64,
                    _ => 1.0,
                };
                if !rng.chance(spec.events_per_send * share * weight) {
                    continue;
                }
                let at = sent_at + rng.seconds(within);
                let tied = matches!(kind, "click" | "unfollow");
                event.execute(params![
                    format!("e{:010}", written.events),
                    kind,
                    event_stamp(at),
                    patient,
                    tied.then_some(sink),
                    tied.then_some(&step.id),
                    tied.then_some(occurrence_stamp.as_str()),
                ])?;
                written.events += 1;
            }
        }
    }
    Ok(written)
}

/// How much more (or less) often than average patients tap step `index`'s links: 0.4× to 1.9×,
/// the same for every run.
fn kind_tilt(index: usize, arm: usize) -> f64 {
    0.4 + ((index * 7 + arm * 3) % 10) as f64 / 6.0
}
