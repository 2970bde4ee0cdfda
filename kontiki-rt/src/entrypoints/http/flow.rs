//! The layer around a service's whole router: each request gets a tracing span (and, with
//! traces on, a server span continuing the caller's `traceparent`), every response the
//! `flow_id` header (handlers', 404, 405, 413, a layer's own), and an internal error its one
//! log line. HTTP always starts a new flow: its id is made here when the span or the trace
//! records it, and otherwise by the route, which answers with it (`server.rs`).
//!
//! A tower [`Layer`] and [`Service`] written out, with a named future, rather than
//! `axum::middleware::from_fn`, which boxes the inner service and an `async fn`'s future on
//! every request.

use super::response::InternalError;
use crate::observe::otel::{Instrumented, OtelSpan, Telemetry};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tower_layer::Layer;
use tower_service::Service;

/// The response header that carries the request's flow id (protocol §4).
pub(crate) const FLOW_ID_HEADER: HeaderName = HeaderName::from_static("flow_id");

/// What the layer hands a route in the request's extensions.
#[derive(Debug, Clone)]
pub(super) struct RequestFlow {
    /// The flow id, for the handler's scope.
    pub(super) id: Arc<str>,
    /// The request's span, where the route records its name.
    pub(super) span: tracing::Span,
}

/// What the layer knows of its service.
struct FlowState {
    service: Arc<str>,
    telemetry: Option<Telemetry>,
    /// The operational routes served here (`/metrics`, `/live`, `/ready`): not traced.
    untraced: Vec<&'static str>,
}

/// The flow layer of one service's router.
#[derive(Clone)]
pub(super) struct FlowLayer(Arc<FlowState>);

impl FlowLayer {
    /// The layer of `service`; requests are traced when `telemetry` is there, except those to
    /// the `untraced` paths.
    pub(super) fn new(
        service: Arc<str>,
        telemetry: Option<Telemetry>,
        untraced: Vec<&'static str>,
    ) -> Self {
        Self(Arc::new(FlowState {
            service,
            telemetry,
            untraced,
        }))
    }
}

impl<S> Layer<S> for FlowLayer {
    type Service = FlowService<S>;

    fn layer(&self, inner: S) -> FlowService<S> {
        FlowService {
            inner,
            state: self.0.clone(),
        }
    }
}

/// [`FlowLayer`] around one route (axum layers each route and the fallback).
#[derive(Clone)]
pub(super) struct FlowService<S> {
    inner: S,
    state: Arc<FlowState>,
}

impl<S> Service<Request> for FlowService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FlowFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let state = &*self.state;
        let telemetry = state
            .telemetry
            .as_ref()
            .filter(|_| !state.untraced.contains(&req.uri().path()));
        let span = tracing::info_span!(
            "http",
            service = %state.service,
            method = %req.method(),
            path = %req.uri().path(),
            route = tracing::field::Empty,
            flow_id = tracing::field::Empty,
        );
        // The flow id is made here when something records it from the start (the request's
        // span, a trace), and handed to the route in the request's extensions. Otherwise the
        // route makes it and puts it in its answer itself: no extensions to allocate.
        let flow_id = (telemetry.is_some() || !span.is_disabled())
            .then(crate::transport::wire::new_flow_id_arc);
        let mut otel = None;
        if let Some(id) = &flow_id {
            otel = telemetry
                .map(|t| t.http_server(req.headers(), req.method().as_str(), req.uri().path(), id));
            span.record("flow_id", &**id);
            req.extensions_mut().insert(RequestFlow {
                id: id.clone(),
                span: span.clone(),
            });
        }
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        FlowFuture {
            inner: crate::observe::otel::instrument(otel.as_ref(), inner),
            span,
            otel,
            flow_id,
        }
    }
}

/// The response future of [`FlowService`]: the route's future inside the request's spans,
/// then the `flow_id` header and the log line.
pub(super) struct FlowFuture<F> {
    inner: Instrumented<F>,
    span: tracing::Span,
    otel: Option<OtelSpan>,
    /// The flow id handed to the route; none when the route makes its own.
    flow_id: Option<Arc<str>>,
}

impl<F> Future for FlowFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let polled = {
            let _entered = this.span.enter();
            Pin::new(&mut this.inner).poll(cx)
        };
        let Ok(mut res) = ready!(polled);
        if let Some(otel) = this.otel.take() {
            let status = res.status();
            otel.set_str("http.response.status_code", status.as_str());
            if status.is_server_error() {
                otel.fail(status.as_str(), "");
            }
            otel.end();
        }
        match &this.flow_id {
            Some(id) => {
                if let Ok(v) = HeaderValue::from_str(id) {
                    res.headers_mut().insert(FLOW_ID_HEADER, v);
                }
            }
            // A route that made its flow id answered with it; other answers (404, 405, a
            // layer's own) start a flow of their own here.
            None => {
                if !res.headers().contains_key(FLOW_ID_HEADER)
                    && let Ok(v) = HeaderValue::from_str(&crate::transport::wire::new_flow_id_arc())
                {
                    res.headers_mut().insert(FLOW_ID_HEADER, v);
                }
            }
        }
        let status = res.status().as_u16();
        match res.extensions_mut().remove::<InternalError>() {
            Some(InternalError(e)) => {
                // In the span when the span is on; otherwise in the line itself.
                let flow_id = this
                    .flow_id
                    .is_none()
                    .then(|| res.headers().get(FLOW_ID_HEADER))
                    .flatten()
                    .and_then(|v| v.to_str().ok());
                this.span.in_scope(|| {
                    tracing::error!(status, flow_id, error = %ErrorChain(&**e), "http handler failed");
                });
            }
            None => this
                .span
                .in_scope(|| tracing::debug!(status, "http request served")),
        }
        Poll::Ready(Ok(res))
    }
}

/// An error with its sources: `a: b: c`.
pub(super) struct ErrorChain<'a>(pub(super) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
