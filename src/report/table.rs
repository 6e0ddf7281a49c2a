//! `report --format table`: per stage, per step and arm, the figures aligned in columns with
//! their change against the previous period (▲▼, in points for rates); then the experiments'
//! arms, the recommendations, and the outbox's sends apart.

use std::fmt::Write as _;

use super::build::{Opened, Report, Row};
use super::experiment::Verdict;
use super::opened::{LineFigures, OpenedNote};
use super::period::Period;
use super::recommend::Recommendation;
use super::tally::Counts;
use crate::printable::printable;

const NONE: &str = "—";

/// The report as text for a terminal.
pub fn to_table(report: &Report) -> String {
    let mut out = String::new();
    let periods = &report.periods;
    let _ = writeln!(
        out,
        "report {} ({}); ▲▼ against {}",
        days(&periods.current),
        report.timezone.name(),
        days(&periods.previous)
    );
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut stage: Option<Option<&str>> = None;
    for row in &report.rows {
        let this = row.stage.as_deref();
        if stage != Some(this) {
            if stage.is_some() {
                lines.push(Vec::new());
            }
            stage = Some(this);
            lines.push(vec![format!("stage {}", this.unwrap_or(NONE))]);
            lines.push(
                [
                    "  step", "variant", "sent", "opened", "CTR", "booking", "revisit", "block",
                ]
                .map(String::from)
                .to_vec(),
            );
        }
        lines.push(figures(row));
    }
    if report.rows.is_empty() {
        let _ = writeln!(
            out,
            "\nno steps in the rules and no LINE sends in the ledger"
        );
    }
    out.push('\n');
    out.push_str(&aligned(&lines));
    if !report.experiments.is_empty() {
        let _ = writeln!(out, "\nA/B tests");
        let mut arms: Vec<Vec<String>> = Vec::new();
        for experiment in &report.experiments {
            let result = &experiment.result;
            arms.push(vec![format!(
                "  {} (metric: {}): {}; p = {}, needs {} per arm",
                printable(&experiment.step),
                experiment.metric.arm_label(),
                verdict(&result.verdict),
                result
                    .p_value
                    .map_or(NONE.to_owned(), |p| format!("{p:.4}")),
                result
                    .required_n
                    .map_or("more than can be sent".to_owned(), |n| n.to_string()),
            )]);
            for arm in &result.arms {
                let interval = match (arm.ci_low, arm.ci_high) {
                    (Some(low), Some(high)) => {
                        format!("95% CI {}–{}", percent(Some(low)), percent(Some(high)))
                    }
                    _ => NONE.to_owned(),
                };
                arms.push(vec![
                    format!("    {}", printable(&arm.variant)),
                    format!("n={}", arm.n),
                    format!("x={}", arm.x),
                    percent(arm.rate),
                    interval,
                ]);
            }
        }
        out.push_str(&aligned(&arms));
    }
    let _ = writeln!(out, "\nrecommendations");
    if report.recommendations.is_empty() {
        let _ = writeln!(out, "  none this period");
    }
    for recommendation in &report.recommendations {
        let _ = writeln!(out, "  - {}", advice(recommendation));
    }
    if let Some(reach) = &report.reach {
        let _ = writeln!(out, "\npatients now in each stage (from --patients)");
        let mut lines = vec![["  stage", "patients", "on LINE", "blocked"]
            .map(String::from)
            .to_vec()];
        for stage in reach.stages() {
            lines.push(vec![
                format!(
                    "  {}",
                    stage.stage.as_deref().map_or(NONE.into(), printable)
                ),
                stage.patients.to_string(),
                stage.linked.to_string(),
                stage.blocked.to_string(),
            ]);
        }
        out.push_str(&aligned(&lines));
        if reach.skipped_rows > 0 {
            let _ = writeln!(
                out,
                "  ({} rows of the export skipped, see above)",
                reach.skipped_rows
            );
        }
    }
    if !report.outbox.is_empty() {
        let _ = writeln!(
            out,
            "\noutbox and --dry-run sends (not delivered by LINE; not in the figures above)"
        );
        let mut lines = vec![["  step", "variant", "sent"].map(String::from).to_vec()];
        for row in &report.outbox {
            lines.push(vec![
                format!("  {}", step_name(row)),
                variant_name(row),
                with_change(row.counts.sent, row.previous.sent),
            ]);
        }
        out.push_str(&aligned(&lines));
    }
    out.push_str(&line_footer(&report.line));
    out
}

