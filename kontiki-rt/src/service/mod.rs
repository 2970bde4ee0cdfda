//! Services: a wire name, an instance id, entrypoints registered through a dynamic API, and
//! delegates with `setup` / `start` / `stop` hooks; the builder, the lifecycle and serving live
//! in the files beside this one.

mod builder;
mod lifecycle;
mod serve;

pub use builder::ServiceBuilder;
pub use lifecycle::{RunningService, shutdown_signal};

use crate::clients::registry::HealthCheck;
use crate::entrypoints::event::EventEntrypoint;
use crate::entrypoints::rpc::RpcEntrypoint;
use crate::entrypoints::task::{Clock, SystemClock, TaskEntrypoint};
use crate::handler::DynDelegate;
use crate::observe::Observer;
use std::sync::Arc;

/// A service definition, built with [`Service::builder`].
pub struct Service {
    name: String,
    version: String,
    registration_disabled: bool,
    rpcs: Vec<RpcEntrypoint>,
    events: Vec<EventEntrypoint>,
    tasks: Vec<TaskEntrypoint>,
    queues: Vec<crate::entrypoints::queue::QueueEntrypoint>,
    clock: Arc<dyn Clock>,
    health: Option<HealthCheck>,
    delegates: Vec<Arc<dyn DynDelegate>>,
    #[cfg(feature = "http")]
    http: crate::entrypoints::http::HttpDefs,
    observer: Option<Arc<dyn Observer>>,
    on_connect: Vec<OnConnect>,
    /// The application's tracer provider; `None`: the `OTEL_*` environment decides.
    #[cfg(feature = "otel")]
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// A callback of [`ServiceBuilder::on_connect`].
pub(crate) type OnConnect = Arc<
    dyn Fn(
            crate::Messenger,
        ) -> futures_util::future::BoxFuture<'static, Result<(), crate::BoxError>>
        + Send
        + Sync,
>;

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("version", &self.version)
            .field(
                "rpcs",
                &self
                    .rpcs
                    .iter()
                    .map(RpcEntrypoint::name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "events",
                &self
                    .events
                    .iter()
                    .map(EventEntrypoint::name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "delegates",
                &self.delegates.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Service {
    /// Starts a definition for the service with wire name `name`.
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder {
            service: Service {
                name: name.into(),
                version: "1.0.0".to_owned(),
                registration_disabled: false,
                rpcs: Vec::new(),
                events: Vec::new(),
                tasks: Vec::new(),
                queues: Vec::new(),
                clock: Arc::new(SystemClock),
                health: None,
                delegates: Vec::new(),
                #[cfg(feature = "http")]
                http: Default::default(),
                observer: None,
                on_connect: Vec::new(),
                #[cfg(feature = "otel")]
                tracer_provider: None,
            },
        }
    }

    /// The wire name (`kontiki.service_name` overrides it at start).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the version reported to the registry (the runner passes its own).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Turns registration off whatever the config says (`--disable-service-registration`).
    pub fn with_registration_disabled(mut self, disabled: bool) -> Self {
        self.registration_disabled |= disabled;
        self
    }

    /// Makes the started service report what it handles and sends to `observer`.
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "only the test harness plugs an observer in")
    )]
    pub(crate) fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
}
