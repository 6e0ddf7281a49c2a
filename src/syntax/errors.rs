//! Turns pest's "expected rule X" into a sentence a marketer can act on: what was expected in
//! plain words, what was found, and a hint for the usual slips (a missing unit, a misspelt
//! keyword, a full-width character typed with a Japanese IME).

use pest::error::{Error, ErrorVariant, InputLocation};

use super::parser::Rule;
use crate::diagnostic::{suggest, Code, Diagnostic};
use crate::source::{SourceFile, Span};

const KEYWORDS: &[&str] = &[
    "clinic", "timezone", "quiet", "cap", "track", "stages", "dates", "fields", "step", "when",
    "and", "or", "not", "in", "rhai", "after", "before", "every", "at", "send", "unless", "within",
    "per", "day", "week", "priority", "high", "normal", "low", "even", "the", "allow", "start",
    "year",
];

const STATEMENT_START: &str =
    "a setting (`clinic`, `timezone`, `quiet`, `cap`, `track`, `start`, `stages`, \
`dates`, `fields`) or a step (`step NAME: when …`)";
const TIMING: &str = "a timing such as `after 1d`, `every 30d`, `1d before appointment_at`, \
`on 2026-12-28` or `every year on 06-04`";
const DURATION_HELP: &str = "a duration is a whole number and a unit: m (minutes), h (hours), \
d (days), w (weeks), mo (months), y (years), e.g. `7d`, `3mo`";

/// Builds the diagnostic for a statement that does not parse. `offset` is where the statement's
/// text starts in the file.
pub(crate) fn syntax_error(
    file: &SourceFile,
    offset: usize,
    text: &str,
    error: &Error<Rule>,
) -> Diagnostic {
    let position = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((start, _)) => start,
    };
    // pest places the error at the furthest rule it tried; its detailed attempts also know
    // punctuation, which can get further (`step b when …` is missing the `:` after `b`).
    let further = error
        .parse_attempts()
        .filter(|attempts| attempts.max_position > position);
    let (position, expected) = match further {
        Some(attempts) => {
            let tokens = attempts
                .expected_tokens()
                .iter()
                .map(|t| t.to_string())
                .collect();
            (attempts.max_position, token_phrases(tokens))
        }
        None if position == 0 => (0, vec![STATEMENT_START.to_owned()]),
        None => (position, expected_phrases(error)),
    };
    // pest stops at the space after an incomplete token (`after 7 send`); the token before
    // it is what needs fixing.
    let position = back_over_space(text, position);
    let found = token_at(text, position);
    let found_words = if found.is_empty() {
        "the end of the line".to_owned()
    } else {
        format!("`{found}`")
    };
    let message = match expected.as_slice() {
        [] => format!("unexpected {found_words}"),
        phrases => format!("expected {}, found {found_words}", join_or(phrases)),
    };
    let span = Span::new(position, position + found.len()).shifted(offset);
    let help = slip(text, position, found).or_else(|| hint(error, found));
    Diagnostic::new(Code::Syntax, file, span, message)
        .with_label(if found.is_empty() {
            "something is missing here"
        } else {
            "not expected here"
        })
        .with_optional_help(help)
}

fn back_over_space(text: &str, position: usize) -> usize {
    let at_space = text[position.min(text.len())..]
        .chars()
        .next()
        .is_some_and(|c| c == ' ' || c == '\t');
    if !at_space {
        return position;
    }
    let before = &text[..position];
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        .last()
        .map(|(i, _)| i);
    word_start.unwrap_or(position)
}

/// The word or character at `position`, for "found …".
fn token_at(text: &str, position: usize) -> &str {
    let rest = &text[position.min(text.len())..];
    let rest = rest.split(['\n', '\r']).next().unwrap_or("");
    let word_len: usize = rest
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        .map(|(_, c)| c.len_utf8())
        .sum();
    if word_len > 0 {
        return &rest[..word_len];
    }
    // Japanese typed where a name or value goes: the whole word, not its first character.
    let japanese_len: usize = rest
        .chars()
        .take_while(|&c| !c.is_ascii() && !c.is_whitespace() && half_width(c).is_none())
        .map(char::len_utf8)
        .sum();
    if japanese_len > 0 {
        return &rest[..japanese_len];
    }
    match rest.chars().next() {
        Some(c) => &rest[..c.len_utf8()],
        None => "",
    }
}

