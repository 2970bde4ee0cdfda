//! The server: routes into an axum router (inside the flow layer, `flow.rs`), the listener,
//! and the graceful drain at shutdown.

use super::flow::{ErrorChain, FLOW_ID_HEADER, FlowLayer, RequestFlow};
use super::response::{InternalError, json_error};
use super::routing::{shape_of, try_route};
use super::{HttpDefs, HttpError, HttpRequest, HttpResponse, RoutePath, docs};
use crate::error::{Error, Result};
use crate::handler::panic_message;
use crate::handler::{Container, Context};
use crate::transport::flow::{self, EntrypointKind, FlowContext};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts as _, RawPathParams, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::{Router, ServiceExt as _};
use futures_util::FutureExt as _;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_layer::Layer as _;

/// Checks a route path: starts with `/`, parameters are whole segments (`{id}`, `{*rest}` last).
pub(crate) fn check_path(path: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Definition(format!("http path {path:?}: {why}")));
    if !path.starts_with('/') {
        return bad("must start with `/`");
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.starts_with(':') || seg.starts_with('*') {
            return bad("parameters are written `{name}` (axum 0.8), not `:name` or `*name`");
        }
        let Some(inner) = seg.strip_prefix('{') else {
            if seg.contains(['{', '}']) {
                return bad("a parameter must be a whole segment, `/{name}/`");
            }
            continue;
        };
        let Some(name) = inner.strip_suffix('}') else {
            return bad("a parameter must be a whole segment, `/{name}/`");
        };
        let (name, catch_all) = match name.strip_prefix('*') {
            Some(n) => (n, true),
            None => (name, false),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return bad("a parameter name is letters, digits and `_`");
        }
        if catch_all && i + 1 != segments.len() {
            return bad("`{*name}` must be the last segment");
        }
    }
    Ok(())
}

/// What every request of one route needs.
pub(super) struct Route {
    /// `GET /items/{id}`: the flow's operation.
    operation: Arc<str>,
    /// The handler's name, for logs.
    name: Arc<str>,
    has_params: bool,
    context: Context,
    max_body: usize,
    /// `kontiki_http_requests_total` and `kontiki_http_request_duration_seconds`.
    metrics: crate::observe::metrics::HttpRouteMetrics,
}

