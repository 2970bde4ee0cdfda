//! The operations routes every service can serve: `GET /metrics` (Prometheus text), `GET /live`
//! (the process answers) and `GET /ready` (connected, consuming, not shutting down).

use crate::error::{Error, Result};
use crate::handler::Container;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A router with the operations routes whose paths are not in `taken` (a service's own route
/// of the same path wins).
pub(crate) fn routes(container: &Arc<Container>, taken: &dyn Fn(&str) -> bool) -> Router {
    let mut router = Router::new();
    if !taken("/metrics") && container.settings().metrics.enabled {
        router = router.route("/metrics", get(metrics));
    }
    if !taken("/live") {
        router = router.route("/live", get(|| async { (StatusCode::OK, "live\n") }));
    }
    if !taken("/ready") {
        let c = container.clone();
        router = router.route(
            "/ready",
            get(move || {
                let c = c.clone();
                async move { ready(&c) }
            }),
        );
    }
    router
}

async fn metrics() -> Response {
    match crate::observe::metrics::render() {
        Some(text) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded: the `metrics` feature is off, or another recorder was installed first\n",
        )
            .into_response(),
    }
}

fn ready(container: &Container) -> Response {
    match container.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// A listener of its own for the operations routes (`kontiki.metrics.port`).
#[derive(Debug)]
pub(crate) struct OpsServer {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
}

impl OpsServer {
    /// The bound address (useful with port 0).
    pub(crate) fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the operations listener when `kontiki.metrics.port` is set.
pub(crate) async fn start(container: &Arc<Container>) -> Result<Option<OpsServer>> {
    let settings = &container.settings().metrics;
    let Some(port) = settings.port else {
        return Ok(None);
    };
    let address = format!("{}:{port}", settings.address);
    let listener = tokio::net::TcpListener::bind((settings.address.as_str(), port))
        .await
        .map_err(|source| Error::HttpBind {
            address: address.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::HttpBind { address, source })?;
    let router = routes(container, &|_| false);
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        let serve = axum::serve(listener, router)
            .with_graceful_shutdown(async move { signal.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    tracing::info!(address = %addr, "metrics and health listening");
    Ok(Some(OpsServer { addr, stop }))
}
