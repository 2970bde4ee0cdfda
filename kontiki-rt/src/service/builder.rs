//! The [`ServiceBuilder`]: entrypoints, delegates, HTTP routes and OpenAPI documents added one
//! by one, checked once in `build`.

use super::Service;
use crate::clients::registry::{self, Health};
use crate::entrypoints::event::{EventEntrypoint, EventSource};
use crate::entrypoints::rpc::RpcEntrypoint;
use crate::entrypoints::task::{self, Clock, TaskEntrypoint};
use crate::error::{Error, Result};
use crate::handler::Delegate;
use crate::transport::wire;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

/// Builds a [`Service`].
#[derive(Debug)]
pub struct ServiceBuilder {
    pub(super) service: Service,
}

impl ServiceBuilder {
    /// The service version, reported to the registry (default `1.0.0`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.service.version = version.into();
        self
    }

    /// Adds an RPC entrypoint.
    pub fn rpc(mut self, ep: RpcEntrypoint) -> Self {
        self.service.rpcs.push(ep);
        self
    }

    /// Adds an event handler.
    pub fn event(mut self, ep: EventEntrypoint) -> Self {
        self.service.events.push(ep);
        self
    }

    /// Adds a periodic task.
    pub fn task(mut self, ep: TaskEntrypoint) -> Self {
        self.service.tasks.push(ep);
        self
    }

    /// Adds a plain queue consumer (a queue that is not an RPC or event entrypoint).
    pub fn queue(mut self, ep: crate::entrypoints::queue::QueueEntrypoint) -> Self {
        self.service.queues.push(ep);
        self
    }

    /// Runs `callback` on every connection to the broker (the first and each reconnection),
    /// after the service declared Kontiki's exchanges and before it declares its queues and
    /// starts consuming. The callback gets the service's [`Messenger`](crate::Messenger); an
    /// error is logged and the service goes on consuming. A callback that takes more than 5 s
    /// is cancelled (and logged): the connection setup is bounded.
    ///
    /// The registry uses it to bind again the durable queues of consumers that are down
    /// before its own `#`-bound tracking queue makes every event routable
    /// (docs/RELIABILITY.md, "Events across a long broker outage").
    pub fn on_connect<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn(crate::Messenger) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), crate::BoxError>> + Send + 'static,
    {
        self.service
            .on_connect
            .push(Arc::new(move |m| Box::pin(callback(m))));
        self
    }

    /// Replaces the clock tasks are scheduled by (tests drive cron schedules with
    /// [`TokioClock`](crate::entrypoints::task::TokioClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.service.clock = clock;
        self
    }

    /// The degraded check, run before every heartbeat to the registry (Kontiki's
    /// `@degraded_on`; async here).
    pub fn health_check<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Health> + Send + 'static,
    {
        self.service.health = Some(registry::health_check(check));
        self
    }

    /// Traces the service on `provider` (feature `otel`) instead of the OTLP exporter the
    /// `OTEL_*` environment variables configure: for an application that sets its own
    /// OpenTelemetry pipeline up, and for tests. The service flushes the provider when it
    /// stops; shutting it down stays with the caller.
    #[cfg(feature = "otel")]
    pub fn tracer_provider(
        mut self,
        provider: opentelemetry_sdk::trace::SdkTracerProvider,
    ) -> Self {
        self.service.tracer_provider = Some(provider);
        self
    }

    /// Adds an HTTP route (Kontiki's `@http`).
    #[cfg(feature = "http")]
    pub fn http(mut self, route: crate::entrypoints::http::HttpRoute) -> Self {
        self.service.http.routes.push(route);
        self
    }

    /// Wraps the service's HTTP routes in `layer`: any tower or tower-http layer that axum's
    /// `Router::layer` takes (authentication, CORS, rate limits, timeouts, ...). Several calls
    /// nest, the first innermost. The layers wrap the routes the service declares, not the
    /// OpenAPI documents, Swagger UI or `/metrics`, `/live` and `/ready`. A request a layer
    /// refuses never reaches the handler; its response still gets the `flow_id` header.
    ///
    /// ```
    /// use kontiki_rt::Service;
    /// use kontiki_rt::http::{HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
    /// use axum::{extract::Request, middleware::{self, Next}, response::{IntoResponse, Response}};
    ///
    /// async fn require_token(req: Request, next: Next) -> Response {
    ///     match req.headers().get("authorization") {
    ///         Some(v) if v == "Bearer s3cret" => next.run(req).await,
    ///         _ => StatusCode::UNAUTHORIZED.into_response(),
    ///     }
    /// }
    ///
    /// let svc = Service::builder("guarded")
    ///     .http(HttpRoute::new(Method::GET, "/items", |_r: HttpRequest| async {
    ///         Ok(HttpResponse::json(StatusCode::OK, &[1, 2]))
    ///     }))
    ///     .http_layer(middleware::from_fn(require_token))
    ///     .build()?;
    /// # Ok::<(), kontiki_rt::Error>(())
    /// ```
    #[cfg(feature = "http")]
    pub fn http_layer<L>(mut self, layer: L) -> Self
    where
        L: tower_layer::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower_service::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Error:
            Into<std::convert::Infallible> + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.service
            .http
            .layers
            .push(Arc::new(move |router: axum::Router| {
                router.layer(layer.clone())
            }));
        self
    }

    /// Serves `document_json`, the OpenAPI document of API version `version`, with a Swagger
    /// UI (`kontiki.http.documentation.*`).
    #[cfg(feature = "http")]
    pub fn openapi(mut self, version: impl Into<String>, document_json: impl Into<String>) -> Self {
        self.service
            .http
            .documents
            .push((version.into(), document_json.into()));
        self
    }

    /// Adds a delegate; keep a clone of the `Arc` to use it from handlers.
    pub fn delegate<D: Delegate>(mut self, delegate: Arc<D>) -> Self {
        self.service.delegates.push(delegate);
        self
    }

    /// Checks the definition: names usable on the wire, no duplicates.
    pub fn build(self) -> Result<Service> {
        let s = &self.service;
        check_word(&s.name, "service name")?;
        #[cfg(feature = "http")]
        s.http.check()?;
        let mut seen = BTreeSet::new();
        for ep in &s.rpcs {
            check_word(&ep.name, "rpc name")?;
            if &*ep.name == wire::SESSION_OPEN_METHOD {
                return Err(Error::Definition(format!(
                    "`{}` is Kontiki's internal session RPC",
                    ep.name
                )));
            }
            if !seen.insert(&*ep.name) {
                return Err(Error::Definition(format!(
                    "rpc `{}` is declared twice",
                    ep.name
                )));
            }
        }
        let mut tasks = BTreeSet::new();
        for ep in &s.tasks {
            if !tasks.insert(ep.name.as_str()) {
                return Err(Error::Definition(format!(
                    "task `{}` is declared twice",
                    ep.name
                )));
            }
            task::check(ep)?;
        }
        let mut handlers = BTreeSet::new();
        for ep in &s.events {
            if !handlers.insert(ep.name.as_str()) {
                return Err(Error::Definition(format!(
                    "event handler `{}` is declared twice",
                    ep.name
                )));
            }
            if ep.max_attempts == Some(0) {
                return Err(Error::Definition(format!(
                    "event handler `{}`: max_attempts must be at least 1",
                    ep.name
                )));
            }
            if let EventSource::Types(types) = &ep.source {
                if types.is_empty() {
                    return Err(Error::Definition(format!(
                        "event handler `{}` handles no event type",
                        ep.name
                    )));
                }
                for t in types {
                    check_word(t, "event type")?;
                }
            }
        }
        Ok(self.service)
    }
}

pub(super) fn check_word(name: &str, what: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason: format!("a {what} {reason}"),
        })
    };
    if name.is_empty() {
        return bad("may not be empty");
    }
    if name.contains(['*', '#']) {
        return bad("may not contain `*` or `#` (they are AMQP topic wildcards)");
    }
    if name.split('.').any(str::is_empty) {
        return bad("may not have empty dot-separated words");
    }
    if name.len() > 200 {
        return bad("must be shorter than 200 bytes (it is part of queue names)");
    }
    Ok(())
}
