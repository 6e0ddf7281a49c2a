//! Peak memory with a million rows from PostgreSQL, against the same rows as a CSV export.

use std::process::Command;

use super::{cluster, root, sample_rules, NOW};

/// `steprule ARGS`, and its peak resident set in MiB (`ru_maxrss` from wait4).
fn peak_rss(args: &[&str]) -> (i32, f64) {
    #[allow(clippy::zombie_processes)] // reaped with wait4, for its rusage
    let child = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .args(args)
        .current_dir(root())
        .env_remove("STEPRULE_PATIENTS_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid this is; usage is a valid pointer.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    // Reaped by wait4 above; the handle has nothing left to wait for.
    drop(child);
    (libc::WEXITSTATUS(status), usage.ru_maxrss as f64 / 1024.0)
}

/// Memory with a million rows: the database reader holds a few chunks of rows ahead of the
/// evaluator, never the result, so `plan --format html` (which keeps only counts) peaks as
/// the CSV reader does on the same rows, whose only growth is the ids kept to catch
/// duplicates. Slow in a debug build, so run by hand:
/// `cargo test --test patients_postgres -- --ignored --nocapture`.
#[test]
#[ignore]
fn a_million_rows_are_read_in_the_memory_the_csv_export_takes() {
    let Some(cluster) = cluster() else { return };
    let (url, mut client) = cluster.fresh_database("million");
    let (_dir, rules) = sample_rules();
    let work = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for rows in [100_000, 1_000_000] {
        let table = format!("patients_{rows}");
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} AS SELECT 'P' || lpad(n::text, 7, '0') AS id, \
                 'U' || md5(n::text) AS line_user_id, 'name ' || n AS name, \
                 (ARRAY['first_visit', 'follow_up', 'regular'])[1 + n % 3] AS stage, \
                 timestamp '2026-10-01' + (n % 60) * interval '1 day' AS stage_entered_at, \
                 date '1950-01-01' + n % 20000 AS birth_date, n % 50 = 0 AS opted_out \
                 FROM generate_series(1, {rows}) AS n ORDER BY n"
            ))
            .unwrap();
        let csv_path = work.path().join(format!("{table}.csv"));
        let mut csv = std::fs::File::create(&csv_path).unwrap();
        let mut copy = client
            .copy_out(&format!(
                "COPY (SELECT id, line_user_id, name, stage, stage_entered_at, birth_date, \
                 opted_out::text AS opted_out FROM {table}) TO STDOUT WITH (FORMAT csv, HEADER)"
            ))
            .unwrap();
        std::io::copy(&mut copy, &mut csv).unwrap();
        drop(copy);
        let plan = |patients: &[&str]| {
            let mut args = vec!["plan", rules.to_str().unwrap()];
            args.extend_from_slice(patients);
            args.extend_from_slice(&["--now", NOW, "--days", "31", "--format", "html"]);
            peak_rss(&args)
        };
        let from_csv = plan(&["--patients", csv_path.to_str().unwrap()]);
        let from_db = plan(&["--patients", &url, "--patients-table", &table]);
        assert_eq!((from_csv.0, from_db.0), (0, 0));
        eprintln!(
            "{rows} rows: peak RSS {:.1} MiB from the CSV export, {:.1} MiB from PostgreSQL",
            from_csv.1, from_db.1
        );
        peaks.push((from_csv.1, from_db.1));
    }
    let (csv_1m, db_1m) = peaks[1];
    // The reader's own share: a few MiB of chunks and the client's buffers, not the rows.
    assert!(db_1m < csv_1m + 32.0, "{peaks:?}");
}
