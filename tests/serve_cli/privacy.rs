//! No patient's id, name or LINE user id in what `serve` logs: webhooks from an unknown friend
//! and from a known one, a failed and a successful link of a hostile, distinctive patient (id
//! `PID-ZZQ-4417`, name 秘密太郎), and a reload of the export; on either ledger.

use std::time::Duration;

use crate::events::{body, follow, now_ms, text, unfollow, user};
use crate::fake_reply::FakeReply;
use crate::server::{each_ledger, Options, Serve};

const ID: &str = "PID-ZZQ-4417";
const NAME: &str = "秘密太郎";
const KNOWN_ID: &str = "PID-ZZQ-4418";
const KNOWN_NAME: &str = "秘密花子";

#[test]
fn serve_logs_no_patient_id_name_or_line_user() {
    each_ledger(|options| {
        let dir = tempfile::tempdir().unwrap();
        let patients = dir.path().join("patients.csv");
        std::fs::write(
            &patients,
            format!(
                "id,line_user_id,name,stage,stage_entered_at,birth_date\n\
                 {ID},,{NAME},booked,,1980-01-02\n\
                 {KNOWN_ID},{},{KNOWN_NAME},booked,,1975-05-06\n\
                 {ID},,{NAME},booked,,1980-01-02\n",
                user(9)
            ),
        )
        .unwrap();
        let fake = FakeReply::start();
        let serve = Serve::start(Options {
            line: Some((crate::TOKEN.to_owned(), fake.base_url())),
            patients: Some(patients.clone()),
            ..options
        });
        let t = now_ms();
        let events = [
            // An unknown friend is asked, fails once (a wrong birth date), then links.
            follow("01P1", 7, t, "reply-1"),
            text(
                "01P2",
                7,
                t + 1,
                "reply-2",
                &format!("診察券番号 {ID}\n生年月日 1999年9月9日"),
            ),
            text(
                "01P3",
                7,
                t + 2,
                "reply-3",
                &format!("診察券番号 {ID}\n生年月日 1980年1月2日"),
            ),
            // A friend the export knows follows, writes and leaves.
            follow("01P4", 9, t + 3, "reply-4"),
            text("01P5", 9, t + 4, "reply-5", "こんにちは"),
            unfollow("01P6", 9, t + 5),
        ];
        for event in events {
            assert_eq!(serve.post_signed(&body(&[event])).status, 200);
        }
        fake.wait_for(3);
        // The export changes under the server: it is read again.
        std::thread::sleep(Duration::from_millis(1100));
        let mut changed = std::fs::read_to_string(&patients).unwrap();
        changed.push_str(&format!("{ID}-X,,{NAME},booked,,bad\n"));
        std::fs::write(&patients, changed).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let ledger = serve.ledger();
        assert_eq!(
            ledger.linked_patient(&user(7)).unwrap().as_deref(),
            Some(ID),
            "{}",
            serve.stderr()
        );
        let stopped = serve.stop();
        // The repeated row is reported by its line, the reload by a count.
        assert!(
            stopped.stderr.contains("the same id is already on line 2"),
            "{}",
            stopped.stderr
        );
        for secret in [
            ID,
            NAME,
            KNOWN_ID,
            KNOWN_NAME,
            "ZZQ",
            &user(7),
            &user(9),
            "1980",
        ] {
            assert!(
                !stopped.stderr.contains(secret),
                "serve logged `{secret}`:\n{}",
                stopped.stderr
            );
        }
    });
}
