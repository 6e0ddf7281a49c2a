//! What `serve` needs before it listens: the channel secret, and link templates that exist
//! and see no patient (`check --serve` reports the same).

use std::process::Command;

use crate::common::{fixtures, steprule};

fn serve_without_listening(rules: &str, secret: Option<&str>) -> crate::common::Run {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_steprule"));
    command
        .arg("serve")
        .arg(fixtures().join(rules))
        .arg("--patients")
        .arg(fixtures().join("serve/patients.csv"))
        .arg("--ledger")
        .arg(dir.path().join("ledger.db"))
        .args(["--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env_remove("LINE_CHANNEL_SECRET")
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN");
    if let Some(secret) = secret {
        command.env("LINE_CHANNEL_SECRET", secret);
    }
    let output = command.output().unwrap();
    assert!(!dir.path().join("ledger.db").exists(), "nothing was opened");
    crate::common::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[test]
fn serve_without_the_channel_secret_is_a_usage_error() {
    for secret in [None, Some(""), Some("   ")] {
        let run = serve_without_listening("serve/clinic.step", secret);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("LINE_CHANNEL_SECRET is not set"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("listening"), "{}", run.stderr);
    }
}

#[test]
fn serve_refuses_rules_whose_link_templates_are_missing_or_see_a_patient() {
    let run = serve_without_listening("serve/no_link_templates/clinic.step", Some(crate::SECRET));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("steprule::missing-link-template"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`link_locked`"), "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown variable `name`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("listening"), "{}", run.stderr);
    assert!(
        !run.stderr.contains(crate::SECRET),
        "the secret is never printed"
    );
}

#[test]
fn check_serve_reports_missing_and_broken_link_templates() {
    let dir = fixtures().join("serve");
    // Without --serve the rules are fine: no step sends a link template.
    let plain = steprule(&dir, &["check", "no_link_templates/clinic.step"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let served = steprule(&dir, &["check", "--serve", "no_link_templates/clinic.step"]);
    assert_eq!(served.code, 1, "{}", served.stderr);
    insta::assert_snapshot!("check_serve_link_templates", served.stderr);
}

#[test]
fn the_sample_clinics_link_templates_check_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = steprule(root, &["check", "--serve", "rules/clinic.step"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let fixture = steprule(
        &fixtures().join("serve"),
        &["check", "--serve", "clinic.step"],
    );
    assert_eq!(fixture.code, 0, "{}", fixture.stderr);
}
