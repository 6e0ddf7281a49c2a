//! Property tests for the parser and the checker: whatever a marketer types, `check` answers
//! with diagnostics, never a panic; and every well-formed step parses to what was written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use proptest::prelude::*;
use steprule::check_file;
use steprule::syntax::{self, Anchor, Condition, Priority, Purpose, ReactionKind, Statement};
use steprule::SourceFile;
use steprule::TemplateStore;

const CONTRACT: &str = include_str!("fixtures/check/contract.step");

fn templates() -> TemplateStore {
    TemplateStore::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/templates"))
}

/// Checks text and asserts that every diagnostic points inside the file.
fn check_never_panics(text: &str) {
    let file = SourceFile::new("prop.step", text);
    let outcome = check_file(&file, &mut templates());
    for diag in &outcome.diagnostics {
        let own_file = diag.file.name() == "prop.step";
        if own_file {
            assert!(diag.span.end <= text.len(), "{diag:?}");
            assert!(text.is_char_boundary(diag.span.start), "{diag:?}");
            assert!(text.is_char_boundary(diag.span.end), "{diag:?}");
        }
        let _ = diag.line_column();
    }
    let _ = steprule::render_human(&outcome.diagnostics, false);
}

const TOKENS: &[&str] = &[
    "when",
    "step",
    "send",
    "after",
    "before",
    "every",
    "at",
    "unless",
    "within",
    "priority",
    "even on the day",
    "allow",
    "same-instant",
    "care",
    "promo",
    "requires consent",
    "consent",
    "sensitive",
    "start",
    "2026-12-01",
    "on",
    "year",
    "06-04",
    "high",
    "low",
    "clicked",
    "answered",
    "booked since",
    "blocked",
    "sent",
    "within 3d",
    "and",
    "or",
    "not",
    "in",
    "rhai",
    "{",
    "}",
    "(",
    ")",
    "=",
    "!=",
    ">=",
    "<",
    "|",
    "%",
    ":",
    ",",
    "-",
    "\"",
    "#",
    "\n",
    "\n    ",
    " ",
    "　",
    "＝",
    "7d",
    "3mo",
    "0m",
    "25:00",
    "18:00",
    "50%",
    "stage",
    "booked",
    "regular",
    "age",
    "tag",
    "appointment_at",
    "さくら",
    "🍎",
    "\r\n",
    "\t",
    "9999999999d",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..12usize).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert(at, token)),
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
    ]
}

/// A char boundary at or before `at % len`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &mut String, mutation: &Mutation) {
    match *mutation {
        Mutation::Delete(at, len) => {
            let start = boundary(text, at);
            let end = boundary(text, start + len.min(text.len() - start));
            text.replace_range(start..end.max(start), "");
        }
        Mutation::Insert(at, token) => {
            let at = boundary(text, at);
            text.insert_str(at, TOKENS[token]);
        }
        Mutation::Duplicate(at, len) => {
            let start = boundary(text, at);
            let end = boundary(text, start + len.min(text.len() - start)).max(start);
            let piece = text[start..end].to_owned();
            text.insert_str(end, &piece);
        }
    }
}

