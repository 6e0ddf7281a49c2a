//! The HTTP side of `serve`: the routes, and the limits that keep a hostile client from
//! holding the server: bodies over 1 MiB are refused (413), every request has a deadline,
//! headers must arrive in time, connections and webhook bodies in memory are counted.
//! axum routes; hyper's HTTP/1 server runs each connection directly, so that its header
//! timeout and buffer size can be set (axum's own `serve` sets neither).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::log::Log;
use super::redirect::redirect;
use super::reply::Replier;
use super::signature::ChannelSecret;
use super::webhook;
use super::writer::Work;

/// The largest webhook body taken; LINE's are a few kilobytes.
pub const MAX_BODY: usize = 1024 * 1024;
/// How much of an oversized body is read and dropped before answering 413.
const MAX_DISCARD: usize = 8 * 1024 * 1024;

/// How long things may take, and how many there may be at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's whole life, body included.
    pub request: Duration,
    /// Headers must have arrived this long after a connection starts waiting for them (also
    /// closes idle keep-alive connections).
    pub headers: Duration,
    pub connections: usize,
    /// Webhook bodies read at once (each up to [`MAX_BODY`]).
    pub webhook_bodies: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request: Duration::from_secs(10),
            headers: Duration::from_secs(10),
            connections: 1024,
            webhook_bodies: 64,
            drain: Duration::from_secs(15),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub secret: ChannelSecret,
    pub writer: mpsc::Sender<Work>,
    pub replier: Arc<Replier>,
    pub log: Log,
    pub webhook_bodies: Arc<Semaphore>,
    pub limits: Limits,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/line/webhook",
            post(webhook_handler).layer(middleware::from_fn_with_state(
                state.clone(),
                one_body_at_a_time,
            )),
        )
        .route("/r/{token}", get(redirect))
        .route("/healthz", get(healthz))
        // Only the webhook reads a body (up to MAX_BODY, itself); the rest take none.
        .layer(DefaultBodyLimit::max(0))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            deadline_and_log,
        ))
        .with_state(state)
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}

/// Verify, parse, store, answer; replies go out after the answer.
async fn webhook_handler(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let Some(body) = read_body(&headers, body).await else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 1 MiB\n");
    };
    let signature = headers.get("x-line-signature").map(|v| v.as_bytes());
    if !state.secret.verifies(&body, signature) {
        return text(
            StatusCode::UNAUTHORIZED,
            "invalid or missing x-line-signature\n",
        );
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/json\n",
        );
    }
    let webhook = match webhook::parse(&body) {
        Ok(webhook) => webhook,
        Err(error) => return text(StatusCode::BAD_REQUEST, &format!("{error}\n")),
    };
    if webhook.events.is_empty() {
        return StatusCode::OK.into_response();
    }
    let (answer, answered) = oneshot::channel();
    let work = Work::Webhook {
        events: webhook.events,
        answer,
    };
    if state.writer.send(work).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match answered.await {
        Ok(Ok(replies)) => {
            state.replier.send(replies);
            StatusCode::OK.into_response()
        }
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the ledger could not store the events\n",
        ),
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let (answer, answered) = oneshot::channel();
    let asked = state.writer.send(Work::Ping { answer });
    let ok = tokio::time::timeout(Duration::from_secs(2), async {
        asked.await.is_ok() && answered.await.unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    if ok {
        text(StatusCode::OK, "ok\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the ledger does not answer\n",
        )
    }
}

/// The body, or `None` when it is over [`MAX_BODY`]. An oversized body is read on (and
/// dropped) up to [`MAX_DISCARD`] before the 413, so that the client, still sending, reads the
/// answer instead of a reset connection; past that, or when its length says so, the answer
/// comes at once.
async fn read_body(headers: &HeaderMap, mut body: Body) -> Option<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_DISCARD as u64) {
        return None;
    }
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        // A broken upload is answered like an oversized one: nothing is read from it.
        let Ok(frame) = frame else { return None };
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen > MAX_DISCARD {
                return None;
            }
            if seen <= MAX_BODY {
                bytes.extend_from_slice(&data);
            }
        }
    }
    (seen <= MAX_BODY).then(|| Bytes::from(bytes))
}

/// Webhook bodies are read only while a permit is held, so that at most
/// `limits.webhook_bodies` MiB of them are in memory.
async fn one_body_at_a_time(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match Arc::clone(&state.webhook_bodies).acquire_owned().await {
        Ok(_permit) => next.run(request).await,
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}

/// Every request gets a deadline and one access-log line: method, path (a tracked token cut
/// short), status, latency. Nothing from the body or the other headers.
async fn deadline_and_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = shortened(request.uri().path());
    let response = match tokio::time::timeout(state.limits.request, next.run(request)).await {
        Ok(response) => response,
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "timed out\n"),
    };
    state.log.line(format!(
        "{method} {path} {} {:.1}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    ));
    response
}

/// The path as the log shows it: a tracked token keeps its first four characters, anything
/// else long or odd is cut.
fn shortened(path: &str) -> String {
    if let Some(token) = path.strip_prefix("/r/") {
        let head: String = token.chars().take(4).collect();
        return format!("/r/{}…", crate::printable::printable(&head));
    }
    let head: String = path.chars().take(64).collect();
    let more = if head.len() < path.len() { "…" } else { "" };
    format!("{}{more}", crate::printable::printable(&head))
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting, lets the
/// requests in flight finish (at most `limits.drain`) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.connections));
    let (closing, closing_seen) = watch::channel(false);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit,
            _ = until_true(&mut stop) => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = until_true(&mut stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut closing = closing_seen.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.headers)
                .max_buf_size(64 * 1024);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = until_true(&mut closing) => {
                    // Idle: closed now; mid-request: closed once it is answered.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let all = u32::try_from(limits.connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.drain, connections.acquire_many(all)).await;
}

async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn slow_headers_are_cut_off_and_a_stop_does_not_wait_for_idle_connections() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop_tx, stop) = watch::channel(false);
            let limits = Limits {
                headers: Duration::from_millis(200),
                drain: Duration::from_secs(5),
                ..Limits::default()
            };
            let router = Router::new().route("/", get(|| async { "hi" }));
            let server = tokio::spawn(serve(listener, router, limits, stop));
            // Headers that never end: the connection is closed after the header timeout.
            let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
            slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let mut buf = [0u8; 512];
            let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
            assert!(read.is_ok(), "closed within the header timeout");
            assert!(started.elapsed() < Duration::from_secs(3));
            // An idle keep-alive connection does not hold a shutdown for the whole drain.
            let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
            idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = idle.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            let stopping = std::time::Instant::now();
            stop_tx.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(4), server)
                .await
                .expect("the server stops")
                .unwrap();
            assert!(stopping.elapsed() < Duration::from_secs(4));
        });
    }

    #[test]
    fn tokens_are_cut_short_in_the_log() {
        assert_eq!(shortened("/r/AbCdEfGhIjKlMnOpQrStUv"), "/r/AbCd…");
        assert_eq!(shortened("/line/webhook"), "/line/webhook");
        assert_eq!(
            shortened(&format!("/{}", "x".repeat(100))).chars().count(),
            65
        );
    }
}
