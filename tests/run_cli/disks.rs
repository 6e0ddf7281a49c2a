//! Disks that fail under a run: a full disk under the outbox or the ledger, and a read-only
//! file system. Each test mounts a small tmpfs in a mount namespace of its own (`unshare`, as
//! root or through a user namespace) and runs the binary inside it, so nothing outside the
//! test's folder is touched.

use std::process::Command;

use crate::history::as_version_fourteen;
use crate::ledger::ledger;
use crate::workspace::Workspace;

/// One shell line that runs `command` and leaves its stderr and exit code in the workspace as
/// `NAME.err` and `NAME.code`.
fn shell_line(ws: &Workspace, name: &str, command: &Command) -> String {
    let args: Vec<String> = command
        .get_args()
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    format!(
        "if '{}' {} 2>'{dir}/{name}.err'; then echo 0; else echo $?; fi >'{dir}/{name}.code'",
        command.get_program().to_string_lossy(),
        args.join(" "),
        dir = ws.path().display()
    )
}

/// `command` with the value after `flag` replaced by `value`.
fn with_flag(command: &Command, flag: &str, value: &std::path::Path) -> Command {
    let mut args: Vec<std::ffi::OsString> = command.get_args().map(|a| a.to_owned()).collect();
    let at = args
        .iter()
        .position(|a| a == flag)
        .expect("the flag is given");
    args[at + 1] = value.as_os_str().to_owned();
    let mut changed = Command::new(command.get_program());
    changed.args(args);
    changed
}

