//! What the review sheet says about each step, read from the rules as written (the syntax
//! tree), so that a file whose templates have errors — the sheet is most needed then — still
//! shows every step: its stage, its comment, its timing in words, its conditions as the file
//! writes them, its priority and the templates it sends.

use crate::source::{SourceFile, Span};
use crate::syntax::{Anchor, Condition, Duration, DurationUnit, Literal, Purpose, StepDecl};
use crate::values::{CompareOp, Priority};

/// One step of the rules file as the sheet shows it.
#[derive(Debug, Clone)]
pub struct StepOutline {
    /// Position among the file's steps (the order `check` gives its steps).
    pub index: usize,
    /// The `step ID:` name; `None` for the unnamed form (its derived id comes from the checked
    /// rules when there are any).
    pub name: Option<String>,
    /// 1-based line of the step in the rules file.
    pub line: usize,
    pub span: Span,
    /// The `#` lines just above the step, without the `#`: what the clinic wrote it is for.
    pub comment: Vec<String>,
    /// Indexes into the file's `stages` that the step's `when` requires, smallest first
    /// (empty: no stage named at the top of the condition).
    pub stages: Vec<usize>,
    /// The timing in words, as 「appointment_at の3日前 12:00」.
    pub timing: String,
    /// The timing as the rules write it.
    pub timing_source: String,
    pub when: String,
    pub unless: Vec<String>,
    /// 「送れなかった場合は3日以内に限る」
    pub within: Option<String>,
    pub priority: &'static str,
    /// 「診療のご案内（care）」 or 「販促（promo）…」, and whether it waits for consent.
    pub purpose: String,
    /// The templates and their shares (`None` for a lone template).
    pub variants: Vec<(String, Option<u32>)>,
    /// The warning codes the step's `allow` names, as written.
    pub allow: Vec<String>,
}

/// The steps of `steps` (in file order) with their stage among `stages`.
pub fn outline(file: &SourceFile, stages: &[String], steps: &[&StepDecl]) -> Vec<StepOutline> {
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| StepOutline {
            index,
            name: step.name.as_ref().map(|n| n.node.clone()),
            line: file.line_column(step.span.start).0,
            span: step.span,
            comment: comment_above(file.text(), step.span.start),
            stages: stages_of(&step.when.node, stages),
            timing: timing_words(step),
            timing_source: one_line(file.slice(step.timing.span)),
            when: one_line(file.slice(step.when.span)),
            unless: step
                .unless
                .iter()
                .map(|u| one_line(file.slice(u.span)))
                .collect(),
            within: step
                .within
                .first()
                .map(|w| format!("送れなかった場合は{}以内に限る", duration_words(w.node))),
            priority: priority_words(step.priority.first().map(|p| p.node)),
            purpose: purpose_words(step),
            variants: step
                .send
                .iter()
                .map(|v| (v.template.node.clone(), v.weight.as_ref().map(|w| w.node)))
                .collect(),
            allow: step.allow.iter().map(|a| a.node.clone()).collect(),
        })
        .collect()
}

/// Steps in stage order: those of the first stage (by the `stages` line), then the next…, and
/// the steps that name no stage last; in file order within each.
pub fn in_stage_order(steps: &mut [StepOutline]) {
    steps.sort_by_key(|step| {
        (
            step.stages.first().copied().unwrap_or(usize::MAX),
            step.index,
        )
    });
}

/// Text on one line: line ends and runs of spaces become one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The comment block right above `start`: the `#` lines with nothing else between them and
/// the step (a blank line ends the block).
fn comment_above(text: &str, start: usize) -> Vec<String> {
    let before = &text[..start.min(text.len())];
    // The step's own line may start with spaces; the block is above it.
    let above = before.rfind('\n').map_or("", |end| &before[..end]);
    let mut lines: Vec<String> = Vec::new();
    for line in above.lines().rev() {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            break;
        };
        lines.push(comment.trim().to_owned());
        // A pathological file of comments is not copied whole onto every step.
        if lines.len() == MAX_COMMENT_LINES {
            break;
        }
    }
    lines.reverse();
    lines
}

const MAX_COMMENT_LINES: usize = 20;

