//! Delegates: business logic with `setup` / `start` / `stop` hooks (Kontiki's
//! `ServiceDelegate`), and the object-safe form the service keeps them in.

use super::context::Container;
use crate::error::BoxError;
use futures_util::future::BoxFuture;
use std::future::Future;

/// Business logic with a lifecycle (Kontiki's `ServiceDelegate`).
///
/// `setup` runs before the service connects and is where a delegate reads its settings from
/// the container's config; `start` runs once the service consumes; `stop` at shutdown, after
/// in-flight handlers drained. Use interior mutability (`OnceLock`, `Mutex`) for state set in
/// `setup`. Handlers never block: use `tokio::task::spawn_blocking` for blocking work.
pub trait Delegate: Send + Sync + 'static {
    /// A name for logs and errors.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Reads settings; runs before the service connects.
    fn setup(&self, container: &Container) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = container;
        async { Ok(()) }
    }

    /// Runs once the service consumes its queues.
    fn start(&self, container: &Container) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = container;
        async { Ok(()) }
    }

    /// Runs at shutdown, after in-flight handlers finished.
    fn stop(&self, container: &Container) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = container;
        async { Ok(()) }
    }
}

/// Object-safe form of [`Delegate`], for the service's list.
pub(crate) trait DynDelegate: Send + Sync {
    fn name(&self) -> &str;
    fn setup<'a>(&'a self, c: &'a Container) -> BoxFuture<'a, Result<(), BoxError>>;
    fn start<'a>(&'a self, c: &'a Container) -> BoxFuture<'a, Result<(), BoxError>>;
    fn stop<'a>(&'a self, c: &'a Container) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl<D: Delegate> DynDelegate for D {
    fn name(&self) -> &str {
        Delegate::name(self)
    }
    fn setup<'a>(&'a self, c: &'a Container) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(Delegate::setup(self, c))
    }
    fn start<'a>(&'a self, c: &'a Container) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(Delegate::start(self, c))
    }
    fn stop<'a>(&'a self, c: &'a Container) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(Delegate::stop(self, c))
    }
}