/// Runs `script` with `sh` in a mount namespace of its own; it must succeed.
fn in_mount_namespace(script: &str) {
    let run = Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-c", script])
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .output()
        .expect("unshare runs (util-linux)");
    assert!(
        run.status.success(),
        "the namespace script failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

fn read(ws: &Workspace, name: &str) -> String {
    std::fs::read_to_string(ws.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every outbox line is whole JSON, and each patient appears exactly once; returns them.
pub(crate) fn patients_once(outbox: &str) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    for line in outbox.lines() {
        let line: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
        let patient = line["patient"].as_str().unwrap().to_owned();
        assert!(
            seen.insert(patient.clone()),
            "{patient} twice in the outbox"
        );
    }
    seen
}

#[test]
fn a_full_disk_under_the_outbox_is_reported_and_the_next_run_resumes_exactly_once() {
    // A 256 KiB tmpfs, nearly filled; the ledger stays outside it. The first run fills the
    // disk, the filler is removed, the second run finishes.
    const N: usize = 400;
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let disk = ws.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let command = with_flag(
        &ws.command(&patients, None, &[]),
        "--outbox",
        &disk.join("outbox.jsonl"),
    );
    let script = format!(
        "set -e
         mount -t tmpfs -o size=256k tmpfs '{disk}'
         head -c 216k /dev/zero >'{disk}/filler'
         {first}
         cp '{disk}/outbox.jsonl' '{ws}/after_full.jsonl'
         rm '{disk}/filler'
         {second}
         cp '{disk}/outbox.jsonl' '{ws}/final.jsonl'",
        disk = disk.display(),
        ws = ws.path().display(),
        first = shell_line(&ws, "first", &command),
        second = shell_line(&ws, "second", &command),
    );
    in_mount_namespace(&script);
    let first_err = read(&ws, "first.err");
    assert_eq!(
        read(&ws, "first.code").trim(),
        "2",
        "a full disk is an error:\n{first_err}"
    );
    assert!(
        first_err.contains("cannot write the outbox") && first_err.contains("No space left"),
        "{first_err}"
    );
    assert!(
        first_err.contains("outbox.jsonl"),
        "names the file:\n{first_err}"
    );
    let after_full = read(&ws, "after_full.jsonl");
    assert!(after_full.ends_with('\n'), "no torn line is left behind");
    let written_first = after_full.lines().count();
    assert!(
        written_first > 0 && written_first < N,
        "{written_first} lines"
    );

    assert_eq!(
        read(&ws, "second.code").trim(),
        "0",
        "{}",
        read(&ws, "second.err")
    );
    assert_eq!(patients_once(&read(&ws, "final.jsonl")).len(), N);
    assert_eq!(ledger(&ws.ledger()).status_count("sent"), N);
}

#[test]
fn a_full_disk_under_the_ledger_stops_the_run_and_the_next_run_loses_nothing() {
    // The ledger on a small tmpfs; the outbox outside it. The first run fills the disk; once
    // the filler is gone the next run sends every patient exactly once.
    const N: usize = 2_000;
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let disk = ws.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let command = ws.command_on(&disk.join("ledger.db"), &patients, None, &[]);
    let script = format!(
        "mount -t tmpfs -o size=16m tmpfs '{disk}' || exit 10
         head -c 15872k /dev/zero >'{disk}/filler' || exit 11
         {first}
         cat '{ws}/outbox.jsonl' 2>/dev/null | wc -l >'{ws}/first.lines'
         rm '{disk}/filler' || exit 12
         {second}
         sqlite_copy() {{ cp \"$1\" '{ws}/' 2>/dev/null; true; }}
         sqlite_copy '{disk}/ledger.db'; sqlite_copy '{disk}/ledger.db-wal'
         test -s '{ws}/ledger.db' || exit 13",
        disk = disk.display(),
        ws = ws.path().display(),
        first = shell_line(&ws, "first", &command),
        second = shell_line(&ws, "second", &command),
    );
    in_mount_namespace(&script);
    let first_err = read(&ws, "first.err");
    assert_eq!(read(&ws, "first.code").trim(), "2", "{first_err}");
    assert!(
        first_err.contains("the disk holding the ledger") && first_err.contains("is full"),
        "{first_err}"
    );
    let written_first: usize = read(&ws, "first.lines").trim().parse().unwrap();
    eprintln!("the first run wrote {written_first} of {N} before the disk was full");
    assert!(written_first < N, "the disk filled before the end");
    assert_eq!(
        read(&ws, "second.code").trim(),
        "0",
        "{}",
        read(&ws, "second.err")
    );
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    assert_eq!(patients_once(&outbox).len(), N, "every patient once");
    assert_eq!(ledger(&ws.path().join("ledger.db")).status_count("sent"), N);
}

#[test]
fn a_read_only_place_for_the_ledger_or_outbox_is_named_with_what_to_do() {
    let ws = Workspace::new();
    let patients = ws.booked_patients(3);
    let ro = ws.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let on_ledger = ws.command_on(&ro.join("ledger.db"), &patients, None, &[]);
    let on_outbox = with_flag(
        &ws.command(&patients, None, &[]),
        "--outbox",
        &ro.join("outbox.jsonl"),
    );
    let script = format!(
        "mount -t tmpfs -o ro,size=64k tmpfs '{ro}'
         {ledger}
         {outbox}",
        ro = ro.display(),
        ledger = shell_line(&ws, "ledger", &on_ledger),
        outbox = shell_line(&ws, "outbox", &on_outbox),
    );
    in_mount_namespace(&script);
    for (what, flag) in [("ledger", "--ledger"), ("outbox", "--outbox")] {
        let err = read(&ws, &format!("{what}.err"));
        assert_eq!(read(&ws, &format!("{what}.code")).trim(), "2", "{err}");
        assert!(
            err.contains(&ro.display().to_string()),
            "names the file:\n{err}"
        );
        assert!(err.contains("Read-only file system"), "{err}");
        assert!(
            err.contains(&format!("give {flag} a writable place")),
            "{err}"
        );
    }
}

/// Upgrading a ledger to version 15 on a disk without the room to rewrite its sends: the run
/// stops with the disk's error before anything is sent, the ledger stays version 14 with every
/// row, and with room again the upgrade goes through and sends nothing twice.
#[test]
fn an_upgrade_on_a_full_disk_changes_nothing_and_goes_through_with_room() {
    const N: usize = 2_000;
    let ws = Workspace::new();
    let patients = ws.booked_patients(N);
    let first = ws.command(&patients, None, &[]).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    as_version_fourteen(&ws.ledger());
    // Without the pages the downgrade freed: the upgrade must find no room in the file.
    rusqlite::Connection::open(ws.ledger())
        .unwrap()
        .execute_batch("VACUUM")
        .unwrap();
    let size_k = std::fs::metadata(ws.ledger()).unwrap().len() / 1024;
    let disk = ws.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let command = ws.command_on(&disk.join("ledger.db"), &patients, None, &[]);
    let script = format!(
        "mount -t tmpfs -o size={room}k tmpfs '{disk}' || exit 10
         cp '{old}' '{disk}/ledger.db' || exit 11
         {upgrade}
         cp '{disk}/ledger.db' '{ws}/after_full.db' || exit 12
         mount -o remount,size=64m '{disk}' || exit 13
         {again}
         cp '{disk}/ledger.db' '{ws}/after_room.db' || exit 14",
        room = size_k + 64,
        old = ws.ledger().display(),
        disk = disk.display(),
        ws = ws.path().display(),
        upgrade = shell_line(&ws, "upgrade", &command),
        again = shell_line(&ws, "again", &command),
    );
    in_mount_namespace(&script);
    let upgrade_err = read(&ws, "upgrade.err");
    assert_eq!(read(&ws, "upgrade.code").trim(), "2", "{upgrade_err}");
    assert!(
        upgrade_err.contains("the disk holding the ledger") && upgrade_err.contains("is full"),
        "{upgrade_err}"
    );
    let rows = |name: &str| -> (i64, i64) {
        let conn = rusqlite::Connection::open(ws.path().join(name)).unwrap();
        let version = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        let sent = conn
            .query_row(
                "SELECT count(*) FROM sends WHERE status = 'sent'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        (version, sent)
    };
    assert_eq!(rows("after_full.db"), (14, N as i64));
    let again_err = read(&ws, "again.err");
    assert_eq!(read(&ws, "again.code").trim(), "0", "{again_err}");
    assert!(again_err.contains("sent 0,"), "{again_err}");
    let (version, sent) = rows("after_room.db");
    assert!(version > 14);
    assert_eq!(sent, N as i64);
    let outbox = std::fs::read_to_string(ws.outbox()).unwrap();
    assert_eq!(patients_once(&outbox).len(), N, "every patient once");
}
