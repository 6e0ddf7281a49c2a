//! Running `steprule run` as a user does, in a scratch folder: the workspace with its ledger and
//! outbox, generated patient CSVs, the fixture's patients, and the closing summary line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::fixtures;
use crate::fake_line::{FakeLine, TOKEN};
use crate::ledger::ledger;
use crate::NOW;

/// What one `steprule` run left: its exit code and output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The numbers of the closing summary line (`due 5, sent 5, …, skipped rows 0`).
    pub fn summary(&self) -> HashMap<String, u64> {
        let line = self
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("due "))
            .unwrap_or_else(|| panic!("no summary line in stderr:\n{}", self.stderr));
        line.split(", ")
            .map(|part| {
                let (name, number) = part.rsplit_once(' ').expect("`name N`");
                let number = number.parse().unwrap_or_else(|_| panic!("{line}"));
                (name.to_owned(), number)
            })
            .collect()
    }

    pub fn count(&self, name: &str) -> u64 {
        *self
            .summary()
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` in the summary:\n{}", self.stderr))
    }
}

/// A scratch folder holding the ledger, the outbox and generated patients.
pub struct Workspace {
    dir: tempfile::TempDir,
    /// A PostgreSQL ledger's URL instead of the SQLite file in the folder.
    postgres: Option<String>,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("a temporary folder"),
            postgres: None,
        }
    }

    /// A workspace whose ledger is a fresh PostgreSQL database (named after `name`).
    pub fn on_postgres(server: &crate::pg::PgServer, name: &str) -> Workspace {
        Workspace {
            postgres: Some(server.fresh_database(name)),
            ..Workspace::new()
        }
    }

    /// The same case on both ledgers: an SQLite workspace, then a PostgreSQL one when there is
    /// a server (see tests/support/postgres.rs for when there is none).
    pub fn on_both_ledgers(name: &str) -> Vec<Workspace> {
        let mut both = vec![Workspace::new()];
        both.extend(crate::pg::server().map(|server| Workspace::on_postgres(server, name)));
        both
    }

    /// Which ledger, for assertion messages.
    pub fn kind(&self) -> &'static str {
        if self.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite file in the folder, or the PostgreSQL URL: what `--ledger` is given.
    pub fn ledger(&self) -> PathBuf {
        match &self.postgres {
            Some(url) => PathBuf::from(url),
            None => self.path().join("ledger.db"),
        }
    }

    pub fn outbox(&self) -> PathBuf {
        self.path().join("outbox.jsonl")
    }

    /// `steprule run` on the run fixtures' rules with this workspace's ledger and outbox.
    pub fn command(
        &self,
        patients: &Path,
        line: Option<(&str, &FakeLine)>,
        extra: &[&str],
    ) -> Command {
        self.command_on(&self.ledger(), patients, line, extra)
    }

    /// `command`, with the ledger at `ledger`.
    pub fn command_on(
        &self,
        ledger: &Path,
        patients: &Path,
        line: Option<(&str, &FakeLine)>,
        extra: &[&str],
    ) -> Command {
        self.command_for(
            &fixtures().join("run/clinic.step"),
            ledger,
            patients,
            line,
            extra,
        )
    }

    /// `command`, with the rules in `rules` and the ledger at `ledger`.
    pub fn command_for(
        &self,
        rules: &Path,
        ledger: &Path,
        patients: &Path,
        line: Option<(&str, &FakeLine)>,
        extra: &[&str],
    ) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
        command
            .arg("run")
            .arg(rules)
            .arg("--patients")
            .arg(patients)
            .args(["--now", NOW])
            .arg("--ledger")
            .arg(ledger)
            .arg("--outbox")
            .arg(self.outbox())
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
        if let Some((token, fake)) = line {
            command
                .env("LINE_CHANNEL_ACCESS_TOKEN", token)
                .arg("--line-api-base")
                .arg(fake.base_url());
        }
        command.args(extra);
        command
    }

    pub fn run(&self, patients: &Path, line: Option<(&str, &FakeLine)>, extra: &[&str]) -> Run {
        output(self.command(patients, line, extra))
    }

    /// Runs against `fake` with the right token until no row is left pending (at most three
    /// runs, each of which must end cleanly).
    pub fn run_until_settled(&self, patients: &Path, fake: &FakeLine, extra: &[&str]) -> Vec<Run> {
        let mut runs = Vec::new();
        for _ in 0..3 {
            let run = self.run(patients, Some((TOKEN, fake)), extra);
            assert_eq!(run.code, 0, "exit code\n{}", run.stderr);
            runs.push(run);
            if ledger(&self.ledger()).status_count("pending") == 0 {
                break;
            }
        }
        runs
    }

    /// Writes `n` booked patients whose booking_confirm is due at NOW; see `patient` and
    /// `user_id` for their ids.
    pub fn booked_patients(&self, n: usize) -> PathBuf {
        let path = self.path().join(format!("booked_{n}.csv"));
        let mut csv = String::from(
            "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,appointment_at,cancelled_at\n",
        );
        for i in 0..n {
            csv.push_str(&format!(
                "{},{},テスト {i},booked,2026-11-25 09:30,1980-01-01,,false,,\n",
                patient(i),
                user_id(i)
            ));
        }
        std::fs::write(&path, csv).expect("write the patients");
        path
    }
}

/// Runs `command` to the end and collects what it printed.
pub fn output(mut command: Command) -> Run {
    let output = command.output().expect("the steprule binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Starts `command` in the background, keeping its stderr for `finish`.
pub fn spawn(mut command: Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the steprule binary starts")
}

/// Waits for a `spawn`ed run to end.
pub fn finish(child: Child) -> Run {
    let output = child.wait_with_output().expect("wait for steprule");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Sends SIGTERM to a `spawn`ed run and waits for it to end.
pub fn terminate(child: Child) -> Run {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success(), "kill -TERM {}", child.id());
    finish(child)
}

/// The id of the `i`th generated patient.
pub fn patient(i: usize) -> String {
    format!("P{i:05}")
}

/// The LINE user id of the `i`th generated patient.
pub fn user_id(i: usize) -> String {
    format!("U{i:032x}")
}

/// tests/fixtures/run/patients.csv, where the five sends of `DUE_IN_FIXTURE` are due.
pub fn fixture_patients() -> PathBuf {
    fixtures().join("run/patients.csv")
}

/// The LINE user id of a patient in patients.csv (`R3` → `U…03`).
pub fn fixture_user_id(patient: &str) -> String {
    format!("U{:0>32}", &patient[1..])
}
