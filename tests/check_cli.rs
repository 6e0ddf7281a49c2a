//! `steprule check` as a marketer runs it: one fixture per kind of problem, the rendered
//! diagnostics snapshotted (tests/snapshots), the exit code asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{fixtures, steprule, Run};

fn check(file: &str, extra: &[&str]) -> Run {
    let mut args = vec!["check", file];
    args.extend_from_slice(extra);
    steprule(&fixtures().join("check"), &args)
}

/// Checks a fixture, asserts its exit code and snapshots what the user sees.
macro_rules! diagnostics_snapshot {
    ($test:ident, $file:literal, exit $code:literal) => {
        #[test]
        fn $test() {
            let run = check($file, &[]);
            assert_eq!(run.code, $code, "{}", run.stderr);
            insta::assert_snapshot!(stringify!($test), run.stderr);
        }
    };
}

diagnostics_snapshot!(syntax_errors_point_at_the_token_in_plain_words, "syntax_errors.step", exit 1);
diagnostics_snapshot!(unknown_stage_suggests_the_declared_one, "unknown_stage.step", exit 1);
diagnostics_snapshot!(unknown_field_and_date_field_suggest_names, "unknown_field.step", exit 1);
diagnostics_snapshot!(unknown_template_suggests_an_existing_one, "unknown_template.step", exit 1);
diagnostics_snapshot!(duplicate_step_ids_show_both_places, "duplicate_step.step", exit 1);
diagnostics_snapshot!(variant_weights_must_sum_to_100, "variant_weights.step", exit 1);
diagnostics_snapshot!(invalid_times_and_timezones, "invalid_time_and_timezone.step", exit 1);
diagnostics_snapshot!(before_needs_a_declared_date_field, "before_non_date.step", exit 1);
diagnostics_snapshot!(template_problems_point_into_the_template, "template_problems.step", exit 1);
diagnostics_snapshot!(a_template_with_several_problems_reports_all_of_them, "several_template_problems.step", exit 1);
diagnostics_snapshot!(rhai_syntax_errors_have_the_right_position, "script_error.step", exit 1);
diagnostics_snapshot!(same_instant_is_a_warning, "same_instant.step", exit 0);
diagnostics_snapshot!(quiet_hours_swallowing_at_is_a_warning, "quiet_hours_at.step", exit 0);
diagnostics_snapshot!(unnamed_step_is_a_warning_that_explains_ids, "unnamed_step.step", exit 0);
diagnostics_snapshot!(every_error_in_a_file_is_reported_in_one_run, "many_errors.step", exit 1);
diagnostics_snapshot!(durations_out_of_range_state_the_range, "duration_range.step", exit 1);
diagnostics_snapshot!(template_budgets_and_the_url_rule, "template_budget.step", exit 1);
diagnostics_snapshot!(track_must_be_https_and_set_once, "track_problems.step", exit 1);
diagnostics_snapshot!(track_has_no_query_or_fragment, "track_query.step", exit 1);
diagnostics_snapshot!(tracked_links_count_toward_the_text_limit, "track_text_grows.step", exit 1);
diagnostics_snapshot!(bookings_visits_and_windows_are_checked, "observe_problems.step", exit 1);
diagnostics_snapshot!(reactions_name_steps_and_never_wait_for_themselves, "reactions.step", exit 1);
diagnostics_snapshot!(a_marketers_slips_get_the_fix_in_their_terms, "marketer_slips.step", exit 1);
diagnostics_snapshot!(stage_names_in_japanese_point_to_the_mapping, "japanese_stage.step", exit 1);

