//! An export as the reservation system writes it (tests/fixtures/patients/as_exported, Shift_JIS):
//! Japanese dates and eras, statuses and values that mean "empty", opt-out words and tag
//! separators read through the header mapping; cells that cannot be read leave only their
//! steps out, an unreadable opt-out sends nothing, and hostile cells cost their length.

use std::time::{Duration, Instant};

use crate::common::{fixtures, steprule, Run};

/// `plan export.step` at 2026-11-29 10:00 for 2 days in tests/fixtures/patients/as_exported,
/// with its header mapping.
fn plan_as_exported(patients: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "plan",
        "export.step",
        "--patients",
        patients,
        "--mapping",
        "mapping.toml",
        "--now",
        "2026-11-29 10:00",
        "--days",
        "2",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    steprule(&fixtures().join("patients/as_exported"), &args)
}

/// `time patient step` of each planned send.
fn planned_steps(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
            format!(
                "{} {} {}",
                &text("at")[5..16],
                text("patient"),
                text("step")
            )
        })
        .collect()
}

#[test]
fn an_export_as_it_is_is_read_through_its_mapping() {
    // tests/fixtures/patients/README.md has the table. By hand, at 11-29 10:00:
    // J1 booked 11-29 09:30 (2026年…日 9:30) → confirm overdue → now; appointment
    //    2026年11月30日(月) 14:00 → remind 11-29 18:00.
    // J2 booked R8.11.28 (midnight) → confirm expired 11-29 00:00; appointment 令和8年12月1日
    //    10時 → remind 11-30 18:00; its cancelled `-` is empty, so `unless` does not stop it.
    // J3 希望しない → opted out. J5 停止中 → opted out (the mapping's word).
    // J4 キャンセル待ち → no stage, 未定 → no appointment; tag 矯正 → ortho 1h after 09:00.
    // J6 first visit 令和8年11月28日 16:00 → thanks 11-29 10:00; tags 小児；矯正 → ortho
    //    (17:00, overdue); born 昭和25年 → 76 → senior (18:00, overdue).
    // J7 2026年2月30日: stage_entered_at unknown → thanks (which needs it) is not evaluated.
    // J8 R99999.1.1: appointment unknown → confirm now, remind not evaluated.
    // J9 わからない in the opt-out column → nothing. J10 → confirm now, remind 11-29 18:00.
    let run = plan_as_exported("as_exported.csv", &[]);
    assert_eq!(
        run.code, 3,
        "exit 3: cells could not be read: {}",
        run.stderr
    );
    assert_eq!(
        planned_steps(&run),
        [
            "11-29T10:00 J1 confirm",
            "11-29T10:00 J4 ortho",
            "11-29T10:00 J6 thanks",
            "11-29T10:00 J6 ortho",
            "11-29T10:00 J6 senior",
            "11-29T10:00 J8 confirm",
            "11-29T10:00 J10 confirm",
            "11-29T18:00 J1 remind",
            "11-29T18:00 J10 remind",
            "11-30T18:00 J2 remind",
        ]
    );
    for line in [
        "as_exported.csv:8: column `ステータス日時` (stage_entered_at): not a date or date-time",
        "as_exported.csv:9: column `予約日時` (appointment_at): the year is out of range",
        "as_exported.csv:10: column `配信` (opted_out): not a yes/no value",
        "so nothing is sent to this patient until it is fixed",
        "step `thanks`: not evaluated for 2 patient(s) with an unreadable cell it needs \
         (e.g. stage_entered_at)",
        "step `remind`: not evaluated for 2 patient(s)",
        "(10 patients read, 3 with unreadable cells)",
    ] {
        assert!(run.stderr.contains(line), "{line} in {}", run.stderr);
    }
    assert!(!run.stderr.contains("row skipped"), "{}", run.stderr);
    for cell in ["テスト", "2月30日", "99999", "わからない"] {
        assert!(
            !run.stderr.contains(cell),
            "`{cell}` leaked: {}",
            run.stderr
        );
    }
}

