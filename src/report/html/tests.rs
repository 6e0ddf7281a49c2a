use super::*;
use crate::ledger::{ArmKey, SinkKind};
use crate::report::build::{Metric, Opened, Row, StepExperiment};
use crate::report::experiment::{judge, Arm};
use crate::report::months::MonthFigures;
use crate::report::period::PeriodArgs;
use crate::report::reach::Reach;
use crate::report::recommend::Recommendation;
use crate::report::tally::Counts;

fn row(step: &str, variant: Option<&str>, stage: Option<&str>, counts: Counts) -> Row {
    Row {
        key: ArmKey {
            sink: SinkKind::Line,
            step: step.into(),
            variant: variant.map(str::to_owned),
        },
        stage: stage.map(str::to_owned),
        in_rules: true,
        counts,
        previous: Counts {
            sent: 10,
            clicked: 1,
            ..Counts::default()
        },
        opened: Opened::NotMeasured,
    }
}

fn sent(sent: u64, clicked: u64, booked: u64, blocked: u64) -> Counts {
    Counts {
        sent,
        clicked,
        booked,
        revisited: 0,
        blocked,
    }
}

/// October 2026 in Tokyo: two stages, an A/B step, a recommendation, six months of trend.
fn report() -> Report {
    let periods = PeriodArgs::Month("2026-10".into())
        .resolve(
            chrono_tz::Asia::Tokyo,
            "2026-11-02T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
    let arms = [
        Arm {
            variant: "checkup_a".into(),
            n: 400,
            x: 20,
        },
        Arm {
            variant: "checkup_b".into(),
            n: 380,
            x: 30,
        },
    ];
    Report {
        periods,
        timezone: chrono_tz::Asia::Tokyo,
        clinic: Some("さくら内科クリニック".into()),
        months: (5..=10)
            .map(|month| MonthFigures {
                first: chrono::NaiveDate::from_ymd_opt(2026, month, 1).unwrap(),
                line: sent(u64::from(month) * 100, 30, 10, 2),
            })
            .collect(),
        reach: None,
        ledger_name: Some("ledger.db".into()),
        line: Default::default(),
        rows: vec![
            row("booking_confirm", None, Some("booked"), sent(120, 12, 6, 1)),
            row(
                "checkup",
                Some("checkup_a"),
                Some("follow_up"),
                sent(400, 40, 20, 2),
            ),
            row(
                "checkup",
                Some("checkup_b"),
                Some("follow_up"),
                sent(380, 30, 30, 1),
            ),
        ],
        outbox: Vec::new(),
        experiments: vec![StepExperiment {
            step: "checkup".into(),
            metric: Metric::Booked,
            result: judge(&arms, None),
        }],
        recommendations: vec![Recommendation::Winner {
            step: "checkup".into(),
            variant: "checkup_b".into(),
        }],
    }
}

fn assert_offline_and_finite(html: &str) {
    for absent in [
        "NaN", "inf", "<script", "src=", "href=", "url(", "http", "@import",
    ] {
        assert!(!html.contains(absent), "`{absent}` in the page:\n{html}");
    }
}

#[test]
fn the_page_has_every_section_in_japanese_and_a_chart_for_each_figure() {
    let html = to_html(&report()).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>\n<html lang=\"ja\">"),
        "{html}"
    );
    for heading in [
        "さくら内科クリニック ステップ配信レポート",
        "2026年10月1日〜2026年10月31日（Asia/Tokyo）",
        "2026年9月1日〜2026年9月30日",
        "配信台帳（ledger.db）",
        ja::FUNNEL,
        ja::TRENDS,
        ja::KPIS,
        ja::AB_TESTS,
        ja::RECOMMENDATIONS,
        "ステージ booked",
        "ステージ follow_up",
        "未計測",
        "▲110",
        "checkup_b を100%配信にしましょう",
    ] {
        assert!(html.contains(heading), "no `{heading}`:\n{html}");
    }
    // Two stages' funnels, four trend charts, one A/B panel.
    assert_eq!(html.matches("<svg").count(), 2 + 4 + 1, "{html}");
    assert_offline_and_finite(&html);
    assert!(html.contains("@media print"), "{html}");
    assert_eq!(
        html,
        to_html(&report()).unwrap(),
        "the same bytes every time"
    );
}

