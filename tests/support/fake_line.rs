//! A fake LINE Messaging API push endpoint on 127.0.0.1, for tests and the delivery bench.
//!
//! It behaves like LINE where steprule depends on it: `POST /v2/bot/message/push` checks the
//! bearer token (401), the body's shape (400), and the `X-Line-Retry-Key`: the first accepted
//! request for a key gets 200 and a fresh `x-line-request-id`; a later request with the same
//! key gets 409 with `x-line-accepted-request-id` naming the first, and is not delivered again.
//!
//! Faults are injected on demand. Which fault a request gets is a pure function of the seed, the
//! retry key and how many times that key was seen before, so the same request sequence always
//! meets the same faults, whatever the order in which concurrent requests arrive. "After
//! accepting" faults record the delivery and then answer 500 (or drop the connection): the
//! client cannot tell that the message went out, and its retry must meet the 409.
//!
//! The server runs on its own tokio runtime, so synchronous tests can start it, run the binary
//! against it and read what it saw.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The channel access token the fake accepts unless told otherwise.
pub const TOKEN: &str = "fake-line-token-7Qx2";

/// What can go wrong at LINE, each as a fraction of requests (0.0 to 1.0; they add up).
#[derive(Debug, Clone)]
pub struct Faults {
    /// Seeds the fault choice.
    pub seed: u64,
    /// Every request waits this long before it is answered.
    pub latency: Duration,
    /// 500 without delivering.
    pub error_before: f64,
    /// Delivered, then 500: the client does not know it went out.
    pub error_after: f64,
    /// 429 with `Retry-After: 1`, without delivering.
    pub too_many_requests: f64,
    /// The connection is closed without a response, without delivering.
    pub drop_before: f64,
    /// Delivered, then the connection is closed without a response.
    pub drop_after: f64,
    /// The first this-many requests for every retry key get 500 without delivering, before
    /// the fractions above are drawn.
    pub error_first_attempts: usize,
    /// Recipients LINE refuses for good (400), besides those whose id is not a LINE user id.
    pub reject_to: HashSet<String>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            seed: 1,
            latency: Duration::ZERO,
            error_before: 0.0,
            error_after: 0.0,
            too_many_requests: 0.0,
            drop_before: 0.0,
            drop_after: 0.0,
            error_first_attempts: 0,
            reject_to: HashSet::new(),
        }
    }
}

impl Faults {
    /// No faults, no latency.
    pub fn none() -> Faults {
        Faults::default()
    }

    pub fn with_latency(latency: Duration) -> Faults {
        Faults {
            latency,
            ..Faults::default()
        }
    }
}

/// The fault a request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    ErrorBefore,
    ErrorAfter,
    TooManyRequests,
    DropBefore,
    DropAfter,
}

/// One message LINE accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub to: String,
    pub retry_key: Option<String>,
    /// The first `customAggregationUnits` entry (steprule puts the step id there), or "".
    pub unit: String,
    pub request_id: String,
    pub messages: Value,
    pub at: Instant,
}

/// One request as it arrived, whatever was answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub to: Option<String>,
    pub retry_key: Option<String>,
    pub status: u16,
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct Seen {
    requests: Vec<Request>,
    deliveries: Vec<Delivery>,
    /// retry key → index into `deliveries`.
    accepted: HashMap<String, usize>,
    /// retry key → how many requests carried it.
    attempts: HashMap<String, usize>,
    /// retry keys that were answered 409 (and the answer reached the client).
    conflicts: HashMap<String, usize>,
    faults: HashMap<Fault, usize>,
    /// Header or body problems that LINE would refuse, as text: the tests expect none.
    protocol_errors: Vec<String>,
    unauthorized: usize,
    next_request_id: u64,
}

struct Shared {
    token: String,
    faults: Faults,
    seen: Mutex<Seen>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running fake LINE API. Dropping it stops the server.
pub struct FakeLine {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeLine {
    /// Starts a fake that accepts [`TOKEN`].
    pub fn start(faults: Faults) -> FakeLine {
        FakeLine::start_with_token(TOKEN, faults)
    }