fn expected_phrases(error: &Error<Rule>) -> Vec<String> {
    let mut phrases: Vec<String> = Vec::new();
    let push = |phrases: &mut Vec<String>, phrase: String| {
        if !phrases.contains(&phrase) {
            phrases.push(phrase);
        }
    };
    if let ErrorVariant::ParsingError { positives, .. } = &error.variant {
        let starts_statement =
            positives.contains(&Rule::kw_when) && positives.contains(&Rule::kw_clinic);
        if starts_statement {
            push(&mut phrases, STATEMENT_START.to_owned());
        } else {
            for rule in positives {
                if let Some(phrase) = phrase(*rule) {
                    push(&mut phrases, phrase.to_owned());
                }
            }
        }
    }
    // Punctuation (`-`, `,`, `:`) is not a rule; pest's detailed attempts know it. Only
    // needed when no rule says what was expected; `#` (a comment) and `_` (a name going on)
    // are always possible and never the fix.
    if phrases.is_empty() {
        if let Some(attempts) = error.parse_attempts() {
            for token in attempts.expected_tokens() {
                let token = token.to_string();
                let punctuation = token.chars().all(|c| c.is_ascii_punctuation());
                if punctuation && !token.is_empty() && token != "#" && token != "_" {
                    push(&mut phrases, format!("`{token}`"));
                }
            }
        }
    }
    phrases
}

/// Literal tokens pest expected (`:`, `when`), as the user would type them.
fn token_phrases(tokens: Vec<String>) -> Vec<String> {
    let mut phrases: Vec<String> = Vec::new();
    for token in tokens {
        let typeable = !token.is_empty()
            && token != "#"
            && token != "_"
            && !token.contains("..")
            && !token.chars().any(char::is_whitespace);
        let quoted = format!("`{token}`");
        if typeable && !phrases.contains(&quoted) {
            phrases.push(quoted);
        }
    }
    phrases
}

