//! The HTML report's charts, drawn as inline SVG by plain Rust: funnel bars, the monthly
//! trend (bars for counts, a line for rates) and the A/B intervals on a common axis. Fixed
//! sizes in pixels, so that a chart prints at the size it shows. Every coordinate goes
//! through [`at`], so no NaN or infinity reaches the markup; every text through [`escape`].

use std::fmt::Write as _;

use super::escape;
use super::ja;

const FONT: &str = "font-size=\"12\"";
/// Bar colours, light enough to print on white.
const BAR: &str = "#4f8fd6";
const LINE: &str = "#2b6cb0";
const GRID: &str = "#d5dbe3";
const INK: &str = "#222";
const MUTED: &str = "#666";

/// A coordinate: one decimal, and 0 for anything not finite.
fn at(value: f64) -> String {
    let value = if value.is_finite() { value } else { 0.0 };
    // + 0.0 turns -0.0 into 0.0.
    format!("{:.1}", (value * 10.0).round() / 10.0 + 0.0)
}

/// `part` of `whole` as a fraction in 0..=1 (0 when `whole` is 0).
fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 && part.is_finite() {
        (part / whole).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The first `max` characters of `text`, with `…` when cut (a chart's label column is narrow;
/// the full name is in the chart's title).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A round number at or above `value` for an axis' end: 1, 2, 2.5 or 5 times a power of ten;
/// `floor` when `value` is not above it.
pub fn nice_ceiling(value: f64, floor: f64) -> f64 {
    if !value.is_finite() || value <= floor {
        return floor;
    }
    let power = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if value <= step * power * (1.0 + 1e-12) {
            return step * power;
        }
    }
    10.0 * power
}

fn open(out: &mut String, width: u32, height: u32, label: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"{label}\"><title>{label}</title>",
        label = escape(label)
    );
}

/// One bar of a funnel: what it counts, how many, and what is said beside it.
pub struct FunnelBar {
    pub label: &'static str,
    pub count: u64,
    /// 人 or 件, written after the count.
    pub unit: &'static str,
    pub note: String,
    pub colour: &'static str,
}

/// Funnel bar colours, one per kind of figure.
pub const PATIENT_COLOUR: &str = "#8aa4c1";
pub const LINKED_COLOUR: &str = "#6c9bcf";
pub const SENT_COLOUR: &str = BAR;
pub const CLICKED_COLOUR: &str = "#3aa3a0";
pub const BOOKED_COLOUR: &str = "#4caf6e";
pub const REVISITED_COLOUR: &str = "#9bbf4a";

/// Horizontal bars, each as long as its count against the largest, with the count and note.
pub fn funnel(title: &str, bars: &[FunnelBar]) -> String {
    const WIDTH: u32 = 440;
    const ROW: u32 = 30;
    const BAR_X: f64 = 76.0;
    const BAR_SPAN: f64 = 220.0;
    let height = ROW * bars.len() as u32 + 8;
    let largest = bars.iter().map(|b| b.count).max().unwrap_or(0) as f64;
    let mut out = String::new();
    open(&mut out, WIDTH, height, title);
    for (i, bar) in bars.iter().enumerate() {
        let y = 4.0 + f64::from(ROW) * i as f64;
        let length = BAR_SPAN * share(bar.count as f64, largest);
        // A count above zero always shows a sliver.
        let length = if bar.count > 0 { length.max(2.0) } else { 0.0 };
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" {FONT} fill=\"{INK}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{BAR_X}\" y=\"{}\" width=\"{}\" height=\"22\" rx=\"3\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" {FONT} fill=\"{INK}\">{}{}<tspan fill=\"{MUTED}\">{}</tspan></text>",
            at(BAR_X - 8.0),
            at(y + 15.0),
            escape(bar.label),
            at(y),
            at(length),
            bar.colour,
            at(BAR_X + length + 8.0),
            at(y + 15.0),
            ja::count(bar.count),
            bar.unit,
            escape(&bar.note),
        );
    }
    out.push_str("</svg>");
    out
}

/// What a trend chart draws per month.
pub enum Series {
    /// Bars, e.g. sends.
    Counts(Vec<u64>),
    /// A line through the months that have a rate; a month without one is a gap.
    Rates(Vec<Option<f64>>),
}

