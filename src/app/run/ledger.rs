//! Which ledger a pass opens: the SQLite file (one run at a time, behind its lock file), or
//! PostgreSQL (`--ledger postgres://…`, or `STEPRULE_LEDGER_URL`), which many workers share
//! through their claims' leases and so takes no lock.

use std::path::Path;

use super::RunRequest;
use crate::app::reactions::PassReactions;
use crate::app::AppError;
use crate::ledger::postgres::{shown_url, PgLedger};
use crate::ledger::{Ledger, LedgerLocation, LedgerLock, RunLedger};
use crate::plan::TimingPlan;

/// The ledger at `path`, with the lock that keeps other runs off it (SQLite only).
pub(super) fn open_ledger(
    request: &RunRequest,
    plan: &TimingPlan,
    path: &Path,
) -> Result<(Option<LedgerLock>, Box<dyn RunLedger>), AppError> {
    match LedgerLocation::of(path) {
        LedgerLocation::File(path) => {
            // The lock first: migrations and everything after run one at a time per ledger.
            let lock = LedgerLock::acquire(&path)?;
            let ledger = Ledger::open(&path)?;
            Ok((Some(lock), Box::new(ledger)))
        }
        LedgerLocation::Postgres(url) => {
            if let Some(what) = not_on_postgres_yet(request, plan) {
                return Err(AppError::Usage(format!(
                    "the ledger {} is on PostgreSQL, which does not hold {what} yet: use an \
                     SQLite ledger (--ledger PATH) for these rules",
                    shown_url(&url)
                )));
            }
            let ledger = PgLedger::open(&url, &clinic_of(plan, request), request.lease)?;
            Ok((None, Box::new(ledger)))
        }
    }
}

/// What these rules or options need that only the SQLite ledger holds so far: `serve`'s
/// events (reactions), tracked links' tokens, aggregation units.
fn not_on_postgres_yet(request: &RunRequest, plan: &TimingPlan) -> Option<&'static str> {
    if plan.track.is_some() {
        Some("tracked links (the rules' `track`)")
    } else if PassReactions::none(plan).used() {
        Some("the events that reactions read (`clicked`, `answered`, `blocked`, `after sent`)")
    } else if request.delivery.custom_aggregation {
        Some("aggregation units (--custom-aggregation)")
    } else {
        None
    }
}

/// The clinic whose rows a pass reads and writes on a shared ledger: the rules' `clinic`, else
/// the rules file's name without its extension.
pub(crate) fn clinic_of(plan: &TimingPlan, request: &RunRequest) -> String {
    plan.clinic.clone().unwrap_or_else(|| {
        request
            .rules
            .file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}
