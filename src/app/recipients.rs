//! Who a patient's LINE messages go to, and whether that LINE user has blocked the account.
//! The recipient is the export's `line_user_id` when the row has one (the export wins over a
//! link), else the patient's latest link in the ledger. Links and blocks are read once per
//! command into two tables as large as the links and the blocks, not the patients, so that
//! deciding costs no query per patient however large the export is.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::AppError;
use crate::ledger::postgres::{self, PgLedger};
use crate::ledger::{Ledger, LedgerError, LedgerLocation, ReadLedger, RunLedger};
use crate::records::PatientRecord;

/// Every patient's latest linked LINE user.
#[derive(Debug, Default)]
pub struct Links {
    by_patient: HashMap<Box<str>, Box<str>>,
}

/// The LINE users who have blocked the account now.
#[derive(Debug, Default)]
pub struct BlockedUsers {
    users: HashSet<Box<str>>,
}

/// Both, as `plan` and `status` read them.
#[derive(Debug, Default)]
pub struct Recipients {
    pub links: Links,
    pub blocked: BlockedUsers,
}

/// Where a patient's LINE user comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The export's `line_user_id`.
    Export,
    /// The export has none; the patient linked LINE (the ledger's latest link).
    Link,
    /// Neither: nothing can be sent until the patient links.
    Unlinked,
}

/// A patient as delivery sees them: the linked LINE user filled in where the export has none
/// (so conditions, the evaluator and delivery all see the one recipient).
#[derive(Debug)]
pub struct Resolved<'a> {
    pub record: Cow<'a, PatientRecord>,
    pub source: Source,
}

impl Links {
    pub fn load(ledger: &dyn RunLedger) -> Result<Links, LedgerError> {
        let mut by_patient: HashMap<Box<str>, Box<str>> = HashMap::new();
        // Each patient's latest link comes last, so the last insert is the one kept.
        ledger.links(&mut |patient, user| match by_patient.get_mut(patient) {
            Some(latest) => *latest = user.into(),
            None => {
                by_patient.insert(patient.into(), user.into());
            }
        })?;
        Ok(Links { by_patient })
    }

    /// The LINE user `patient` linked last.
    pub fn of(&self, patient: &str) -> Option<&str> {
        self.by_patient.get(patient).map(|user| &**user)
    }

    pub fn len(&self) -> usize {
        self.by_patient.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_patient.is_empty()
    }

    /// `patient` with their recipient: borrowed as it is unless the export has no LINE user and
    /// a link gives one (a copy only for those patients).
    pub fn resolve<'a>(&self, patient: &'a PatientRecord) -> Resolved<'a> {
        if patient.line_user_id.is_some() {
            return Resolved {
                record: Cow::Borrowed(patient),
                source: Source::Export,
            };
        }
        match self.of(&patient.id) {
            Some(user) => {
                let mut linked = patient.clone();
                linked.line_user_id = Some(user.to_owned());
                Resolved {
                    record: Cow::Owned(linked),
                    source: Source::Link,
                }
            }
            None => Resolved {
                record: Cow::Borrowed(patient),
                source: Source::Unlinked,
            },
        }
    }
}

impl BlockedUsers {
    pub fn load(ledger: &dyn RunLedger) -> Result<BlockedUsers, LedgerError> {
        let mut users = HashSet::new();
        ledger.blocked_users(&mut |user| {
            users.insert(user.into());
        })?;
        Ok(BlockedUsers { users })
    }

