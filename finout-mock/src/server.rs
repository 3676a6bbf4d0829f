//! Serving the router over TCP with limits a public endpoint needs: a cap on connections, a
//! timeout on reading a request's headers (which also closes a connection idle between
//! requests), and a graceful shutdown.
//!
//! At the cap the server stops accepting: new connections wait in the kernel's backlog
//! until a connection closes (a half-sent request is closed by the header timeout), so a
//! flood of idle connections delays a real client by at most the header timeout and never
//! exhausts the process's file descriptors.

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};

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
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
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
        let connection = graceful.watch(
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone())),
        );
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
