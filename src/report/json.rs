//! `report --format json`: one document with stable keys, in the report's order, so that two
//! runs on the same ledger write the same bytes. Rates are numbers or null (nothing sent);
//! `opened` is null while it is not measured and `"suppressed"` when LINE withheld it.

use serde::ser::{Serialize, Serializer};
use serde::Serialize as DeriveSerialize;

use super::build::{Opened, Report, Row, StepExperiment};
use super::experiment::Experiment;
use super::opened::Account;
use super::reach::StageReach;
use super::recommend::Recommendation;

#[derive(DeriveSerialize)]
struct ReportJson<'a> {
    period: PeriodJson,
    steps: Vec<StepJson<'a>>,
    /// Outbox and dry-run sends, apart from LINE's figures.
    outbox: Vec<StepJson<'a>>,
    experiments: Vec<ExperimentJson<'a>>,
    recommendations: &'a [Recommendation],
    /// The account's friends at the period's end (LINE's counts), null when not fetched.
    line_account: Option<AccountJson>,
    /// With `--patients`: `[{"stage", "patients", "linked", "blocked"}]`, the rules' stages in
    /// order (and `null` for patients without one). Absent without the export.
    #[serde(skip_serializing_if = "Option::is_none")]
    stages: Option<Vec<&'a StageReach>>,
}

/// `{"day", "followers", "targeted_reaches", "blocks", "followers_change", "blocks_change"}`.
#[derive(DeriveSerialize)]
struct AccountJson {
    day: String,
    followers: u64,
    targeted_reaches: u64,
    blocks: u64,
    followers_change: Option<i64>,
    blocks_change: Option<i64>,
}

fn account_json(account: &Account) -> AccountJson {
    AccountJson {
        day: account.day.to_string(),
        followers: account.followers,
        targeted_reaches: account.targeted_reaches,
        blocks: account.blocks,
        followers_change: account.followers_change,
        blocks_change: account.blocks_change,
    }
}

#[derive(DeriveSerialize)]
struct PeriodJson {
    from: String,
    /// The last day, included.
    to: String,
    timezone: &'static str,
}

#[derive(DeriveSerialize)]
struct StepJson<'a> {
    step: &'a str,
    variant: Option<&'a str>,
    stage: Option<&'a str>,
    sent: u64,
    opened: OpenedJson,
    clicked: u64,
    booked: u64,
    revisited: u64,
    blocked: u64,
    open_rate: OpenRateJson,
    ctr: Option<f64>,
    booking_rate: Option<f64>,
    revisit_rate: Option<f64>,
    block_rate: Option<f64>,
}

struct OpenedJson(Opened);

impl Serialize for OpenedJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Opened::NotMeasured => serializer.serialize_none(),
            Opened::Suppressed => serializer.serialize_str("suppressed"),
            Opened::Unique(count) => serializer.serialize_u64(count),
        }
    }
}

struct OpenRateJson(Opened, Option<f64>);

impl Serialize for OpenRateJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (Opened::Suppressed, _) => serializer.serialize_str("suppressed"),
            (Opened::Unique(_), Some(rate)) => serializer.serialize_f64(rate),
            _ => serializer.serialize_none(),
        }
    }
}

/// A step's A/B test: `{"step", "metric", "arms": [{"variant", "n", "x", "rate", "ci_low",
/// "ci_high"}], "p_value", "required_n", "verdict"}`.
#[derive(DeriveSerialize)]
struct ExperimentJson<'a> {
    step: &'a str,
    metric: &'static str,
    #[serde(flatten)]
    result: &'a Experiment,
}

fn step_json(row: &Row) -> StepJson<'_> {
    let counts = &row.counts;
    let opened_rate = match row.opened {
        Opened::Unique(count) => counts.rate(count),
        _ => None,
    };
    StepJson {
        step: &row.key.step,
        variant: row.key.variant.as_deref(),
        stage: row.stage.as_deref(),
        sent: counts.sent,
        opened: OpenedJson(row.opened),
        clicked: counts.clicked,
        booked: counts.booked,
        revisited: counts.revisited,
        blocked: counts.blocked,
        open_rate: OpenRateJson(row.opened, opened_rate),
        ctr: counts.rate(counts.clicked),
        booking_rate: counts.rate(counts.booked),
        revisit_rate: counts.rate(counts.revisited),
        block_rate: counts.rate(counts.blocked),
    }
}

fn experiment_json(experiment: &StepExperiment) -> ExperimentJson<'_> {
    ExperimentJson {
        step: &experiment.step,
        metric: experiment.metric.arm_label(),
        result: &experiment.result,
    }
}

/// The report as one JSON document (without a trailing newline).
pub fn to_json(report: &Report) -> Result<String, serde_json::Error> {
    let period = &report.periods.current;
    let document = ReportJson {
        period: PeriodJson {
            from: period.first.to_string(),
            to: period.last.to_string(),
            timezone: report.timezone.name(),
        },
        steps: report.rows.iter().map(step_json).collect(),
        outbox: report.outbox.iter().map(step_json).collect(),
        experiments: report.experiments.iter().map(experiment_json).collect(),
        recommendations: &report.recommendations,
        line_account: report.line.account.as_ref().map(account_json),
        stages: report.reach.as_ref().map(|reach| reach.stages().collect()),
    };
    serde_json::to_string_pretty(&document)
}