/// A running HTTP server.
#[derive(Debug)]
pub(crate) struct HttpServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections; requests in flight go on.
    pub(crate) fn stop_accepting(&self) {
        self.stop.cancel();
    }

    /// Stops accepting and waits until in-flight requests finished, at most until `deadline`.
    pub(crate) async fn drain(mut self, deadline: tokio::time::Instant) {
        self.stop.cancel();
        if tokio::time::timeout_at(deadline, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("grace period over; the HTTP server stops with requests still running");
            self.task.abort();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Builds the service's router and, unless `kontiki.http.disable`, serves it. The router is
/// returned either way ([`RunningService::http_router`](crate::RunningService::http_router)).
pub(crate) async fn start(
    defs: &HttpDefs,
    container: &Arc<Container>,
) -> Result<(Option<HttpServer>, Option<Router>)> {
    let settings = &container.settings().http;
    if defs.routes.is_empty() {
        return Ok((None, None));
    }
    let (routes, flow) = build_router(defs, container)?;
    // The router an application mounts has the flow layer on each route (axum's
    // `Router::layer`); the server runs its own copy inside one flow service instead, which
    // spares each request the boxed service and future that a routed layer costs.
    let router = routes.clone().layer(flow.clone());
    if settings.disable {
        tracing::info!(
            routes = defs.routes.len(),
            "HTTP is disabled (kontiki.http.disable): the routes are served only where the \
             application mounts RunningService::http_router"
        );
        return Ok((None, Some(router)));
    }
    let address = format!("{}:{}", settings.address, settings.port);
    let listener = tokio::net::TcpListener::bind((settings.address.as_str(), settings.port))
        .await
        .map_err(|source| Error::HttpBind {
            address: address.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::HttpBind { address, source })?;
    let stop = CancellationToken::new();
    let signal = stop.clone();
    // `with_state` turns the handlers into routes once, as axum::serve does for a bare Router;
    // unconverted, each request would convert its handler again.
    let served = flow.layer(routes.with_state(())).into_make_service();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, served)
            .with_graceful_shutdown(async move { signal.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the HTTP server failed");
        }
    });
    tracing::info!(address = %addr, routes = defs.routes.len(), "HTTP listening");
    Ok((Some(HttpServer { addr, stop, task }), Some(router)))
}

/// The path a route reads from config key `key`, checked.
pub(crate) fn config_path(config: &crate::Config, key: &str) -> Result<String> {
    let p = config.string(key)?;
    check_path(&p).map_err(|e| match e {
        Error::Definition(m) => Error::Definition(format!("{m} (from `{key}`)")),
        other => other,
    })?;
    Ok(p)
}

/// The service's routes (with the docs and ops routes and the fallbacks), and the flow layer
/// that must wrap them.
fn build_router(defs: &HttpDefs, container: &Arc<Container>) -> Result<(Router, FlowLayer)> {
    let settings = &container.settings().http;
    let context = Context::new(container.clone());
    let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
    let mut shapes: BTreeMap<String, String> = BTreeMap::new();
    let mut methods = std::collections::BTreeSet::new();
    for r in &defs.routes {
        let path = match &r.path {
            RoutePath::Literal(p) => p.clone(),
            RoutePath::Config(key) => config_path(container.config(), key)?,
        };
        let shape = shape_of(&path);
        if let Some(other) = shapes.get(&shape)
            && *other != path
        {
            return Err(Error::Definition(format!(
                "http paths {other:?} and {path:?} match the same requests"
            )));
        }
        shapes.insert(shape, path.clone());
        let filter = MethodFilter::try_from(r.method.clone())
            .map_err(|e| Error::Definition(format!("http route `{} {path}`: {e}", r.method)))?;
        let operation: Arc<str> = Arc::from(format!("{} {path}", r.method));
        let route = Route {
            name: r
                .name
                .as_deref()
                .map_or_else(|| operation.clone(), Arc::from),
            operation: operation.clone(),
            has_params: path.contains('{'),
            context: context.clone(),
            max_body: settings.max_body_bytes,
            metrics: crate::observe::metrics::HttpRouteMetrics::new(
                container.settings().metrics.enabled,
                &container.identity().service_name,
                &operation,
            ),
        };
        // A method given twice on one path (config paths are only known here) would make
        // axum panic.
        if !methods.insert((r.method.to_string(), path.clone())) {
            return Err(Error::Definition(format!(
                "http route `{} {path}` is declared twice",
                r.method
            )));
        }
        let entry = by_path.entry(path).or_default();
        *entry = (r.mount)(std::mem::take(entry), filter, route);
    }
    let mut router = Router::new();
    for (path, method_router) in by_path {
        router = try_route(router, &path, method_router)?;
    }
    // The service's own layers (authentication, CORS, rate limits) wrap its routes only: the
    // docs and the ops routes (/metrics, /live, /ready) stay open to the operator. The flow
    // layer below wraps them all, so a response a layer makes still carries its flow id.
    if !defs.layers.is_empty() {
        // Set before the layers wrap them, so that a method a route does not have goes
        // through the layers too (a CORS preflight is an OPTIONS the route never declares).
        router = router.method_not_allowed_fallback(|| async {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        });
    }
    for layer in &defs.layers {
        router = layer(router);
    }
    if settings.documentation.enabled {
        router = docs::add_routes(router, &defs.documents, &settings.documentation, &shapes)?;
    }
    // /metrics, /live and /ready, unless the service declares a route of the same path.
    router = router.merge(super::ops::routes(container, &|p| shapes.contains_key(p)));
    // Probes and scrapes come every few seconds: no trace for each.
    let untraced = ["/metrics", "/live", "/ready"]
        .into_iter()
        .filter(|p| !shapes.contains_key(*p))
        .collect();
    let flow = FlowLayer::new(
        Arc::from(&*container.identity().service_name),
        container.messenger().telemetry().cloned(),
        untraced,
    );
    let router = router
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        });
    Ok((router, flow))
}