/// Under the table: why some `opened` are not measured, and the account's friends.
fn line_footer(line: &LineFigures) -> String {
    let mut out = String::new();
    if line.notes.is_empty() && line.account.is_none() {
        return out;
    }
    out.push('\n');
    for note in &line.notes {
        let _ = writeln!(out, "opened: {}", opened_note(*note));
    }
    if let Some(account) = &line.account {
        let change = |change: Option<i64>| match change {
            Some(change) => format!(" ({change:+} in the period)"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "LINE account on {}: {} friends{}, {} blocked{}, {} reachable",
            account.day,
            account.followers,
            change(account.followers_change),
            account.blocks,
            change(account.blocks_change),
            account.targeted_reaches
        );
    }
    out
}

fn opened_note(note: OpenedNote) -> &'static str {
    match note {
        OpenedNote::NotJapanTime => {
            "not measured: LINE counts days in Japan time (UTC+9), and the clinic's days are not \
             Japan's"
        }
        OpenedNote::NotTiled => {
            "not measured for this period: LINE's figures come by half-month (the 1st to the \
             15th, the 16th to the end); use --month, or --from on a 1st or 16th and --to on a \
             15th or a month's end"
        }
        OpenedNote::NotFetched => {
            "some of LINE's figures for this period are not fetched yet (those rows say not \
             measured): run `steprule insights fetch`"
        }
        OpenedNote::Partial => {
            "not measured where some of the period's sends carried no aggregation unit (sent \
             without --custom-aggregation)"
        }
        OpenedNote::Unsettled => {
            "LINE's figures keep changing for 14 days after a send; `steprule insights fetch` \
             updates them until then"
        }
    }
}

fn days(period: &Period) -> String {
    format!("{} to {}", period.first, period.last)
}

fn step_name(row: &Row) -> String {
    let name = printable(&row.key.step);
    if row.in_rules {
        name.into_owned()
    } else {
        format!("{name} (not in the rules)")
    }
}

fn variant_name(row: &Row) -> String {
    row.key
        .variant
        .as_deref()
        .map_or(NONE.to_owned(), |v| printable(v).into_owned())
}

/// One row's cells.
fn figures(row: &Row) -> Vec<String> {
    let (now, before) = (&row.counts, &row.previous);
    let rate = |count: fn(&Counts) -> u64| {
        let cell = match now.rate(count(now)) {
            Some(_) => format!("{} ({})", percent(now.rate(count(now))), count(now)),
            None => NONE.to_owned(),
        };
        match points(now.rate(count(now)), before.rate(count(before))) {
            Some(change) => format!("{cell} {change}"),
            None => cell,
        }
    };
    let opened = match row.opened {
        Opened::NotMeasured => "not measured".to_owned(),
        Opened::Suppressed => "suppressed (<20)".to_owned(),
        Opened::Unique(count) => format!("{} ({count})", percent(now.rate(count))),
    };
    vec![
        format!("  {}", step_name(row)),
        variant_name(row),
        with_change(now.sent, before.sent),
        opened,
        rate(|c| c.clicked),
        rate(|c| c.booked),
        rate(|c| c.revisited),
        rate(|c| c.blocked),
    ]
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or(NONE.to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// A count and its change: `120 ▲20`, `95 ▼5`, `7 ±0`.
fn with_change(now: u64, before: u64) -> String {
    match now.cmp(&before) {
        std::cmp::Ordering::Greater => format!("{now} ▲{}", now - before),
        std::cmp::Ordering::Less => format!("{now} ▼{}", before - now),
        std::cmp::Ordering::Equal => format!("{now} ±0"),
    }
}

/// The change of a rate in percentage points, when both periods have one.
fn points(now: Option<f64>, before: Option<f64>) -> Option<String> {
    let change = (now? - before?) * 100.0;
    Some(if change >= 0.05 {
        format!("▲{change:.1}")
    } else if change <= -0.05 {
        format!("▼{:.1}", -change)
    } else {
        "±0.0".to_owned()
    })
}

fn verdict(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Underpowered => "underpowered (too few patients yet: keep both)".to_owned(),
        Verdict::NoDifference => "no difference".to_owned(),
        Verdict::Better(variant) => format!("{} better", printable(variant)),
    }
}

fn advice(recommendation: &Recommendation) -> String {
    let arm = |step: &str, variant: &Option<String>| match variant {
        Some(variant) => format!("{} ({})", printable(step), printable(variant)),
        None => printable(step).into_owned(),
    };
    match recommendation {
        Recommendation::HighBlockRate {
            step,
            variant,
            block_rate,
            blocked,
            median,
        } => format!(
            "{}: {} of patients blocked the account after it ({blocked}), against a median of \
             {}: send it less often, shorten it, or stop it",
            arm(step, variant),
            percent(Some(*block_rate)),
            percent(Some(*median))
        ),
        Recommendation::Winner { step, variant } => format!(
            "{}: {} is significantly better with enough patients: make {} 100%",
            printable(step),
            printable(variant),
            printable(variant)
        ),
        Recommendation::LowClickRate {
            step,
            variant,
            ctr,
            sent,
            median,
        } => format!(
            "{}: {} of {sent} patients tapped its link, against a median of {}: reword the link \
             or the button",
            arm(step, variant),
            percent(Some(*ctr)),
            percent(Some(*median))
        ),
    }
}

/// Lines of cells, each column as wide as its widest cell (a line of one cell is a heading
/// and sets no width).
fn aligned(lines: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines.iter().filter(|l| l.len() > 1) {
        for (column, cell) in line.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(column) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    for line in lines {
        let last = line.len().saturating_sub(1);
        for (column, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if column < last {
                let pad = widths
                    .get(column)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push('\n');
    }
    out
}
