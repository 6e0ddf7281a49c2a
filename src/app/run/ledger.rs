//! Which ledger a pass opens: the SQLite file (one run at a time, behind its lock file), or
//! PostgreSQL (`--ledger postgres://…`, or `STEPRULE_LEDGER_URL`), which many workers share
//! through their claims' leases and so takes no lock.

use std::path::Path;

use super::RunRequest;
use crate::app::AppError;
use crate::ledger::postgres::PgLedger;
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
            let ledger = PgLedger::open(&url, &clinic_of(plan, request), request.lease)?;
            Ok((None, Box::new(ledger)))
        }
    }
}

/// The clinic whose rows a pass reads and writes on a shared ledger: the rules' `clinic`, else
/// the rules file's name without its extension.
pub(crate) fn clinic_of(plan: &TimingPlan, request: &RunRequest) -> String {
    crate::ledger::postgres::clinic_name(plan.clinic.as_deref(), &request.rules.file)
}
