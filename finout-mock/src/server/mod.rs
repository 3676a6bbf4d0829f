//! Serving the router over TCP with limits a public endpoint needs: a cap on connections,
//! and on each account's share of them; a timeout on reading a request's headers (which also
//! closes a connection idle between requests), deadlines on its body (in total, and a
//! minimum rate) and on writing its answer; a cap on the bytes of answers an account's
//! clients leave unread; and a graceful shutdown.
//!
//! At the cap the server stops accepting: new connections wait in the kernel's backlog
//! until a connection closes (a half-sent request is closed by the header timeout), so a
//! flood of idle connections delays a real client by at most the header timeout and never
//! exhausts the process's file descriptors. An account's connections past its share are
//! answered 429 and closed as soon as their first request is authenticated, so one account
//! (one user can mint 100 tokens) cannot hold the shared cap with slow bodies or unread
//! answers.

mod io;
pub(crate) mod tenants;

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use axum::{Extension, Router};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower_layer::Layer;

/// The server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Connections open at once. Default 1,024.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, counted from the connection's
    /// start or the previous response: a connection that sends nothing (or half a request)
    /// for this long is closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a shutdown waits for requests in flight. Default 10 s.
    pub shutdown_grace: Duration,
    /// Connections one account may hold at once (counted from their latest authenticated
    /// request); the next is answered 429 and closed. Default 64.
    pub max_connections_per_account: usize,
    /// How long a request's body may take to arrive, in total, counted from its headers;
    /// past it, 408 and the connection closes. Default 10 s.
    pub body_read_timeout: Duration,
    /// The slowest a body may arrive after its first second, in bytes a second on average;
    /// slower, 408 and the connection closes. Default 1,024.
    pub min_body_rate: u64,
    /// How long an answer's write may make no progress (the client reads nothing) before
    /// the connection closes. Default 30 s.
    pub write_timeout: Duration,
    /// Bytes of answers one account's clients may leave unread at once (each answer's bytes
    /// are held from when it is ready until it is sent); the next answer is 429. Default
    /// 32 MiB, larger than any one answer.
    pub answer_bytes_per_account: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_connections_per_account: 64,
            body_read_timeout: Duration::from_secs(10),
            min_body_rate: 1024,
            write_timeout: Duration::from_secs(30),
            answer_bytes_per_account: 32 * 1024 * 1024,
        }
    }
}

impl ServerLimits {
    /// At most `n` connections at once (1 to [`Semaphore::MAX_PERMITS`]).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Close a connection whose next request's headers take longer than `timeout`.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// At most `n` connections per account (at least 1).
    #[must_use]
    pub fn max_connections_per_account(mut self, n: usize) -> Self {
        self.max_connections_per_account = n.max(1);
        self
    }

    /// A body arrives within `timeout` in total, at `min_rate` bytes a second or faster
    /// after its first second.
    #[must_use]
    pub fn body_deadlines(mut self, timeout: Duration, min_rate: u64) -> Self {
        self.body_read_timeout = timeout;
        self.min_body_rate = min_rate.max(1);
        self
    }

    /// Close a connection whose answer makes no progress for `timeout`.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// At most `bytes` of answers unread per account.
    #[must_use]
    pub fn answer_bytes_per_account(mut self, bytes: usize) -> Self {
        self.answer_bytes_per_account = bytes;
        self
    }
}

/// Serve `app` on `listener` (HTTP/1.1) within `limits` until `shutdown` resolves, then
/// let requests in flight finish for up to the shutdown grace.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Clamped: `Semaphore::new` panics past its maximum (`--max-connections` takes any usize).
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let tenants = tenants::Tenants::new(limits);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(target: "finout_mock", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = io::WriteDeadline::new(stream, limits.write_timeout);
        // Each request learns its connection: the per-account limits count connections.
        let service = Extension(tenants::Connection::new(tenants.clone())).layer(app.clone());
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(target: "finout_mock", error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "finout_mock", "requests still in flight at shutdown");
    }
    Ok(())
}