#[test]
fn without_the_mappings_words_the_exports_own_spellings_are_not_guessed() {
    // The same export, mapping only its headers: キャンセル待ち is not a stage, 未定 and `-`
    // are not dates, 停止中 and 配信中 are no one's yes or no. Each is a cell left unknown — and
    // J5 (停止中) and J2 (配信中) get nothing: an unreadable opt-out is never a yes to send.
    let dir = tempfile::tempdir().unwrap();
    let export = fixtures().join("patients/as_exported");
    for file in ["export.step", "as_exported.csv"] {
        std::fs::copy(export.join(file), dir.path().join(file)).unwrap();
    }
    std::os::unix::fs::symlink(export.join("templates"), dir.path().join("templates")).unwrap();
    let mapping = std::fs::read_to_string(export.join("mapping.toml")).unwrap();
    let columns_only = &mapping[..mapping.find("[stages]").unwrap()];
    let stages = "[stages]\n\"予約済み\" = \"booked\"\n\"初診\" = \"first_visit\"\n";
    std::fs::write(
        dir.path().join("mapping.toml"),
        format!("{columns_only}{stages}"),
    )
    .unwrap();
    let run = steprule(
        dir.path(),
        &[
            "plan",
            "export.step",
            "--patients",
            "as_exported.csv",
            "--mapping",
            "mapping.toml",
            "--now",
            "2026-11-29 10:00",
            "--days",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let sent = planned_steps(&run);
    assert!(
        !sent
            .iter()
            .any(|s| s.contains(" J2 ") || s.contains(" J5 ")),
        "{sent:?}"
    );
    assert!(
        sent.contains(&"11-29T10:00 J1 confirm".to_owned()),
        "{sent:?}"
    );
    for line in [
        "as_exported.csv:3: column `配信` (opted_out): not a yes/no value",
        "as_exported.csv:5: column `ステータス` (stage): not one of the stages",
        "column `予約日時` (appointment_at): not a date",
        "as_exported.csv:6: column `配信` (opted_out)",
    ] {
        assert!(run.stderr.contains(line), "{line} in {}", run.stderr);
    }
}

#[test]
fn an_unreadable_opt_out_is_never_delivered_to() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.jsonl");
    let run = steprule(
        &fixtures().join("patients/as_exported"),
        &[
            "run",
            "export.step",
            "--patients",
            "as_exported.csv",
            "--mapping",
            "mapping.toml",
            "--now",
            "2026-11-29 10:00",
            "--ledger",
            dir.path().join("ledger.db").to_str().unwrap(),
            "--outbox",
            outbox.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let outbox = std::fs::read_to_string(outbox).unwrap();
    let texts: Vec<String> = outbox
        .lines()
        .map(|line| {
            let send: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            send["messages"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    // Due at 10:00: J1, J4, J6 (three steps), J8 and J10 — never J9, J3 or J5.
    assert_eq!(texts.len(), 7, "{texts:?}");
    for (name, count) in [
        ("一郎", 1),
        ("四子", 1),
        ("六子", 3),
        ("八子", 1),
        ("十子", 1),
        ("九郎", 0),
        ("三子", 0),
        ("五郎", 0),
    ] {
        let greeted = texts
            .iter()
            .filter(|t| t.contains(&format!("テスト {name} 様")))
            .count();
        assert_eq!(greeted, count, "{name}: {texts:?}");
    }
    assert!(
        run.stderr.contains("rows with unreadable cells 3"),
        "{}",
        run.stderr
    );
}

#[test]
fn hostile_cells_are_one_report_each_and_cost_no_more_than_their_length() {
    // A megabyte of digits as a year, era year 99999, 30 February: each is its cell's report,
    // the patient is still read, and the whole file takes well under the time a super-linear
    // parse of the megabyte would.
    let dir = tempfile::tempdir().unwrap();
    let header = "患者ID,LINE ID,ステータス,ステータス日時,予約日時\r\n";
    let rows = [
        format!(
            "H1,Uh1,予約済み,2026/11/29 09:00,{}年1月1日\r\n",
            "9".repeat(1_000_000)
        ),
        "H2,Uh2,予約済み,2026/11/29 09:00,令和99999年1月1日\r\n".to_owned(),
        "H3,Uh3,予約済み,2026/11/29 09:00,2026年2月30日 14:00\r\n".to_owned(),
        format!(
            "H4,Uh4,予約済み,2026/11/29 09:00,2026年11月30日{}\r\n",
            "　".repeat(300_000)
        ),
    ];
    let text = [header.to_owned(), rows.concat()].concat();
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    std::fs::write(dir.path().join("hostile.csv"), &bytes).unwrap();
    let export = fixtures().join("patients/as_exported");
    let started = Instant::now();
    let run = steprule(
        &export,
        &[
            "plan",
            "export.step",
            "--patients",
            dir.path().join("hostile.csv").to_str().unwrap(),
            "--mapping",
            "mapping.toml",
            "--now",
            "2026-11-29 10:00",
            "--days",
            "2",
            "--format",
            "json",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    // Every patient is confirmed; H4's trailing full-width spaces are trimmed away, so only its
    // reminder goes out too.
    assert_eq!(
        planned_steps(&run),
        [
            "11-29T10:00 H1 confirm",
            "11-29T10:00 H2 confirm",
            "11-29T10:00 H3 confirm",
            "11-29T10:00 H4 confirm",
            "11-29T18:00 H4 remind",
        ]
    );
    for (line, problem) in [
        (2, "the year is out of range"),
        (3, "the year is out of range"),
        (4, "not a date"),
    ] {
        let expected = format!("hostile.csv:{line}: column `予約日時` (appointment_at): {problem}");
        assert!(
            run.stderr.contains(&expected),
            "{expected} in {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.len() < 10_000,
        "no cell is repeated: {} bytes",
        run.stderr.len()
    );
}

#[test]
fn explain_says_which_steps_an_unreadable_cell_leaves_out() {
    let explain = |patient: &str| {
        steprule(
            &fixtures().join("patients/as_exported"),
            &[
                "explain",
                "export.step",
                "--patients",
                "as_exported.csv",
                "--mapping",
                "mapping.toml",
                "--patient",
                patient,
                "--now",
                "2026-11-29 10:00",
            ],
        )
    };
    let j8 = explain("J8");
    let line = |run: &Run, step: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("{step} in {}", run.stdout))
            .to_owned()
    };
    assert!(
        line(&j8, "confirm").contains("sends hello at 2026-11-29"),
        "{}",
        j8.stdout
    );
    assert_eq!(
        line(&j8, "remind"),
        "remind   not evaluated: the patient's appointment_at cell cannot be read (see the \
         warning for its line)"
    );
    // The opt-out cannot be read: the patient is shown opted out, and no step is evaluated.
    let j9 = explain("J9");
    assert!(j9.stdout.contains("; opted out\n"), "{}", j9.stdout);
    for step in ["confirm", "remind", "thanks", "ortho", "senior"] {
        assert!(
            line(&j9, step).ends_with("not evaluated: the patient's opted_out cell cannot be read (see the warning for its line)"),
            "{}",
            j9.stdout
        );
    }
}