/// A route as its path's method router holds it: what every request needs, and the handler.
pub(super) struct Served<F> {
    pub(super) route: Route,
    pub(super) handler: Arc<F>,
}

/// The service axum calls for each request of one route (`MethodRouter::on_service`).
///
/// A service rather than an axum handler, with a future written out: axum boxes a handler's
/// future with the request it was called with still in it (1.5 KiB a request, which the
/// allocator serves on its slow path), and then boxes the service around it again. Here the
/// request is taken apart before the future is made, the future keeps only what the rest of
/// the request needs, and axum's one box holds it.
pub(super) struct RouteService<F>(pub(super) Arc<Served<F>>);

impl<F> Clone for RouteService<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<F, Fut> tower_service::Service<Request> for RouteService<F>
where
    F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HttpResponse, HttpError>> + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ServeFuture<F, Fut>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> ServeFuture<F, Fut> {
        let route = &self.0.route;
        let started = route.metrics.is_on().then(std::time::Instant::now);
        let (mut parts, body) = req.into_parts();
        let state = match prepare(route, &mut parts) {
            Err(res) => State::Done { res: Some(res) },
            // A GET has no body: nothing to collect.
            Ok(prepared) if axum::body::HttpBody::is_end_stream(&body) => {
                State::handle(&self.0, prepared, Bytes::new())
            }
            // A body declared longer than the limit is refused before any of it is read
            // (hyper's body knows the declared length: no header to parse again).
            Ok(_) if axum::body::HttpBody::size_hint(&body).lower() > route.max_body as u64 => {
                State::Done {
                    res: Some(too_large(route.max_body).into_response()),
                }
            }
            Ok(prepared) => State::Body {
                prepared: Some(prepared),
                collect: http_body_util::BodyExt::collect(http_body_util::Limited::new(
                    body,
                    route.max_body,
                )),
            },
        };
        ServeFuture {
            served: self.0.clone(),
            started,
            state,
        }
    }
}

pin_project_lite::pin_project! {
    /// One request of a route: its body read, its handler run in the request's flow scope,
    /// its answer recorded (`kontiki_http_requests_total`, by declared route).
    pub(super) struct ServeFuture<F, Fut> {
        served: Arc<Served<F>>,
        started: Option<std::time::Instant>,
        #[pin]
        state: State<F, Fut>,
    }
}

/// The handler's call inside its flow scope, a panic caught.
type Run<F, Fut> = tokio::task::futures::TaskLocalFuture<
    FlowContext,
    futures_util::future::CatchUnwind<AssertUnwindSafe<CallHandler<F, Fut>>>,
>;

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, Fut> {
        /// Reading the body.
        Body {
            prepared: Option<Prepared>,
            #[pin]
            collect: http_body_util::combinators::Collect<http_body_util::Limited<Body>>,
        },
        /// Running the handler (the flow id is the scope's, taken back when it is done).
        Handle {
            #[pin]
            run: Run<F, Fut>,
            answer_flow_id: bool,
        },
        /// Answered.
        Done { res: Option<Response> },
    }
}

impl<F, Fut> State<F, Fut>
where
    F: Fn(HttpRequest) -> Fut,
    Fut: Future,
{
    fn handle(served: &Served<F>, prepared: Prepared, body: Bytes) -> Self {
        let route = &served.route;
        let (request, flow_id, answer_flow_id) = prepared.into_request(route, body);
        let scope = FlowContext {
            flow_id,
            inbound_hop_id: None,
            entrypoint: EntrypointKind::Http,
            operation: route.operation.clone(),
        };
        // The call itself is inside the scope and the panic guard too: a handler may panic
        // before returning its future.
        let call = CallHandler {
            handler: served.handler.clone(),
            request: Some(request),
            fut: None,
        };
        State::Handle {
            run: flow::named_scope(scope, AssertUnwindSafe(call).catch_unwind()),
            answer_flow_id,
        }
    }
}

