//! LINE's insight endpoints, for `steprule insights fetch`: a unit's figures
//! (`GET /v2/bot/insight/message/event/aggregation`) and the account's friends on a day
//! (`GET /v2/bot/insight/followers`), through the same checked base URL, token and redaction
//! as pushes.
//!
//! LINE's answer is read only up to [`MAX_ANSWER_BYTES`] and checked field by field: a figure
//! is `null` (withheld, below 20) or a whole number from 0 to [`MAX_FIGURE`]; anything else
//! (a string, a negative or fractional number, an absurd one) refuses that answer, never a
//! guess stored as if LINE had said it.

use chrono::NaiveDate;
use reqwest::Url;
use serde_json::{Map, Value};

use super::{describe, line_message, LineClient};
use crate::ledger::{FollowerFigures, FollowerStatus, UnitFigures};
use crate::line::insight::query_day;

/// The most of an answer that is read. LINE's are a few hundred bytes, plus one entry per URL
/// of the message.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The largest figure believed: more users than LINE has is not a count.
pub const MAX_FIGURE: u64 = 1_000_000_000;

/// How long one insight request may take: a fetch makes at most a few hundred an hour, each
/// tried three times, so a LINE that hangs holds a cron run for minutes, not hours.
const INSIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Why an insight request brought no figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsightError {
    /// 401 or 403: the token was refused, or the channel may not read these statistics. Every
    /// request would meet the same: the user must act.
    Refused { status: u16, message: String },
    /// 429: LINE's own limit was reached.
    RateLimited { message: String },
    /// 5xx, a timeout, no connection: worth another try.
    Unavailable { message: String },
    /// Another 4xx, or an answer that is not what LINE documents: this answer only.
    Rejected { message: String },
}

impl InsightError {
    pub fn message(&self) -> &str {
        match self {
            InsightError::Refused { message, .. }
            | InsightError::RateLimited { message }
            | InsightError::Unavailable { message }
            | InsightError::Rejected { message } => message,
        }
    }
}

impl LineClient {
    /// LINE's figures for the pushes named `unit` from `first` to `last` (Japan time).
    pub async fn unit_figures(
        &self,
        unit: &str,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<UnitFigures, InsightError> {
        let mut url = self.insight_url(&["message", "event", "aggregation"]);
        url.query_pairs_mut()
            .append_pair("customAggregationUnit", unit)
            .append_pair("from", &query_day(first))
            .append_pair("to", &query_day(last));
        parse_unit_figures(&self.get_json(url).await?)
    }

    /// The account's friends on `day` (Japan time).
    pub async fn follower_figures(&self, day: NaiveDate) -> Result<FollowerFigures, InsightError> {
        let mut url = self.insight_url(&["followers"]);
        url.query_pairs_mut().append_pair("date", &query_day(day));
        parse_follower_figures(&self.get_json(url).await?)
    }

    /// `…/v2/bot/insight/<path>` under the checked base.
    fn insight_url(&self, path: &[&str]) -> Url {
        let mut url = self.push_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop().pop().push("insight").extend(path);
        }
        url
    }

    /// GETs `url` and reads its JSON answer, bounded in size; errors are redacted.
    async fn get_json(&self, url: Url) -> Result<Value, InsightError> {
        let redact = |text: &str| self.redactor.redact(text);
        let response = self
            .http
            .get(url)
            .timeout(INSIGHT_TIMEOUT)
            .bearer_auth(&self.token.0)
            .send()
            .await
            .map_err(|e| InsightError::Unavailable {
                message: redact(&describe(e)),
            })?;
        let status = response.status();
        let body = read_bounded(response).await;
        if !status.is_success() {
            let text = String::from_utf8_lossy(body.as_deref().unwrap_or_default());
            let message = redact(&format!(
                "LINE answered {status}{}",
                line_message(&redact(&text))
            ));
            return Err(match status.as_u16() {
                401 | 403 => InsightError::Refused {
                    status: status.as_u16(),
                    message,
                },
                429 => InsightError::RateLimited { message },
                code if code >= 500 => InsightError::Unavailable { message },
                _ => InsightError::Rejected { message },
            });
        }
        let body = body.map_err(|message| InsightError::Rejected {
            message: redact(&message),
        })?;
        serde_json::from_slice(&body).map_err(|e| InsightError::Rejected {
            message: format!(
                "LINE's answer is not JSON ({}); answer not stored",
                json_problem(&e)
            ),
        })
    }
}

/// What was wrong with a body that is not JSON, in a few words (serde's message would quote
/// the answer).
fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "could not be read",
        serde_json::error::Category::Syntax => "malformed",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "cut short",
    }
}

/// The answer's body, or why it was not read: at most [`MAX_ANSWER_BYTES`], whatever
/// `Content-Length` claims.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_long = || {
        format!(
            "LINE's answer is over {} KiB; not read",
            MAX_ANSWER_BYTES / 1024
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(too_long());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(format!("LINE's answer broke off: {}", describe(error))),
        }
    }
}

fn rejected(message: String) -> InsightError {
    InsightError::Rejected { message }
}

