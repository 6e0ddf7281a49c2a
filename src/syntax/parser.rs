//! pest pairs → typed AST. The grammar guarantees the shape of every pair, so the `expect`s
//! here state grammar invariants, not input checks (the one place `expect` is allowed).
#![allow(clippy::expect_used)]

use pest::iterators::Pair;
use pest::Parser as _;

use super::ast::*;
use super::errors::syntax_error;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{SourceFile, Span, Spanned};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/steprule.pest"]
pub(crate) struct StepruleParser;

/// Parses one statement whose text starts at `offset` in `file`.
pub(crate) fn parse_statement(
    file: &SourceFile,
    span: Span,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Statement> {
    let text = file.slice(span);
    let mut pairs = match StepruleParser::parse(Rule::statement, text) {
        Ok(pairs) => pairs,
        Err(error) => {
            diagnostics.push(syntax_error(file, span.start, text, &error));
            return None;
        }
    };
    let statement = pairs.next().expect("statement pair");
    let inner = statement
        .into_inner()
        .find(|pair| pair.as_rule() != Rule::EOI)
        .expect("statement body");
    let builder = Builder {
        file,
        offset: span.start,
    };
    match builder.statement(inner) {
        Ok(statement) => Some(statement),
        Err(diagnostic) => {
            diagnostics.push(*diagnostic);
            None
        }
    }
}

struct Builder<'f> {
    file: &'f SourceFile,
    offset: usize,
}

/// Boxed: a diagnostic is large and the happy path should not pay for it.
type Built<T> = Result<T, Box<Diagnostic>>;

/// The pairs inside `pair`, without the keywords (they carry no data).
fn children(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_clinic
            | Rule::kw_timezone
            | Rule::kw_quiet
            | Rule::kw_cap
            | Rule::kw_per
            | Rule::kw_track
            | Rule::kw_stages
            | Rule::kw_dates
            | Rule::kw_fields
            | Rule::kw_bookings
            | Rule::kw_visits
            | Rule::kw_attribution
            | Rule::kw_revisit
            | Rule::kw_start
            | Rule::kw_step
            | Rule::kw_when
            | Rule::kw_and
            | Rule::kw_or
            | Rule::kw_not
            | Rule::kw_in
            | Rule::kw_rhai
            | Rule::kw_after
            | Rule::kw_before
            | Rule::kw_every
            | Rule::kw_at
            | Rule::kw_send
            | Rule::kw_unless
            | Rule::kw_within
            | Rule::kw_priority
            | Rule::kw_even
            | Rule::kw_allow
            | Rule::kw_on
            | Rule::kw_the
            | Rule::kw_year
            | Rule::kw_day
            | Rule::kw_clicked
            | Rule::kw_answered
            | Rule::kw_booked
            | Rule::kw_since
            | Rule::kw_blocked
            | Rule::kw_sent
            | Rule::kw_consent
            | Rule::kw_sensitive
            | Rule::kw_care
            | Rule::kw_promo
            | Rule::kw_requires
    )
}

