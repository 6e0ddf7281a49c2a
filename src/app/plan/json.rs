//! `plan --format json`: one line per send, in the order of the rows. Formatting the instants
//! and escaping the strings is most of what `plan` does after evaluating (a million patients
//! are over a million lines), so each line is put together from parts made once: the step,
//! template and variant of each (step, variant) escaped once per plan, the instants written
//! once each (see `instants`), and the patient id copied as it is unless it has something to
//! escape. The bytes are serde_json's for the line as a struct (a test holds them to it).
//! Blocks of lines are formatted on both cores while the finished ones are written in order.

use std::io::Write;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};

use super::instants::InstantTexts;
use super::{Row, View};
use crate::ledger::SendStatus;

/// Rows formatted at a time, one block per turn of a formatting thread (~2 MB of text).
const BLOCK: usize = 8 * 1024;

/// Formatted blocks that may wait for the writer per formatting thread: with the one being
/// formatted and the one being written, the text held is bounded by a few blocks per thread
/// however long the plan is.
const WAITING: usize = 2;

/// A formatting thread's blocks, in its turn, and the way its spent buffers go back to it.
struct Formatted {
    blocks: Receiver<std::io::Result<Vec<u8>>>,
    spent: Sender<Vec<u8>>,
}

impl View<'_> {
    /// The JSON lines of `rows`, in order: blocks of rows formatted on as many threads as typed
    /// the rows (one per core, or `STEPRULE_THREADS`; block `k` on thread `k % threads`) while
    /// this thread writes the finished blocks in order, so formatting and writing overlap.
    pub(super) fn json(&self, rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
        let threads = crate::records::typing_threads();
        self.json_in_blocks(rows, BLOCK, threads, out)
    }

    fn json_in_blocks(
        &self,
        rows: &[Row],
        block: usize,
        threads: usize,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let parts = self.step_parts()?;
        let blocks = rows.len().div_ceil(block);
        std::thread::scope(|scope| {
            let mut formatted = Vec::with_capacity(threads);
            for first in 0..threads.min(blocks) {
                let (done, blocks_done) = sync_channel(WAITING);
                let (spent, spent_buffers) = channel::<Vec<u8>>();
                let parts = &parts;
                scope.spawn(move || {
                    let mut instants = InstantTexts::new(self.tz());
                    for index in (first..blocks).step_by(threads) {
                        let mut text = spent_buffers.try_recv().unwrap_or_default();
                        text.clear();
                        let rows = &rows[index * block..rows.len().min((index + 1) * block)];
                        let result = self.json_lines(rows, parts, &mut instants, &mut text);
                        // The writer stopped (it could not write): nothing more is wanted.
                        if done.send(result.map(|()| text)).is_err() {
                            return;
                        }
                    }
                });
                formatted.push(Formatted {
                    blocks: blocks_done,
                    spent,
                });
            }
            for index in 0..blocks {
                let thread = &formatted[index % formatted.len()];
                // A thread that ended early panicked; the scope passes its panic on.
                let Ok(text) = thread.blocks.recv() else {
                    return Ok(());
                };
                let text = text?;
                out.write_all(&text)?;
                // The thread may have ended after its last block; its buffer is then freed.
                let _ = thread.spent.send(text);
            }
            Ok(())
        })
    }

    /// For each step, for each of its variants: `,"step":…,"template":…,"variant":…` escaped.
    fn step_parts(&self) -> std::io::Result<Vec<Vec<Vec<u8>>>> {
        let mut parts = Vec::with_capacity(self.plan.steps.len());
        for step in &self.plan.steps {
            let mut variants = Vec::with_capacity(step.variants.len());
            for variant in &step.variants {
                let template = variant.template.name.as_str();
                let mut part = b",\"step\":".to_vec();
                serde_json::to_writer(&mut part, step.id.as_str())?;
                part.extend_from_slice(b",\"template\":");
                serde_json::to_writer(&mut part, template)?;
                part.extend_from_slice(b",\"variant\":");
                let shown = (step.variants.len() > 1).then_some(template);
                serde_json::to_writer(&mut part, &shown)?;
                variants.push(part);
            }
            parts.push(variants);
        }
        Ok(parts)
    }

    /// `rows` as JSON lines appended to `text`. The instants are RFC 3339 (digits, `-`, `:`,
    /// `T`, `+`): nothing in them to escape.
    fn json_lines(
        &self,
        rows: &[Row],
        parts: &[Vec<Vec<u8>>],
        instants: &mut InstantTexts,
        text: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        // The sends of one instant are spread over the whole file, so each id is a cache miss
        // or two. Looked up all at once before any line is written, the misses overlap
        // instead of each waiting for the line before it.
        let ids: Vec<&str> = rows
            .iter()
            .map(|row| self.patients.get(row.patient as usize))
            .collect();
        let first_bytes = ids.iter().fold(0u8, |all, id| {
            all ^ id.as_bytes().first().copied().unwrap_or(0)
        });
        std::hint::black_box(first_bytes);
        for (row, id) in rows.iter().zip(ids) {
            text.extend_from_slice(b"{\"at\":\"");
            instants.push(text, row.at);
            text.extend_from_slice(b"\",\"patient\":");
            push_json_string(text, id)?;
            text.extend_from_slice(&parts[row.step as usize][row.variant as usize]);
            text.extend_from_slice(b",\"occurrence\":\"");
            instants.push(text, row.occurrence);
            text.extend_from_slice(b"\",\"expires\":\"");
            instants.push(text, row.expires);
            text.extend_from_slice(b"\",\"recipient\":\"");
            text.extend_from_slice(self.recipient(row).as_str().as_bytes());
            text.extend_from_slice(b"\",\"ledger\":");
            match row.ledger.map(SendStatus::as_str) {
                Some(status) => {
                    text.push(b'"');
                    text.extend_from_slice(status.as_bytes());
                    text.push(b'"');
                }
                None => text.extend_from_slice(b"null"),
            }
            text.extend_from_slice(b"}\n");
        }
        Ok(())
    }
}