/// `key` of `object`: `None` for null (or absent, unless `required`), else a whole number from
/// 0 to [`MAX_FIGURE`].
fn figure(
    object: &Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<u64>, InsightError> {
    let what = |problem: &str| rejected(format!("LINE's `{key}` {problem}; answer not stored"));
    match object.get(key) {
        None if required => Err(what("is missing")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(count) if count <= MAX_FIGURE => Ok(Some(count)),
            Some(_) => Err(what(&format!("is over {MAX_FIGURE}, not a count of users"))),
            None if number.as_i64().is_some() => Err(what("is negative")),
            None => Err(what("is not a whole number")),
        },
        Some(Value::String(_)) => Err(what("is text, not a number")),
        Some(_) => Err(what("is not a number")),
    }
}

/// A unit's `overview`, checked.
pub(crate) fn parse_unit_figures(answer: &Value) -> Result<UnitFigures, InsightError> {
    let overview = answer
        .get("overview")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            rejected("LINE's answer has no `overview` object; answer not stored".into())
        })?;
    Ok(UnitFigures {
        unique_impression: figure(overview, "uniqueImpression", true)?,
        unique_click: figure(overview, "uniqueClick", false)?,
        unique_media_played: figure(overview, "uniqueMediaPlayed", false)?,
        unique_media_played_100: figure(overview, "uniqueMediaPlayed100Percent", false)?,
    })
}

/// The followers answer, checked: its `status`, and its figures when they are counted.
pub(crate) fn parse_follower_figures(answer: &Value) -> Result<FollowerFigures, InsightError> {
    let object = answer
        .as_object()
        .ok_or_else(|| rejected("LINE's answer is not a JSON object; answer not stored".into()))?;
    let status = object
        .get("status")
        .and_then(Value::as_str)
        .and_then(FollowerStatus::parse)
        .ok_or_else(|| {
            rejected(
                "LINE's `status` is not ready, unready or out_of_service; answer not stored".into(),
            )
        })?;
    let ready = status == FollowerStatus::Ready;
    Ok(FollowerFigures {
        status,
        followers: figure(object, "followers", ready)?,
        targeted_reaches: figure(object, "targetedReaches", ready)?,
        blocks: figure(object, "blocks", ready)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::deliver::ChannelToken;

    #[test]
    fn an_overview_with_nulls_keeps_them_as_withheld() {
        let answer = json!({"overview": {"uniqueImpression": 40, "uniqueClick": null,
            "uniqueMediaPlayed": 0, "uniqueMediaPlayed100Percent": null},
            "messages": [], "clicks": []});
        assert_eq!(
            parse_unit_figures(&answer).unwrap(),
            UnitFigures {
                unique_impression: Some(40),
                unique_click: None,
                unique_media_played: Some(0),
                unique_media_played_100: None,
            }
        );
        let withheld = json!({"overview": {"uniqueImpression": null}});
        assert_eq!(
            parse_unit_figures(&withheld).unwrap(),
            UnitFigures::default()
        );
    }

    #[test]
    fn a_figure_that_is_not_a_count_refuses_the_answer() {
        for (value, problem) in [
            (json!(-5), "negative"),
            (json!("40"), "text"),
            (json!(2.5), "whole number"),
            (json!(1e30), "whole number"),
            (json!(18_446_744_073_709_551_615u64), "over"),
            (json!([1]), "not a number"),
        ] {
            let answer = json!({"overview": {"uniqueImpression": value}});
            let error = parse_unit_figures(&answer).unwrap_err();
            assert!(
                matches!(&error, InsightError::Rejected { message } if message.contains(problem)),
                "{value}: {error:?}"
            );
        }
        for answer in [
            json!({}),
            json!([]),
            json!({"overview": 3}),
            json!({"overview": {}}),
        ] {
            assert!(parse_unit_figures(&answer).is_err(), "{answer}");
        }
    }

    #[test]
    fn followers_need_a_known_status_and_counts_when_ready() {
        let ready = json!({"status": "ready", "followers": 7620, "targetedReaches": 5848,
            "blocks": 237});
        let figures = parse_follower_figures(&ready).unwrap();
        assert_eq!(figures.status, FollowerStatus::Ready);
        assert_eq!(figures.blocks, Some(237));
        let unready = parse_follower_figures(&json!({"status": "unready"})).unwrap();
        assert_eq!(
            (unready.status, unready.followers),
            (FollowerStatus::Unready, None)
        );
        for bad in [
            json!({"status": "done", "followers": 1}),
            json!({"status": "ready"}),
            json!({"status": "ready", "followers": -1, "targetedReaches": 1, "blocks": 1}),
            json!("ready"),
        ] {
            assert!(parse_follower_figures(&bad).is_err(), "{bad}");
        }
    }

    /// A server that answers one request with a chunked body of `size` bytes (no
    /// `Content-Length` to refuse it by), on 127.0.0.1.
    async fn chunked_server(size: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 16 * 1024];
            for _ in 0..size / chunk.len() {
                let framed =
                    [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_long_answer_is_not_read_past_the_limit_whatever_its_headers_say() {
        let base = chunked_server(4 * MAX_ANSWER_BYTES).await;
        let client = LineClient::new(&base, ChannelToken::new("t".into())).unwrap();
        let day = "2026-10-01".parse().unwrap();
        let error = client.follower_figures(day).await.unwrap_err();
        assert!(
            matches!(&error, InsightError::Rejected { message } if message.contains("over 256 KiB")),
            "{error:?}"
        );
    }

    #[test]
    fn the_insight_endpoints_sit_beside_the_push_endpoint_under_the_base() {
        let client = |base: &str| LineClient::new(base, ChannelToken::new("t".into())).unwrap();
        let proxy = client("https://proxy.example/line/");
        assert_eq!(
            proxy.insight_url(&["followers"]).as_str(),
            "https://proxy.example/line/v2/bot/insight/followers"
        );
        assert_eq!(
            client("https://api.line.me")
                .insight_url(&["message", "event", "aggregation"])
                .as_str(),
            "https://api.line.me/v2/bot/insight/message/event/aggregation"
        );
    }
}