    /// Starts a fake that accepts only `token`.
    pub fn start_with_token(token: &str, faults: Faults) -> FakeLine {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-line")
            .enable_all()
            .build()
            .expect("a tokio runtime for the fake LINE server");
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            faults,
            seen: Mutex::new(Seen::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new()
            .route("/v2/bot/message/push", post(push))
            .with_state(Arc::clone(&shared))
            .into_make_service_with_connect_info::<Conn>();
        runtime.spawn(async move {
            axum::serve(KillableListener(listener), app)
                .await
                .expect("the fake LINE server runs");
        });
        FakeLine {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`, for `--line-api-base`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.shared.seen.lock().expect("fake LINE state")
    }

    /// Every request that reached the handler.
    pub fn requests(&self) -> Vec<Request> {
        self.seen().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.seen().requests.len()
    }

    /// Every message accepted, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.seen().deliveries.clone()
    }

    /// Messages accepted (each retry key counted once).
    pub fn accepted(&self) -> usize {
        self.seen().deliveries.len()
    }

    /// How many messages went to `to` for `unit` (the step id with `--custom-aggregation`).
    pub fn deliveries_to(&self, to: &str, unit: &str) -> usize {
        self.seen()
            .deliveries
            .iter()
            .filter(|d| d.to == to && d.unit == unit)
            .count()
    }

    /// (to, unit) → messages accepted.
    pub fn delivery_counts(&self) -> HashMap<(String, String), usize> {
        let mut counts = HashMap::new();
        for d in &self.seen().deliveries {
            *counts.entry((d.to.clone(), d.unit.clone())).or_default() += 1;
        }
        counts
    }

    /// The request id of the delivery accepted for `retry_key`.
    pub fn accepted_request_id(&self, retry_key: &str) -> Option<String> {
        let seen = self.seen();
        let index = *seen.accepted.get(retry_key)?;
        Some(seen.deliveries[index].request_id.clone())
    }

    /// How many requests carried `retry_key`.
    pub fn attempts_for_key(&self, retry_key: &str) -> usize {
        self.seen().attempts.get(retry_key).copied().unwrap_or(0)
    }

    /// How many requests went to `to`, whatever the answer.
    pub fn requests_to(&self, to: &str) -> usize {
        self.seen()
            .requests
            .iter()
            .filter(|r| r.to.as_deref() == Some(to))
            .count()
    }

    /// 409 answers that reached the client.
    pub fn conflicts(&self) -> usize {
        self.seen().conflicts.values().sum()
    }

    /// Retry keys that got at least one 409 that reached the client.
    pub fn keys_answered_conflict(&self) -> usize {
        self.seen().conflicts.len()
    }

    /// How many requests met each fault.
    pub fn faults(&self) -> HashMap<Fault, usize> {
        self.seen().faults.clone()
    }

    pub fn unauthorized(&self) -> usize {
        self.seen().unauthorized
    }

    /// Requests LINE would have refused for their headers or body (not counting 401s and the
    /// recipients in `reject_to`).
    pub fn protocol_errors(&self) -> Vec<String> {
        self.seen().protocol_errors.clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// The most requests that arrived within any 1 s (a sliding window, not calendar seconds).
    pub fn max_requests_in_any_second(&self) -> usize {
        let mut times: Vec<Instant> = self.seen().requests.iter().map(|r| r.at).collect();
        times.sort();
        let (mut start, mut best) = (0, 0);
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// Requests per whole second since the first request.
    pub fn requests_per_second(&self) -> Vec<usize> {
        let seen = self.seen();
        let Some(first) = seen.requests.iter().map(|r| r.at).min() else {
            return Vec::new();
        };
        let mut counts = Vec::new();
        for r in &seen.requests {
            let second = r.at.duration_since(first).as_secs() as usize;
            if counts.len() <= second {
                counts.resize(second + 1, 0);
            }
            counts[second] += 1;
        }
        counts
    }

    /// Waits until `accepted()` reaches `n`; false on timeout.
    pub fn wait_for_accepted(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.accepted() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.accepted() >= n
    }
}

impl Drop for FakeLine {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// FNV-1a then a splitmix64 finish: the fault for (seed, key, attempt) as a number in [0, 1).
fn draw(seed: u64, key: &str, attempt: usize) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in key.bytes().chain((attempt as u64).to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

fn choose_fault(faults: &Faults, key: &str, attempt: usize) -> Option<Fault> {
    if attempt < faults.error_first_attempts {
        return Some(Fault::ErrorBefore);
    }
    let mut x = draw(faults.seed, key, attempt);
    for (fraction, fault) in [
        (faults.error_before, Fault::ErrorBefore),
        (faults.error_after, Fault::ErrorAfter),
        (faults.too_many_requests, Fault::TooManyRequests),
        (faults.drop_before, Fault::DropBefore),
        (faults.drop_after, Fault::DropAfter),
    ] {
        if x < fraction {
            return Some(fault);
        }
        x -= fraction;
    }
    None
}

/// Counts requests in flight while it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the handler decided, before the latency is served. `Conflict` carries the id of the
/// request that was accepted.
enum Answer {
    Ok,
    Conflict(String),
    Status(StatusCode, String),
    Drop,
}

async fn push(
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
            r.headers_mut()
                .insert("x-line-accepted-request-id", header(&accepted_id));
            r
        }
        Answer::Status(status, message) => {
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

/// `to`, the aggregation unit ("" when none) and the messages, or what LINE would say is wrong.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<(String, String, Value), String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(format!(
            "Content-Type is `{content_type}`, not application/json"
        ));
    }
    let body: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let to = body["to"]
        .as_str()
        .ok_or("The property, 'to', is missing or not a string")?
        .to_owned();
    let messages = body["messages"]
        .as_array()
        .ok_or("The property, 'messages', is missing or not an array")?;
    if messages.is_empty() || messages.len() > 5 {
        return Err(format!("{} messages: LINE takes 1 to 5", messages.len()));
    }
    for message in messages {
        let kind = message["type"]
            .as_str()
            .ok_or("a message without a `type`")?;
        if kind == "text" && message["text"].as_str().is_none_or(str::is_empty) {
            return Err("a text message without text".into());
        }
    }
    let unit = match body.get("customAggregationUnits") {
        None => String::new(),
        Some(units) => {
            let units = units
                .as_array()
                .filter(|u| u.len() == 1)
                .ok_or("customAggregationUnits must hold exactly one unit")?;
            let unit = units[0].as_str().unwrap_or("");
            let ok = (1..=30).contains(&unit.len())
                && unit.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(format!("bad customAggregationUnits entry {}", units[0]));
            }
            unit.to_owned()
        }
    };
    Ok((to, unit, Value::Array(messages.clone())))
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// LINE user ids are `U` and 32 lower-case hex digits.
fn is_line_user_id(text: &str) -> bool {
    text.len() == 33
        && text.starts_with('U')
        && text[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Accepts connections whose handler can ask for them to be closed without a response: the
/// client then sees a connection error, as when a load balancer drops a connection.
struct KillableListener(TcpListener);

/// Given to the handler: set `kill` and the connection closes instead of answering.
#[derive(Clone, Debug)]
struct Conn {
    kill: Arc<AtomicBool>,
}

struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (KillableStream, Conn) {
        loop {
            if let Ok((inner, _)) = self.0.accept().await {
                let _ = inner.set_nodelay(true);
                let kill = Arc::new(AtomicBool::new(false));
                let conn = Conn {
                    kill: Arc::clone(&kill),
                };
                return (KillableStream { inner, kill }, conn);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        Ok(Conn {
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Conn {
        stream.remote_addr().clone()
    }
}

impl KillableStream {
    fn killed(&self) -> bool {
        self.kill.load(Ordering::SeqCst)
    }
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "dropped by the fake LINE server",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
