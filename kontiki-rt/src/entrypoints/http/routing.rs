//! Route paths: the shape two paths conflict on, and adding a route to the router without
//! letting axum's conflict panic escape. Shared by the server and the documentation routes.

use crate::error::{Error, Result};
use crate::handler::panic_message;
use axum::Router;
use axum::routing::MethodRouter;
use std::panic::AssertUnwindSafe;

/// `Router::route`, with axum's panics on conflicting paths turned into a definition error.
pub(super) fn try_route(router: Router, path: &str, method_router: MethodRouter) -> Result<Router> {
    std::panic::catch_unwind(AssertUnwindSafe(move || router.route(path, method_router))).map_err(
        |panic| {
            Error::Definition(format!(
                "http path {path:?} conflicts with another route: {}",
                panic_message(&panic)
            ))
        },
    )
}

/// A path with its parameter names erased: two paths of one shape conflict.
pub(super) fn shape_of(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix("{*") {
            Some(_) => "{*}",
            None if seg.starts_with('{') => "{}",
            None => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}
