//! The LINE side of `status`: for one patient, whether they linked LINE (when, never the LINE
//! user id), whether the LINE user their sends go to blocked the account (since when), and
//! whether the export names another LINE user than the link; over the whole export, how many
//! patients have such a conflict (the export's id is the one used).

use std::io::Write;

use serde::Serialize;

use crate::app::recipients::Links;
use crate::app::{for_each_patient, load_rules, AppError, Io, PatientSource, RulesSource};
use crate::ledger::{LedgerError, ReadLedger};
use crate::plan::TimingPlan;
use crate::printable::printable;

/// How many patients with a conflict the table names.
const SHOWN: usize = 5;

/// What the export says about LINE users, against the ledger's links.
#[derive(Debug, Default)]
pub(super) struct ExportCheck {
    /// Patients whose export `line_user_id` is not their latest linked LINE user.
    pub conflicts: u64,
    /// The first few of them, by patient id.
    pub examples: Vec<String>,
    /// The asked-for patient's `line_user_id` in the export; `None` when the patient is not in
    /// it (the outer `Option` of `ExportCheck::patient`).
    pub patient: Option<Option<String>>,
}

/// Reads the export once: conflicts between its LINE ids and the links, and the asked-for
/// patient's LINE id. The rules say how to read it (time zone, stages, fields).
pub(super) fn check_export(
    rules: &RulesSource,
    patients: &PatientSource,
    links: &Links,
    patient: Option<&str>,
    io: &mut Io<'_>,
) -> Result<ExportCheck, AppError> {
    let rules = load_rules(rules, io)?;
    let plan = TimingPlan::compile(&rules);
    let mut check = ExportCheck::default();
    for_each_patient(patients, &plan.schema, io.err, |record| {
        if patient == Some(record.id.as_str()) {
            check.patient = Some(record.line_user_id.clone());
        }
        let differs = record
            .line_user_id
            .as_deref()
            .zip(links.of(&record.id))
            .is_some_and(|(export, linked)| export != linked);
        if differs {
            check.conflicts += 1;
            if check.examples.len() < SHOWN {
                check.examples.push(record.id.clone());
            }
        }
        Ok(true)
    })?;
    Ok(check)
}

/// One patient's LINE state, as `status --format json` prints it under `line`.
#[derive(Debug, Serialize)]
pub(super) struct LineJson {
    /// When the latest LINE user was linked; `null` when none was.
    linked_at: Option<String>,
    /// How many LINE users are linked to the patient (the latest is used).
    links: usize,
    /// Where sends go: `export` (its line_user_id), `link`, `none`; `null` when it cannot be
    /// told without the export.
    recipient: Option<&'static str>,
    /// Whether the patient is in the export; `null` without `--patients`.
    in_export: Option<bool>,
    /// When the LINE user sends go to blocked the account, if they have (without
    /// `--patients`: the linked LINE user).
    blocked_since: Option<String>,
    /// Whether the export's line_user_id is another LINE user than the link; `null` without
    /// `--patients`.
    conflict: Option<bool>,
}

pub(super) fn line_json(
    ledger: &dyn ReadLedger,
    patient: &str,
    export: Option<&ExportCheck>,
) -> Result<LineJson, LedgerError> {
    let links = ledger.patient_links(patient)?;
    let latest = links.last();
    // None: no export given; Some(None): not in it; Some(Some(id)): its line_user_id.
    let exported: Option<Option<Option<&str>>> =
        export.map(|e| e.patient.as_ref().map(Option::as_deref));
    let export_id = exported.flatten().flatten();
    let linked = latest.map(|link| link.line_user.as_str());
    // Without the export, the linked user is the one whose block can be told.
    let (recipient, user) = match (exported, export_id, linked) {
        (None, _, linked) => (None, linked),
        (Some(_), Some(id), _) => (Some("export"), Some(id)),
        (Some(_), None, Some(linked)) => (Some("link"), Some(linked)),
        (Some(_), None, None) => (Some("none"), None),
    };
    let blocked_since = match user {
        Some(user) => ledger
            .friend(user)?
            .filter(|state| state.blocked)
            .map(|state| crate::ledger::stamp(state.since)),
        None => None,
    };
    Ok(LineJson {
        linked_at: latest.map(|link| crate::ledger::stamp(link.linked_at)),
        links: links.len(),
        recipient,
        in_export: exported.map(|found| found.is_some()),
        blocked_since,
        conflict: exported.map(|_| {
            export_id
                .zip(latest)
                .is_some_and(|(id, link)| id != link.line_user)
        }),
    })
}

pub(super) fn write_line(line: &LineJson, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\nLINE for this patient:")?;
    match &line.linked_at {
        Some(at) if line.links > 1 => writeln!(
            out,
            "  linked on {at} ({} LINE users linked; the latest is used)",
            line.links
        )?,
        Some(at) => writeln!(out, "  linked on {at}")?,
        None => writeln!(out, "  not linked in the ledger")?,
    }
    if line.in_export == Some(false) {
        writeln!(out, "  not in the export: nothing is sent to them")?;
    }
    match line.recipient {
        Some("export") => writeln!(out, "  sends go to the export's line_user_id")?,
        Some("link") => writeln!(out, "  sends go to the linked LINE user")?,
        Some(_) => writeln!(
            out,
            "  sends go nowhere: no line_user_id in the export and not linked"
        )?,
        None => {}
    }
    if let Some(since) = &line.blocked_since {
        let who = if line.recipient.is_some() {
            "blocked"
        } else {
            "the linked LINE user blocked"
        };
        writeln!(
            out,
            "  {who} the account on {since}: sends are not pushed until they follow again"
        )?;
    }
    match line.conflict {
        Some(true) => writeln!(
            out,
            "  conflict: the export's line_user_id is not the linked LINE user; the export's \
             is used"
        )?,
        Some(false) => {}
        None if line.linked_at.is_some() => writeln!(
            out,
            "  conflict: cannot check it against the export's line_user_id without --patients \
             (and RULES)"
        )?,
        None => writeln!(
            out,
            "  whether the export names a LINE user (and whether that user blocked the \
             account) cannot be checked without --patients (and RULES)"
        )?,
    }
    Ok(())
}

pub(super) fn write_conflicts(check: &ExportCheck, out: &mut dyn Write) -> std::io::Result<()> {
    if check.conflicts == 0 {
        return writeln!(
            out,
            "\nLINE links: no patient's export line_user_id differs from their link"
        );
    }
    let names: Vec<String> = check
        .examples
        .iter()
        .map(|id| printable(id).into_owned())
        .collect();
    let more = if check.conflicts > names.len() as u64 {
        ", …"
    } else {
        ""
    };
    writeln!(
        out,
        "\nLINE links: {} patient(s) whose export id differs from their link (the export's \
         is used): {}{more}; `status --patient ID` shows one",
        check.conflicts,
        names.join(", ")
    )
}
