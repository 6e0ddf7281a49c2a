//! The reads behind reaction conditions (`clicked survey`, `booked since survey`, `3d after
//! sent survey`): delivered sends and patients' events since an instant, each one range of one
//! index, streamed. A pass reads them once, not once per patient.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::events::event_stamp;
use super::{parse_stamp, unix, unix_or_null, EventKind, Ledger, LedgerError};

/// Sends of some steps delivered since `?1`, on either sink, through the `sends_delivered`
/// index (ordered by delivery; the steps are in the index too, so other steps' sends are
/// passed over without visiting the table). `steps` placeholders for the step ids follow.
pub(crate) fn delivered_since_sql(steps: usize) -> String {
    let placeholders: Vec<String> = (0..steps.max(1)).map(|i| format!("?{}", i + 2)).collect();
    format!(
        "SELECT patient, step, occurrence, sent_at
         FROM sends INDEXED BY sends_delivered
         WHERE status = 'sent' AND sent_at >= ?1 AND sink IN ('line', 'outbox')
           AND step IN ({})
         ORDER BY sent_at",
        placeholders.join(", ")
    )
}

/// Events of one type since `?2`, through the `events_type_at` index.
pub(crate) const EVENTS_SINCE: &str = "SELECT at, patient, step, occurrence, detail
     FROM events INDEXED BY events_type_at
     WHERE type = ?1 AND at >= ?2 AND patient IS NOT NULL
     ORDER BY at";

/// A delivered send, as [`Ledger::delivered_since`] hands it out.
#[derive(Debug, Clone, Copy)]
pub struct DeliveredSend<'r> {
    pub patient: &'r str,
    pub step: &'r str,
    pub occurrence: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
}

/// A patient's event, as [`Ledger::patient_events`] hands it out.
#[derive(Debug, Clone, Copy)]
pub struct PatientEvent<'r> {
    pub patient: &'r str,
    pub at: DateTime<Utc>,
    /// The send it belongs to (a tracked link or postback): its step and occurrence.
    pub send: Option<(&'r str, DateTime<Utc>)>,
    pub detail: Option<&'r str>,
}

impl Ledger {
    /// Every send of one of `steps` delivered (to LINE or the outbox) since `since`, oldest
    /// first. No steps, no sends.
    pub fn delivered_since(
        &self,
        since: DateTime<Utc>,
        steps: &[&str],
        mut each: impl FnMut(DeliveredSend<'_>),
    ) -> Result<(), LedgerError> {
        if steps.is_empty() {
            return Ok(());
        }
        let since = unix(since);
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&since];
        values.extend(steps.iter().map(|step| step as &dyn rusqlite::ToSql));
        let mut run = || -> rusqlite::Result<()> {
            let mut statement = self.conn.prepare(&delivered_since_sql(steps.len()))?;
            let mut rows = statement.query(values.as_slice())?;
            while let Some(row) = rows.next()? {
                let (patient, step) = (row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
                let occurrence = parse_stamp(row.get_ref(2)?.as_str()?);
                let sent_at = unix_or_null(row.get_ref(3)?, 3, "sent_at")?;
                if let (Some(occurrence), Some(sent_at)) = (occurrence, sent_at) {
                    each(DeliveredSend {
                        patient,
                        step,
                        occurrence,
                        sent_at,
                    });
                }
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }

    /// Every event of `kind` that names a patient, since `since`, oldest first.
    pub fn patient_events(
        &self,
        kind: EventKind,
        since: DateTime<Utc>,
        mut each: impl FnMut(PatientEvent<'_>),
    ) -> Result<(), LedgerError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut statement = self.conn.prepare_cached(EVENTS_SINCE)?;
            let mut rows = statement.query(params![kind.as_str(), event_stamp(since)])?;
            while let Some(row) = rows.next()? {
                let Some(at) = parse_stamp(row.get_ref(0)?.as_str()?) else {
                    continue;
                };
                let Some(patient) = row.get_ref(1)?.as_str_or_null()? else {
                    continue;
                };
                let step = row.get_ref(2)?.as_str_or_null()?;
                let occurrence = row.get_ref(3)?.as_str_or_null()?.and_then(parse_stamp);
                each(PatientEvent {
                    patient,
                    at,
                    send: step.zip(occurrence),
                    detail: row.get_ref(4)?.as_str_or_null()?,
                });
            }
            Ok(())
        };
        run().map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for `sql` with `count` parameters.
    fn query_plan(ledger: &Ledger, sql: &str, count: usize) -> String {
        let mut statement = ledger
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let values = ["2026-01-01", "survey", "survey_again"];
        let details: Vec<String> = statement
            .query_map(rusqlite::params_from_iter(&values[..count]), |row| {
                row.get(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        details.join("; ")
    }

    #[test]
    fn reaction_reads_use_their_indexes_not_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let sends = query_plan(&ledger, &delivered_since_sql(2), 3);
        assert!(sends.contains("sends_delivered"), "{sends}");
        assert!(!sends.contains("SCAN sends"), "{sends}");
        let events = query_plan(&ledger, EVENTS_SINCE, 2);
        assert!(events.contains("events_type_at"), "{events}");
        assert!(!events.contains("SCAN events"), "{events}");
    }
}
