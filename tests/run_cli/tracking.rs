//! Tracked links (tests/fixtures/tracking/): with `track` set, every link a delivered message
//! opens is `{track}/r/{token}`, every postback's data a token, and each token leads back in the
//! ledger to its send and what it stands for; images are never tracked; a resumed send carries
//! the tokens of its first claim.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::common::fixtures;
use crate::fake_line::{FakeLine, Faults, TOKEN};
use crate::ledger::ledger;
use crate::workspace::{output, Workspace};

const TRACK: &str = "https://go.example-clinic.jp/r/";

/// One row of the ledger's `tracked` table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tracked {
    kind: String,
    patient: String,
    step: String,
    target: String,
}

/// The ledger's `tracked` table: token → what it stands for.
fn tracked(ledger: &Path) -> HashMap<String, Tracked> {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = conn
        .prepare("SELECT token, kind, patient, step, target FROM tracked")
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                Tracked {
                    kind: row.get(1)?,
                    patient: row.get(2)?,
                    step: row.get(3)?,
                    target: row.get(4)?,
                },
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn rules() -> PathBuf {
    fixtures().join("tracking/clinic.step")
}

fn patients() -> PathBuf {
    fixtures().join("tracking/patients.csv")
}

/// Every tracked link in `text`, as its token (tokens are base64url).
fn tokens_in(text: &str) -> Vec<String> {
    text.match_indices(TRACK)
        .map(|(at, _)| {
            text[at + TRACK.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        })
        .collect()
}

/// The outbox's lines as (patient, step, messages).
fn outbox(path: &Path) -> Vec<(String, String, serde_json::Value)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                line["patient"].as_str().unwrap().to_owned(),
                line["step"].as_str().unwrap().to_owned(),
                line["messages"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_outbox_shows_tracked_links_that_lead_back_to_their_send_and_url() {
    let ws = Workspace::new();
    let run = output(ws.command_for(&rules(), &ws.ledger(), &patients(), None, &[]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("due"), run.count("sent")),
        (4, 4),
        "{}",
        run.stderr
    );
    let tracked = tracked(&ws.ledger());
    let sends = outbox(&ws.outbox());
    assert_eq!(sends.len(), 4);
    for (patient, step, messages) in &sends {
        let text = messages.to_string();
        // No link goes out as written; images, tel: links and the rest of the text do.
        for original in ["/reserve", "/map", "/survey/", "/access"] {
            assert!(
                !text.contains(&format!("clinic.example.jp{original}")),
                "{text}"
            );
        }
        // Each token stands for a link or a postback of this very send.
        let tokens = tokens_in(&text);
        for token in &tokens {
            let row = &tracked[token];
            assert_eq!((&row.patient, &row.step), (patient, step), "{token}");
            assert_eq!(row.kind, "url");
        }
        let link = |pointer: &str| {
            let url = messages.pointer(pointer).unwrap().as_str().unwrap();
            let token = url.strip_prefix(TRACK).unwrap_or_else(|| panic!("{url}"));
            tracked[token].target.clone()
        };
        if step == "welcome" {
            assert!(
                text.contains("https://clinic.example.jp/img/hero.jpg"),
                "{text}"
            );
            assert!(text.contains("tel:0312345678"), "{text}");
            let reserve = "https://clinic.example.jp/reserve?from=line";
            assert_eq!(link("/1/contents/footer/contents/0/action/uri"), reserve);
            // The same URL in the text and on the button is one token.
            let targets: Vec<_> = tokens.iter().map(|t| tracked[t].target.as_str()).collect();
            assert_eq!(
                targets,
                [reserve, "https://clinic.example.jp/map", reserve],
                "{text}"
            );
            assert!(messages[0]["text"].as_str().unwrap().contains("」へ。"));
        } else {
            assert_eq!(step, "survey");
            assert!(
                text.contains("https://clinic.example.jp/img/survey.jpg"),
                "{text}"
            );
            assert!(
                text.contains("https://clinic.example.jp/img/access"),
                "{text}"
            );
            assert_eq!(
                link("/0/template/actions/2/uri"),
                format!("https://clinic.example.jp/survey/{patient}")
            );
            assert_eq!(
                link("/1/actions/0/linkUri"),
                "https://clinic.example.jp/access"
            );
            for (index, data) in [(0, "survey=good"), (1, "survey=bad")] {
                let token = messages[0]["template"]["actions"][index]["data"]
                    .as_str()
                    .unwrap();
                let row = &tracked[token];
                assert_eq!(
                    (
                        row.kind.as_str(),
                        row.target.as_str(),
                        &row.patient,
                        &row.step
                    ),
                    ("postback", data, patient, step)
                );
            }
        }
    }
    // Nothing recorded that did not go out: 3 links per welcome, 2 links and 2 postbacks per
    // survey, for two patients.
    assert_eq!(tracked.len(), 2 * (2 + 4), "{tracked:#?}");
}

#[test]
fn a_resumed_send_carries_the_tokens_recorded_with_its_claim() {
    // Every first request fails before LINE delivers it, and the run makes one attempt: every
    // send stays pending with its tokens recorded, as after a crash.
    let fake = FakeLine::start(Faults {
        error_first_attempts: 1,
        ..Faults::default()
    });
    let ws = Workspace::new();
    let line = Some((TOKEN, &fake));
    let args = ["--max-attempts", "1"];
    let first = output(ws.command_for(&rules(), &ws.ledger(), &patients(), line, &args));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(ledger(&ws.ledger()).status_count("pending"), 4);
    assert_eq!(fake.accepted(), 0);
    let recorded = tracked(&ws.ledger());
    assert_eq!(recorded.len(), 12);

    let again = output(ws.command_for(&rules(), &ws.ledger(), &patients(), line, &args));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.count("sent"), 4, "{}", again.stderr);
    assert_eq!(tracked(&ws.ledger()), recorded, "no token minted again");
    let mut delivered = HashSet::new();
    for delivery in fake.deliveries() {
        let text = delivery.messages.to_string();
        assert!(!text.contains("clinic.example.jp/reserve"), "{text}");
        delivered.extend(tokens_in(&text));
        for action in delivery.messages[0]["template"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            delivered.extend(action["data"].as_str().map(str::to_owned));
        }
    }
    let recorded: HashSet<String> = recorded.into_keys().collect();
    assert_eq!(
        delivered, recorded,
        "the resumed sends carry the recorded tokens"
    );
}

#[test]
fn without_track_links_go_out_as_written_and_nothing_is_tracked() {
    let ws = Workspace::new();
    let dir = ws.path().join("untracked");
    std::fs::create_dir(&dir).unwrap();
    let source = std::fs::read_to_string(rules()).unwrap();
    let untracked: Vec<&str> = source.lines().filter(|l| !l.starts_with("track")).collect();
    std::fs::write(dir.join("clinic.step"), untracked.join("\n")).unwrap();
    copy_dir(
        &fixtures().join("tracking/templates"),
        &dir.join("templates"),
    );
    let run = output(ws.command_for(
        &dir.join("clinic.step"),
        &ws.ledger(),
        &patients(),
        None,
        &[],
    ));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(ws.outbox()).unwrap();
    assert!(!text.contains("go.example-clinic.jp"), "{text}");
    assert!(text.contains("https://clinic.example.jp/reserve?from=line"));
    assert!(text.contains("\"data\":\"survey=good\""));
    assert!(tracked(&ws.ledger()).is_empty());
}

#[test]
fn a_patient_column_full_of_links_is_refused_and_nothing_is_recorded() {
    // 1,000 links in one patient's note: under LINE's 5,000 characters as written would be
    // impossible anyway, and tracked they grow to some 54,000; the send fails, never goes out,
    // and none of its tokens is kept.
    let ws = Workspace::new();
    let links: Vec<String> = (0..1000).map(|i| format!("https://x.jp/{i}")).collect();
    let csv = format!(
        "id,line_user_id,name,stage,stage_entered_at,birth_date,tags,opted_out,note\n\
         H1,U00000000000000000000000000000009,テスト 九郎,first_visit,2026-11-25 09:30,1980-01-01,,false,{}\n",
        links.join(" ")
    );
    let patients = ws.path().join("hostile.csv");
    std::fs::write(&patients, csv).unwrap();
    let started = std::time::Instant::now();
    let run = output(ws.command_for(&rules(), &ws.ledger(), &patients, None, &[]));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(run.count("failed"), 1, "{}", run.stderr);
    assert!(run.stderr.contains("LINE allows 5000"), "{}", run.stderr);
    assert!(!run.stderr.contains("x.jp"), "no patient data in messages");
    assert_eq!(std::fs::read_to_string(ws.outbox()).unwrap_or_default(), "");
    assert!(tracked(&ws.ledger()).is_empty());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