/// `value` as a JSON string, as serde_json writes it: most ids (letters, digits, Japanese) have
/// nothing serde_json escapes (a quote, a backslash, a control character) and are copied
/// between quotes as they are; the others go through serde_json.
fn push_json_string(text: &mut Vec<u8>, value: &str) -> std::io::Result<()> {
    if value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return Ok(serde_json::to_writer(&mut *text, value)?);
    }
    text.push(b'"');
    text.extend_from_slice(value.as_bytes());
    text.push(b'"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{PatientIds, Recipient};
    use super::*;
    use crate::plan::TimingPlan;

    /// What a line says, in the order it says it (the documentation's order).
    #[derive(serde::Serialize)]
    struct JsonLine<'a> {
        at: &'a str,
        patient: &'a str,
        step: &'a str,
        template: &'a str,
        variant: Option<&'a str>,
        occurrence: &'a str,
        expires: &'a str,
        recipient: &'static str,
        /// The ledger's status for the send (`sent`, `failed`, `skipped` …), or null.
        ledger: Option<&'static str>,
    }

    fn plan() -> TimingPlan {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            std::fs::write(dir.path().join(format!("{name}.toml")), "text = \"x\"").unwrap();
        }
        let rules = "clinic \"さくら\"\nstages booked\n\
                     step one: when stage=booked after 0m send a\n\
                     step two: when stage=booked after 1h send b 50% | a 50%\n";
        std::fs::write(dir.path().join("r.step"), rules).unwrap();
        let outcome =
            crate::check::check_path(&dir.path().join("r.step"), Some(dir.path())).unwrap();
        assert!(outcome.rules.is_some(), "{:#?}", outcome.diagnostics);
        TimingPlan::compile(&outcome.rules.unwrap())
    }

    /// Every line is byte for byte what serde_json writes for [`JsonLine`]: ids with quotes,
    /// backslashes, control characters and Japanese escaped as it escapes them, a variant
    /// only for a step with several, the ledger's status or null.
    #[test]
    fn lines_are_serde_jsons_bytes() {
        let plan = plan();
        let patients: PatientIds = ["P1", "P\"2\\", "患者\n\u{1}\t3", ""].into_iter().collect();
        let reached = [
            Recipient::Export,
            Recipient::Linked,
            Recipient::Blocked,
            Recipient::Export,
        ];
        let view = View {
            plan: &plan,
            patients: &patients,
            reached: &reached,
        };
        let statuses = [None, Some(SendStatus::Sent), Some(SendStatus::Failed)];
        let mut rows = Vec::new();
        for patient in 0..4u32 {
            for (step, variants) in [(0u16, 1u16), (1, 2)] {
                for variant in 0..variants {
                    let at = 1_790_000_000 + i64::from(patient) * 3600;
                    rows.push(Row {
                        at,
                        patient,
                        step,
                        variant,
                        occurrence: at - 60,
                        expires: at + 86_400,
                        before_start: patient == 3,
                        ledger: statuses[(patient as usize + variant as usize) % 3],
                    });
                }
            }
        }
        let mut want = Vec::new();
        let mut buf = String::new();
        for row in &rows {
            let (patient, step, template, variant) = view.names(row);
            let [at, occurrence, expires] = view.instants(row, &mut buf);
            let line = JsonLine {
                at,
                patient,
                step,
                template,
                variant,
                occurrence,
                expires,
                recipient: view.recipient(row).as_str(),
                ledger: row.ledger.map(SendStatus::as_str),
            };
            serde_json::to_writer(&mut want, &line).unwrap();
            want.push(b'\n');
        }
        let want = String::from_utf8(want).unwrap();
        let mut got = Vec::new();
        view.json(&rows, &mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
        // In blocks of a few rows on one to five threads: the same lines in the same order.
        for (block, threads) in [(1, 1), (3, 2), (5, 3), (2, 5), (100, 2)] {
            let mut got = Vec::new();
            view.json_in_blocks(&rows, block, threads, &mut got)
                .unwrap();
            let got = String::from_utf8(got).unwrap();
            assert_eq!(got, want, "blocks of {block} on {threads} threads");
        }
    }

    /// Ids with nothing to escape are copied; the others are escaped by serde_json. Either
    /// way the bytes are serde_json's.
    #[test]
    fn patient_ids_are_written_as_serde_json_writes_them() {
        let ids = [
            "P0001",
            "",
            "患者３",
            "a\u{2028}b\u{2029}c",
            "tilde~del\u{7f}",
            "emoji 🩺",
            "quote\"",
            "back\\slash",
            "new\nline",
            "tab\t",
            "nul\u{0}",
            "unit\u{1f}",
            "\u{1b}[31m",
        ];
        for id in ids {
            let mut got = Vec::new();
            push_json_string(&mut got, id).unwrap();
            assert_eq!(got, serde_json::to_vec(id).unwrap(), "{id:?}");
        }
    }

    /// Output that cannot be written (a closed pipe) is an error, after which the formatting
    /// threads stop instead of waiting for a writer that is gone.
    #[test]
    fn a_failed_write_stops_the_formatting_threads() {
        struct Closed {
            room: usize,
        }
        impl Write for Closed {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.room == 0 {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                let n = buf.len().min(self.room);
                self.room -= n;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let plan = plan();
        let patients: PatientIds = ["P1"].into_iter().collect();
        let reached = [Recipient::Export];
        let view = View {
            plan: &plan,
            patients: &patients,
            reached: &reached,
        };
        let row = Row {
            at: 1_790_000_000,
            patient: 0,
            step: 0,
            variant: 0,
            occurrence: 1_790_000_000,
            expires: 1_790_086_400,
            before_start: false,
            ledger: None,
        };
        let rows = vec![row; 10_000];
        let error = view
            .json_in_blocks(&rows, 7, 2, &mut Closed { room: 5000 })
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
