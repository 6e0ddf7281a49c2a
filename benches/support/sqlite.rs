//! Contestant (c): the same rows in an in-memory SQLite table and the 30 steps as hand-written
//! SQL (`thirty_steps.sql`) — one SELECT per step, UNION ALL, then the placement every step
//! shares (`at` times, quiet hours, expiry, catching up) and the daily cap as window functions.
//!
//! Dates are stored as the clinic's wall-clock text (`2026-11-25 09:00:00`), SQLite's own date
//! format, so `datetime(…, '+3 months', 'floor')` is calendar arithmetic on the clinic's clock
//! (`floor`, SQLite ≥ 3.46, clamps Nov 30 + 3 months to Feb 28 as chrono does) and comparisons
//! are text comparisons. Asia/Tokyo has no daylight saving time, so wall-clock arithmetic is
//! exact. Tags are stored `;`-separated, as the export has them.

use rusqlite::{named_params, Connection};
use steprule::PatientRecord;
use steprule::TimingPlan;
use steprule::Window;

/// The hand-written query: the sends in the window, per step.
const DUE_SENDS: &str = include_str!("thirty_steps.sql");

/// An in-memory database holding the patients.
pub struct Sqlite {
    connection: Connection,
}

impl Sqlite {
    /// Creates the table and inserts every patient (one transaction, one prepared insert).
    pub fn load(patients: &[PatientRecord], plan: &TimingPlan) -> rusqlite::Result<Self> {
        let connection = Connection::open_in_memory()?;
        connection.execute_batch(
            "CREATE TABLE patients (
                pk INTEGER PRIMARY KEY, id TEXT NOT NULL, line_user_id TEXT, stage TEXT,
                stage_entered_at TEXT, birth_date TEXT, tags TEXT NOT NULL,
                opted_out INTEGER NOT NULL, appointment_at TEXT, visited_at TEXT,
                last_visit_at TEXT, next_booking_at TEXT, cancelled_at TEXT, doctor TEXT,
                department TEXT
            );
            CREATE TABLE seq (i INTEGER PRIMARY KEY);
            INSERT INTO seq VALUES (0), (1), (2);
            CREATE INDEX patients_stage ON patients (stage);",
        )?;
        let tz = plan.timezone;
        let local = |at: Option<chrono::DateTime<chrono::Utc>>| {
            at.map(|at| {
                at.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
        };
        let schema = &plan.schema;
        let date = |patient: &PatientRecord, name: &str| {
            local(schema.date_index(name).and_then(|i| patient.dates[i]))
        };
        let field = |patient: &PatientRecord, name: &str| {
            schema
                .field_index(name)
                .and_then(|i| patient.fields[i].clone())
        };
        let transaction = connection.unchecked_transaction()?;
        {
            let mut insert = transaction.prepare(
                "INSERT INTO patients VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for (pk, patient) in patients.iter().enumerate() {
                insert.execute(rusqlite::params![
                    pk as i64,
                    patient.id,
                    patient.line_user_id,
                    patient.stage.map(|s| schema.stages[s].as_str()),
                    local(patient.stage_entered_at),
                    patient.birth_date.map(|d| d.to_string()),
                    patient.tags.join(";"),
                    patient.opted_out,
                    date(patient, "appointment_at"),
                    date(patient, "visited_at"),
                    date(patient, "last_visit_at"),
                    date(patient, "next_booking_at"),
                    date(patient, "cancelled_at"),
                    field(patient, "doctor"),
                    field(patient, "department"),
                ])?;
            }
        }
        transaction.commit()?;
        Ok(Sqlite { connection })
    }

    pub fn version(&self) -> String {
        self.connection
            .query_row("SELECT sqlite_version()", [], |row| row.get(0))
            .unwrap_or_else(|_| "?".to_owned())
    }

    /// Runs the query for `window`; sends in the window, per step.
    pub fn run(&self, window: Window, plan: &TimingPlan) -> rusqlite::Result<Vec<u64>> {
        let tz = plan.timezone;
        let local = |at: chrono::DateTime<chrono::Utc>| {
            at.with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        };
        let mut per_step = vec![0; plan.steps.len()];
        let mut query = self.connection.prepare(DUE_SENDS)?;
        let mut rows = query.query(named_params! {
            ":now": local(window.now),
            ":from": local(window.from),
            ":until": local(window.to),
        })?;
        while let Some(row) = rows.next()? {
            let step: usize = row.get(0)?;
            let count: i64 = row.get(1)?;
            per_step[step] = count as u64;
        }
        Ok(per_step)
    }
}