fn phrase(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::kw_clinic => "`clinic`",
        Rule::kw_timezone => "`timezone`",
        Rule::kw_quiet => "`quiet`",
        Rule::kw_cap => "`cap`",
        Rule::kw_per => "`per`",
        Rule::kw_track => "`track`",
        Rule::kw_day | Rule::kw_week | Rule::cap_period => "`day` or `week`",
        Rule::kw_stages => "`stages`",
        Rule::kw_dates => "`dates`",
        Rule::kw_fields => "`fields`",
        Rule::kw_bookings => "`bookings`",
        Rule::kw_visits => "`visits`",
        Rule::kw_attribution => "`attribution`",
        Rule::kw_revisit => "`revisit`",
        Rule::kw_start => "`start`",
        Rule::kw_consent | Rule::consent => "`consent FIELD`",
        Rule::kw_sensitive | Rule::sensitive => "`sensitive FIELD`",
        Rule::kw_care | Rule::kw_promo | Rule::purpose => "`care` or `promo`",
        Rule::kw_requires | Rule::needs_consent => "`requires consent`",
        Rule::kw_step | Rule::step_name => "`step NAME:`",
        Rule::kw_when => "`when`",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_not => "`not`",
        Rule::kw_in => "`in`",
        Rule::kw_rhai | Rule::script => "`rhai { … }`",
        Rule::kw_after | Rule::kw_before => "`after` or `before`",
        Rule::kw_every => "`every`",
        Rule::kw_at | Rule::at_clause => "`at HH:MM`",
        Rule::kw_send | Rule::send => "`send TEMPLATE`",
        Rule::kw_unless | Rule::unless => "`unless`",
        Rule::kw_within | Rule::within => "`within`",
        Rule::kw_priority | Rule::priority => "`priority`",
        Rule::kw_even | Rule::on_the_day => "`even on the day`",
        Rule::kw_allow | Rule::allow => "`allow`",
        Rule::lint_name => "a warning's name like `same-instant`",
        Rule::kw_on | Rule::kw_the => "`even on the day`",
        Rule::kw_high | Rule::kw_normal | Rule::kw_low | Rule::priority_level => {
            "`high`, `normal` or `low`"
        }
        Rule::timing
        | Rule::after_entry
        | Rule::every
        | Rule::every_field
        | Rule::after_field
        | Rule::after_sent
        | Rule::before_field
        | Rule::on_date
        | Rule::yearly => TIMING,
        Rule::kw_year => "`year`",
        Rule::kw_sent => "`sent STEP`",
        Rule::reaction
        | Rule::clicked
        | Rule::answered
        | Rule::booked_since
        | Rule::blocked
        | Rule::kw_clicked
        | Rule::kw_answered
        | Rule::kw_booked
        | Rule::kw_blocked
        | Rule::kw_since => "a reaction like `clicked survey`",
        Rule::reaction_window => "`within`",
        Rule::month_day => "a day of the year like `06-04`",
        Rule::duration | Rule::duration_unit => "a duration like `7d` or `3mo`",
        Rule::clock => "a time like `18:00`",
        Rule::integer => "a whole number",
        Rule::weight => "a weight like `50%`",
        Rule::string | Rule::string_inner => "a text in double quotes",
        Rule::ident | Rule::symbol | Rule::variant => "a name",
        Rule::compare_op => "a comparison (`=`, `!=`, `<`, `<=`, `>`, `>=`)",
        Rule::condition
        | Rule::and_expr
        | Rule::not_expr
        | Rule::comparison
        | Rule::membership
        | Rule::presence => "a condition like `stage=booked`",
        Rule::number | Rule::date | Rule::date_time => "a value",
        Rule::EOI => "the end of the line",
        _ => return None,
    })
}

