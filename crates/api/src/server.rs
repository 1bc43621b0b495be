//! The listener: accepts connections and serves each over HTTP/1.1 with read limits, so a
//! client that sends its request slowly holds a connection for a bounded time only.
//!
//! `axum::serve` sets no timer on hyper's connections, and hyper applies no header-read
//! timeout without one: a client sending a byte a second kept its connection forever. Here
//! each connection has a timer; a request's headers must arrive within
//! [`crate::Timeouts::headers`] (also the longest a kept-alive connection waits idle for its next
//! request), its body within [`crate::Timeouts::body`] and the whole request within
//! [`crate::Timeouts::request`] (the router's layers).

use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

use crate::{AppState, app};

/// How long shutdown waits for requests in flight beyond the request timeout.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Serve until `shutdown` resolves, then drain the requests in flight.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    // One router for every connection: cloning it is cheap (axum's router is shared), and
    // calling it does not rebuild its routes.
    let timeouts = state.timeouts;
    let router = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.headers);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(timeouts.request + DRAIN_GRACE) => {
            tracing::warn!("requests still in flight after the drain timeout");
        }
    }
    Ok(())
}
