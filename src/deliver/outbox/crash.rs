//! Crash points for the tests of the outbox's exactly-once recovery:
//! `STEPRULE_TEST_CRASH=<point>:<n>` aborts the process the `n`th time a pass reaches
//! `<point>`, as a SIGKILL would (no destructor runs, no transaction is rolled back or
//! committed, nothing buffered is flushed). Only debug builds (the binary the integration tests
//! run) read the variable; a release build has no crash points.
//!
//! The points, in the order a batch reaches them:
//! - `after-claim`: the batch's claims are committed, none of its lines is written;
//! - `mid-line`: the outbox's write stops in the middle of a line (its first line whole);
//! - `after-write`: the batch's lines are written, what records them is not committed.

/// Where a pass can be made to crash (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterClaim,
    MidLine,
    AfterWrite,
}

impl CrashPoint {
    #[cfg(debug_assertions)]
    fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterClaim => "after-claim",
            CrashPoint::MidLine => "mid-line",
            CrashPoint::AfterWrite => "after-write",
        }
    }

    /// True when this is the time `STEPRULE_TEST_CRASH` names: the caller then does what the
    /// crash interrupts, if anything, and calls [`CrashPoint::crash`].
    #[cfg(debug_assertions)]
    pub fn reached(self) -> bool {
        use std::sync::atomic::{AtomicU32, Ordering};
        static TIMES: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
        let Ok(wanted) = std::env::var("STEPRULE_TEST_CRASH") else {
            return false;
        };
        let Some((point, nth)) = wanted.split_once(':') else {
            return false;
        };
        if point != self.name() {
            return false;
        }
        let times = TIMES[self as usize].fetch_add(1, Ordering::SeqCst) + 1;
        nth.parse::<u32>().is_ok_and(|nth| nth == times)
    }

    #[cfg(not(debug_assertions))]
    #[inline(always)]
    pub fn reached(self) -> bool {
        false
    }

    /// Ends the process at once, as a SIGKILL would.
    pub fn crash(self) -> ! {
        std::process::abort()
    }

    /// Crashes here if `STEPRULE_TEST_CRASH` names this time.
    pub fn check(self) {
        if self.reached() {
            self.crash()
        }
    }
}
