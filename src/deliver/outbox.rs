//! The outbox: deliveries written to a JSONL file instead of LINE, when there is no channel
//! token or on `--dry-run`. Exactly once like LINE: a send whose line is already in the file
//! (written just before a crash) is recognised by its retry key and not written again.
//!
//! A failed write (a full disk) never leaves half a line: the file is cut back to its last whole
//! line, the error is kept for the run to report, and the outbox takes nothing more in this run.
//! A file torn by a crash mid-write (or holding bytes that are not UTF-8 at its end) is repaired
//! when opened: the torn tail is moved to a file beside it and appending resumes on a new line.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::{Answer, Job};
use crate::ledger::file::{self, DataFile, FILE_MODE};
use crate::line::{json_string_into, Message};
use crash::CrashPoint;

pub mod crash;

/// The longest outbox line read back when looking for retry keys; longer ones (not written by
/// steprule) are skipped without being held in memory.
const MAX_LINE: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    state: Mutex<State>,
    /// Pending retry keys already in the file.
    written: HashSet<String>,
    /// Where a torn tail found at opening was moved, if one was.
    pub set_aside: Option<PathBuf>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// The length of the file's whole lines.
    len: u64,
    /// The first write error; after it nothing more is written in this run.
    failed: Option<String>,
}

#[derive(Serialize)]
struct OutboxLine<'a> {
    patient: &'a str,
    to: &'a str,
    step: &'a str,
    variant: Option<&'a str>,
    retry_key: &'a str,
    messages: &'a [Message],
}

/// Appends `job`'s line without its newline: the bytes serde writes for its [`OutboxLine`].
/// When the messages are serialized already, the members before them are written here, as
/// serde would write them (in the struct's order, `variant` `null` when there is none), with
/// the strings escaped sixteen bytes at a time instead of serde's byte at a time, and the
/// messages copied in.
fn write_line(lines: &mut Vec<u8>, job: &Job) -> serde_json::Result<()> {
    let Some(messages) = &job.messages_json else {
        let line = OutboxLine {
            patient: &job.patient,
            to: &job.to,
            step: &job.step,
            variant: job.variant.as_deref(),
            retry_key: &job.retry_key,
            messages: &job.messages,
        };
        return serde_json::to_writer(lines, &line);
    };
    lines.extend_from_slice(b"{\"patient\":");
    json_string_into(&job.patient, lines);
    lines.extend_from_slice(b",\"to\":");
    json_string_into(&job.to, lines);
    lines.extend_from_slice(b",\"step\":");
    json_string_into(&job.step, lines);
    lines.extend_from_slice(b",\"variant\":");
    match &job.variant {
        Some(variant) => json_string_into(variant, lines),
        None => lines.extend_from_slice(b"null"),
    }
    lines.extend_from_slice(b",\"retry_key\":");
    json_string_into(&job.retry_key, lines);
    lines.extend_from_slice(b",\"messages\":");
    lines.extend_from_slice(messages.as_bytes());
    lines.push(b'}');
    Ok(())
}

/// Why the outbox could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the outbox {path}: {message}")]
pub struct OutboxError {
    pub path: String,
    pub message: String,
}

