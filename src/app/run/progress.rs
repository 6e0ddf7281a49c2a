//! The progress bar on a terminal: sends settled out of sends queued so far.

use crate::deliver::Progress;

pub(super) struct NoProgress;

impl Progress for NoProgress {
    fn queued(&self) {}
    fn settled(&self) {}
}

pub(super) struct Bar(indicatif::ProgressBar);

impl Bar {
    pub(super) fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} sends settled {per_sec} [{elapsed}]",
        ) {
            bar.set_style(style);
        }
        Bar(bar)
    }
}

impl Progress for Bar {
    fn queued(&self) {
        self.0.inc_length(1);
    }
    fn settled(&self) {
        self.0.inc(1);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
