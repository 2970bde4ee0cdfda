#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
//!
//! ## Cargo features
//!
//! | Feature | Default | Adds |
//! |---|---|---|
//! | `http` | on | HTTP entrypoints (Kontiki's `@http`) on axum, OpenAPI documents and a vendored Swagger UI: `kontiki_rt::http`, `ServiceBuilder::http`, `ServiceBuilder::openapi` |
//! | `otel` | off | OpenTelemetry traces: spans for RPC calls (client and server), event publish and handle, HTTP requests and task runs; W3C `traceparent`/`tracestate` in the AMQP headers; OTLP/HTTP export when the `OTEL_*` environment asks for it (`kontiki_rt::otel`, `ServiceBuilder::tracer_provider`, `MessengerBuilder::tracer_provider`; docs/observability.md) |
//! | `memory` | off | the `memory://` transport: an AMQP broker inside the process (crate `kontiki-memory`), re-exported as `kontiki_rt::memory` |
//! | `testing` | off | `kontiki_rt::testing`: `TestBed`, recordings, fakes and taps for tests of services (implies `memory`) |
//!
//! ## Layout
//!
//! `transport` (connection, wire format, flow ids, TLS) ← `clients` (messenger, failed
//! messages, registry client) ← `handler` (handler errors, panics, the per-call context) ←
//! `entrypoints` (rpc, event, queue, task, http) ← `service` (builder, lifecycle, serving) ←
//! `cli`. `observe` is the hook the test harness plugs into. docs/ARCHITECTURE.md has the map.

#[cfg(feature = "cli")]
pub mod cli;
mod clients;
#[doc(hidden)]
pub mod codegen;
pub mod config;
mod entrypoints;
mod error;
mod handler;
pub(crate) mod observe;
mod service;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;

// The public paths of the modules that moved into the groups above.
#[cfg(feature = "http")]
pub use entrypoints::http;
pub use entrypoints::{event, queue, rpc, task};
#[cfg(feature = "memory")]
pub use kontiki_memory as memory;
pub use observe::logfile::KontikiLogLayer;
pub use observe::logfile::file_name as log_file_name;
/// OpenTelemetry traces (feature `otel`): when a service exports them, and the tracer
/// provider it makes. docs/observability.md ("Traces") describes the spans and headers.
#[cfg(feature = "otel")]
pub mod otel {
    pub use crate::observe::otel::{otlp_requested, tracer_provider_from_env};
}
pub use transport::{flow, wire};

pub use clients::failed::{FailedMessage, FailedMessages};
pub use clients::messenger::{
    CallOptions, Identity, Messenger, MessengerBuilder, PublishOptions, Session,
};
pub use clients::registry::Health;
/// Types that generated traits use in their signatures (Kontiki's `bytes`, `datetime` and the
/// `include_headers` map).
pub use codegen::{Bytes, DateTime, Headers};
pub use config::{Config, ConfigError, Settings, get_parameter};
pub use error::{BoxError, Error, RemoteError, Result, RpcError};
pub use event::{Event, EventEntrypoint, EventMode};
pub use handler::{Container, Context, Delegate, HandlerError};
#[cfg(feature = "http")]
pub use http::{FieldError, HttpError, HttpRequest, HttpResponse, HttpRoute};
pub use queue::{ExchangeType, QueueEntrypoint, RawMessage};
pub use rpc::{Call, RpcEntrypoint};
pub use service::{RunningService, Service, ServiceBuilder, shutdown_signal};
pub use task::{Schedule, TaskEntrypoint, TaskRun};
pub use transport::connection::connect_lapin;
