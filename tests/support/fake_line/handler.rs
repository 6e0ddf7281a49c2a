//! The `POST /v2/bot/message/push` handler: checks the token, the body and the retry key,
//! applies the fault the request meets, records what happened, and answers as LINE would.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::faults::{choose_fault, Fault};
use super::listener::Conn;
use super::protocol::{is_line_user_id, is_uuid, parse_body};
use super::state::{Delivery, InFlight, Request, Seen, Shared};

/// What the handler decided, before the latency is served. `Conflict` carries the id of the
/// request that was accepted.
enum Answer {
    Ok,
    Conflict(String),
    Status(StatusCode, String),
    Drop,
}

/// Answers one push request as LINE would, after the configured latency.
pub(super) async fn push(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let _in_flight = InFlight::enter(&shared);
    let (answer, request_id) = handle(&shared, arrived, &headers, &body);
    if !shared.faults.latency.is_zero() {
        tokio::time::sleep(shared.faults.latency).await;
    }
    let mut response = match answer {
        Answer::Ok => json_response(
            StatusCode::OK,
            json!({"sentMessages": [{"id": request_id, "quoteToken": "q"}]}),
        ),
        Answer::Conflict(accepted_id) => {
            let mut r = json_response(
                StatusCode::CONFLICT,
                json!({"message": "The retry key is already accepted"}),
            );
            if !shared.faults.conflict_without_accepted_id {
                r.headers_mut()
                    .insert("x-line-accepted-request-id", header(&accepted_id));
            }
            r
        }
        Answer::Status(status, message) => {
            let message = if shared.faults.echo_authorization {
                let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
                format!("{message} (Authorization: {})", sent.unwrap_or(""))
            } else {
                message
            };
            let mut r = json_response(status, json!({ "message": message }));
            if status == StatusCode::TOO_MANY_REQUESTS {
                r.headers_mut().insert("retry-after", header("1"));
            }
            r
        }
        Answer::Drop => {
            // The stream refuses every read and write from now on: hyper closes it unanswered.
            conn.kill.store(true, Ordering::SeqCst);
            return StatusCode::OK.into_response();
        }
    };
    response
        .headers_mut()
        .insert("x-line-request-id", header(&request_id));
    response
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(value)).into_response()
}

fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a header value")
}

/// Everything but the latency: decides the answer, gives the request its id and records what
/// happened.
fn handle(shared: &Shared, arrived: Instant, headers: &HeaderMap, body: &[u8]) -> (Answer, String) {
    let mut seen = shared.seen.lock().expect("fake LINE state");
    let seen = &mut *seen;
    seen.next_request_id += 1;
    let request_id = format!(
        "{:08x}-fa4e-4000-8000-{:012x}",
        shared.faults.seed as u32, seen.next_request_id
    );
    let mut request = Request {
        at: arrived,
        to: None,
        retry_key: None,
        status: 0,
        fault: None,
    };
    let answer = decide(shared, seen, &mut request, &request_id, headers, body);
    request.status = match &answer {
        Answer::Ok => 200,
        Answer::Conflict(_) => 409,
        Answer::Status(status, _) => status.as_u16(),
        Answer::Drop => 0,
    };
    if let Some(fault) = request.fault {
        *seen.faults.entry(fault).or_default() += 1;
    }
    if let (Answer::Conflict(_), Some(key)) = (&answer, &request.retry_key) {
        *seen.conflicts.entry(key.clone()).or_default() += 1;
    }
    seen.requests.push(request);
    (answer, request_id)
}

fn decide(
    shared: &Shared,
    seen: &mut Seen,
    request: &mut Request,
    request_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("authorization") != Some(&format!("Bearer {}", shared.token)) {
        seen.unauthorized += 1;
        return Answer::Status(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Confirm that the access token in the authorization header is valid.".into(),
        );
    }
    let (to, unit, messages) = match parse_body(headers, body) {
        Ok(parsed) => parsed,
        Err(problem) => {
            seen.protocol_errors.push(problem.clone());
            return Answer::Status(StatusCode::BAD_REQUEST, problem);
        }
    };
    request.to = Some(to.clone());
    let key = match text("x-line-retry-key") {
        None => None,
        Some(key) if is_uuid(key) => Some(key.to_ascii_lowercase()),
        Some(key) => {
            seen.protocol_errors
                .push(format!("X-Line-Retry-Key is not a UUID: {key}"));
            return Answer::Status(
                StatusCode::BAD_REQUEST,
                "The retry key must be a UUID".into(),
            );
        }
    };
    request.retry_key = key.clone();
    let attempt = match &key {
        Some(key) => {
            let n = seen.attempts.entry(key.clone()).or_default();
            *n += 1;
            *n - 1
        }
        None => {
            seen.protocol_errors
                .push(format!("no X-Line-Retry-Key (to {to})"));
            seen.requests.len()
        }
    };
    let fault = choose_fault(&shared.faults, key.as_deref().unwrap_or("no key"), attempt);
    request.fault = fault;
    match fault {
        Some(Fault::ErrorBefore) => {
            return Answer::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".into(),
            )
        }
        Some(Fault::TooManyRequests) => {
            return Answer::Status(
                StatusCode::TOO_MANY_REQUESTS,
                "The API rate limit has been exceeded. Try again later.".into(),
            )
        }
        Some(Fault::DropBefore) => return Answer::Drop,
        _ => {}
    }
    if shared.faults.reject_to.contains(&to) || !is_line_user_id(&to) {
        return Answer::Status(
            StatusCode::BAD_REQUEST,
            "The property, 'to', in the request body is invalid (line: -, column: -)".into(),
        );
    }
    let accepted_before = key.as_ref().and_then(|k| seen.accepted.get(k)).copied();
    let answer = match accepted_before {
        Some(index) => Answer::Conflict(seen.deliveries[index].request_id.clone()),
        None => {
            if let Some(key) = &key {
                seen.accepted.insert(key.clone(), seen.deliveries.len());
            }
            seen.deliveries.push(Delivery {
                to,
                retry_key: key,
                unit,
                request_id: request_id.to_owned(),
                messages,
                at: request.at,
            });
            Answer::Ok
        }
    };
    match fault {
        Some(Fault::ErrorAfter) => Answer::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error".into(),
        ),
        Some(Fault::DropAfter) => Answer::Drop,
        _ => answer,
    }
}
