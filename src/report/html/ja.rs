//! The HTML report's words, in Japanese as the clinic's staff read them: headings, labels,
//! dates, numbers, the A/B verdicts and the recommendations. Step, variant and stage names stay
//! as the rules write them. Every function returns plain text; the page escapes it.

use chrono::{Datelike, NaiveDate};

use crate::report::build::{Metric, Opened};
use crate::report::experiment::Verdict;
use crate::report::period::Period;
use crate::report::recommend::Recommendation;

pub const REPORT: &str = "ステップ配信レポート";
pub const FUNNEL: &str = "ステージ別ファネル";
pub const TRENDS: &str = "月別の推移（直近6か月）";
pub const KPIS: &str = "ステップ別のKPI";
pub const AB_TESTS: &str = "ABテスト";
pub const RECOMMENDATIONS: &str = "改善のおすすめ";
pub const REACH: &str = "ステージ別の到達状況";
pub const OUTBOX: &str = "アウトボックス・ドライランの送信（LINE未配信）";
pub const NO_STAGE: &str = "ステージ指定なし";
pub const NONE: &str = "—";

pub const PATIENTS: &str = "患者数";
pub const LINKED: &str = "LINE連携";
pub const BLOCKED_NOW: &str = "ブロック中";
pub const SENT: &str = "送信";
pub const CLICKED: &str = "クリック";
pub const BOOKED: &str = "予約";
pub const REVISITED: &str = "再来院";

pub const TREND_SENT: &str = "送信数";
pub const TREND_CTR: &str = "クリック率";
pub const TREND_BOOKING: &str = "予約率";
pub const TREND_BLOCK: &str = "ブロック率";

/// The KPI table's column headings (each stage is a row of its own above its steps).
pub const KPI_HEADINGS: [&str; 8] = [
    "ステップ",
    "パターン",
    "送信",
    "開封",
    "クリック率",
    "予約率",
    "再来院率",
    "ブロック率",
];

pub const NOTHING_YET: &str =
    "この期間にLINEで配信した記録はまだありません。配信が始まると、ここにKPIとグラフが表示されます。";
pub const INTERVAL_NOTE: &str =
    "●は各パターンの率、横線はその95%信頼区間（ウィルソン法）。全パターンが同じ目盛りです。";
/// The reach table's column headings.
pub const REACH_HEADINGS: [&str; 4] = ["ステージ", PATIENTS, LINKED, BLOCKED_NOW];
/// The outbox table's column headings.
pub const OUTBOX_HEADINGS: [&str; 3] = ["ステップ", "パターン", SENT];
pub const OUTBOX_NOTE: &str =
    "LINE_CHANNEL_ACCESS_TOKEN なしの実行や --dry-run で、アウトボックスに書き出しただけの送信です。患者には届いておらず、上のどの数値にも含みません。";
pub const NO_RECOMMENDATIONS: &str = "今期は特にありません。";
pub const RATES_NOTE: &str =
    "率はすべて送信数に対する割合です（カッコ内は人数）。▲▼は前の期間との差（率はポイント）。";

/// A stage as a heading: its name as the rules write it, or 「ステージ指定なし」.
pub fn stage(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("ステージ {name}"),
        None => NO_STAGE.to_owned(),
    }
}

/// `2026年10月1日`.
pub fn day(date: NaiveDate) -> String {
    format!("{}年{}月{}日", date.year(), date.month(), date.day())
}

/// `2026年10月1日〜2026年10月31日`.
pub fn days(period: &Period) -> String {
    format!("{}〜{}", day(period.first), day(period.last))
}

/// `10月`, with the year when it is January or the first month shown (`2026年1月`).
pub fn month(first: NaiveDate, with_year: bool) -> String {
    if with_year || first.month() == 1 {
        format!("{}年{}月", first.year(), first.month())
    } else {
        format!("{}月", first.month())
    }
}

/// `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `12.3%`, or `—` without a rate (never NaN: a rate is only made from a count over a
/// non-zero count).
pub fn percent(rate: Option<f64>) -> String {
    match rate.filter(|r| r.is_finite()) {
        Some(rate) => format!("{:.1}%", rate * 100.0),
        None => NONE.to_owned(),
    }
}

/// A count's change against the previous period: `▲4`, `▼2`, `±0`.
pub fn count_change(now: u64, before: u64) -> String {
    match now.cmp(&before) {
        std::cmp::Ordering::Greater => format!("▲{}", count(now - before)),
        std::cmp::Ordering::Less => format!("▼{}", count(before - now)),
        std::cmp::Ordering::Equal => "±0".to_owned(),
    }
}

/// A rate's change in percentage points, when both periods have a rate: `▲1.2pt`.
pub fn points_change(now: Option<f64>, before: Option<f64>) -> Option<String> {
    let change = (now? - before?) * 100.0;
    if !change.is_finite() {
        return None;
    }
    Some(if change >= 0.05 {
        format!("▲{change:.1}pt")
    } else if change <= -0.05 {
        format!("▼{:.1}pt", -change)
    } else {
        "±0.0pt".to_owned()
    })
}