/// The stages a condition requires at its top: `stage=x`, `stage in (x, y)`, alone or as a
/// part of an `and`.
fn stages_of(condition: &Condition, stages: &[String]) -> Vec<usize> {
    let index = |literal: &Literal| match literal {
        Literal::Symbol(name) | Literal::String(name) => stages.iter().position(|s| s == name),
        _ => None,
    };
    let mut found: Vec<usize> = match condition {
        Condition::Compare { field, op, value }
            if field.node == "stage" && op.node == CompareOp::Eq =>
        {
            index(&value.node).into_iter().collect()
        }
        Condition::In { field, values } if field.node == "stage" => {
            values.iter().filter_map(|v| index(&v.node)).collect()
        }
        Condition::And(parts) => {
            return parts
                .iter()
                .map(|part| stages_of(&part.node, stages))
                .find(|found| !found.is_empty())
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    found.sort_unstable();
    found.dedup();
    found
}

/// A duration in Japanese: 3日, 2週間, 3か月, 1年, 30分, 2時間.
pub fn duration_words(duration: Duration) -> String {
    let unit = match duration.unit {
        DurationUnit::Minutes => "分",
        DurationUnit::Hours => "時間",
        DurationUnit::Days => "日",
        DurationUnit::Weeks => "週間",
        DurationUnit::Months => "か月",
        DurationUnit::Years => "年",
    };
    format!("{}{unit}", duration.amount)
}

/// When the step sends, in words: what it counts from, how far, and at what time of day.
pub fn timing_words(step: &StepDecl) -> String {
    let timing = &step.timing;
    let is_zero = |d: &Duration| d.amount == 0;
    let mut words = match &timing.anchor {
        Anchor::AfterStageEntry(d) if is_zero(&d.node) => "ステージに入った直後".to_owned(),
        Anchor::AfterStageEntry(d) => {
            format!("ステージに入ってから{}後", duration_words(d.node))
        }
        Anchor::Every(d) => format!("ステージに入ってから{}ごと", duration_words(d.node)),
        Anchor::EveryAfterField(d, field) => {
            format!("{} から{}ごと", field.node, duration_words(d.node))
        }
        Anchor::AfterField(d, field) if is_zero(&d.node) => format!("{} の時刻", field.node),
        Anchor::AfterField(d, field) => {
            format!("{} の{}後", field.node, duration_words(d.node))
        }
        Anchor::BeforeField(d, field) => {
            format!("{} の{}前", field.node, duration_words(d.node))
        }
        Anchor::OnDate(day) => format!("{}（一度だけ）", day.node.format("%Y-%m-%d")),
        Anchor::Yearly(day) => format!("毎年 {:02}-{:02}", day.node.month, day.node.day),
        Anchor::AfterSent(d, sent) => format!(
            "ステップ {} の送信から{}後",
            sent.node,
            duration_words(d.node)
        ),
    };
    if let Some(at) = &timing.at {
        words.push_str(&format!(" {}", at.node));
    }
    if timing.on_the_day.is_some() {
        words.push_str("（当日でも送る）");
    }
    words
}

/// What the step is for, as written or by its timing, and who may get it: the sheet's reader
/// must see which messages go only to patients who agreed to marketing.
fn purpose_words(step: &StepDecl) -> String {
    let written = step.purpose.first().map(|p| p.node);
    let purpose = written.unwrap_or_else(|| step.timing.anchor.default_purpose());
    let how = if written.is_some() {
        "ルールで指定"
    } else {
        "タイミングから判断"
    };
    match purpose {
        Purpose::Promo => format!("販促（promo・{how}）：配信に同意した患者にだけ送る"),
        Purpose::Care if step.needs_consent.is_some() => {
            format!("診療のご案内（care・{how}）：requires consent により同意した患者にだけ送る")
        }
        Purpose::Care => format!("診療のご案内（care・{how}）"),
    }
}

fn priority_words(priority: Option<Priority>) -> &'static str {
    match priority.unwrap_or_default() {
        Priority::High => "高（上限に当たってもほかの案内より先に送る）",
        Priority::Normal => "通常",
        Priority::Low => "低（上限に当たるとあとに回す）",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{self, Statement};

    fn steps_of(text: &str) -> Vec<StepOutline> {
        let file = SourceFile::new("r.step", text);
        let (ast, diagnostics) = syntax::parse(&file);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let stages: Vec<String> = ast
            .statements
            .iter()
            .find_map(|s| match s {
                Statement::Stages(names) => Some(names.iter().map(|n| n.node.clone()).collect()),
                _ => None,
            })
            .unwrap_or_default();
        let decls: Vec<&StepDecl> = ast
            .statements
            .iter()
            .filter_map(|s| match s {
                Statement::Step(step) => Some(step.as_ref()),
                _ => None,
            })
            .collect();
        outline(&file, &stages, &decls)
    }

    #[test]
    fn timings_read_in_japanese() {
        let steps = steps_of(
            "stages booked, first_visit\ndates appointment_at\n\
             step a: when stage=booked 3d before appointment_at at 12:00 send t\n\
             step b: when stage=first_visit after 4d at 12:00 send t within 3d\n\
             step c: when stage=booked after 0m send t priority high\n\
             step d: when stage=first_visit 3d after sent b at 12:00 send t\n\
             step e: when stage=booked on 2026-12-28 at 10:00 send t\n\
             step f: when stage=booked every 30d at 12:00 send t\n",
        );
        let timings: Vec<&str> = steps.iter().map(|s| s.timing.as_str()).collect();
        assert_eq!(
            timings,
            [
                "appointment_at の3日前 12:00",
                "ステージに入ってから4日後 12:00",
                "ステージに入った直後",
                "ステップ b の送信から3日後 12:00",
                "2026-12-28（一度だけ） 10:00",
                "ステージに入ってから30日ごと 12:00",
            ]
        );
        assert_eq!(
            steps[1].within.as_deref(),
            Some("送れなかった場合は3日以内に限る")
        );
        assert!(steps[2].priority.starts_with('高'));
    }

    #[test]
    fn steps_go_in_stage_order_then_those_without_a_stage() {
        let mut steps = steps_of(
            "stages booked, first_visit, regular\n\
             step none: when age >= 40 after 1d send t\n\
             step late: when stage=regular and age >= 40 after 1d send t\n\
             step both: when stage in (regular, first_visit) after 1d send t\n\
             step early: when stage=booked after 1d send t\n",
        );
        in_stage_order(&mut steps);
        let ids: Vec<&str> = steps.iter().map(|s| s.name.as_deref().unwrap()).collect();
        assert_eq!(ids, ["early", "both", "late", "none"]);
        assert_eq!(steps[1].stages, [1, 2]);
    }

    #[test]
    fn the_comment_block_right_above_a_step_is_its_description() {
        let steps = steps_of(
            "# file header\n\n# 初診の翌日\n#   お礼\nstep a: when age > 1 after 1d send t\n\
             step b: when age > 1 after 1d send t\n",
        );
        assert_eq!(steps[0].comment, ["初診の翌日", "お礼"]);
        assert!(steps[1].comment.is_empty());
        assert_eq!(steps[0].when, "age > 1");
        assert_eq!(steps[0].line, 5);
    }
}
