//! `plan --format json`: one line per send, in the order of the rows. Formatting the instants
//! and escaping the strings is most of what `plan` does after evaluating (a million patients
//! are over a million lines), so each line is put together from parts made once: the step,
//! template and variant of each (step, variant) escaped once per plan, the instants written
//! in place, and only the patient id escaped per line. The bytes are serde_json's for the
//! line as a struct (a test holds them to it).

use std::io::Write;

use super::{Row, View};
use crate::ledger::SendStatus;

/// Blocks of rows formatted at a time: two are held, one formatted on a second thread.
const BLOCK: usize = 16 * 1024;

impl View<'_> {
    /// The JSON lines of `rows`, in order: blocks of rows formatted two at a time (one on a
    /// second thread) and written in order.
    pub(super) fn json(&self, rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
        let parts = self.step_parts()?;
        let mut blocks = rows.chunks(BLOCK);
        let mut text: Vec<u8> = Vec::new();
        while let Some(first) = blocks.next() {
            let second = blocks.next();
            let parts = &parts;
            let other = std::thread::scope(|scope| {
                let helper = second.map(|rows| {
                    scope.spawn(move || {
                        let mut text = Vec::new();
                        self.json_lines(rows, parts, &mut text).map(|()| text)
                    })
                });
                text.clear();
                self.json_lines(first, parts, &mut text)?;
                match helper.map(std::thread::ScopedJoinHandle::join) {
                    Some(Ok(text)) => text.map(Some),
                    Some(Err(panic)) => std::panic::resume_unwind(panic),
                    None => Ok(None),
                }
            })?;
            out.write_all(&text)?;
            if let Some(other) = other {
                out.write_all(&other)?;
            }
        }
        Ok(())
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
        text: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let mut buf = String::new();
        for row in rows {
            let [at, occurrence, expires] = self.instants(row, &mut buf);
            text.extend_from_slice(b"{\"at\":\"");
            text.extend_from_slice(at.as_bytes());
            text.extend_from_slice(b"\",\"patient\":");
            serde_json::to_writer(&mut *text, &self.patients[row.patient as usize])?;
            text.extend_from_slice(&parts[row.step as usize][row.variant as usize]);
            text.extend_from_slice(b",\"occurrence\":\"");
            text.extend_from_slice(occurrence.as_bytes());
            text.extend_from_slice(b"\",\"expires\":\"");
            text.extend_from_slice(expires.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::super::Recipient;
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
        let patients: Vec<String> = ["P1", "P\"2\\", "患者\n\u{1}\t3", ""]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
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
        let mut got = Vec::new();
        view.json(&rows, &mut got).unwrap();
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
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
