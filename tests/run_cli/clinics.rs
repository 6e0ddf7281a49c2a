//! `steprule run FOLDER`: one worker serving a folder of clinics (tests/fixtures/clinics/: 北
//! with R1 and R4 of the run fixture, two sends due; 南 with R2, R5 and R8, two due), on
//! SQLite (a ledger beside each clinic's rules) and on one PostgreSQL ledger (rows keyed by
//! clinic). A broken clinic is reported and the others run; two clinics of one name are refused
//! before anything is sent.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::ledger::ledger;
use crate::pg;
use crate::workspace::{output, Run};
use crate::NOW;

/// Copies the clinics in `names` (folders under tests/fixtures/) into a fresh folder of clinics.
fn folder_of(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("clinics");
    for name in names {
        let from = fixtures().join(name);
        let to = folder.join(Path::new(name).file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    (dir, folder)
}

fn run_folder(folder: &Path, fake: &FakeLine, extra: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("run")
        .arg(folder)
        .arg("--templates")
        .arg(fixtures().join("run/templates"))
        .args(["--now", NOW])
        .arg("--line-api-base")
        .arg(fake.base_url())
        .args(extra)
        .env("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .env_remove("STEPRULE_LEDGER_URL");
    output(command)
}

/// The summary line that follows `clinic NAME:` in a folder run's stderr.
fn summary_of(run: &Run, clinic: &str) -> String {
    let mut lines = run
        .stderr
        .lines()
        .skip_while(|l| *l != format!("clinic {clinic}:"));
    assert!(
        lines.next().is_some(),
        "no `clinic {clinic}:`\n{}",
        run.stderr
    );
    lines
        .find(|l| l.starts_with("due "))
        .unwrap_or_else(|| panic!("no summary for {clinic}\n{}", run.stderr))
        .to_owned()
}

#[test]
fn a_folder_of_two_clinics_sends_each_clinics_own_and_keeps_a_ledger_beside_each() {
    let (_dir, folder) = folder_of(&["clinics/north", "clinics/south"]);
    let fake = FakeLine::start(Faults::none());
    let first = run_folder(&folder, &fake, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(summary_of(&first, "北クリニック").starts_with("due 2, sent 2,"));
    assert!(summary_of(&first, "南クリニック").starts_with("due 2, sent 2,"));
    assert_eq!(fake.accepted(), 4);
    for (clinic, sent) in [("north", 2), ("south", 2)] {
        let path = folder.join(clinic).join(".steprule/ledger.db");
        assert_eq!(ledger(&path).status_count("sent"), sent, "{clinic}");
    }

    let again = run_folder(&folder, &fake, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(summary_of(&again, "南クリニック").contains("sent 0, already sent 2,"));
    assert_eq!(fake.accepted(), 4, "a rerun sends nothing");
}

#[test]
fn a_folder_of_clinics_shares_one_postgres_ledger_keyed_by_clinic() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database("clinics");
    let (_dir, folder) = folder_of(&["clinics/north", "clinics/south"]);
    let fake = FakeLine::start(Faults::none());
    let first = run_folder(&folder, &fake, &["--ledger", &url]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(fake.accepted(), 4);
    assert!(!folder.join("north/.steprule/ledger.db").exists());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows: Vec<(String, String, i64)> = client
        .query(
            "SELECT clinic, status, count(*) FROM steprule_sends GROUP BY 1, 2 ORDER BY 1",
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            ("北クリニック".to_owned(), "sent".to_owned(), 2),
            ("南クリニック".to_owned(), "sent".to_owned(), 2)
        ]
    );
    let again = run_folder(&folder, &fake, &["--ledger", &url]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(summary_of(&again, "北クリニック").contains("sent 0, already sent 2,"));
    assert_eq!(fake.accepted(), 4, "a rerun sends nothing");
}

#[test]
fn a_broken_clinic_is_reported_and_the_others_still_run() {
    let (_dir, folder) = folder_of(&["clinics/north", "broken_clinic", "clinics/south"]);
    let fake = FakeLine::start(Faults::none());
    let run = run_folder(&folder, &fake, &[]);
    assert_eq!(run.code, 2, "some clinics failed:\n{}", run.stderr);
    assert!(
        run.stderr.contains("error: clinic folder ") && run.stderr.contains("broken_clinic"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 of 3 clinic(s) could not run"),
        "{}",
        run.stderr
    );
    assert_eq!(fake.accepted(), 4, "北 and 南 still sent theirs");
}

#[test]
fn a_clinic_whose_export_cannot_be_read_is_reported_and_the_others_still_run() {
    let (_dir, folder) = folder_of(&["clinics/north", "clinics/south"]);
    // Not UTF-8, not a CSV: the north clinic's pass fails when it reads its export.
    std::fs::write(folder.join("north/patients.csv"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let fake = FakeLine::start(Faults::none());
    let run = run_folder(&folder, &fake, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("error: clinic 北クリニック: "),
        "{}",
        run.stderr
    );
    assert!(summary_of(&run, "南クリニック").starts_with("due 2, sent 2,"));
    assert_eq!(fake.accepted(), 2);
}

#[test]
fn two_clinics_of_one_name_are_refused_before_anything_is_sent() {
    let (_dir, folder) = folder_of(&["clinics/north", "clinics/south"]);
    let south = folder.join("south/clinic.step");
    let rules = std::fs::read_to_string(&south).unwrap();
    std::fs::write(&south, rules.replace("南クリニック", "北クリニック")).unwrap();
    let fake = FakeLine::start(Faults::none());
    let run = run_folder(&folder, &fake, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("two clinics are named 北クリニック"),
        "{}",
        run.stderr
    );
    assert_eq!(fake.request_count(), 0, "nothing was sent");
    assert!(
        !folder.join("north/.steprule").exists(),
        "no ledger was made"
    );
}

#[test]
fn a_folder_of_clinics_refuses_one_sqlite_file_for_all() {
    let (dir, folder) = folder_of(&["clinics/north"]);
    let fake = FakeLine::start(Faults::none());
    let shared = dir.path().join("ledger.db");
    let run = run_folder(&folder, &fake, &["--ledger", shared.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("an SQLite ledger holds one clinic"),
        "{}",
        run.stderr
    );
    assert!(!shared.exists());
    assert_eq!(fake.request_count(), 0);
}

#[test]
fn a_clinic_folder_with_two_rules_files_or_none_is_reported_and_the_others_still_run() {
    let (_dir, folder) = folder_of(&["clinics/north", "clinics/south"]);
    // A careless copy: a second rules file beside the north clinic's, and a folder with no
    // rules file at all (an export only).
    std::fs::copy(
        folder.join("north/clinic.step"),
        folder.join("north/clinic copy.step"),
    )
    .unwrap();
    std::fs::create_dir_all(folder.join("west")).unwrap();
    std::fs::copy(
        folder.join("south/patients.csv"),
        folder.join("west/patients.csv"),
    )
    .unwrap();
    let fake = FakeLine::start(Faults::none());
    let run = run_folder(&folder, &fake, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("2 rules files in it, where one clinic has one"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("no rules file (*.step) in it"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("2 of 3 clinic(s) could not run"),
        "{}",
        run.stderr
    );
    assert_eq!(fake.accepted(), 2, "南 still sent its two");
}

#[test]
fn a_folder_of_more_clinics_than_one_worker_serves_is_refused_before_anything_is_sent() {
    let (_dir, folder) = folder_of(&["clinics/north"]);
    // An export folder unpacked in the wrong place: 10,001 folders.
    for i in 0..10_001 {
        std::fs::create_dir(folder.join(format!("z{i:05}"))).unwrap();
    }
    let fake = FakeLine::start(Faults::none());
    let run = run_folder(&folder, &fake, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("holds more than 10000 clinic folders: split them among workers"),
        "{}",
        run.stderr
    );
    assert_eq!(fake.accepted(), 0);
}