    /// Whether `recipient` has blocked the account (no recipient has blocked nothing).
    pub fn contains(&self, recipient: Option<&str>) -> bool {
        recipient.is_some_and(|user| self.users.contains(user))
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl Recipients {
    pub fn load(ledger: &dyn RunLedger) -> Result<Recipients, LedgerError> {
        Ok(Recipients {
            links: Links::load(ledger)?,
            blocked: BlockedUsers::load(ledger)?,
        })
    }

    /// Whether what goes to `patient` (resolved) would not be pushed.
    pub fn blocks(&self, patient: &PatientRecord) -> bool {
        self.blocked.contains(patient.line_user_id.as_deref())
    }
}

/// The ledger `run` writes by default: `.steprule/ledger.db` beside the rules.
pub fn default_ledger(rules: &Path) -> PathBuf {
    rules
        .parent()
        .unwrap_or(Path::new(""))
        .join(".steprule")
        .join("ledger.db")
}

/// The ledger `plan`, `explain` and `preview` read links, blocks and sends from, if there is
/// one: `given` when given (a file must exist; a `postgres://` URL is read as the clinic's rows,
/// see [`open_existing`]), else `run`'s default file when it exists. Never created.
pub fn open_for_reading(
    given: Option<&Path>,
    rules: &Path,
    clinic: Option<&str>,
) -> Result<Option<Box<dyn ReadLedger>>, AppError> {
    match given {
        Some(given) => open_existing(given, rules, clinic).map(Some),
        None => {
            let default = default_ledger(rules);
            if default.exists() {
                Ok(Some(Box::new(Ledger::open_existing(&default)?)))
            } else {
                Ok(None)
            }
        }
    }
}

/// The ledger at `given` for reading: an SQLite file that must exist, or the rows of the clinic
/// the rules at `rules` name (their `clinic`, else the file's name) in a PostgreSQL ledger, as
/// `run` and `serve` write them. Nothing is written to either: a PostgreSQL ledger is read at
/// the version this steprule writes, or refused.
pub fn open_existing(
    given: &Path,
    rules: &Path,
    clinic: Option<&str>,
) -> Result<Box<dyn ReadLedger>, AppError> {
    Ok(match LedgerLocation::of(given) {
        LedgerLocation::File(path) => Box::new(Ledger::open_existing(&path)?),
        LedgerLocation::Postgres(url) => {
            let clinic = postgres::clinic_name(clinic, rules);
            // Never migrated from here: a read-only user or a hot standby may read.
            Box::new(PgLedger::open_to_read(&url, &clinic)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::FriendChange;
    use chrono::{DateTime, Utc};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn patient(id: &str, line_user_id: Option<&str>) -> PatientRecord {
        PatientRecord {
            id: id.into(),
            line_user_id: line_user_id.map(str::to_owned),
            line: 2,
            ..PatientRecord::default()
        }
    }

    #[test]
    fn the_export_wins_then_the_latest_link_then_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        ledger
            .link("U-old", "P1", at("2026-11-20T00:00:00Z"))
            .unwrap();
        ledger
            .link("U-new", "P1", at("2026-11-21T00:00:00Z"))
            .unwrap();
        ledger
            .link("U-link", "P2", at("2026-11-21T00:00:00Z"))
            .unwrap();
        let links = Links::load(&ledger).unwrap();

        let linked = patient("P1", None);
        let resolved = links.resolve(&linked);
        assert_eq!(resolved.source, Source::Link);
        assert_eq!(resolved.record.line_user_id.as_deref(), Some("U-new"));

        let exported = patient("P2", Some("U-export"));
        let resolved = links.resolve(&exported);
        assert_eq!(resolved.source, Source::Export);
        assert_eq!(resolved.record.line_user_id.as_deref(), Some("U-export"));
        assert!(matches!(resolved.record, Cow::Borrowed(_)));

        let nobody = patient("P3", None);
        let resolved = links.resolve(&nobody);
        assert_eq!(resolved.source, Source::Unlinked);
        assert_eq!(resolved.record.line_user_id, None);
    }

    #[test]
    fn a_hundred_thousand_links_and_blocks_are_read_once_and_answer_without_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let mut ledger = Ledger::open(&path).unwrap();
        ledger.begin().unwrap();
        let when = at("2026-11-20T00:00:00Z");
        for i in 0..100_000 {
            ledger
                .link(&format!("U{i:06}"), &format!("P{i:06}"), when)
                .unwrap();
            ledger
                .set_friend(&format!("B{i:06}"), FriendChange::Blocked, when)
                .unwrap();
        }
        // Every other linked user blocked too.
        for i in (0..100_000).step_by(2) {
            ledger
                .set_friend(&format!("U{i:06}"), FriendChange::Blocked, when)
                .unwrap();
        }
        ledger.commit().unwrap();
        let recipients = Recipients::load(&ledger).unwrap();
        // The answers come from the tables read once: the ledger is gone.
        drop(ledger);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(recipients.links.len(), 100_000);
        assert_eq!(recipients.blocked.len(), 150_000);
        let mut blocked = 0;
        for i in 0..100_000 {
            let record = patient(&format!("P{i:06}"), None);
            let resolved = recipients.links.resolve(&record);
            assert_eq!(resolved.source, Source::Link);
            blocked += usize::from(recipients.blocks(&resolved.record));
        }
        assert_eq!(blocked, 50_000);
        assert!(recipients.blocked.contains(Some("B099999")));
        assert!(!recipients.blocked.contains(None));
    }
}