impl<F, Fut> Future for ServeFuture<F, Fut>
where
    F: Fn(HttpRequest) -> Fut,
    Fut: Future<Output = Result<HttpResponse, HttpError>>,
{
    type Output = std::result::Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let res = match this.state.as_mut().project() {
                StateProj::Body { prepared, collect } => {
                    let read = ready!(collect.poll(cx));
                    let next = match (read, prepared.take()) {
                        (Ok(collected), Some(prepared)) => {
                            State::handle(this.served, prepared, collected.to_bytes())
                        }
                        (Err(e), _) => State::Done {
                            res: Some(body_error(&*e, this.served.route.max_body).into_response()),
                        },
                        (Ok(_), None) => State::Done {
                            res: Some(polled_again()),
                        },
                    };
                    this.state.set(next);
                    continue;
                }
                StateProj::Handle {
                    mut run,
                    answer_flow_id,
                } => {
                    let outcome = ready!(run.as_mut().poll(cx));
                    // The scope is there until taken, here, once.
                    match run.take_value() {
                        Some(scope) => answer(&this.served.route, outcome, &scope, *answer_flow_id),
                        None => polled_again(),
                    }
                }
                StateProj::Done { res } => res.take().unwrap_or_else(polled_again),
            };
            this.state.set(State::Done { res: None });
            this.served.route.served(&res, *this.started);
            return Poll::Ready(Ok(res));
        }
    }
}

/// What a future polled after its answer answers (tower's contract forbids it; no panic).
fn polled_again() -> Response {
    HttpError::internal("an HTTP request's future was polled after it answered").into_response()
}

pin_project_lite::pin_project! {
    /// Calls the handler at the first poll (inside the scope), then polls its future.
    struct CallHandler<F, Fut> {
        handler: Arc<F>,
        request: Option<HttpRequest>,
        #[pin]
        fut: Option<Fut>,
    }
}

impl<F, Fut> Future for CallHandler<F, Fut>
where
    F: Fn(HttpRequest) -> Fut,
    Fut: Future,
{
    type Output = Fut::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Fut::Output> {
        let mut this = self.project();
        if let Some(request) = this.request.take() {
            this.fut.set(Some((this.handler)(request)));
        }
        match this.fut.as_pin_mut() {
            Some(fut) => fut.poll(cx),
            // Polled after it finished: the caller (`CatchUnwind`) never does.
            None => Poll::Pending,
        }
    }
}

impl Route {
    /// Records an answer in the route's metrics.
    fn served(&self, res: &Response, started: Option<std::time::Instant>) {
        if let Some(started) = started {
            self.metrics
                .served(res.status().as_u16(), started.elapsed());
        }
    }
}

/// What a request brings besides its body, read before the body is.
struct Prepared {
    method: axum::http::Method,
    headers: HeaderMap,
    path_params: super::PathParams,
    query: Vec<(String, String)>,
    flow_id: Arc<str>,
    /// Whether the answer's `flow_id` header is the route's to set (the layer made no id).
    answer_flow_id: bool,
}

impl Prepared {
    fn into_request(self, route: &Route, body: Bytes) -> (HttpRequest, Arc<str>, bool) {
        let request = HttpRequest {
            method: self.method,
            path_params: self.path_params,
            query: self.query,
            headers: self.headers,
            body,
            context: route.context.clone(),
        };
        (request, self.flow_id, self.answer_flow_id)
    }
}

