use super::*;
use crate::source::SourceFile;

/// The v1 contract from the language issue: these forms must parse exactly as written.
const CONTRACT: &str = include_str!("../../tests/fixtures/check/contract.step");

fn parse_ok(text: &str) -> RuleFile {
    let (ast, diagnostics) = parse(&SourceFile::new("t.step", text));
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    ast
}

fn steps(ast: &RuleFile) -> Vec<&StepDecl> {
    ast.statements
        .iter()
        .filter_map(|s| match s {
            Statement::Step(step) => Some(step.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn contract_parses_exactly_as_written() {
    let ast = parse_ok(CONTRACT);
    assert_eq!(ast.statements.len(), 13);
    let steps = steps(&ast);
    let names: Vec<_> = steps
        .iter()
        .map(|s| s.name.as_ref().map(|n| n.node.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            Some("booking_confirm"),
            Some("visit_reminder"),
            Some("thanks"),
            Some("followup"),
            Some("checkup"),
            Some("news"),
            None
        ]
    );
}

#[test]
fn settings_have_their_values() {
    let ast = parse_ok(CONTRACT);
    let mut saw = 0;
    for statement in &ast.statements {
        match statement {
            Statement::Clinic(name) => {
                assert_eq!(name.node, "さくら内科クリニック");
                saw += 1;
            }
            Statement::Quiet { from, to, .. } => {
                assert_eq!((from.node.hour, from.node.minute), (21, 0));
                assert_eq!((to.node.hour, to.node.minute), (9, 0));
                saw += 1;
            }
            Statement::Cap { count, period, .. } => {
                assert_eq!((count.node, period.node), (2, CapPeriod::Day));
                saw += 1;
            }
            Statement::Dates(dates) => {
                assert_eq!(dates.len(), 5);
                saw += 1;
            }
            _ => {}
        }
    }
    assert_eq!(saw, 4);
}

#[test]
fn before_field_with_at_and_unless() {
    let ast = parse_ok("step r: when stage=booked 1d before appointment_at at 18:00 send visit_reminder unless cancelled_at");
    let step = steps(&ast)[0];
    let Anchor::BeforeField(duration, field) = &step.timing.anchor else {
        panic!("{:?}", step.timing.anchor)
    };
    assert_eq!(
        (duration.node, field.node.as_str()),
        (
            Duration {
                amount: 1,
                unit: DurationUnit::Days
            },
            "appointment_at"
        )
    );
    assert_eq!(step.timing.at.as_ref().unwrap().node.hour, 18);
    assert!(matches!(&step.unless[0].node, Condition::IsSet(f) if f.node == "cancelled_at"));
}

#[test]
fn weighted_variants_and_months() {
    let ast = parse_ok("step c: when stage=follow_up 3mo after last_visit_at at 10:00 send checkup_a 50% | checkup_b 50%");
    let step = steps(&ast)[0];
    let weights: Vec<_> = step
        .send
        .iter()
        .map(|v| (v.template.node.as_str(), v.weight.as_ref().map(|w| w.node)))
        .collect();
    assert_eq!(weights, [("checkup_a", Some(50)), ("checkup_b", Some(50))]);
    assert_eq!(
        step.timing.anchor.duration().unwrap().node.unit,
        DurationUnit::Months
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let ast =
        parse_ok("step x: when stage=regular or stage=follow_up and age >= 40 every 30d send news");
    let Condition::Or(operands) = &steps(&ast)[0].when.node else {
        panic!("or at the top")
    };
    assert_eq!(operands.len(), 2);
    assert!(matches!(operands[1].node, Condition::And(..)));
}

#[test]
fn conditions_cover_every_form() {
    let ast = parse_ok(
        "step x: when (stage in (booked, first_visit) or tag=vip) and not opted_out and visited_at >= 2026-04-01 \
         and department != \"健診\" and rhai { patient.visits > 3 } after 1h send a within 2d",
    );
    let step = steps(&ast)[0];
    let text = format!("{:?}", step.when.node);
    for needle in [
        "In",
        "Not",
        "Date(2026-04-01)",
        "String(\"健診\")",
        "Script",
        "IsSet",
    ] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }
    assert_eq!(step.within[0].node.amount, 2);
}

#[test]
fn indented_lines_continue_a_step() {
    let ast = parse_ok("step a: when stage=booked\n    # why\n\n    after 0m\n\tsend booking_confirm\nstages booked\n");
    assert_eq!(ast.statements.len(), 2);
}

#[test]
fn every_syntax_error_in_a_file_is_reported() {
    let text = "stages a\nstep x: when stage=a after 7 send t\nstep y: when stage=a after 1d\nstep z: when stage=a after 1d send t\nwehn stage=a after 1d send t\n";
    let (ast, diagnostics) = parse(&SourceFile::new("t.step", text));
    let lines: Vec<_> = diagnostics.iter().map(|d| d.line_column().0).collect();
    assert_eq!(lines, [2, 3, 5]);
    assert_eq!(ast.statements.len(), 2, "the good statements survive");
    assert!(
        diagnostics[0].message.contains("duration"),
        "{}",
        diagnostics[0].message
    );
    assert_eq!(diagnostics[2].help.as_deref(), Some("did you mean `when`?"));
}

#[test]
fn full_width_characters_get_a_hint() {
    let (_, diagnostics) = parse(&SourceFile::new(
        "t.step",
        "step e: when stage＝regular after 1d send t",
    ));
    assert!(diagnostics[0]
        .help
        .as_deref()
        .unwrap()
        .contains("half-width `=`"));
}

#[test]
fn keywords_are_not_names_but_may_start_one() {
    parse_ok("stages after_care, within_week\nstep at_home: when stage=after_care after 1d send at_home_tips");
    let (_, diagnostics) = parse(&SourceFile::new("t.step", "stages after"));
    assert_eq!(diagnostics.len(), 1);
}

#[test]
fn spans_point_into_the_file() {
    let file = SourceFile::new(
        "t.step",
        "stages a\n\nstep x: when stage=a after 7d send hello",
    );
    let (ast, _) = parse(&file);
    let step = steps(&ast)[0];
    assert_eq!(file.slice(step.send[0].template.span), "hello");
    assert_eq!(file.slice(step.timing.span), "after 7d");
}

#[test]
fn date_times_and_braces_in_script_strings_parse() {
    let ast = parse_ok(
        "step x: when appointment_at >= 2026-04-01T10:00 and rhai { patient.note != \"}\" } after 1d send a",
    );
    let text = format!("{:?}", steps(&ast)[0].when.node);
    assert!(text.contains("DateTime(2026-04-01T10:00:00)"), "{text}");
    assert!(text.contains(r#"patient.note != \"}\""#), "{text}");
}

#[test]
fn a_missing_colon_after_the_step_name_is_named() {
    let (_, diagnostics) = parse(&SourceFile::new(
        "t.step",
        "step b when stage=a after 1d send x",
    ));
    assert_eq!(diagnostics[0].message, "expected `:`, found `when`");
    assert_eq!(diagnostics[0].line_column(), (1, 8));
}

#[test]
fn chains_are_flat_lists_however_long() {
    let chain = vec!["stage=regular"; 5_000].join(" and ");
    let ast = parse_ok(&format!(
        "step x: when {chain} or tag=vip every 30d send news"
    ));
    let Condition::Or(either) = &steps(&ast)[0].when.node else {
        panic!("or at the top")
    };
    let Condition::And(all) = &either[0].node else {
        panic!("and inside")
    };
    assert_eq!((either.len(), all.len()), (2, 5_000));
}

#[test]
fn observation_settings_parse() {
    let ast = parse_ok(
        "bookings next_booking_at, appointment_at\nvisits visited_at\nattribution 7d\nrevisit 3mo",
    );
    let parsed: Vec<String> = ast
        .statements
        .iter()
        .map(|statement| match statement {
            Statement::Bookings(names) | Statement::Visits(names) => names
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>()
                .join(","),
            Statement::Attribution(window) | Statement::Revisit(window) => window.node.to_string(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        parsed,
        ["next_booking_at,appointment_at", "visited_at", "7d", "3mo"]
    );
}

#[test]
fn a_window_without_a_duration_points_at_the_word() {
    let (_, diagnostics) = parse(&SourceFile::new("t.step", "attribution soon"));
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].code, crate::diagnostic::Code::Syntax);
    assert_eq!(diagnostics[0].span.start, "attribution ".len());
}

#[test]
fn every_after_a_field_is_a_series_on_that_field() {
    let ast = parse_ok(
        "step birthday: when stage=regular every 1y after birth_date at 10:00 send birthday\n\
         step recall: when stage=follow_up every 6mo after last_visit_at send checkup",
    );
    let found: Vec<_> = steps(&ast)
        .iter()
        .map(|step| match &step.timing.anchor {
            Anchor::EveryAfterField(every, field) => (every.node.to_string(), field.node.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        found,
        [
            ("1y".to_owned(), "birth_date".to_owned()),
            ("6mo".to_owned(), "last_visit_at".to_owned())
        ]
    );
    // `every 30d` alone still counts from stage entry.
    let ast = parse_ok("step news: when stage=regular every 30d at 12:00 send news");
    assert!(matches!(steps(&ast)[0].timing.anchor, Anchor::Every(_)));
}

#[test]
fn slips_in_a_series_on_a_field_get_the_form_that_works() {
    let help = |text: &str| {
        let (_, diagnostics) = parse(&SourceFile::new("t.step", text));
        assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:#?}");
        diagnostics[0].help.clone().unwrap_or_default()
    };
    for (text, says) in [
        (
            "step b: when stage=regular every year after birth_date send b",
            "`every 1y after birth_date`",
        ),
        (
            "step b: when stage=regular every 1y before birth_date send b",
            "it counts forward from the field",
        ),
        (
            "step b: when stage=regular every 1y after send b",
            "name the date field it counts from",
        ),
        (
            "step b: when stage=regular 2w after at 10:00 send b",
            "name the date field it counts from",
        ),
    ] {
        let found = help(text);
        assert!(found.contains(says), "{text}: {found}");
    }
}