fn duration() -> impl Strategy<Value = String> {
    (
        0..400u32,
        prop::sample::select(vec!["m", "h", "d", "w", "mo", "y"]),
    )
        .prop_map(|(n, unit)| format!("{n}{unit}"))
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,12}".prop_filter("not a keyword", |n| {
        ![
            "when", "after", "before", "every", "at", "send", "unless", "within", "and", "or",
            "not", "in", "step", "rhai",
        ]
        .contains(&n.as_str())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_never_panics(&text);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(0..TOKENS.len(), 0..60)) {
        let text: String = tokens.into_iter().map(|t| TOKENS[t]).collect::<Vec<_>>().join(" ");
        check_never_panics(&text);
    }

    #[test]
    fn mutated_contract_never_panics(mutations in prop::collection::vec(mutation(), 1..8)) {
        let mut text = CONTRACT.to_owned();
        for m in &mutations {
            apply(&mut text, m);
        }
        check_never_panics(&text);
    }

    /// Parentheses and `not`s in any order: up to the limit the step is read, past it the
    /// answer is one diagnostic; flat `and`/`or` chains around them never count.
    #[test]
    fn nesting_is_read_up_to_the_limit_and_reported_past_it(
        wrappers in prop::collection::vec(any::<bool>(), 0..(syntax::MAX_NESTING + 8)),
        chain in 1..50usize,
        or in any::<bool>(),
    ) {
        let mut condition = vec!["stage=booked"; chain].join(if or { " or " } else { " and " });
        for paren in wrappers.iter().rev() {
            condition = if *paren { format!("({condition})") } else { format!("not {condition}") };
        }
        let text = format!("stages booked\nstep s: when {condition} after 1d send booking_confirm\n");
        check_never_panics(&text);
        let (_, diagnostics) = syntax::parse(&SourceFile::new("p.step", text.as_str()));
        let too_deep = diagnostics
            .iter()
            .filter(|d| d.code == steprule::Code::TooDeeplyNested)
            .count();
        prop_assert_eq!(too_deep, usize::from(wrappers.len() > syntax::MAX_NESTING), "{}", text);
        if wrappers.len() <= syntax::MAX_NESTING {
            prop_assert!(diagnostics.is_empty(), "{text}\n{diagnostics:?}");
        }
    }

    #[test]
    fn well_formed_steps_parse_to_what_was_written(
        id in name(),
        stage in name(),
        offset in duration(),
        field in name(),
        before in any::<bool>(),
        every in any::<bool>(),
        hour in 0..24u32,
        minute in 0..60u32,
        templates in prop::collection::vec(name(), 1..4),
        priority in prop::option::of(0..3usize),
        on_the_day in any::<bool>(),
        allow in prop::collection::vec(prop::sample::select(vec!["same-instant", "quiet-hours-at", "unnamed-step", "reminder-capped", "birth-date-once", "privacy-opt-out"]), 0..3),
        purpose in prop::option::of(any::<bool>()),
        needs_consent in any::<bool>(),
    ) {
        let direction = if before { "before" } else { "after" };
        // `every D after FIELD`: a series on the field (not with `before`).
        let every = every && !before;
        let series = if every { "every " } else { "" };
        let send = templates.join(" | ");
        let levels = [Priority::Low, Priority::Normal, Priority::High];
        let mut clauses = priority
            .map(|p| format!(" priority {}", levels[p].name()))
            .unwrap_or_default();
        if let Some(promo) = purpose {
            clauses.push_str(if promo { " promo" } else { " care" });
        }
        if needs_consent {
            clauses.push_str("\n    requires consent");
        }
        if !allow.is_empty() {
            clauses.push_str(&format!("\n    allow {}", allow.join(", ")));
        }
        let on_the_day = on_the_day && before;
        let late = if on_the_day { " even on the day" } else { "" };
        let text = format!(
            "step {id}: when stage={stage} {series}{offset} {direction} {field} at {hour:02}:{minute:02}{late}\n    send {send}{clauses}\n"
        );
        let (ast, diagnostics) = syntax::parse(&SourceFile::new("p.step", text.as_str()));
        prop_assert!(diagnostics.is_empty(), "{text}\n{diagnostics:?}");
        let Some(Statement::Step(step)) = ast.statements.first() else {
            return Err(TestCaseError::fail("a step"));
        };
        prop_assert_eq!(&step.name.as_ref().unwrap().node, &id);
        let written: Vec<_> = step.send.iter().map(|v| v.template.node.clone()).collect();
        prop_assert_eq!(written, templates);
        prop_assert_eq!(step.timing.anchor.duration().unwrap().node.to_string(), offset);
        let anchored = match &step.timing.anchor {
            Anchor::BeforeField(_, f) => before && f.node == field,
            Anchor::AfterField(_, f) => !before && !every && f.node == field,
            Anchor::EveryAfterField(_, f) => every && f.node == field,
            _ => false,
        };
        prop_assert!(anchored);
        let at = step.timing.at.as_ref().unwrap().node;
        prop_assert_eq!((at.hour, at.minute), (hour, minute));
        prop_assert_eq!(step.timing.on_the_day.is_some(), on_the_day);
        let allowed: Vec<_> = step.allow.iter().map(|a| a.node.as_str()).collect();
        prop_assert_eq!(allowed, allow);
        let written: Vec<_> = step.priority.iter().map(|p| p.node).collect();
        prop_assert_eq!(written, priority.map(|p| levels[p]).into_iter().collect::<Vec<_>>());
        let purposes: Vec<_> = step.purpose.iter().map(|p| p.node).collect();
        let expected = purpose.map(|promo| if promo { Purpose::Promo } else { Purpose::Care });
        prop_assert_eq!(purposes, expected.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(step.needs_consent.is_some(), needs_consent);
    }

    /// `consent FIELD` and `sensitive A, B`: the fields as written.
    #[test]
    fn privacy_settings_parse_to_what_was_written(
        consent in name(),
        sensitive in prop::collection::vec(name(), 1..4),
    ) {
        let text = format!("consent {consent}\nsensitive {}\n", sensitive.join(", "));
        let (ast, diagnostics) = syntax::parse(&SourceFile::new("p.step", text.as_str()));
        prop_assert!(diagnostics.is_empty(), "{text}\n{diagnostics:?}");
        match ast.statements.as_slice() {
            [Statement::Consent(field), Statement::Sensitive(fields)] => {
                prop_assert_eq!(&field.node, &consent);
                let written: Vec<_> = fields.iter().map(|f| f.node.clone()).collect();
                prop_assert_eq!(written, sensitive);
            }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    /// `on YYYY-MM-DD` and `every year on MM-DD`, with an `at`, parse to the day written.
    #[test]
    fn fixed_date_steps_parse_to_what_was_written(
        id in name(),
        year in 1000..10000i32,
        month in 1..13u32,
        day in 1..29u32,
        yearly in any::<bool>(),
        hour in 0..24u32,
    ) {
        let timing = if yearly {
            format!("every year on {month:02}-{day:02}")
        } else {
            format!("on {year:04}-{month:02}-{day:02}")
        };
        let text = format!("step {id}: when stage=regular {timing} at {hour:02}:00 send hello\n");
        let (ast, diagnostics) = syntax::parse(&SourceFile::new("p.step", text.as_str()));
        prop_assert!(diagnostics.is_empty(), "{text}\n{diagnostics:?}");
        let Some(Statement::Step(step)) = ast.statements.first() else {
            return Err(TestCaseError::fail("a step"));
        };
        let read = match &step.timing.anchor {
            Anchor::Yearly(d) if yearly => (d.node.month, d.node.day),
            Anchor::OnDate(d) if !yearly => {
                prop_assert_eq!(chrono::Datelike::year(&d.node), year);
                (chrono::Datelike::month(&d.node), chrono::Datelike::day(&d.node))
            }
            _ => return Err(TestCaseError::fail(format!("{text}: {:?}", step.timing.anchor))),
        };
        prop_assert_eq!(read, (month, day));
        prop_assert!(step.timing.anchor.duration().is_none());
    }

    /// Reactions (`clicked S`, `answered S "DATA"`, `booked since S`, `blocked`), with or
    /// without a window, in `when` or `unless`, and `D after sent S`: read as written.
    #[test]
    fn reaction_steps_parse_to_what_was_written(
        id in name(),
        sent in name(),
        reacted in name(),
        offset in duration(),
        kind in 0..4usize,
        window in prop::option::of(duration()),
        data in "[a-z=0-9ぁ-ん]{0,12}",
        in_unless in any::<bool>(),
    ) {
        let mut reaction = match kind {
            0 => format!("clicked {reacted}"),
            1 => format!("answered {reacted} \"{data}\""),
            2 => format!("booked since {reacted}"),
            _ => "blocked".to_owned(),
        };
        // `blocked` takes no window: a `within` after it is the step's.
        let window = window.filter(|_| kind != 3);
        if let Some(window) = &window {
            reaction.push_str(&format!(" within {window}"));
        }
        let (when, unless) = match in_unless {
            true => ("stage=regular".to_owned(), format!(" unless {reaction}")),
            false => (format!("stage=regular and {reaction}"), String::new()),
        };
        let text = format!("step {id}: when {when} {offset} after sent {sent} at 12:00\n    send hello{unless}\n");
        check_never_panics(&text);
        let (ast, diagnostics) = syntax::parse(&SourceFile::new("p.step", text.as_str()));
        prop_assert!(diagnostics.is_empty(), "{text}\n{diagnostics:?}");
        let Some(Statement::Step(step)) = ast.statements.first() else {
            return Err(TestCaseError::fail("a step"));
        };
        match &step.timing.anchor {
            Anchor::AfterSent(d, s) => {
                prop_assert_eq!(d.node.to_string(), offset);
                prop_assert_eq!(&s.node, &sent);
            }
            other => return Err(TestCaseError::fail(format!("{text}: {other:?}"))),
        }
        let condition = match in_unless {
            true => &step.unless[0].node,
            false => match &step.when.node {
                Condition::And(operands) => &operands[1].node,
                other => return Err(TestCaseError::fail(format!("{text}: {other:?}"))),
            },
        };
        let Condition::Reaction(read) = condition else {
            return Err(TestCaseError::fail(format!("{text}: {condition:?}")));
        };
        let named = read.kind.step().map(|s| s.node.clone());
        match (&read.kind, kind) {
            (ReactionKind::Clicked(_), 0) | (ReactionKind::BookedSince(_), 2) => {
                prop_assert_eq!(named, Some(reacted));
            }
            (ReactionKind::Answered(_, written), 1) => {
                prop_assert_eq!(&written.node, &data);
                prop_assert_eq!(named, Some(reacted));
            }
            (ReactionKind::Blocked, 3) => prop_assert!(named.is_none()),
            (other, _) => return Err(TestCaseError::fail(format!("{text}: {other:?}"))),
        }
        prop_assert_eq!(read.window.as_ref().map(|w| w.node.to_string()), window);
    }
}