/// The request's flow, path parameters and query, or the answer when they are wrong. Not
/// generic: one copy for all routes.
#[allow(
    clippy::result_large_err,
    reason = "no larger than the Ok side (`Prepared`), and moved once"
)]
fn prepare(route: &Route, parts: &mut axum::http::request::Parts) -> Result<Prepared, Response> {
    // Without one from the layer (it hands one over only when its span or a trace records
    // it), the route makes the flow id and answers with it itself.
    let (flow_id, answer_flow_id) = match parts.extensions.remove::<RequestFlow>() {
        Some(flow) => {
            if !flow.span.is_disabled() {
                flow.span.record("route", &*route.name);
            }
            (flow.id, false)
        }
        None => (crate::transport::wire::new_flow_id_arc(), true),
    };
    if route.context.messenger().telemetry().is_some() {
        crate::observe::otel::set_http_route(&route.operation);
    }
    let mut path_params = super::PathParams::default();
    if route.has_params {
        // Reads what the router left in the request: ready at once.
        match RawPathParams::from_request_parts(parts, &()).now_or_never() {
            Some(Ok(params)) => path_params = super::PathParams::new(params),
            Some(Err(rejection)) => {
                return Err(HttpError::BadRequest(rejection.body_text()).into_response());
            }
            None => {
                let e = HttpError::internal("axum's path parameters were not ready at once");
                return Err(e.into_response());
            }
        }
    }
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    Ok(Prepared {
        // Taken, not moved: the rest of `parts` stays where it is (no copy of all of it).
        method: std::mem::take(&mut parts.method),
        headers: std::mem::take(&mut parts.headers),
        path_params,
        query,
        flow_id,
        answer_flow_id,
    })
}

/// The handler's outcome as the answer: the flow id header when the route made the id, and
/// an unmapped error or a panic reported to the registry. Not generic.
fn answer(
    route: &Route,
    outcome: std::thread::Result<Result<HttpResponse, HttpError>>,
    scope: &FlowContext,
    answer_flow_id: bool,
) -> Response {
    let (mut res, exception_type) = match outcome {
        Ok(Ok(res)) => (res.into_response(), "HttpHandlerError"),
        Ok(Err(e)) => (e.into_response(), "HttpHandlerError"),
        Err(panic) => (
            HttpError::internal(format!(
                "the handler of `{}` panicked: {}",
                route.operation,
                panic_message(&panic)
            ))
            .into_response(),
            "Panic",
        ),
    };
    if answer_flow_id && let Ok(v) = HeaderValue::from_str(&scope.flow_id) {
        res.headers_mut().insert(FLOW_ID_HEADER, v);
    }
    // Unmapped errors and panics go to the registry, as Kontiki reports them; mapped ones are
    // answers, not failures. (The layer logs them.)
    if let Some(InternalError(e)) = res.extensions().get::<InternalError>() {
        route.context.container().report_uncaught(
            scope,
            exception_type,
            &ErrorChain(&***e).to_string(),
        );
    }
    res
}

/// The 413 of a body over `limit` bytes.
fn too_large(limit: usize) -> HttpError {
    HttpError::mapped(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {limit} bytes"),
    )
}

/// Reading the body failed: 413 over the limit, 400 otherwise.
fn body_error(e: &(dyn std::error::Error + Send + Sync + 'static), limit: usize) -> HttpError {
    if e.is::<http_body_util::LengthLimitError>() {
        too_large(limit)
    } else {
        HttpError::BadRequest(format!("could not read the request body: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for ok in [
            "/",
            "/items",
            "/items/{id}",
            "/a/{b}/c/{d_2}",
            "/files/{*rest}",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "items",
            "/items/:id",
            "/files/*rest",
            "/items/{id",
            "/items/x{id}",
            "/items/{}",
            "/items/{a-b}",
            "/files/{*rest}/more",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shapes_erase_parameter_names() {
        assert_eq!(shape_of("/a/{x}/b"), shape_of("/a/{y}/b"));
        assert_ne!(shape_of("/a/{x}"), shape_of("/a/{*x}"));
        assert_ne!(shape_of("/a/{x}"), shape_of("/a/x"));
    }
}