#[test]
fn a_template_variable_in_japanese_lists_the_names_there_are() {
    let run = check("japanese_variable.step", &["--templates", "templates_ja"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    insta::assert_snapshot!(
        "a_template_variable_in_japanese_lists_the_names_there_are",
        run.stderr
    );
}

#[test]
fn a_missing_templates_folder_is_one_error_not_one_per_step() {
    let run = check("marketer_slips.step", &["--templates", "no_such_folder"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("the templates folder").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("unknown template `"), "{}", run.stderr);
}

#[test]
fn a_template_no_step_sends_is_a_warning_in_a_clinics_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    for name in ["hello", "old_campaign", "link_request"] {
        std::fs::write(
            dir.path().join(format!("templates/{name}.toml")),
            "text = \"こんにちは\"",
        )
        .unwrap();
    }
    let rules = "stages booked\nstep hello: when stage=booked after 0m send hello\n";
    std::fs::write(dir.path().join("clinic.step"), rules).unwrap();
    let run = steprule(dir.path(), &["check", "clinic.step", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    let codes: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["code"].as_str())
        .collect();
    // The link templates belong to `serve`; only the campaign is unused.
    assert_eq!(codes, ["steprule::unused-template"], "{rows}");
    assert!(
        rows[0]["message"]
            .as_str()
            .unwrap()
            .contains("old_campaign"),
        "{rows}"
    );
    // A second rules file in the folder may be the one sending it: no warning.
    std::fs::write(dir.path().join("campaign.step"), rules).unwrap();
    let run = steprule(dir.path(), &["check", "clinic.step", "--format", "json"]);
    assert_eq!(run.stdout.trim(), "[]", "{}", run.stdout);
}

#[test]
fn a_track_url_too_long_for_any_tracked_link_is_refused() {
    let run = check("track_too_long.step", &["--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    insta::assert_json_snapshot!("track_too_long_json", rows);
}

#[test]
fn templates_that_fit_once_their_links_are_tracked_check_clean() {
    let run = check("tracked.step", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        "tracked.step: ok, 5 steps and 3 templates checked"
    );
    // Without `track`, the same 250 links fit: the text only grows once they are tracked.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(fixtures().join("check/track_text_grows.step")).unwrap();
    let untracked: String = rules
        .lines()
        .filter(|l| !l.starts_with("track"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("rules.step"), untracked).unwrap();
    let templates = fixtures().join("check/templates");
    let run = steprule(
        dir.path(),
        &[
            "check",
            "rules.step",
            "--templates",
            templates.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn sample_clinic_rules_check_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = steprule(root, &["check", "rules/clinic.step"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        "rules/clinic.step: ok, 18 steps and 19 templates checked"
    );
}

#[test]
fn clean_fixture_exits_zero_with_a_summary() {
    let run = check("clean.step", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        "clean.step: ok, 5 steps and 3 templates checked"
    );
}

#[test]
fn json_format_is_one_array_with_positions() {
    let run = check("template_sizes.step", &["--format", "json"]);
    assert_eq!(run.code, 1);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    insta::assert_json_snapshot!("template_sizes_json", rows);
    let first = &rows[0];
    for key in [
        "code", "severity", "message", "file", "line", "column", "help",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
}

#[test]
fn json_for_a_clean_file_is_an_empty_array() {
    let run = check("clean.step", &["--format", "json"]);
    assert_eq!((run.code, run.stdout.trim()), (0, "[]"));
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    assert_eq!(check("unnamed_step.step", &[]).code, 0);
    assert_eq!(check("unnamed_step.step", &["--deny-warnings"]).code, 1);
}

#[test]
fn missing_file_is_an_io_error() {
    let run = check("no_such_file.step", &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no_such_file.step: cannot read"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_arguments_are_a_usage_error() {
    let run = steprule(&fixtures(), &["check", "--format", "yaml", "x.step"]);
    assert_eq!(run.code, 2);
    let run = steprule(&fixtures(), &["check"]);
    assert_eq!(run.code, 2);
}

#[test]
fn several_files_are_checked_in_one_run() {
    let run = check("clean.step", &["unknown_stage.step"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("clean.step: ok"));
    assert!(run.stderr.contains("unknown_stage.step: 1 error"));
}

#[test]
fn an_unreadable_file_does_not_hide_the_others() {
    let run = check("no_such_file.step", &["unknown_stage.step"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("steprule::unknown-stage"),
        "{}",
        run.stderr
    );
}

/// A rules file with one step whose condition is `condition`, in a temporary directory with a
/// `hello` template, as a marketer's generator might write it.
fn generated(condition: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/hello.toml"),
        "text = \"こんにちは\"",
    )
    .unwrap();
    let rules =
        format!("stages regular\nfields a, b\nstep s: when {condition} after 1d send hello\n");
    std::fs::write(dir.path().join("deep.step"), rules).unwrap();
    dir
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_stack_overflow() {
    let shapes = [
        format!("{}stage=regular{}", "(".repeat(3000), ")".repeat(3000)),
        format!("{}stage=regular", "not ".repeat(10_000)),
        format!("rhai {}{}", "{".repeat(3000), "}".repeat(3000)),
        format!("{}stage=regular{}", "not (".repeat(2000), ")".repeat(2000)),
    ];
    for condition in &shapes {
        let dir = generated(condition);
        let human = steprule(dir.path(), &["check", "deep.step"]);
        assert_eq!(
            human.code,
            1,
            "{}",
            &human.stderr[..human.stderr.len().min(500)]
        );
        assert!(
            human.stderr.contains("steprule::too-deeply-nested")
                && human.stderr.contains("more than 32 levels deep"),
            "{}",
            &human.stderr[..human.stderr.len().min(500)]
        );
        let json = steprule(dir.path(), &["check", "deep.step", "--format", "json"]);
        assert_eq!(json.code, 1);
        let rows: serde_json::Value = serde_json::from_str(&json.stdout).expect("valid JSON");
        assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
        assert_eq!(rows[0]["code"], "steprule::too-deeply-nested");
        assert_eq!(rows[0]["line"], 3);
    }
}

#[test]
fn long_flat_chains_check_plan_and_explain() {
    let shapes = [
        vec!["stage=regular"; 20_000].join(" and "),
        vec!["stage=regular"; 20_000].join(" or "),
        vec!["(a or not b)"; 20_000].join(" and "),
    ];
    for condition in &shapes {
        let dir = generated(condition);
        let human = steprule(dir.path(), &["check", "deep.step"]);
        assert_eq!(
            human.code,
            0,
            "{}",
            &human.stderr[..human.stderr.len().min(500)]
        );
        assert_eq!(
            human.stderr.trim(),
            "deep.step: ok, 1 step and 1 template checked"
        );
        let json = steprule(dir.path(), &["check", "deep.step", "--format", "json"]);
        assert_eq!((json.code, json.stdout.trim()), (0, "[]"));
        std::fs::write(
            dir.path().join("patients.csv"),
            "id,line_user_id,stage,stage_entered_at,a,b\nP1,U1,regular,2026-02-28 09:00,x,\n",
        )
        .unwrap();
        let plan = steprule(
            dir.path(),
            &[
                "plan",
                "deep.step",
                "--patients",
                "patients.csv",
                "--now",
                "2026-03-01 00:00",
                "--format",
                "json",
            ],
        );
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        assert_eq!(plan.stdout.lines().count(), 1, "{}", plan.stdout);
        let explain = steprule(
            dir.path(),
            &[
                "explain",
                "deep.step",
                "--patients",
                "patients.csv",
                "--patient",
                "P1",
                "--now",
                "2026-03-01 00:00",
            ],
        );
        assert_eq!(explain.code, 0, "{}", explain.stderr);
        assert!(
            explain.stdout.contains("sends hello at 2026-03-01"),
            "{}",
            explain.stdout
        );
    }
}

#[test]
fn tracked_links_need_the_link_templates_that_serve_answers_with() {
    // `track` sends taps to `serve`, and `serve` greets new friends with the link templates:
    // rules that track links are checked as if `--serve` were given.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(fixtures().join("check/tracked.step")).unwrap();
    std::fs::write(dir.path().join("tracked.step"), rules).unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    for name in [
        "hello",
        "reminder",
        "checkup_a",
        "link_request",
        "link_done",
    ] {
        std::fs::copy(
            fixtures().join(format!("check/templates/{name}.toml")),
            dir.path().join(format!("templates/{name}.toml")),
        )
        .unwrap();
    }
    let run = steprule(dir.path(), &["check", "tracked.step"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("steprule::missing-link-template"),
        "{}",
        run.stderr
    );
    for missing in ["link_failed", "link_locked"] {
        assert!(run.stderr.contains(missing), "{missing} in {}", run.stderr);
    }
    assert!(!run.stderr.contains("`link_done`"), "{}", run.stderr);
}

#[test]
fn more_unit_names_than_line_counts_a_month_is_a_warning() {
    // One name per step and A/B arm: 450 two-arm steps are 900 names, one more step is 902.
    let rules = |steps: usize| {
        let mut text =
            String::from("clinic \"テスト内科\"\ntimezone \"Asia/Tokyo\"\nstages booked\n");
        for i in 0..steps {
            text.push_str(&format!(
                "step s{i}: when stage=booked after {}m send checkup_a 50% | checkup_b 50%\n",
                i + 1
            ));
        }
        text
    };
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        fixtures().join("check/templates"),
        dir.path().join("templates"),
    )
    .unwrap();
    let codes = |steps: usize| {
        std::fs::write(dir.path().join("many.step"), rules(steps)).unwrap();
        let run = steprule(dir.path(), &["check", "many.step", "--format", "json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let found: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        found
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["code"] == "steprule::too-many-unit-names")
            .count()
    };
    assert_eq!(codes(450), 0);
    assert_eq!(codes(451), 1);
}

// Every kind of advertising finding at once, each pointing at its word in the template file;
// an allowance silences one code and an allowance that silences nothing is a warning.
diagnostics_snapshot!(medical_advertising_lints_point_at_the_word, "ad_lints.step", exit 1);

// The privacy findings at once: health words and a sensitive field in the preview (in the
// template file), a sensitive field sent without consent, a promo step without `consent`, and
// a newsletter without opt-out wording (at the template's name in the step).
diagnostics_snapshot!(privacy_lints_point_at_the_preview_and_the_step, "privacy.step", exit 1);
