//! `--run-every`: a delivery pass on an interval, on a thread of its own beside the server (a
//! pass blocks on the ledger and the patient export; requests must not wait for it). The pass
//! itself is the caller's (`app::serve` runs `app::run`'s), so this module only keeps time and
//! stops between passes on a signal; a pass in progress stops on the same signal by itself.

use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::watch;

/// Runs `pass` now and then every `interval` (measured from each pass's start, so a slow pass
/// does not push the schedule back; an overrun starts the next pass at once) until `stop`.
/// `runtime` must be a multi-thread runtime: a handle cannot drive a current-thread one's
/// timers.
pub fn every(
    interval: Duration,
    runtime: &Handle,
    mut stop: watch::Receiver<bool>,
    mut pass: impl FnMut(),
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        pass();
        let next = started + interval;
        let stopped = runtime.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => false,
                _ = stop.wait_for(|s| *s) => true,
            }
        });
        if stopped {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_run_on_the_interval_until_stopped() {
        // A handle drives timers only on a multi-thread runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let handle = runtime.handle().clone();
        let started = Instant::now();
        let mut passes = 0;
        every(Duration::from_millis(50), &handle, stop, || {
            passes += 1;
            if passes == 3 {
                let _ = stop_tx.send(true);
            }
        });
        assert_eq!(passes, 3);
        // Two waits between three passes.
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
