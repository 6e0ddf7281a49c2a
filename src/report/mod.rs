//! `steprule report`: the KPIs per step and the A/B verdicts over the ledger (issue 10).

pub mod experiment;
pub mod stats;
