//! `steprule serve`: the receiving side. LINE's webhooks (follows, blocks, postbacks, messages)
//! and taps on tracked links come back here and are stored in the ledger beside the sends;
//! a LINE friend is linked to a patient by the number on their clinic card and their birth
//! date.
//!
//! One file per concern: `http` (routes, limits, the connection loop), `signature` (webhook
//! signatures), `webhook` (typed events from LINE's JSON), `attempt` and `link` (reading a
//! linking attempt, finding the patient), `writer` (the one thread that writes the ledger),
//! `reply` (the link templates sent back), `redirect` (`/r/{token}`), `schedule`
//! (`--run-every`) and `log`. This module starts them together and stops them in order.

pub mod attempt;
pub mod http;
pub mod link;
pub mod log;
pub mod redirect;
pub mod reply;
pub mod schedule;
pub mod signature;
pub mod webhook;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono_tz::Tz;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::ledger::ServeLedger;
use http::{AppState, Limits};
use link::SharedDirectory;
use log::Log;
use reply::Replier;
use signature::ChannelSecret;
use writer::{Work, Writer};

/// What the server needs besides the ledger.
pub struct ServerParts {
    pub secret: ChannelSecret,
    pub replier: Replier,
    pub directory: Arc<SharedDirectory>,
    pub timezone: Tz,
    pub limits: Limits,
    pub log: Log,
}

/// A server that is running; [`Server::wait`] returns once it has stopped.
pub struct Server {
    addr: SocketAddr,
    serving: tokio::task::JoinHandle<()>,
    writer: JoinHandle<()>,
    work: mpsc::Sender<Work>,
    replier: Arc<Replier>,
    drain: std::time::Duration,
}

impl Server {
    /// Binds `listen` and starts serving on `runtime`, with `ledger` owned by a writer thread.
    /// Stops when `stop` turns true.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        listen: SocketAddr,
        ledger: Box<dyn ServeLedger>,
        parts: ServerParts,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<Server> {
        let listener = runtime.block_on(TcpListener::bind(listen))?;
        let addr = listener.local_addr()?;
        let (work, queue) = mpsc::channel(writer::QUEUE);
        let writer = Writer {
            ledger,
            directory: parts.directory,
            timezone: parts.timezone,
            log: parts.log.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("serve-writer".into())
            .spawn(move || writer.run(queue))?;
        let replier = Arc::new(parts.replier);
        let state = AppState {
            secret: parts.secret,
            writer: work.clone(),
            replier: Arc::clone(&replier),
            log: parts.log,
            webhook_bodies: Arc::new(Semaphore::new(parts.limits.webhook_bodies)),
            limits: parts.limits,
        };
        let router = http::router(state);
        let serving = runtime.spawn(http::serve(listener, router, parts.limits, stop));
        Ok(Server {
            addr,
            serving,
            writer,
            work,
            replier,
            drain: parts.limits.drain,
        })
    }

    /// The address it listens on (the port chosen, for `--listen 127.0.0.1:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the server to stop (after `stop`): requests in flight are answered, the writer
    /// commits what it holds, the replies in flight are sent.
    pub fn wait(self, runtime: &tokio::runtime::Runtime) {
        let _ = runtime.block_on(self.serving);
        // After the work queued before it; a connection that outlived the drain and sends
        // later finds the writer gone and answers 503.
        let _ = runtime.block_on(self.work.send(Work::Stop));
        let _ = self.writer.join();
        runtime.block_on(self.replier.drain(self.drain));
    }
}