impl Builder<'_> {
    /// The pair's span without the whitespace pest's implicit WHITESPACE left at its end
    /// (after trying an optional clause that was not there).
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let text = pair.as_str();
        let trimmed = text.trim_end_matches([' ', '\t', '\r', '\n', '\u{3000}']);
        let start = pair.as_span().start();
        Span::new(start, start + trimmed.len()).shifted(self.offset)
    }

    fn error(&self, code: Code, span: Span, message: impl Into<String>) -> Box<Diagnostic> {
        Box::new(Diagnostic::new(code, self.file, span, message))
    }

    fn statement(&self, pair: Pair<'_, Rule>) -> Built<Statement> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut parts = children(pair);
        Ok(match rule {
            Rule::clinic => Statement::Clinic(self.string(parts.next().expect("name"))),
            Rule::timezone => Statement::Timezone(self.string(parts.next().expect("zone"))),
            Rule::quiet => Statement::Quiet {
                from: self.clock(parts.next().expect("from")),
                to: self.clock(parts.next().expect("to")),
                span,
            },
            Rule::cap => {
                let count = self.integer(parts.next().expect("count"), "a cap")?;
                let period_pair = parts.next().expect("period");
                let period_span = self.span(&period_pair);
                let period = match period_pair.as_str() {
                    "day" => CapPeriod::Day,
                    _ => CapPeriod::Week,
                };
                Statement::Cap {
                    count,
                    period: Spanned::new(period, period_span),
                    span,
                }
            }
            Rule::track => Statement::Track(self.string(parts.next().expect("url"))),
            Rule::stages => Statement::Stages(parts.map(|p| self.ident(p)).collect()),
            Rule::dates => Statement::Dates(parts.map(|p| self.ident(p)).collect()),
            Rule::fields => Statement::Fields(parts.map(|p| self.ident(p)).collect()),
            Rule::bookings => Statement::Bookings(parts.map(|p| self.ident(p)).collect()),
            Rule::visits => Statement::Visits(parts.map(|p| self.ident(p)).collect()),
            Rule::attribution => {
                Statement::Attribution(self.duration(parts.next().expect("window"))?)
            }
            Rule::revisit => Statement::Revisit(self.duration(parts.next().expect("window"))?),
            Rule::start => {
                let date = self.literal(parts.next().expect("date"))?;
                match date.node {
                    Literal::Date(day) => Statement::Start(Spanned::new(day, date.span)),
                    other => unreachable!("grammar: start takes a date, not {other:?}"),
                }
            }
            Rule::consent => Statement::Consent(self.ident(parts.next().expect("field"))),
            Rule::sensitive => Statement::Sensitive(parts.map(|p| self.ident(p)).collect()),
            Rule::step => Statement::Step(Box::new(self.step(parts, span)?)),
            other => unreachable!("grammar: statement alternative {other:?}"),
        })
    }

    fn step<'i>(&self, parts: impl Iterator<Item = Pair<'i, Rule>>, span: Span) -> Built<StepDecl> {
        let mut name = None;
        let mut when = None;
        let mut timing = None;
        let mut send = Vec::new();
        let mut unless = Vec::new();
        let mut within = Vec::new();
        let mut priority = Vec::new();
        let mut allow = Vec::new();
        let mut purpose = Vec::new();
        let mut needs_consent = None;
        for part in parts {
            match part.as_rule() {
                Rule::step_name => name = children(part).next().map(|p| self.ident(p)),
                Rule::condition => when = Some(self.condition(part)?),
                Rule::timing => timing = Some(self.timing(part)?),
                Rule::send => {
                    for variant in children(part) {
                        send.push(self.variant(variant)?);
                    }
                }
                Rule::unless => {
                    let condition = children(part).next().expect("unless condition");
                    unless.push(self.condition(condition)?);
                }
                Rule::within => {
                    let duration = children(part).next().expect("within duration");
                    within.push(self.duration(duration)?);
                }
                Rule::priority => {
                    let level = children(part).next().expect("priority level");
                    let span = self.span(&level);
                    let node = match level.as_str() {
                        "high" => Priority::High,
                        "low" => Priority::Low,
                        _ => Priority::Normal,
                    };
                    priority.push(Spanned::new(node, span));
                }
                Rule::allow => allow.extend(children(part).map(|name| self.ident(name))),
                Rule::purpose => {
                    let span = self.span(&part);
                    let node = match part.as_str().trim() {
                        "promo" => Purpose::Promo,
                        _ => Purpose::Care,
                    };
                    purpose.push(Spanned::new(node, span));
                }
                Rule::needs_consent => needs_consent = Some(self.span(&part)),
                other => unreachable!("grammar: step part {other:?}"),
            }
        }
        Ok(StepDecl {
            name,
            when: when.expect("grammar: step has a condition"),
            timing: timing.expect("grammar: step has a timing"),
            send,
            unless,
            within,
            priority,
            allow,
            purpose,
            needs_consent,
            span,
        })
    }

    fn condition(&self, pair: Pair<'_, Rule>) -> Built<Spanned<Condition>> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::condition | Rule::and_expr => {
                let is_or = pair.as_rule() == Rule::condition;
                let mut operands = children(pair)
                    .map(|operand| self.condition(operand))
                    .collect::<Built<Vec<_>>>()?;
                if operands.len() == 1 {
                    return Ok(operands.pop().expect("one operand"));
                }
                let node = if is_or {
                    Condition::Or(operands)
                } else {
                    Condition::And(operands)
                };
                Ok(Spanned::new(node, span))
            }
            Rule::not_expr => {
                let has_not = pair
                    .clone()
                    .into_inner()
                    .any(|p| p.as_rule() == Rule::kw_not);
                let inner = self.condition(children(pair).next().expect("operand"))?;
                if has_not {
                    Ok(Spanned::new(Condition::Not(Box::new(inner)), span))
                } else {
                    Ok(inner)
                }
            }
            Rule::comparison => {
                let mut parts = children(pair);
                let field = self.ident(parts.next().expect("field"));
                let op_pair = parts.next().expect("operator");
                let op = match op_pair.as_str() {
                    "=" | "==" => CompareOp::Eq,
                    "!=" => CompareOp::Ne,
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    ">" => CompareOp::Gt,
                    _ => CompareOp::Ge,
                };
                let op = Spanned::new(op, self.span(&op_pair));
                let value = self.literal(parts.next().expect("value"))?;
                Ok(Spanned::new(Condition::Compare { field, op, value }, span))
            }
            Rule::membership => {
                let mut parts = children(pair);
                let field = self.ident(parts.next().expect("field"));
                let values = parts.map(|p| self.literal(p)).collect::<Built<_>>()?;
                Ok(Spanned::new(Condition::In { field, values }, span))
            }
            Rule::presence => {
                let field = self.ident(children(pair).next().expect("field"));
                Ok(Spanned::new(Condition::IsSet(field), span))
            }
            Rule::reaction => Ok(Spanned::new(
                Condition::Reaction(self.reaction(pair)?),
                span,
            )),
            Rule::script => {
                let code = children(pair).next().expect("script code");
                let code_span = self.span(&code);
                Ok(Spanned::new(
                    Condition::Script(Spanned::new(code.as_str().to_owned(), code_span)),
                    span,
                ))
            }
            other => unreachable!("grammar: condition {other:?}"),
        }
    }

    fn reaction(&self, pair: Pair<'_, Rule>) -> Built<Reaction> {
        let mut parts = children(pair);
        let what = parts.next().expect("grammar: a reaction");
        let rule = what.as_rule();
        let mut inner = children(what);
        let mut step = || self.ident(inner.next().expect("grammar: a step name"));
        let kind = match rule {
            Rule::clicked => ReactionKind::Clicked(step()),
            Rule::booked_since => ReactionKind::BookedSince(step()),
            Rule::answered => {
                let name = step();
                let data = self.string(inner.next().expect("grammar: postback data"));
                ReactionKind::Answered(name, data)
            }
            Rule::blocked => ReactionKind::Blocked,
            other => unreachable!("grammar: reaction {other:?}"),
        };
        let window = match parts.next() {
            Some(window) => Some(self.duration(children(window).next().expect("duration"))?),
            None => None,
        };
        Ok(Reaction { kind, window })
    }

    fn literal(&self, pair: Pair<'_, Rule>) -> Built<Spanned<Literal>> {
        let span = self.span(&pair);
        let text = pair.as_str();
        let invalid = |what: &str| {
            self.error(
                Code::InvalidValue,
                span,
                format!("`{text}` is not a valid {what}"),
            )
        };
        let literal = match pair.as_rule() {
            Rule::number => Literal::Number(text.parse().map_err(|_| invalid("number"))?),
            Rule::string => Literal::String(self.string(pair).node),
            Rule::date => {
                Literal::Date(chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(
                    |_| invalid("date").with_help("write dates as YYYY-MM-DD, e.g. 2026-04-01"),
                )?)
            }
            Rule::date_time => {
                let format = if text.len() > 16 {
                    "%Y-%m-%dT%H:%M:%S"
                } else {
                    "%Y-%m-%dT%H:%M"
                };
                Literal::DateTime(chrono::NaiveDateTime::parse_from_str(text, format).map_err(
                    |_| {
                        invalid("date and time")
                            .with_help("write YYYY-MM-DDTHH:MM, e.g. 2026-04-01T10:00")
                    },
                )?)
            }
            Rule::symbol => Literal::Symbol(text.to_owned()),
            other => unreachable!("grammar: literal {other:?}"),
        };
        Ok(Spanned::new(literal, span))
    }

    fn timing(&self, pair: Pair<'_, Rule>) -> Built<Timing> {
        let span = self.span(&pair);
        let mut parts = children(pair);
        let anchor_pair = parts.next().expect("anchor");
        let anchor_rule = anchor_pair.as_rule();
        let mut anchor_parts = children(anchor_pair);
        let first = anchor_parts.next().expect("date or duration");
        let anchor = match anchor_rule {
            Rule::on_date => match self.literal(first)? {
                Spanned {
                    node: Literal::Date(day),
                    span,
                } => Anchor::OnDate(Spanned::new(day, span)),
                other => unreachable!("grammar: `on` takes a date, not {other:?}"),
            },
            Rule::yearly => {
                let span = self.span(&first);
                let (month, day) = first.as_str().split_once('-').expect("grammar: MM-DD");
                // Two digits each, so these parse.
                let day = MonthDay {
                    month: month.parse().expect("digits"),
                    day: day.parse().expect("digits"),
                };
                Anchor::Yearly(Spanned::new(day, span))
            }
            _ => self.counted(anchor_rule, first, anchor_parts)?,
        };
        let mut at = None;
        let mut on_the_day = None;
        for part in parts {
            match part.as_rule() {
                Rule::at_clause => at = Some(self.clock(children(part).next().expect("clock"))),
                Rule::on_the_day => on_the_day = Some(self.span(&part)),
                other => unreachable!("grammar: timing part {other:?}"),
            }
        }
        Ok(Timing {
            anchor,
            at,
            on_the_day,
            span,
        })
    }

    /// A timing that counts a duration: `after D`, `every D`, `every D after FIELD`, `D after
    /// FIELD`, `D before FIELD`.
    fn counted<'i>(
        &self,
        rule: Rule,
        duration: Pair<'i, Rule>,
        mut anchor_parts: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> Built<Anchor> {
        let duration = self.duration(duration)?;
        Ok(match rule {
            Rule::after_entry => Anchor::AfterStageEntry(duration),
            Rule::every => Anchor::Every(duration),
            Rule::after_sent => {
                Anchor::AfterSent(duration, self.ident(anchor_parts.next().expect("step")))
            }
            Rule::every_field => {
                Anchor::EveryAfterField(duration, self.ident(anchor_parts.next().expect("field")))
            }
            Rule::after_field => {
                Anchor::AfterField(duration, self.ident(anchor_parts.next().expect("field")))
            }
            Rule::before_field => {
                Anchor::BeforeField(duration, self.ident(anchor_parts.next().expect("field")))
            }
            other => unreachable!("grammar: anchor {other:?}"),
        })
    }

    fn variant(&self, pair: Pair<'_, Rule>) -> Built<Variant> {
        let span = self.span(&pair);
        let mut parts = children(pair);
        let template = self.ident(parts.next().expect("template"));
        let weight = match parts.next() {
            Some(weight) => {
                let span = self.span(&weight);
                let digits = weight.as_str().trim_end_matches('%');
                let value = digits.parse::<u32>().map_err(|_| {
                    self.error(
                        Code::InvalidValue,
                        span,
                        format!("`{digits}%` is not a weight"),
                    )
                    .with_help("weights are percentages that add up to 100")
                })?;
                Some(Spanned::new(value, span))
            }
            None => None,
        };
        Ok(Variant {
            template,
            weight,
            span,
        })
    }

    fn duration(&self, pair: Pair<'_, Rule>) -> Built<Spanned<Duration>> {
        let span = self.span(&pair);
        let mut parts = children(pair);
        let amount = self.integer(parts.next().expect("amount"), "a duration")?;
        let unit = match parts.next().expect("unit").as_str() {
            "m" => DurationUnit::Minutes,
            "h" => DurationUnit::Hours,
            "d" => DurationUnit::Days,
            "w" => DurationUnit::Weeks,
            "mo" => DurationUnit::Months,
            _ => DurationUnit::Years,
        };
        let duration = Duration {
            amount: amount.node,
            unit,
        };
        Ok(Spanned::new(duration, span))
    }

    fn integer(&self, pair: Pair<'_, Rule>, what: &str) -> Built<Spanned<u32>> {
        let span = self.span(&pair);
        let value = pair.as_str().parse::<u32>().map_err(|_| {
            let message = format!("`{}` is too large for {what}", pair.as_str());
            let error = if what == "a duration" {
                Diagnostic::new(Code::DurationOutOfRange, self.file, span, message)
                    .with_help(DURATION_RANGE)
            } else {
                Diagnostic::new(Code::InvalidValue, self.file, span, message)
            };
            Box::new(error.with_label("too large"))
        })?;
        Ok(Spanned::new(value, span))
    }

    fn clock(&self, pair: Pair<'_, Rule>) -> Spanned<ClockTime> {
        let span = self.span(&pair);
        let (hour, minute) = pair.as_str().split_once(':').expect("grammar: HH:MM");
        // Digits only, at most two each, so these parse.
        let time = ClockTime {
            hour: hour.parse().expect("digits"),
            minute: minute.parse().expect("digits"),
        };
        Spanned::new(time, span)
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Spanned::new(pair.as_str().to_owned(), self.span(&pair))
    }

    fn string(&self, pair: Pair<'_, Rule>) -> Spanned<String> {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().expect("string_inner").as_str();
        let mut value = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => {}
                }
            } else {
                value.push(c);
            }
        }
        Spanned::new(value, span)
    }
}