/// LINE's unique impressions as the KPI table shows them.
pub fn opened(opened: Opened, sent: u64) -> String {
    match opened {
        Opened::NotMeasured => "未計測".to_owned(),
        Opened::Suppressed => "非表示(20未満)".to_owned(),
        Opened::Unique(n) => {
            let rate = (sent > 0).then(|| n as f64 / sent as f64);
            format!("{}（{}）", percent(rate), count(n))
        }
    }
}

/// What an arm's `x` counts, as the A/B panel names it.
pub fn metric(metric: Metric) -> &'static str {
    match metric {
        Metric::Booked => "予約",
        Metric::Clicked => "クリック",
        Metric::Blocked => "ブロックしなかった",
    }
}

/// The verdict in a few words.
pub fn verdict(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Underpowered => "検出力不足".to_owned(),
        Verdict::NoDifference => "差なし".to_owned(),
        Verdict::Better(variant) => format!("{variant} が優位"),
    }
}

/// What the clinic should do about the verdict.
pub fn verdict_advice(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Underpowered => {
            "まだ人数が足りず、差があるとは言えません。どちらのパターンも配信を続けてください。"
                .to_owned()
        }
        Verdict::NoDifference => {
            "十分な人数で比べても差はありません。どちらのパターンを使っても構いません。".to_owned()
        }
        Verdict::Better(variant) => {
            format!("十分な人数で有意な差があります。{variant} を100%配信にしましょう。")
        }
    }
}

/// The sample size per arm, or why there is none.
pub fn required_n(required: Option<u64>) -> String {
    match required {
        Some(n) => format!("{}人", count(n)),
        None => "算出できません（差がないか、小さすぎます）".to_owned(),
    }
}

/// A p-value with four decimals, or `—` without one.
pub fn p_value(p: Option<f64>) -> String {
    match p.filter(|p| p.is_finite()) {
        Some(p) if p < 0.0001 => "0.0001未満".to_owned(),
        Some(p) => format!("{p:.4}"),
        None => NONE.to_owned(),
    }
}

/// A recommendation as one sentence.
pub fn advice(recommendation: &Recommendation) -> String {
    let arm = |step: &str, variant: &Option<String>| match variant {
        Some(variant) => format!("{step}（{variant}）"),
        None => step.to_owned(),
    };
    match recommendation {
        Recommendation::HighBlockRate {
            step,
            variant,
            block_rate,
            blocked,
            median,
        } => format!(
            "{}：配信後にブロックした患者が{}（{}人）で、全ステップの中央値{}を大きく上回っています。\
             配信の頻度を下げる、文面を短くする、または配信をやめることを検討してください。",
            arm(step, variant),
            percent(Some(*block_rate)),
            count(*blocked),
            percent(Some(*median)),
        ),
        Recommendation::Winner { step, variant } => format!(
            "{step}：{variant} が十分な人数で有意に優れています。{variant} を100%配信にしましょう。"
        ),
        Recommendation::LowClickRate {
            step,
            variant,
            ctr,
            sent,
            median,
        } => format!(
            "{}：リンクをタップした患者は{}人中{}で、全ステップの中央値{}を大きく下回っています。\
             リンクやボタンの文言を見直してください。",
            arm(step, variant),
            count(*sent),
            percent(Some(*ctr)),
            percent(Some(*median)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators_and_rates_one_decimal() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(12_345_678), "12,345,678");
        assert_eq!(percent(Some(0.1234)), "12.3%");
        assert_eq!(percent(None), "—");
        assert_eq!(percent(Some(f64::NAN)), "—");
        assert_eq!(
            points_change(Some(0.2), Some(0.1)).as_deref(),
            Some("▲10.0pt")
        );
        assert_eq!(points_change(Some(0.1), None), None);
        assert_eq!(count_change(3, 5), "▼2");
    }

    #[test]
    fn opened_figures_are_never_zero_when_withheld_or_unmeasured() {
        assert_eq!(opened(Opened::NotMeasured, 10), "未計測");
        assert_eq!(opened(Opened::Suppressed, 10), "非表示(20未満)");
        assert_eq!(opened(Opened::Unique(25), 100), "25.0%（25）");
        assert_eq!(opened(Opened::Unique(25), 0), "—（25）");
    }

    #[test]
    fn verdicts_in_japanese() {
        assert_eq!(verdict(&Verdict::Underpowered), "検出力不足");
        assert_eq!(verdict(&Verdict::NoDifference), "差なし");
        assert_eq!(
            verdict(&Verdict::Better("checkup_b".into())),
            "checkup_b が優位"
        );
        assert_eq!(p_value(Some(0.00001)), "0.0001未満");
        assert_eq!(
            month(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), false),
            "2026年1月"
        );
        assert_eq!(
            month(NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(), false),
            "5月"
        );
    }
}
