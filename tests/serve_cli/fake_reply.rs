//! A fake LINE reply endpoint (`POST /v2/bot/message/reply`) on 127.0.0.1, on its own runtime:
//! it checks the bearer token and the body's shape as LINE would and keeps every reply.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// One reply LINE accepted.
#[derive(Debug, Clone)]
pub struct Replied {
    pub reply_token: String,
    pub messages: Vec<Value>,
}

impl Replied {
    /// The text of every text message, joined.
    pub fn text(&self) -> String {
        self.messages
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Default)]
struct Seen {
    replies: Vec<Replied>,
    refused: usize,
}

pub struct FakeReply {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    runtime: Option<tokio::runtime::Runtime>,
}

async fn reply(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {}", crate::TOKEN));
    let token = body["replyToken"].as_str().map(str::to_owned);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let mut seen = seen.lock().unwrap();
    match token {
        Some(reply_token) if authorized && (1..=5).contains(&messages.len()) => {
            seen.replies.push(Replied {
                reply_token,
                messages,
            });
            StatusCode::OK
        }
        _ => {
            seen.refused += 1;
            StatusCode::BAD_REQUEST
        }
    }
}

impl FakeReply {
    pub fn start() -> FakeReply {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v2/bot/message/reply", post(reply))
            .with_state(Arc::clone(&seen));
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeReply {
            addr,
            seen,
            runtime: Some(runtime),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn replies(&self) -> Vec<Replied> {
        self.seen.lock().unwrap().replies.clone()
    }

    pub fn refused(&self) -> usize {
        self.seen.lock().unwrap().refused
    }

    /// Waits until `n` replies arrived; then returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Replied> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.replies().len() < n {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.replies()
    }
}

impl Drop for FakeReply {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
