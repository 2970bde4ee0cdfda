//! The per-call context: the [`Container`] a service's delegates and handlers share (config,
//! settings, identity, messenger, registry reports) and the [`Context`] each handler gets.

use crate::clients::messenger::{Identity, Messenger};
use crate::clients::registry::RegistryClient;
use crate::config::{Config, Settings};
use crate::observe::Observer;
use std::sync::Arc;

/// What delegates and handlers can reach: config, settings, identity and the messenger.
#[derive(Debug)]
pub struct Container {
    pub(crate) config: Config,
    pub(crate) settings: Settings,
    pub(crate) identity: Identity,
    pub(crate) version: String,
    pub(crate) messenger: Messenger,
    pub(crate) registry: std::sync::OnceLock<Arc<RegistryClient>>,
    /// What the service reports handled and sent to (the test harness, metrics).
    pub(crate) observer: Option<Arc<dyn Observer>>,
    /// Set once the service consumes its queues, cleared when shutdown begins (`/ready`).
    pub(crate) serving: std::sync::atomic::AtomicBool,
    /// The instance's counters, sent with its heartbeats.
    pub(crate) stats: Arc<crate::observe::stats::InstanceStats>,
}

impl Container {
    /// The merged configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The typed `kontiki.*` settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The service's name, instance id and host.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The service version (reported to the registry).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The service's messenger: publish events, call other services.
    pub fn messenger(&self) -> &Messenger {
        &self.messenger
    }

    /// Reports an exception to the registry (`registry.exception`), with the running
    /// handler's flow, hop, entrypoint and operation. Does nothing when registration is off.
    pub fn report_exception(&self, exception_type: &str, message: &str) {
        if let Some(r) = self.registry.get() {
            r.report_exception(
                crate::transport::flow::current().as_ref(),
                exception_type,
                message,
            );
        }
    }

    /// Sends a context record to the registry's timeline (`registry.context`), with the
    /// running handler's flow. Does nothing when registration is off.
    pub fn add_context(&self, context: serde_json::Value) {
        if let Some(r) = self.registry.get() {
            r.add_context(crate::transport::flow::current().as_ref(), context);
        }
    }

    /// Reports an uncaught handler error when `report_uncaught_exceptions` is on.
    pub(crate) fn report_uncaught(
        &self,
        flow: &crate::transport::flow::FlowContext,
        exception_type: &str,
        message: &str,
    ) {
        if let Some(r) = self.registry.get() {
            r.report_uncaught(flow, exception_type, message);
        }
    }

    /// The observer the service reports to, when one is plugged in.
    pub(crate) fn observer(&self) -> Option<&dyn Observer> {
        self.observer.as_deref()
    }

    /// Whether the service is ready for traffic: serving (started, not shutting down) and,
    /// unless AMQP is disabled, connected to the broker. `Err` says why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if !self.serving.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the service is starting or shutting down");
        }
        if !self.settings.amqp.disable && !self.messenger.is_connected() {
            return Err("no connection to the broker");
        }
        Ok(())
    }

    /// The register body this instance sends (with its entrypoint catalogue), when
    /// registration is on.
    pub fn registration(&self) -> Option<&serde_json::Value> {
        self.registry.get().map(|r| r.register_body())
    }
}

/// A handler's view of its service (cheap to clone).
#[derive(Debug, Clone)]
pub struct Context {
    container: Arc<dyn Shared>,
}

/// The [`Container`] as `Context` holds it: behind a trait object whose `Send + Sync` bounds
/// make `Context: Send` a one-step proof. Held as `Arc<Container>`, rustc would prove it by
/// walking every type the container reaches (messenger, connection, config), again in each
/// `async fn` that takes a `Context` (every generated handler), for the `Send` bound of the
/// future; that walk was most of the time `cargo check` spent on a crate implementing many
/// services.
trait Shared: Send + Sync + std::fmt::Debug {
    fn get(&self) -> &Container;
}

impl Shared for Container {
    fn get(&self) -> &Container {
        self
    }
}

impl Context {
    /// The service's messenger; messages sent through it inside a handler carry the handler's
    /// flow id and hop.
    pub fn messenger(&self) -> &Messenger {
        &self.container.get().messenger
    }

    /// The container (config, settings, identity).
    pub fn container(&self) -> &Container {
        self.container.get()
    }

    /// The flow id of the running handler.
    pub fn flow_id(&self) -> Option<Arc<str>> {
        crate::transport::flow::current_flow_id()
    }

    /// A context on `container`.
    pub(crate) fn new(container: Arc<Container>) -> Context {
        Context { container }
    }
}