fn join_or(phrases: &[String]) -> String {
    match phrases {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Slips a marketer makes that read as something else to the grammar, recognised from the text
/// itself: a space before `%`, a unit written as a word, Japanese where a name or value goes,
/// and words from other languages' rules (`then`, `if`).
fn slip(text: &str, position: usize, found: &str) -> Option<String> {
    let rest = &text[position.min(text.len())..];
    let after = rest
        .get(found.len()..)
        .unwrap_or("")
        .trim_start_matches([' ', '\t']);
    if !found.is_empty() && found.bytes().all(|b| b.is_ascii_digit()) && after.starts_with('%') {
        return Some(format!(
            "a weight is written without a space before `%`: `{found}%`"
        ));
    }
    let before = text[..position.min(text.len())].trim_end();
    let after_duration_word = ["every", "after", "within", "attribution", "revisit"]
        .iter()
        .any(|word| before.ends_with(word));
    if let Some(unit) = unit_word(found).filter(|_| after_duration_word) {
        return Some(format!(
            "`{found}` is written as a number and a unit: `1{unit}` (so `every 1{unit}`); the \
             units are m (minutes), h (hours), d (days), w (weeks), mo (months), y (years)"
        ));
    }
    if let Some(help) = series_slip(before, found) {
        return Some(help);
    }
    match found {
        "then" => {
            return Some(
                "a step has no `then`: it is `step NAME: when CONDITION TIMING send TEMPLATE`, \
                 e.g. `step thanks: when stage=first_visit after 1d send thanks`"
                    .into(),
            )
        }
        "if" => return Some("a step's condition starts with `when`, not `if`".into()),
        _ => {}
    }
    let first = found.chars().next()?;
    if first.is_ascii() || half_width(first).is_some() {
        return None;
    }
    // The whole run of non-ASCII text, to quote it back as the fix.
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_ascii() && !c.is_whitespace() && half_width(*c).is_none())
        .take(40)
        .collect();
    if text.trim_start().starts_with("stages") {
        return Some(format!(
            "stage names are ASCII names such as `booked` or `first_visit`; map the export's \
             own words to them in the mapping file's [stages] section, e.g. `\"{word}\" = \
             \"booked\"`"
        ));
    }
    if before.ends_with(['=', '<', '>', '(', ',']) {
        return Some(format!(
            "text that is not ASCII is written in double quotes: `\"{word}\"`"
        ));
    }
    Some(
        "names (of steps, fields, templates) are ASCII letters, digits and `_`; Japanese text \
         goes in double quotes, as a value: `tag=\"矯正\"`"
            .into(),
    )
}

/// Slips in a series on a date field: `every year after birth_date` (the duration is `1y`),
/// `every 6mo before FIELD` (a series counts forward), `every 1y after send` (no field).
fn series_slip(before: &str, found: &str) -> Option<String> {
    const SERIES: &str = "a series on a date field is `every D after FIELD`, e.g. `every 1y after \
                          birth_date` (each birthday) or `every 6mo after last_visit_at`";
    let mut words = before.rsplit([' ', '\t', '\n']).filter(|w| !w.is_empty());
    let (last, previous) = (words.next()?, words.next().unwrap_or(""));
    let is_duration = |word: &str| {
        let unit = word.trim_start_matches(|c: char| c.is_ascii_digit());
        unit.len() < word.len() && ["m", "h", "d", "w", "mo", "y"].contains(&unit)
    };
    match (previous, last, found) {
        ("every", "year", "after") => {
            Some(format!("{SERIES}; `every year on MM-DD` is a fixed day"))
        }
        ("every", duration, "before") if is_duration(duration) => Some(format!(
            "{SERIES}: it counts forward from the field. A reminder before a date is `1d before \
             appointment_at`"
        )),
        (duration, "after", word) if is_duration(duration) && KEYWORDS.contains(&word) => Some(
            format!("name the date field it counts from, e.g. `2w after last_visit_at`; {SERIES}"),
        ),
        _ => None,
    }
}

/// The unit a word for a duration means (`month` → `mo`), for `every month`.
fn unit_word(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_lowercase().as_str() {
        "minute" | "minutes" | "min" | "mins" => "m",
        "hour" | "hours" | "hourly" => "h",
        "day" | "days" | "daily" => "d",
        "week" | "weeks" | "weekly" => "w",
        "month" | "months" | "monthly" => "mo",
        "yearly" | "years" | "annually" => "y",
        _ => return None,
    })
}

fn hint(error: &Error<Rule>, found: &str) -> Option<String> {
    if let Some(c) = found.chars().next() {
        if let Some(half) = half_width(c) {
            return Some(format!(
                "`{c}` is a full-width character; type the half-width `{half}` (turn the IME off)"
            ));
        }
    }
    let positives: &[Rule] = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => &[],
    };
    let expects = |rule| positives.contains(&rule);
    if expects(Rule::duration) || expects(Rule::duration_unit) {
        return Some(DURATION_HELP.to_owned());
    }
    if found.chars().all(|c| c.is_ascii_alphabetic()) && !found.is_empty() {
        if let Some(keyword) = suggest(found, KEYWORDS.iter().copied()) {
            if keyword != found {
                return Some(format!("did you mean `{keyword}`?"));
            }
        }
    }
    if expects(Rule::timing) || expects(Rule::after_entry) || expects(Rule::kw_every) {
        return Some(format!(
            "after the condition, say when the step fires: {TIMING}"
        ));
    }
    if expects(Rule::kw_send) {
        return Some(
            "a step ends with `send TEMPLATE` (optionally `unless …`, `within …`, `priority …` and \
             `allow …`)"
                .into(),
        );
    }
    if expects(Rule::clock) {
        return Some("write times as HH:MM on a 24-hour clock, e.g. `09:30` or `18:00`".into());
    }
    None
}

/// The ASCII twin of a full-width form (`＝` → `=`), which Japanese IMEs type by default.
fn half_width(c: char) -> Option<char> {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        '\u{3000}' => Some(' '),
        _ => None,
    }
}
