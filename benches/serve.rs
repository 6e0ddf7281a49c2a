//! `steprule serve` under LINE's webhook load: the release binary on 127.0.0.1, driven by a
//! client in this process at a fixed rate (2,000 signed webhook requests/s for 20 s by default)
//! on the same machine. Each request is scheduled in advance and its latency measured from its
//! scheduled send time, not from when it was actually sent, so a server that stalls is charged
//! for every request that had to wait (no coordinated omission).
//!
//! It prints the achieved rate, p50/p99/max latency and errors, then stops the server (SIGTERM)
//! and checks the ledger: every event answered 200 is stored exactly once ("nothing lost"). The
//! exit status is a failure when an event is missing, or p99 ≥ 50 ms, or the rate falls short
//! of 95% of the target.
//!
//! Run: `cargo bench --bench serve`; `STEPRULE_BENCH_RATE=500 STEPRULE_BENCH_SECONDS=5` for a
//! quicker one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[path = "support/figures.rs"]
mod figures;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use figures::thousands;
use serde_json::json;
use steprule::ledger::{EventFilter, Ledger};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const TARGET_P99: Duration = Duration::from_millis(50);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request's outcome: status (0 = no answer) and latency from its scheduled time.
struct Outcome {
    status: u16,
    latency: Duration,
}

fn main() -> ExitCode {
    let rate = env_number("STEPRULE_BENCH_RATE", 2000).max(1);
    let seconds = env_number("STEPRULE_BENCH_SECONDS", 20).max(1);
    let total = rate * seconds;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_steprule"))
        .arg("serve")
        .arg(root.join("tests/fixtures/serve/clinic.step"))
        .arg("--patients")
        .arg(root.join("tests/fixtures/serve/patients.csv"))
        .arg("--ledger")
        .arg(&ledger)
        .args(["--listen", "127.0.0.1:0"])
        .env("LINE_CHANNEL_SECRET", SECRET)
        .env_remove("LINE_CHANNEL_ACCESS_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("steprule serve starts");
    let (found, address) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let draining = std::thread::spawn(move || {
        let mut lines = 0u64;
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
            lines += 1;
        }
        lines
    });
    let addr: String = address
        .recv_timeout(Duration::from_secs(30))
        .expect("serve listens");
    let url = format!("http://{addr}/line/webhook");

    // Bodies and signatures are made before the clock starts: the client's own work stays out
    // of the measured latencies.
    // Signed here as LINE signs, not with the server's own code.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let base_ms = chrono::Utc::now().timestamp_millis();
    let requests: Vec<(String, Vec<u8>, String)> = (0..total)
        .map(|i| {
            let id = format!("01BENCH{i:019}");
            let kind = if i % 2 == 0 { "follow" } else { "unfollow" };
            let body = serde_json::to_vec(&json!({
                "destination": "U0000000000000000000000000000dead",
                "events": [{
                    "type": kind,
                    "mode": "active",
                    "timestamp": base_ms + i as i64,
                    "source": { "type": "user", "userId": format!("U{:032x}", i % 5000) },
                    "webhookEventId": id,
                    "deliveryContext": { "isRedelivery": false },
                }],
            }))
            .unwrap();
            let signature = base64::engine::general_purpose::STANDARD
                .encode(ring::hmac::sign(&key, &body).as_ref());
            (id, body, signature)
        })
        .collect();

    println!(
        "serve: {} signed webhook requests at {} /s for {seconds} s against {addr}",
        thousands(total),
        thousands(rate)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let (outcomes, elapsed) = runtime.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut tasks = Vec::with_capacity(requests.len());
        for (i, (_, body, signature)) in requests.iter().enumerate() {
            let scheduled = start + interval.mul_f64(i as f64);
            tokio::time::sleep_until(scheduled).await;
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-line-signature", signature)
                .body(body.clone());
            tasks.push(tokio::spawn(async move {
                let status = match request.send().await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                Outcome {
                    status,
                    latency: tokio::time::Instant::now() - scheduled,
                }
            }));
        }
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        (outcomes, start.elapsed())
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let log_lines = draining.join().unwrap();

    let ok: Vec<usize> = (0..outcomes.len())
        .filter(|i| outcomes[*i].status == 200)
        .collect();
    let errors = outcomes.len() - ok.len();
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let (p50, p99, max) = (pick(0.5), pick(0.99), *latencies.last().unwrap());
    let achieved = outcomes.len() as f64 / elapsed.as_secs_f64();

    let mut stored = HashSet::new();
    let mut duplicates = 0u64;
    Ledger::open(&ledger)
        .unwrap()
        .events(&EventFilter::default(), |e| {
            if !stored.insert(e.id) {
                duplicates += 1;
            }
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let lost = ok
        .iter()
        .filter(|i| !stored.contains(&requests[**i].0))
        .count();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "achieved {achieved:.0} req/s over {:.1} s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        ms(p50),
        ms(p99),
        ms(max)
    );
    println!(
        "errors {errors}; stored {} events ({} answered 200), lost {lost}, duplicates {duplicates}; \
         server exit {:?}, {} log lines",
        thousands(stored.len() as u64),
        thousands(ok.len() as u64),
        exit.code(),
        thousands(log_lines)
    );
    let mut failed = false;
    for (good, what) in [
        (
            lost == 0 && duplicates == 0,
            "every event answered 200 stored once".to_owned(),
        ),
        (
            p99 < TARGET_P99,
            format!("p99 < {} ms", TARGET_P99.as_millis()),
        ),
        (
            achieved >= rate as f64 * 0.95,
            format!("rate ≥ 95% of {rate}/s"),
        ),
        (exit.success(), "the server exits 0 on SIGTERM".to_owned()),
    ] {
        println!("  {} {what}", if good { "ok  " } else { "MISS" });
        failed |= !good;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