impl Outbox {
    /// Opens the outbox for appending; `pending` are the ledger's pending retry keys, to find
    /// any that a crashed run wrote but could not mark, and their lines can only be from byte
    /// `from` on: a run after a crash reads what the interrupted run wrote, not years of lines.
    pub fn open(path: &Path, pending: &[String], from: u64) -> Result<Outbox, OutboxError> {
        let fail = |message: String| OutboxError {
            path: path.display().to_string(),
            message,
        };
        let data = DataFile::open(path).map_err(|e| fail(file::advice(&e, "--outbox")))?;
        let path = data.path.clone();
        let fail = |e: std::io::Error| OutboxError {
            path: path.display().to_string(),
            message: file::advice(&e, "--outbox"),
        };
        let set_aside = repair_torn_tail(&path, data.file()).map_err(fail)?;
        let pending: HashSet<&str> = pending.iter().map(String::as_str).collect();
        let written = if pending.is_empty() {
            HashSet::new()
        } else {
            keys_in(data.file(), &pending, from).map_err(fail)?
        };
        let file = OpenOptions::new()
            .append(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(fail)?;
        let len = file.metadata().map_err(fail)?.len();
        Ok(Outbox {
            path,
            state: Mutex::new(State {
                file,
                len,
                failed: None,
            }),
            written,
            set_aside,
        })
    }

    /// Where the outbox ends now: a send claimed now writes its line after it.
    pub fn end(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    /// Whether the line of `retry_key`, one of the keys given to [`Outbox::open`], is in the
    /// file.
    pub fn holds(&self, retry_key: &str) -> bool {
        self.written.contains(retry_key)
    }

    /// The error that stopped the outbox in this run, if one did.
    pub fn write_error(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed
            .clone()
    }

    pub fn deliver(&self, job: &Job) -> Answer {
        let mut answers = Vec::with_capacity(1);
        self.deliver_all(std::slice::from_ref(job), &mut Vec::new(), &mut answers);
        answers.pop().unwrap_or(Answer::Unavailable {
            error: "the outbox gave no answer".into(),
        })
    }

    /// Writes the lines of `jobs` with one write (`lines` is a buffer to reuse), and pushes one
    /// answer per job onto `answers`, in order. When the write returns, the lines are in the
    /// file (the operating system's), so their sends may be marked sent. A write that fails
    /// part way (a full disk) keeps the whole lines it wrote, as a write per line did, and cuts
    /// the file back to the last of them; the jobs after it stay pending.
    pub fn deliver_all(&self, jobs: &[Job], lines: &mut Vec<u8>, answers: &mut Vec<Answer>) {
        lines.clear();
        // (answer, where its line ends in `lines`) for each line in the buffer.
        let mut ends = Vec::with_capacity(jobs.len());
        for job in jobs {
            if self.written.contains(&job.retry_key) {
                answers.push(Answer::AlreadyAccepted {
                    request_id: None,
                    note: Some("found in the outbox, written before an interruption".into()),
                });
                continue;
            }
            let before = lines.len();
            match write_line(lines, job) {
                Ok(()) => {
                    lines.push(b'\n');
                    ends.push((answers.len(), lines.len()));
                    answers.push(Answer::Accepted { request_id: None });
                }
                Err(error) => {
                    lines.truncate(before);
                    answers.push(Answer::Rejected {
                        error: format!("cannot write the message as JSON: {error}"),
                    });
                }
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (kept, failed) = match &state.failed {
            Some(error) => (0, Some(error.clone())),
            None if CrashPoint::MidLine.reached() => {
                // The first line whole and half of the next (or half of the only one).
                let first = ends.first().map_or(0, |&(_, end)| end);
                let next = ends.get(1).map_or(0, |&(_, end)| end);
                let cut = if next > first {
                    first + (next - first) / 2
                } else {
                    first / 2
                };
                let _ = write_counted(&mut state.file, &lines[..cut]);
                CrashPoint::MidLine.crash()
            }
            None => match write_counted(&mut state.file, lines) {
                (written, Ok(())) => (written, None),
                (written, Err(error)) => {
                    // Cut back to the last whole line, so the file never holds half a message.
                    let whole = ends
                        .iter()
                        .map(|&(_, end)| end)
                        .take_while(|&end| end <= written)
                        .last()
                        .unwrap_or(0);
                    let len = state.len + whole as u64;
                    let _ = state.file.set_len(len);
                    let error = format!("cannot write the outbox {}: {error}", self.path.display());
                    state.failed = Some(error.clone());
                    (whole, Some(error))
                }
            },
        };
        state.len += kept as u64;
        if let Some(error) = failed {
            for &(answer, end) in &ends {
                if end > kept {
                    answers[answer] = Answer::Unavailable {
                        error: error.clone(),
                    };
                }
            }
        }
    }
}

/// Writes `bytes` as `write_all` does, and says how many were written before an error.
fn write_counted(file: &mut File, bytes: &[u8]) -> (usize, std::io::Result<()>) {
    let mut written = 0;
    while written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => return (written, Err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return (written, Err(error)),
        }
    }
    (written, Ok(()))
}

/// If the file does not end with a line end, or its last line is not UTF-8, moves that last
/// line to `<outbox>.torn-<n>` and cuts the file back to its whole lines.
fn repair_torn_tail(path: &Path, file: &File) -> std::io::Result<Option<PathBuf>> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut reader = file;
    // Find the start of the last line (after the last `\n` before the final byte).
    let mut start = len;
    let mut end_byte = [0u8];
    reader.seek(SeekFrom::Start(len - 1))?;
    reader.read_exact(&mut end_byte)?;
    let whole = end_byte[0] == b'\n';
    let search_end = if whole { len - 1 } else { len };
    let mut chunk = vec![0u8; 64 * 1024];
    let mut position = search_end;
    'search: while position > 0 {
        let size = chunk.len().min(position as usize);
        position -= size as u64;
        reader.seek(SeekFrom::Start(position))?;
        reader.read_exact(&mut chunk[..size])?;
        if let Some(at) = chunk[..size].iter().rposition(|&b| b == b'\n') {
            start = position + at as u64 + 1;
            break 'search;
        }
        start = position;
    }
    let tail_len = usize::try_from(search_end - start).unwrap_or(usize::MAX);
    let tail_is_text = tail_len <= MAX_LINE && {
        let mut tail = vec![0u8; tail_len];
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut tail)?;
        std::str::from_utf8(&tail).is_ok()
    };
    if whole && tail_is_text {
        return Ok(None);
    }
    let aside = (1..)
        .map(|n| file::with_suffix(path, &format!(".torn-{n}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| file::with_suffix(path, ".torn"));
    let mut copy = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&aside)?;
    reader.seek(SeekFrom::Start(start))?;
    std::io::copy(&mut reader.take(len - start), &mut copy)?;
    copy.sync_all()?;
    file.set_len(start)?;
    Ok(Some(aside))
}

/// The retry keys in `pending` that have a line in the file.
fn keys_in(file: &File, pending: &HashSet<&str>, from: u64) -> std::io::Result<HashSet<String>> {
    // An outbox shorter than `from` was replaced (rotated): read it all.
    let from = if from <= file.metadata()?.len() {
        from
    } else {
        0
    };
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(from))?;
    let mut written = HashSet::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE {
                skip_line(&mut reader)?;
            }
            continue;
        }
        let key = serde_json::from_slice::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("retry_key")?.as_str().map(str::to_owned));
        if let Some(key) = key.filter(|k| pending.contains(k.as_str())) {
            written.insert(key);
        }
    }
    Ok(written)
}

/// Reads past the rest of a line without keeping it.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let len = buffer.len();
                reader.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests;
