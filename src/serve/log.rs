//! `serve`'s log: lines go to one thread that writes them, so that a request never waits on a
//! slow or full stderr (a pipe nobody reads, a stalled journal). When that thread falls behind,
//! lines are dropped and counted instead of piling up in memory. Callers write only what may be
//! logged: no patient data, message text, LINE user id, token or secret.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Lines waiting to be written before new ones are dropped.
const BACKLOG: usize = 4096;

/// Where `serve` logs; cheap to clone.
#[derive(Clone)]
pub struct Log {
    lines: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl Log {
    /// Starts the thread that writes to `out`; it ends when every `Log` is dropped.
    pub fn start(out: Box<dyn Write + Send>) -> (Log, JoinHandle<()>) {
        let (lines, receiver) = sync_channel(BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        let writer = std::thread::Builder::new()
            .name("serve-log".into())
            .spawn(move || write_lines(receiver, out, &counter))
            .unwrap_or_else(|_| std::thread::spawn(|| {}));
        (Log { lines, dropped }, writer)
    }

    /// Logs one line (without its line end).
    pub fn line(&self, text: impl Into<String>) {
        match self.lines.try_send(text.into()) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write_lines(lines: Receiver<String>, mut out: Box<dyn Write + Send>, dropped: &AtomicU64) {
    while let Ok(line) = lines.recv() {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "note: {lost} log line(s) dropped (the log fell behind)"
            );
        }
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Writes what it is given to a [`Log`], line by line (for code that reports through
/// `std::io::Write`, such as a delivery pass's summary).
pub struct LogWriter {
    log: Log,
    pending: Vec<u8>,
}

impl LogWriter {
    pub fn new(log: Log) -> Self {
        LogWriter {
            log,
            pending: Vec::new(),
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.log
                .line(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.log.line(String::from_utf8_lossy(&line).into_owned());
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_and_a_writer_splits_at_line_ends() {
        let out = Shared::default();
        let (log, thread) = Log::start(Box::new(out.clone()));
        log.line("first");
        let mut writer = LogWriter::new(log.clone());
        write!(writer, "a\nb").unwrap();
        drop(writer);
        drop(log);
        thread.join().unwrap();
        assert_eq!(
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            "first\na\nb\n"
        );
    }

    #[test]
    fn a_stuck_output_drops_lines_instead_of_blocking() {
        struct Stuck(Arc<Mutex<()>>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                drop(self.0.lock().unwrap());
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (log, _thread) = Log::start(Box::new(Stuck(Arc::clone(&gate))));
        let started = std::time::Instant::now();
        for i in 0..(BACKLOG * 3) {
            log.line(format!("line {i}"));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(log.dropped.load(Ordering::Relaxed) > 0);
        drop(held);
    }
}