/// A small chart of one figure over the months named in `months` (oldest first).
pub fn trend(title: &str, months: &[String], series: &Series) -> String {
    const WIDTH: u32 = 320;
    const HEIGHT: u32 = 170;
    const LEFT: f64 = 46.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 20.0;
    const BOTTOM: f64 = 26.0;
    let plot_width = f64::from(WIDTH) - LEFT - RIGHT;
    let plot_height = f64::from(HEIGHT) - TOP - BOTTOM;
    let slots = months.len().max(1) as f64;
    let slot = plot_width / slots;
    let x_of = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let (top, tick): (f64, Box<dyn Fn(f64) -> String>) = match series {
        Series::Counts(values) => (
            nice_ceiling(values.iter().copied().max().unwrap_or(0) as f64, 10.0),
            Box::new(|v: f64| ja::count(v.round().max(0.0) as u64)),
        ),
        Series::Rates(values) => (
            nice_ceiling(values.iter().flatten().copied().fold(0.0, f64::max), 0.01),
            Box::new(|v: f64| {
                // Whole percents, or one decimal below 10%.
                let percent = v * 100.0;
                if (percent - percent.round()).abs() < 1e-9 {
                    format!("{percent:.0}%")
                } else {
                    format!("{percent:.1}%")
                }
            }),
        ),
    };
    let y_of = |v: f64| TOP + plot_height * (1.0 - share(v, top));
    let mut out = String::new();
    open(&mut out, WIDTH, HEIGHT, title);
    for step in 0..=2 {
        let value = top * f64::from(step) / 2.0;
        let y = y_of(value);
        let _ = write!(
            out,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{GRID}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{MUTED}\" text-anchor=\"end\">{}</text>",
            at(LEFT),
            at(LEFT + plot_width),
            at(LEFT - 4.0),
            at(y + 3.5),
            escape(&tick(value)),
            y = at(y),
        );
    }
    for (i, month) in months.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{MUTED}\" text-anchor=\"middle\">{}</text>",
            at(x_of(i)),
            at(f64::from(HEIGHT) - 8.0),
            escape(month)
        );
    }
    match series {
        Series::Counts(values) => {
            let bar = (slot * 0.6).min(28.0);
            for (i, value) in values.iter().enumerate() {
                let y = y_of(*value as f64);
                let _ = write!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{BAR}\"/>\
                     <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{INK}\" text-anchor=\"middle\">{}</text>",
                    at(x_of(i) - bar / 2.0),
                    at(y),
                    at(bar),
                    at(TOP + plot_height - y),
                    at(x_of(i)),
                    at(y - 4.0),
                    ja::count(*value)
                );
            }
        }
        Series::Rates(values) => {
            // Runs of months with a rate are joined; a month without one breaks the line.
            let mut run: Vec<String> = Vec::new();
            let mut lines = String::new();
            let flush = |run: &mut Vec<String>, lines: &mut String| {
                if run.len() > 1 {
                    let _ = write!(
                        lines,
                        "<polyline points=\"{}\" fill=\"none\" stroke=\"{LINE}\" stroke-width=\"2\"/>",
                        run.join(" ")
                    );
                }
                run.clear();
            };
            for (i, value) in values.iter().enumerate() {
                match value.filter(|v| v.is_finite()) {
                    Some(rate) => run.push(format!("{},{}", at(x_of(i)), at(y_of(rate)))),
                    None => flush(&mut run, &mut lines),
                }
            }
            flush(&mut run, &mut lines);
            out.push_str(&lines);
            for (i, value) in values.iter().enumerate() {
                let Some(rate) = value.filter(|v| v.is_finite()) else {
                    continue;
                };
                let _ = write!(
                    out,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{LINE}\"/>\
                     <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{INK}\" text-anchor=\"middle\">{}</text>",
                    at(x_of(i)),
                    at(y_of(rate)),
                    at(x_of(i)),
                    at(y_of(rate) - 6.0),
                    escape(&ja::percent(Some(rate)))
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// One arm of an A/B test as its panel draws it.
pub struct ArmInterval {
    pub variant: String,
    pub rate: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// What is written right of the axis: x/n, the rate and the interval.
    pub text: String,
}

/// Each arm's Wilson interval as a bar with its rate as a dot, all on one axis from 0 to a
/// round number above the highest interval's end.
pub fn intervals(title: &str, arms: &[ArmInterval]) -> String {
    const WIDTH: u32 = 680;
    const ROW: u32 = 30;
    const AXIS_X: f64 = 120.0;
    const AXIS_SPAN: f64 = 290.0;
    const AXIS_HEIGHT: u32 = 30;
    let height = ROW * arms.len() as u32 + AXIS_HEIGHT + 6;
    let highest = arms.iter().filter_map(|arm| arm.high).fold(0.0, f64::max);
    let top = nice_ceiling(highest, 0.01);
    let x_of = |rate: f64| AXIS_X + AXIS_SPAN * share(rate, top);
    let mut out = String::new();
    open(&mut out, WIDTH, height, title);
    let axis_y = 6.0 + f64::from(ROW) * arms.len() as f64;
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let x = at(x_of(value));
        let percent = value * 100.0;
        let label = if (percent - percent.round()).abs() < 1e-9 {
            format!("{percent:.0}%")
        } else {
            format!("{percent:.1}%")
        };
        let _ = write!(
            out,
            "<line x1=\"{x}\" y1=\"4\" x2=\"{x}\" y2=\"{}\" stroke=\"{GRID}\"/>\
             <text x=\"{x}\" y=\"{}\" font-size=\"10\" fill=\"{MUTED}\" text-anchor=\"middle\">{}</text>",
            at(axis_y),
            at(axis_y + 14.0),
            escape(&label)
        );
    }
    for (i, arm) in arms.iter().enumerate() {
        let y = 6.0 + f64::from(ROW) * i as f64 + 12.0;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" {FONT} fill=\"{INK}\" text-anchor=\"end\">{}</text>",
            at(AXIS_X - 10.0),
            at(y + 4.0),
            escape(&clip(&arm.variant, 14))
        );
        if let (Some(low), Some(high)) = (arm.low, arm.high) {
            let (x1, x2) = (x_of(low), x_of(high));
            let _ = write!(
                out,
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{LINE}\" stroke-width=\"6\" \
                 stroke-opacity=\"0.35\"/>\
                 <line x1=\"{a}\" y1=\"{}\" x2=\"{a}\" y2=\"{}\" stroke=\"{LINE}\" stroke-width=\"1.5\"/>\
                 <line x1=\"{b}\" y1=\"{}\" x2=\"{b}\" y2=\"{}\" stroke=\"{LINE}\" stroke-width=\"1.5\"/>",
                at(x1),
                at(x2),
                at(y - 6.0),
                at(y + 6.0),
                at(y - 6.0),
                at(y + 6.0),
                a = at(x1),
                b = at(x2),
                y = at(y),
            );
        }
        if let Some(rate) = arm.rate {
            let _ = write!(
                out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"4.5\" fill=\"{LINE}\"/>",
                at(x_of(rate)),
                at(y)
            );
        }
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" {FONT} fill=\"{INK}\">{}</text>",
            at(AXIS_X + AXIS_SPAN + 14.0),
            at(y + 4.0),
            escape(&arm.text)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0, 0.01), 0.01);
        assert_eq!(nice_ceiling(f64::NAN, 10.0), 10.0);
        assert_eq!(nice_ceiling(0.034, 0.01), 0.05);
        assert_eq!(nice_ceiling(0.21, 0.01), 0.25);
        assert_eq!(nice_ceiling(1234.0, 10.0), 2000.0);
        assert_eq!(nice_ceiling(1000.0, 10.0), 1000.0);
        assert_eq!(nice_ceiling(7.0, 10.0), 10.0);
    }

    #[test]
    fn coordinates_are_never_nan_and_labels_are_escaped() {
        assert_eq!(at(f64::NAN), "0.0");
        assert_eq!(at(f64::INFINITY), "0.0");
        assert_eq!(at(-0.0), "0.0");
        let svg = funnel(
            "<b>",
            &[
                FunnelBar {
                    label: ja::SENT,
                    count: 0,
                    unit: "件",
                    note: "\"&'".into(),
                    colour: SENT_COLOUR,
                },
                FunnelBar {
                    label: ja::CLICKED,
                    count: 0,
                    unit: "件",
                    note: String::new(),
                    colour: CLICKED_COLOUR,
                },
            ],
        );
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(
            svg.contains("&lt;b&gt;") && svg.contains("&quot;&amp;&#x27;"),
            "{svg}"
        );
        let empty = trend(
            "t",
            &["1月".into(), "2月".into()],
            &Series::Rates(vec![None, None]),
        );
        assert!(
            !empty.contains("NaN") && !empty.contains("polyline"),
            "{empty}"
        );
    }

    #[test]
    fn a_month_without_a_rate_breaks_the_line() {
        let months: Vec<String> = (1..=6).map(|m| format!("{m}月")).collect();
        let rates = vec![Some(0.1), Some(0.2), None, Some(0.1), Some(0.3), Some(0.2)];
        let svg = trend("t", &months, &Series::Rates(rates));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 5, "{svg}");
    }

    #[test]
    fn intervals_share_one_axis_scaled_to_the_highest_end() {
        let arm = |variant: &str, low: f64, rate: f64, high: f64| ArmInterval {
            variant: variant.into(),
            rate: Some(rate),
            low: Some(low),
            high: Some(high),
            text: String::new(),
        };
        let svg = intervals("t", &[arm("a", 0.05, 0.1, 0.15), arm("b", 0.1, 0.15, 0.2)]);
        // Axis 0–20%: b's interval (second row, y = 48) runs from 10%, halfway, to the end.
        assert!(svg.contains(">20%</text>"), "{svg}");
        assert!(
            svg.contains("x1=\"265.0\" y1=\"48.0\" x2=\"410.0\" y2=\"48.0\""),
            "{svg}"
        );
        // a's rate of 10% is halfway.
        assert!(svg.contains("cx=\"265.0\""), "{svg}");
    }
}
