//! `report --format html`: the monthly review as one self-contained page in Japanese — a
//! funnel per stage, six months of trends, the KPI table with ▲▼, A/B panels with interval
//! bars, and the recommendations. No script, no external style, font or image: the charts are
//! inline SVG drawn here, so the file opens offline, prints on A4, and two runs on one ledger
//! write the same bytes.
//!
//! `sections` works out what the page shows, `svg` draws the charts, `ja` holds the words;
//! `page.html` (minijinja, HTML auto-escaping) lays them out.

mod ja;
mod sections;
mod svg;

use minijinja::{escape_formatter, Environment};

use super::build::Report;
use crate::printable::printable;

const PAGE: &str = include_str!("page.html");

/// The report as an HTML page.
pub fn to_html(report: &Report) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // Named `.html`, the template escapes every value it places (the charts are marked safe
    // in it: they escape their own text).
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Text goes through `escape`, as the charts' text does: names from the rules and the
    // ledger have their control and bidi-override characters written out, as on a terminal.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if !value.is_safe() => Ok(out.write_str(&escape(text))?),
        _ => escape_formatter(out, state, value),
    });
    env.add_template("page.html", PAGE)?;
    let mut html = env
        .get_template("page.html")?
        .render(sections::page(report))?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(html)
}

/// `text` safe inside an HTML or SVG element or a quoted attribute, its control and
/// bidi-override characters written out.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in printable(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