#[test]
fn names_from_the_rules_and_the_ledger_are_escaped_everywhere() {
    let mut report = report();
    let hostile = "<script>alert(1)</script>\"&'";
    report.clinic = Some(hostile.into());
    report.rows[0].key.step = "<img src=x onerror=alert(1)>".into();
    report.rows[0].in_rules = false;
    report.rows[0].stage = Some("<b>stage</b>".into());
    report.experiments[0].step = hostile.into();
    report.experiments[0].result.arms[0].variant = "<i>a</i>\u{1b}[2J".into();
    report.recommendations = vec![Recommendation::Winner {
        step: hostile.into(),
        variant: "<u>b</u>".into(),
    }];
    let html = to_html(&report).unwrap();
    for raw in ["<script", "<img", "<b>", "<i>", "<u>", "\u{1b}"] {
        assert!(!html.contains(raw), "`{raw}` unescaped:\n{html}");
    }
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;&#x27;"),
        "{html}"
    );
    // In the A/B chart (drawn in Rust) as well as in the page.
    assert!(html.contains("&lt;i&gt;a&lt;/i&gt;\\u{1b}[2J"), "{html}");
    assert!(html.contains("&lt;b&gt;stage&lt;/b&gt;"), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(!html.contains("NaN"), "{html}");
}

#[test]
fn a_period_with_nothing_sent_is_a_page_saying_so_without_nan() {
    let mut report = report();
    for row in &mut report.rows {
        row.counts = Counts::default();
        row.previous = Counts::default();
    }
    for month in &mut report.months {
        month.line = Counts::default();
    }
    report.experiments = vec![StepExperiment {
        step: "checkup".into(),
        metric: Metric::Booked,
        result: judge(
            &[
                Arm {
                    variant: "a".into(),
                    n: 0,
                    x: 0,
                },
                Arm {
                    variant: "b".into(),
                    n: 0,
                    x: 0,
                },
            ],
            None,
        ),
    }];
    report.recommendations.clear();
    let html = to_html(&report).unwrap();
    assert!(html.contains(ja::NOTHING_YET), "{html}");
    assert_eq!(html.matches("<svg").count(), 0, "{html}");
    assert_offline_and_finite(&html);
    // A rules file with no steps and an empty ledger: the same.
    report.rows.clear();
    report.experiments.clear();
    report.months.clear();
    let html = to_html(&report).unwrap();
    assert!(html.contains(ja::NOTHING_YET), "{html}");
    assert_offline_and_finite(&html);
}

#[test]
fn a_month_without_sends_in_the_trend_has_no_rate_rather_than_zero() {
    let mut report = report();
    report.months[2].line = Counts::default();
    let html = to_html(&report).unwrap();
    // Three rate charts, each broken into two lines around the empty month.
    assert_eq!(html.matches("<polyline").count(), 6, "{html}");
    assert_offline_and_finite(&html);
}

#[test]
fn opened_figures_and_verdicts_are_written_in_japanese() {
    let mut report = report();
    report.rows[0].opened = Opened::Suppressed;
    report.rows[1].opened = Opened::Unique(150);
    let html = to_html(&report).unwrap();
    assert!(html.contains("非表示(20未満)"), "{html}");
    assert!(html.contains("37.5%（150）"), "{html}");
    assert!(html.contains("未計測"), "{html}");
    let verdict = ja::verdict(&report.experiments[0].result.verdict);
    assert!(html.contains(&verdict), "{verdict}: {html}");
    assert!(html.contains("p値"), "{html}");
}

#[test]
fn with_the_export_each_funnel_starts_at_the_stages_patients() {
    let mut report = report();
    let mut reach = Reach::new(&["booked".into(), "follow_up".into(), "regular".into()]);
    for i in 0..50 {
        reach.count(Some(0), i < 40, i < 3);
    }
    reach.count(Some(2), true, false);
    report.reach = Some(reach);
    let html = to_html(&report).unwrap();
    assert!(html.contains(ja::REACH), "{html}");
    assert!(html.contains("50人"), "{html}");
    assert!(
        html.contains("40人<tspan fill=\"#666\">（患者の80.0%）"),
        "{html}"
    );
    // regular has patients but no step sent: a funnel of its own all the same.
    assert_eq!(html.matches("<svg").count(), 3 + 4 + 1, "{html}");
    assert!(html.find(ja::PATIENTS).unwrap() < html.find(ja::LINKED).unwrap());
}
