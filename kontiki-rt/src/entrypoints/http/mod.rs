//! HTTP entrypoints (Kontiki's `@http`), served by axum.
//!
//! A route is a method, a path with `{param}` segments (axum 0.8 syntax) or a config key that
//! holds the path, and a handler `Fn(HttpRequest) -> impl Future<Output = Result<HttpResponse,
//! HttpError>>`. Register routes with [`ServiceBuilder::http`](crate::ServiceBuilder::http) and
//! the OpenAPI document of each version with
//! [`ServiceBuilder::openapi`](crate::ServiceBuilder::openapi); [`Service::start`](crate::Service::start)
//! then listens on `kontiki.http.address`:`kontiki.http.port` unless `kontiki.http.disable`.
//!
//! Every request starts a new flow (protocol §4): the handler runs inside a
//! [`flow::scope`](crate::transport::flow::scope) with `entrypoint=http` and `operation="GET /items/{id}"`,
//! so the messages it sends carry the flow, and every response, 404/405/413 included, carries a
//! `flow_id` header.
//!
//! Errors are JSON and never show internals:
//!
//! | Cause | Status | Body |
//! |---|---|---|
//! | [`HttpError::Mapped`] (an IDL error code mapped to a status) | the mapped one | `{"message": ...}` |
//! | malformed JSON, [`HttpError::BadRequest`] | 400 | `{"message": ...}` |
//! | a body, path or query parameter that does not fit its type | 422 | `{"message": ..., "errors": [{"path": ..., "message": ...}]}` |
//! | [`HttpError::Internal`], a panic in the handler | 500 | `{"message": "internal server error"}` (the cause is logged once and reported to the registry) |
//! | no such route / wrong method / body over `kontiki.http.max_body_bytes` | 404 / 405 / 413 | `{"message": ...}` |
//!
//! When `kontiki.http.documentation.enabled` (the default), each version given an OpenAPI
//! document gets, with the default template `/api/{version}/docs`: the document at
//! `/api/v1/openapi.json`, a Swagger UI at `/api/v1/docs/` (also at Kontiki's
//! `/api/v1/docs/swagger`; `/api/v1/docs` redirects there) whose assets the service serves
//! itself. `kontiki.http.documentation.title` / `.description` replace the document's `info`
//! when set.
//!
//! ```no_run
//! use kontiki_rt::http::{HttpError, HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
//! use kontiki_rt::Service;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Item { name: String, qty: u32 }
//!
//! # fn demo() -> kontiki_rt::Result<()> {
//! let service = Service::builder("shop")
//!     .http(
//!         HttpRoute::new(Method::POST, "/items", |req: HttpRequest| async move {
//!             let item: Item = req.json_body()?;
//!             if item.name == "taken" {
//!                 return Err(HttpError::mapped(StatusCode::CONFLICT, "conflict happened"));
//!             }
//!             Ok(HttpResponse::json(StatusCode::CREATED, &item))
//!         })
//!         .version("v1")
//!         .name("create_item"),
//!     )
//!     .http(HttpRoute::new(Method::GET, "/items/{id}", |req: HttpRequest| async move {
//!         let id: u64 = req.path_param("id")?;
//!         let verbose: Option<bool> = req.query_opt("verbose")?;
//!         Ok(HttpResponse::json(StatusCode::OK, &(id, verbose)))
//!     }))
//!     .openapi("v1", r#"{"openapi": "3.1.0", "info": {"title": "shop", "version": "v1"}, "paths": {}}"#)
//!     .build()?;
//! # Ok(()) }
//! ```

mod docs;
mod flow;
pub(crate) mod ops;
mod request;
mod response;
mod routing;
mod server;

pub use axum::body::Bytes;
pub use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
pub use request::{HttpRequest, PathParams};
pub use response::{FieldError, HttpError, HttpResponse};

pub(crate) use server::{HttpServer, start};

use axum::routing::{MethodFilter, MethodRouter};
use std::future::Future;
use std::sync::Arc;

/// Adds a route's handler to the method router of its path, with what each request of the
/// route needs. Made where the handler's type is known, so that a request's future holds the
/// handler's future in place rather than in a box of its own.
type Mount = dyn Fn(MethodRouter, MethodFilter, server::Route) -> MethodRouter + Send + Sync;

/// The future of a route registered with [`HttpRoute::with_fn`].
pub type HttpFuture = futures_util::future::BoxFuture<'static, Result<HttpResponse, HttpError>>;

type DynHandler = dyn Fn(HttpRequest) -> HttpFuture + Send + Sync;

/// Where a route's path comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoutePath {
    /// Written in the definition.
    Literal(String),
    /// Read from this config key at start (Kontiki's `use_config=True`).
    Config(String),
}

/// An HTTP route of a service: method, path, handler; optionally the OpenAPI version it belongs
/// to and the handler's name (for logs and the registry catalogue).
#[derive(Clone)]
pub struct HttpRoute {
    pub(crate) method: Method,
    pub(crate) path: RoutePath,
    pub(crate) version: Option<String>,
    pub(crate) name: Option<String>,
    mount: Arc<Mount>,
}

