//! The calendar as one self-contained page in Japanese: a table per calendar month (rows =
//! steps grouped by stage, columns = days, cells = sends shaded by count), with totals per day
//! and per step. No script, no external style or font; prints one month per A4 landscape page.

use minijinja::{escape_formatter, Environment};
use serde::Serialize;

use super::SendCalendar;
use crate::check::RuleSet;
use crate::preview::html::escape_html;

const PAGE: &str = include_str!("page.html");

#[derive(Serialize)]
struct Page {
    title: String,
    period: String,
    timezone: String,
    total: u64,
    patients: u64,
    blocked: u64,
    months: Vec<Month>,
}

#[derive(Serialize)]
struct Month {
    heading: String,
    days: Vec<Day>,
    groups: Vec<Group>,
    day_totals: Vec<u64>,
    total: u64,
}

#[derive(Serialize)]
struct Day {
    number: u32,
    weekday: &'static str,
    /// `sat`, `sun` or empty, for the column's colour.
    class: &'static str,
}

#[derive(Serialize)]
struct Group {
    stage: String,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    step: String,
    cells: Vec<Cell>,
    total: u64,
}

#[derive(Serialize)]
struct Cell {
    count: u64,
    /// `h0` (none) to `h4` (the busiest cell of the window).
    heat: &'static str,
}

/// The page for `calendar`, the counts of `rules`' steps.
pub fn render(rules: &RuleSet, calendar: &SendCalendar) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if !value.is_safe() => Ok(out.write_str(&escape_html(text))?),
        _ => escape_formatter(out, state, value),
    });
    env.add_template("page.html", PAGE)?;
    let days: Vec<chrono::NaiveDate> = calendar.days().collect();
    let (first, last) = (days.first().copied(), days.last().copied());
    let date = |d: Option<chrono::NaiveDate>| {
        d.map(|d| d.format("%Y年%-m月%-d日").to_string())
            .unwrap_or_default()
    };
    let page = Page {
        title: format!(
            "{} 配信カレンダー",
            rules.clinic.as_deref().unwrap_or("ステップ配信")
        ),
        period: format!("{}〜{}", date(first), date(last)),
        timezone: rules.timezone.name().to_owned(),
        total: calendar.total(),
        patients: calendar.patients(),
        blocked: calendar.blocked(),
        months: months(rules, calendar, &days),
    };
    let mut html = env.get_template("page.html")?.render(page)?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(html)
}

/// One table per calendar month the window touches.
fn months(rules: &RuleSet, calendar: &SendCalendar, days: &[chrono::NaiveDate]) -> Vec<Month> {
    use chrono::Datelike;
    let groups = grouped_steps(rules);
    let max = calendar.max_cell();
    let mut months: Vec<Month> = Vec::new();
    let mut start = 0;
    while start < days.len() {
        let month = (days[start].year(), days[start].month());
        let end = (start..days.len())
            .find(|&i| (days[i].year(), days[i].month()) != month)
            .unwrap_or(days.len());
        let range = start..end;
        months.push(Month {
            heading: format!("{}年{}月", month.0, month.1),
            days: days[range.clone()]
                .iter()
                .map(|day| Day {
                    number: day.day(),
                    weekday: crate::time::weekday_ja(day),
                    class: match day.weekday() {
                        chrono::Weekday::Sat => "sat",
                        chrono::Weekday::Sun => "sun",
                        _ => "",
                    },
                })
                .collect(),
            groups: groups
                .iter()
                .map(|(stage, steps)| Group {
                    stage: stage.clone(),
                    rows: steps
                        .iter()
                        .map(|&(index, ref id)| Row {
                            step: id.clone(),
                            cells: range
                                .clone()
                                .map(|day| {
                                    let count = calendar.count(index, day);
                                    Cell {
                                        count,
                                        heat: heat(count, max),
                                    }
                                })
                                .collect(),
                            total: range.clone().map(|day| calendar.count(index, day)).sum(),
                        })
                        .collect(),
                })
                .collect(),
            day_totals: range.clone().map(|day| calendar.day_total(day)).collect(),
            total: range.map(|day| calendar.day_total(day)).sum(),
        });
        start = end;
    }
    months
}

/// The steps in the rules' stage order (`stage=X` steps under X), then the steps of several
/// stages or none, each group in file order.
fn grouped_steps(rules: &RuleSet) -> Vec<(String, Vec<(usize, String)>)> {
    let mut groups: Vec<(String, Vec<(usize, String)>)> = rules
        .stages
        .iter()
        .map(|stage| (stage.clone(), Vec::new()))
        .collect();
    let mut other = Vec::new();
    for (index, step) in rules.steps.iter().enumerate() {
        let stage = crate::report::stage_of(step, &rules.stages);
        match stage.and_then(|s| groups.iter_mut().find(|(name, _)| *name == s)) {
            Some((_, steps)) => steps.push((index, step.id.clone())),
            None => other.push((index, step.id.clone())),
        }
    }
    groups.push(("複数・指定なし".to_owned(), other));
    groups.retain(|(_, steps)| !steps.is_empty());
    groups
}

/// The shade of a cell: none for 0, then four steps up to the busiest cell.
fn heat(count: u64, max: u64) -> &'static str {
    if count == 0 || max == 0 {
        return "h0";
    }
    match count.saturating_mul(4).div_ceil(max) {
        0 | 1 => "h1",
        2 => "h2",
        3 => "h3",
        _ => "h4",
    }
}

#[cfg(test)]
mod tests {
    use super::heat;

    #[test]
    fn cells_shade_in_four_steps_up_to_the_busiest() {
        assert_eq!(heat(0, 10), "h0");
        assert_eq!(heat(1, 10), "h1");
        assert_eq!(heat(5, 10), "h2");
        assert_eq!(heat(7, 10), "h3");
        assert_eq!(heat(10, 10), "h4");
        assert_eq!(heat(u64::MAX / 8, u64::MAX / 8), "h4");
    }
}
