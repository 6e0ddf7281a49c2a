//! The outbox: deliveries written to a JSONL file instead of LINE, when there is no channel
//! token or on `--dry-run`. Exactly once like LINE: a send whose line is already in the file
//! (written just before a crash) is recognised by its retry key and not written again.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::{Answer, Job};

#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    file: Mutex<File>,
    /// Pending retry keys already in the file.
    written: HashSet<String>,
}

#[derive(Serialize)]
struct OutboxLine<'a> {
    patient: &'a str,
    to: &'a str,
    step: &'a str,
    variant: Option<&'a str>,
    retry_key: &'a str,
    messages: &'a [serde_json::Value],
}

impl Outbox {
    /// Opens the outbox for appending; `pending` are the ledger's pending retry keys, to find
    /// any that a crashed run wrote but could not mark.
    pub fn open(path: &Path, pending: &[String]) -> std::io::Result<Outbox> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let pending: HashSet<&str> = pending.iter().map(String::as_str).collect();
        let mut written = HashSet::new();
        if !pending.is_empty() && path.exists() {
            for line in BufReader::new(File::open(path)?).lines() {
                let line = line?;
                let key = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("retry_key")?.as_str().map(str::to_owned));
                if let Some(key) = key.filter(|k| pending.contains(k.as_str())) {
                    written.insert(key);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Outbox {
            path: path.to_owned(),
            file: Mutex::new(file),
            written,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn deliver(&self, job: &Job) -> Answer {
        if self.written.contains(&job.retry_key) {
            return Answer::AlreadyAccepted {
                request_id: None,
                accepted_id_missing: false,
            };
        }
        let line = OutboxLine {
            patient: &job.patient,
            to: &job.to,
            step: &job.step,
            variant: job.variant.as_deref(),
            retry_key: &job.retry_key,
            messages: &job.messages,
        };
        let mut text = serde_json::to_string(&line).expect("outbox line serializes");
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line, so a crash leaves whole lines (a torn last line is not JSON and
        // is simply not recognised).
        match file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            Ok(()) => Answer::Accepted { request_id: None },
            Err(error) => Answer::Retry {
                after: None,
                asked: None,
                error: format!("cannot write the outbox {}: {error}", self.path.display()),
            },
        }
    }
}
