//! LINE's insight endpoints, as `steprule insights fetch` reads them:
//! `GET /v2/bot/insight/message/event/aggregation?customAggregationUnit=&from=&to=` and
//! `GET /v2/bot/insight/followers?date=`. The token is checked (401) as for pushes, the query as
//! LINE documents it (a unit of `[A-Za-z0-9_]{1,30}`, `yyyyMMdd` days, `to` at most 30 days after
//! `from`: else 400 and a protocol error). The answer is the one the test set for that unit and
//! first day (or day), else a default: a unit's figures all withheld (null), a day ready with
//! 100 friends. Every request is recorded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::state::Shared;

/// What the fake answers one insight request with.
#[derive(Debug, Clone)]
pub enum InsightAnswer {
    /// 200 with this JSON.
    Json(Value),
    /// This status with LINE's `{"message": …}`.
    Status(u16, String),
    /// 200 with these bytes as the body, whatever they are.
    Raw(Vec<u8>),
}

/// One request to an insight endpoint, as it arrived.
#[derive(Debug, Clone)]
pub struct InsightRequest {
    pub at: Instant,
    /// `aggregation` or `followers`.
    pub endpoint: &'static str,
    pub unit: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub date: Option<String>,
    pub status: u16,
}

/// The insight side of the fake's state.
#[derive(Default)]
pub(super) struct Insights {
    /// (unit, from) → answer.
    pub(super) units: HashMap<(String, String), InsightAnswer>,
    /// date → answer.
    pub(super) days: HashMap<String, InsightAnswer>,
    /// Answer every insight request 403, as for a channel without access to statistics.
    pub(super) forbidden: bool,
    pub(super) requests: Vec<InsightRequest>,
    pub(super) protocol_errors: Vec<String>,
}

fn query(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn is_day(text: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text, "%Y%m%d")
        .ok()
        .filter(|_| text.len() == 8)
}

fn is_unit(text: &str) -> bool {
    (1..=30).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `GET /v2/bot/insight/message/event/aggregation`.
pub(super) async fn aggregation(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query(raw.as_deref());
    let get = |key: &str| params.get(key).cloned();
    let mut request = InsightRequest {
        at: Instant::now(),
        endpoint: "aggregation",
        unit: get("customAggregationUnit"),
        from: get("from"),
        to: get("to"),
        date: None,
        status: 0,
    };
    let answer = {
        let mut insights = shared.insights.lock().expect("fake LINE insight state");
        let valid = match (&request.unit, &request.from, &request.to) {
            (Some(unit), Some(from), Some(to)) => match (is_unit(unit), is_day(from), is_day(to)) {
                (true, Some(from), Some(to)) => to >= from && (to - from).num_days() <= 30,
                _ => false,
            },
            _ => false,
        };
        checked(&shared, &mut insights, &headers, valid, raw.as_deref()).unwrap_or_else(|| {
            let key = (
                request.unit.clone().unwrap_or_default(),
                request.from.clone().unwrap_or_default(),
            );
            insights.units.get(&key).cloned().unwrap_or_else(|| {
                InsightAnswer::Json(json!({
                    "overview": {"uniqueImpression": null, "uniqueClick": null,
                                 "uniqueMediaPlayed": null, "uniqueMediaPlayed100Percent": null},
                    "messages": [], "clicks": []
                }))
            })
        })
    };
    if !shared.faults.latency.is_zero() {
        tokio::time::sleep(shared.faults.latency).await;
    }
    respond(&shared, &headers, &mut request, answer)
}

/// `GET /v2/bot/insight/followers`.
pub(super) async fn followers(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query(raw.as_deref());
    let mut request = InsightRequest {
        at: Instant::now(),
        endpoint: "followers",
        unit: None,
        from: None,
        to: None,
        date: params.get("date").cloned(),
        status: 0,
    };
    let answer = {
        let mut insights = shared.insights.lock().expect("fake LINE insight state");
        let valid = request.date.as_deref().and_then(is_day).is_some();
        checked(&shared, &mut insights, &headers, valid, raw.as_deref()).unwrap_or_else(|| {
            let date = request.date.clone().unwrap_or_default();
            insights.days.get(&date).cloned().unwrap_or_else(|| {
                InsightAnswer::Json(json!({
                    "status": "ready", "followers": 100, "targetedReaches": 90, "blocks": 10
                }))
            })
        })
    };
    if !shared.faults.latency.is_zero() {
        tokio::time::sleep(shared.faults.latency).await;
    }
    respond(&shared, &headers, &mut request, answer)
}

/// The answer to a request LINE would refuse (token, channel, query), if it is one.
fn checked(
    shared: &Shared,
    insights: &mut Insights,
    headers: &HeaderMap,
    valid: bool,
    raw: Option<&str>,
) -> Option<InsightAnswer> {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    if authorization != Some(&format!("Bearer {}", shared.token)) {
        return Some(InsightAnswer::Status(
            401,
            "Authentication failed. Confirm that the access token in the authorization header \
             is valid."
                .into(),
        ));
    }
    if insights.forbidden {
        return Some(InsightAnswer::Status(
            403,
            "Not authorized to use this API".into(),
        ));
    }
    if !valid {
        insights
            .protocol_errors
            .push(format!("bad insight query: {}", raw.unwrap_or("")));
        return Some(InsightAnswer::Status(400, "The request is invalid".into()));
    }
    None
}

fn respond(
    shared: &Shared,
    headers: &HeaderMap,
    request: &mut InsightRequest,
    answer: InsightAnswer,
) -> Response {
    let response = match answer {
        InsightAnswer::Json(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        InsightAnswer::Raw(bytes) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            bytes,
        )
            .into_response(),
        InsightAnswer::Status(status, message) => {
            let message = if shared.faults.echo_authorization {
                let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
                format!("{message} (Authorization: {})", sent.unwrap_or(""))
            } else {
                message
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(json!({ "message": message }))).into_response()
        }
    };
    request.status = response.status().as_u16();
    shared
        .insights
        .lock()
        .expect("fake LINE insight state")
        .requests
        .push(request.clone());
    response
}
