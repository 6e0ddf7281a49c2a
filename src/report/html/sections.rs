//! The HTML page's content, worked out from the report: every figure formatted, every chart
//! drawn, in the order the page shows them. `page.html` only places what is here (and
//! escapes it; the charts escape their own text).

use serde::Serialize;

use super::ja;
use super::svg::{self, ArmInterval, FunnelBar, Series};
use crate::report::build::{Report, Row, StepExperiment};
use crate::report::experiment::Verdict;
use crate::report::reach::Reach;
use crate::report::tally::Counts;

/// Everything `page.html` shows.
#[derive(Serialize)]
pub struct Page {
    title: String,
    period: String,
    timezone: &'static str,
    comparison: String,
    source: String,
    line_note: String,
    /// Nothing was delivered on LINE in the period: the page says so instead of charts.
    nothing_yet: bool,
    funnels: Vec<Chart>,
    funnel_note: Option<&'static str>,
    reach: Option<ReachTable>,
    trends: Vec<Chart>,
    kpi_rows: Vec<KpiRow>,
    experiments: Vec<Panel>,
    recommendations: Vec<String>,
    outbox: Vec<OutboxRow>,
    labels: Labels,
}

#[derive(Serialize)]
struct Labels {
    period: &'static str,
    funnel: &'static str,
    trends: &'static str,
    kpis: &'static str,
    ab_tests: &'static str,
    recommendations: &'static str,
    reach: &'static str,
    outbox: &'static str,
    outbox_note: &'static str,
    nothing_yet: &'static str,
    no_recommendations: &'static str,
    rates_note: &'static str,
    interval_note: &'static str,
    kpi_headings: [&'static str; 8],
    outbox_headings: [&'static str; 3],
}

const LABELS: Labels = Labels {
    period: "期間",
    funnel: ja::FUNNEL,
    trends: ja::TRENDS,
    kpis: ja::KPIS,
    ab_tests: ja::AB_TESTS,
    recommendations: ja::RECOMMENDATIONS,
    reach: ja::REACH,
    outbox: ja::OUTBOX,
    outbox_note: ja::OUTBOX_NOTE,
    nothing_yet: ja::NOTHING_YET,
    no_recommendations: ja::NO_RECOMMENDATIONS,
    rates_note: ja::RATES_NOTE,
    interval_note: ja::INTERVAL_NOTE,
    kpi_headings: ja::KPI_HEADINGS,
    outbox_headings: ja::OUTBOX_HEADINGS,
};

/// A heading, an SVG chart (markup, already escaped) and a line under it.
#[derive(Serialize)]
struct Chart {
    heading: String,
    svg: String,
    caption: Option<String>,
}

#[derive(Serialize)]
struct KpiRow {
    /// The stage's heading, on the first row of each stage.
    stage: Option<String>,
    step: String,
    variant: String,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct Cell {
    value: String,
    change: Option<String>,
}

#[derive(Serialize)]
struct Panel {
    heading: String,
    svg: String,
    facts: Vec<(String, String)>,
    verdict: String,
    verdict_class: &'static str,
    advice: String,
}

#[derive(Serialize)]
struct ReachTable {
    headings: [&'static str; 4],
    rows: Vec<ReachRow>,
    note: String,
}

#[derive(Serialize)]
struct ReachRow {
    stage: String,
    patients: String,
    linked: String,
    blocked: String,
}

#[derive(Serialize)]
struct OutboxRow {
    step: String,
    variant: String,
    sent: String,
    change: String,
}

/// The page for `report`.
pub fn page(report: &Report) -> Page {
    let periods = &report.periods;
    let title = match &report.clinic {
        Some(clinic) => format!("{clinic} {}", ja::REPORT),
        None => ja::REPORT.to_owned(),
    };
    let source = match &report.ledger_name {
        Some(name) => format!("配信台帳（{name}）の記録から作成しました。"),
        None => "配信台帳の記録から作成しました。".to_owned(),
    };
    let outbox_sent: u64 = report.outbox.iter().map(|row| row.counts.sent).sum();
    let mut line_note = "数値はLINEが受け付けた送信だけを数えています。".to_owned();
    if !report.outbox.is_empty() {
        line_note.push_str(&format!(
            "アウトボックス・--dry-run の送信（{}件）は末尾に別に示し、数値には含みません。",
            ja::count(outbox_sent)
        ));
    }
    let nothing_yet = report.rows.iter().all(|row| row.counts.sent == 0);
    let (funnels, funnel_note, kpi_rows, experiments) = if nothing_yet {
        (Vec::new(), None, Vec::new(), Vec::new())
    } else {
        (
            funnels(report),
            report.reach.as_ref().map(|_| {
                "患者数とLINE連携は患者データの今の人数、送信から先は期間中の送信件数です（1人に複数回送ることがあります）。"
            }),
            kpi_rows(&report.rows),
            report.experiments.iter().map(panel).collect(),
        )
    };
    Page {
        title,
        period: ja::days(&periods.current),
        timezone: report.timezone.name(),
        comparison: format!(
            "▲▼は前の期間（{}）との比較です。",
            ja::days(&periods.previous)
        ),
        source,
        line_note,
        nothing_yet,
        funnels,
        funnel_note,
        reach: report.reach.as_ref().map(reach_table),
        trends: trends(report),
        kpi_rows,
        experiments,
        recommendations: if nothing_yet {
            Vec::new()
        } else {
            report.recommendations.iter().map(ja::advice).collect()
        },
        outbox: report.outbox.iter().map(outbox_row).collect(),
        labels: LABELS,
    }
}

fn add(total: &mut Counts, counts: &Counts) {
    total.sent += counts.sent;
    total.clicked += counts.clicked;
    total.booked += counts.booked;
    total.revisited += counts.revisited;
    total.blocked += counts.blocked;
}

/// One funnel per stage: the stages of the patient export (all of the rules', in order)
/// when there is one, else the stages the rows are grouped under, in the rows' order.
fn funnels(report: &Report) -> Vec<Chart> {
    let mut groups: Vec<(Option<&str>, Counts)> = Vec::new();
    if let Some(reach) = &report.reach {
        for stage in reach.stages() {
            groups.push((stage.stage.as_deref(), Counts::default()));
        }
    }
    for row in &report.rows {
        let stage = row.stage.as_deref();
        match groups.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, total)) => add(total, &row.counts),
            None => {
                let mut total = Counts::default();
                add(&mut total, &row.counts);
                groups.push((stage, total));
            }
        }
    }
    groups
        .into_iter()
        .map(|(stage, counts)| {
            let heading = ja::stage(stage);
            let of_sent = |n: u64| format!("（送信の{}）", ja::percent(counts.rate(n)));
            let mut bars = Vec::new();
            if let Some(reach) = report.reach.as_ref().and_then(|r| r.of(stage)) {
                let linked =
                    (reach.patients > 0).then(|| reach.linked as f64 / reach.patients as f64);
                bars.push(FunnelBar {
                    label: ja::PATIENTS,
                    count: reach.patients,
                    unit: "人",
                    note: String::new(),
                    colour: svg::PATIENT_COLOUR,
                });
                bars.push(FunnelBar {
                    label: ja::LINKED,
                    count: reach.linked,
                    unit: "人",
                    note: format!("（患者の{}）", ja::percent(linked)),
                    colour: svg::LINKED_COLOUR,
                });
            }
            bars.push(FunnelBar {
                label: ja::SENT,
                count: counts.sent,
                unit: "件",
                note: String::new(),
                colour: svg::SENT_COLOUR,
            });
            for (label, count, colour) in [
                (ja::CLICKED, counts.clicked, svg::CLICKED_COLOUR),
                (ja::BOOKED, counts.booked, svg::BOOKED_COLOUR),
                (ja::REVISITED, counts.revisited, svg::REVISITED_COLOUR),
            ] {
                bars.push(FunnelBar {
                    label,
                    count,
                    unit: "件",
                    note: of_sent(count),
                    colour,
                });
            }
            Chart {
                svg: svg::funnel(&format!("{heading}のファネル"), &bars),
                caption: Some(format!(
                    "ブロック {}件{}",
                    ja::count(counts.blocked),
                    of_sent(counts.blocked)
                )),
                heading,
            }
        })
        .collect()
}

/// The four trend charts, when some month of the six has LINE sends.
fn trends(report: &Report) -> Vec<Chart> {
    if report.months.iter().all(|m| m.line.sent == 0) {
        return Vec::new();
    }
    let months: Vec<String> = report
        .months
        .iter()
        .enumerate()
        .map(|(i, m)| ja::month(m.first, i == 0))
        .collect();
    let rates = |count: fn(&Counts) -> u64| {
        Series::Rates(
            report
                .months
                .iter()
                .map(|m| m.line.rate(count(&m.line)))
                .collect(),
        )
    };
    [
        (
            ja::TREND_SENT,
            Series::Counts(report.months.iter().map(|m| m.line.sent).collect()),
        ),
        (ja::TREND_CTR, rates(|c| c.clicked)),
        (ja::TREND_BOOKING, rates(|c| c.booked)),
        (ja::TREND_BLOCK, rates(|c| c.blocked)),
    ]
    .into_iter()
    .map(|(heading, series)| Chart {
        svg: svg::trend(&format!("月別の{heading}"), &months, &series),
        heading: heading.to_owned(),
        caption: None,
    })
    .collect()
}

fn step_name(row: &Row) -> String {
    if row.in_rules {
        row.key.step.clone()
    } else {
        format!("{}（ルールにないステップ）", row.key.step)
    }
}

fn kpi_rows(rows: &[Row]) -> Vec<KpiRow> {
    let mut shown: Option<Option<&str>> = None;
    rows.iter()
        .map(|row| {
            let stage = row.stage.as_deref();
            let heading = (shown != Some(stage)).then(|| ja::stage(stage));
            shown = Some(stage);
            let (now, before) = (&row.counts, &row.previous);
            let rate = |count: fn(&Counts) -> u64| Cell {
                value: match now.rate(count(now)) {
                    Some(rate) => {
                        format!("{}（{}）", ja::percent(Some(rate)), ja::count(count(now)))
                    }
                    None => ja::NONE.to_owned(),
                },
                change: ja::points_change(now.rate(count(now)), before.rate(count(before))),
            };
            KpiRow {
                stage: heading,
                step: step_name(row),
                variant: row
                    .key
                    .variant
                    .clone()
                    .unwrap_or_else(|| ja::NONE.to_owned()),
                cells: vec![
                    Cell {
                        value: ja::count(now.sent),
                        change: Some(ja::count_change(now.sent, before.sent)),
                    },
                    Cell {
                        value: ja::opened(row.opened, now.sent),
                        change: None,
                    },
                    rate(|c| c.clicked),
                    rate(|c| c.booked),
                    rate(|c| c.revisited),
                    rate(|c| c.blocked),
                ],
            }
        })
        .collect()
}

fn panel(experiment: &StepExperiment) -> Panel {
    let result = &experiment.result;
    let metric = ja::metric(experiment.metric);
    let arms: Vec<ArmInterval> = result
        .arms
        .iter()
        .map(|arm| {
            let interval = match (arm.ci_low, arm.ci_high) {
                (Some(low), Some(high)) => format!(
                    "（95%信頼区間 {}〜{}）",
                    ja::percent(Some(low)),
                    ja::percent(Some(high))
                ),
                _ => String::new(),
            };
            ArmInterval {
                variant: arm.variant.clone(),
                rate: arm.rate,
                low: arm.ci_low,
                high: arm.ci_high,
                text: format!(
                    "{}/{}人 {}{interval}",
                    ja::count(arm.x),
                    ja::count(arm.n),
                    ja::percent(arm.rate)
                ),
            }
        })
        .collect();
    let sizes: Vec<String> = result
        .arms
        .iter()
        .map(|arm| format!("{} {}人", arm.variant, ja::count(arm.n)))
        .collect();
    Panel {
        heading: format!("{}（指標：{metric}）", experiment.step),
        svg: svg::intervals(
            &format!("{} の各パターンの{metric}率と95%信頼区間", experiment.step),
            &arms,
        ),
        facts: vec![
            ("各パターンの人数".to_owned(), sizes.join(" / ")),
            (
                "p値（フィッシャーの正確検定）".to_owned(),
                ja::p_value(result.p_value),
            ),
            (
                "必要な人数（1パターンあたり、検出力80%）".to_owned(),
                ja::required_n(result.required_n),
            ),
        ],
        verdict: ja::verdict(&result.verdict),
        verdict_class: match result.verdict {
            Verdict::Underpowered => "underpowered",
            Verdict::NoDifference => "no-difference",
            Verdict::Better(_) => "better",
        },
        advice: ja::verdict_advice(&result.verdict),
    }
}

fn reach_table(reach: &Reach) -> ReachTable {
    let mut note =
        "患者データ（--patients）の今の人数です。LINE連携は line_user_id 列か台帳の連携で\
                    LINEに送れる患者、ブロック中はそのうちアカウントをブロックしている患者です。"
            .to_owned();
    if reach.skipped_rows > 0 {
        note.push_str(&format!(
            "読めなかった{}行は数えていません（行番号は標準エラーに出力しました）。",
            ja::count(reach.skipped_rows)
        ));
    }
    ReachTable {
        headings: ja::REACH_HEADINGS,
        rows: reach
            .stages()
            .map(|stage| ReachRow {
                stage: stage
                    .stage
                    .clone()
                    .unwrap_or_else(|| ja::NO_STAGE.to_owned()),
                patients: ja::count(stage.patients),
                linked: ja::count(stage.linked),
                blocked: ja::count(stage.blocked),
            })
            .collect(),
        note,
    }
}

fn outbox_row(row: &Row) -> OutboxRow {
    OutboxRow {
        step: step_name(row),
        variant: row
            .key
            .variant
            .clone()
            .unwrap_or_else(|| ja::NONE.to_owned()),
        sent: ja::count(row.counts.sent),
        change: ja::count_change(row.counts.sent, row.previous.sent),
    }
}