impl std::fmt::Debug for HttpRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRoute")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("version", &self.version)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HttpRoute {
    /// A route for `method` on `path` (`/items/{id}`: axum 0.8 syntax, one `{name}` per
    /// segment, `{*rest}` for the remainder).
    pub fn new<F, Fut>(method: Method, path: impl Into<String>, handler: F) -> Self
    where
        F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, HttpError>> + Send + 'static,
    {
        Self::with_path(method, RoutePath::Literal(path.into()), handler)
    }

    /// A route whose path is read from the config key `config_key` when the service starts
    /// (Kontiki's `@http(key, method, use_config=True)`).
    pub fn from_config<F, Fut>(method: Method, config_key: impl Into<String>, handler: F) -> Self
    where
        F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, HttpError>> + Send + 'static,
    {
        Self::with_path(method, RoutePath::Config(config_key.into()), handler)
    }

    /// A route served by a plain function over shared state, `handler(&state, request)`. All
    /// such routes share one instantiation of the serving code (axum's handler, body reading,
    /// metrics), so each route costs rustc only its function; the price is one boxed future
    /// per request (generated adapters use it).
    pub fn with_fn<S: Send + Sync + 'static>(
        method: Method,
        path: impl Into<String>,
        state: Arc<S>,
        handler: fn(&Arc<S>, HttpRequest) -> HttpFuture,
    ) -> Self {
        Self::with_dyn(
            method,
            RoutePath::Literal(path.into()),
            Arc::new(move |req| handler(&state, req)),
        )
    }

    /// [`with_fn`](Self::with_fn) with the path read from the config key `config_key` at
    /// start, as [`from_config`](Self::from_config).
    pub fn from_config_with_fn<S: Send + Sync + 'static>(
        method: Method,
        config_key: impl Into<String>,
        state: Arc<S>,
        handler: fn(&Arc<S>, HttpRequest) -> HttpFuture,
    ) -> Self {
        Self::with_dyn(
            method,
            RoutePath::Config(config_key.into()),
            Arc::new(move |req| handler(&state, req)),
        )
    }

    /// Not generic: every route made here shares one closure type, so one `with_path`.
    fn with_dyn(method: Method, path: RoutePath, handler: Arc<DynHandler>) -> Self {
        Self::with_path(method, path, move |req| handler(req))
    }

    fn with_path<F, Fut>(method: Method, path: RoutePath, handler: F) -> Self
    where
        F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, HttpError>> + Send + 'static,
    {
        // Shared by the routers the route is mounted in (the served one and the one an
        // application mounts).
        let handler = Arc::new(handler);
        Self {
            method,
            path,
            version: None,
            name: None,
            mount: Arc::new(move |router, filter, route| {
                let served = Arc::new(server::Served {
                    route,
                    handler: handler.clone(),
                });
                router.on_service(filter, server::RouteService(served))
            }),
        }
    }

    /// The API version the route belongs to (`"v1"`): the OpenAPI document that describes it.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The handler's name, for logs and the registry catalogue (default `"<METHOD> <path>"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The route's method.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

/// A layer the service adds around its routes ([`ServiceBuilder::http_layer`]).
///
/// [`ServiceBuilder::http_layer`]: crate::ServiceBuilder::http_layer
pub(crate) type RouterLayer = Arc<dyn Fn(axum::Router) -> axum::Router + Send + Sync>;

/// The routes and OpenAPI documents of a service definition.
#[derive(Clone, Default)]
pub(crate) struct HttpDefs {
    pub(crate) routes: Vec<HttpRoute>,
    /// `(version, document JSON)`, in the order given.
    pub(crate) documents: Vec<(String, String)>,
    /// Layers around the service's own routes, innermost first.
    pub(crate) layers: Vec<RouterLayer>,
}

impl std::fmt::Debug for HttpDefs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDefs")
            .field("routes", &self.routes)
            .field("documents", &self.documents.len())
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl HttpDefs {
    /// The routes as the registry catalogue lists them (protocol §5.6): `(handler, entry)`,
    /// with config paths resolved; empty when the server is off.
    pub(crate) fn catalogue(
        &self,
        container: &crate::Container,
    ) -> Vec<(String, serde_json::Value)> {
        if container.settings().http.disable {
            return Vec::new();
        }
        self.routes
            .iter()
            .filter_map(|r| {
                let path = match &r.path {
                    RoutePath::Literal(p) => p.clone(),
                    RoutePath::Config(key) => container.config().string(key).ok()?,
                };
                let handler = r
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{} {path}", r.method));
                let entry = serde_json::json!({
                    "type": "http",
                    "method": r.method.as_str(),
                    "path": path,
                    "handler": handler,
                });
                Some((handler, entry))
            })
            .collect()
    }

    /// Checks the paths read from config (`HttpRoute::from_config`): present, strings, valid.
    pub(crate) fn check_config(&self, config: &crate::Config) -> crate::Result<()> {
        for route in &self.routes {
            if let RoutePath::Config(key) = &route.path {
                server::config_path(config, key)?;
            }
        }
        Ok(())
    }

    /// Checks what needs no config: literal paths, duplicates, documents are JSON objects.
    pub(crate) fn check(&self) -> crate::Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for route in &self.routes {
            if let RoutePath::Literal(path) = &route.path {
                server::check_path(path)?;
                if !seen.insert((route.method.as_str().to_owned(), path.clone())) {
                    return Err(crate::Error::Definition(format!(
                        "http route `{} {path}` is declared twice",
                        route.method
                    )));
                }
            }
        }
        let mut versions = std::collections::BTreeSet::new();
        for (version, json) in &self.documents {
            docs::check_version(version)?;
            if !versions.insert(version.as_str()) {
                return Err(crate::Error::Definition(format!(
                    "two OpenAPI documents for version `{version}`"
                )));
            }
            docs::parse_document(version, json)?;
        }
        Ok(())
    }
}
