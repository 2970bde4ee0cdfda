#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
//!
//! ## Cargo features
//!
//! | Feature | Default | Adds |
//! |---|---|---|
//! | `http` | on | HTTP entrypoints (Kontiki's `@http`) on axum, OpenAPI documents and a vendored Swagger UI: `kontiki_rt::http`, `ServiceBuilder::http`, `ServiceBuilder::openapi` |

mod amqp;
pub mod cli;
#[doc(hidden)]
pub mod codegen;
pub mod config;
mod error;
pub mod event;
mod failed;
pub mod flow;
#[cfg(feature = "http")]
pub mod http;
pub mod memory;
mod messenger;
pub mod queue;
mod registry;
pub mod rpc;
mod service;
pub mod task;
pub mod testing;
mod tls;
pub mod wire;

/// Types that generated traits use in their signatures (Kontiki's `bytes`, `datetime` and the
/// `include_headers` map).
pub use codegen::{Bytes, DateTime, Headers};
pub use config::{Config, ConfigError, Settings, get_parameter};
pub use error::{BoxError, Error, RemoteError, Result, RpcError};
pub use event::{Event, EventEntrypoint, EventMode};
pub use failed::{FailedMessage, FailedMessages};
#[cfg(feature = "http")]
pub use http::{FieldError, HttpError, HttpRequest, HttpResponse, HttpRoute};
pub use messenger::{CallOptions, Identity, Messenger, MessengerBuilder, PublishOptions, Session};
pub use queue::{ExchangeType, QueueEntrypoint, RawMessage};
pub use registry::Health;
pub use rpc::{Call, HandlerError, RpcEntrypoint};
pub use service::{
    Container, Context, Delegate, RunningService, Service, ServiceBuilder, shutdown_signal,
};
pub use task::{Schedule, TaskEntrypoint, TaskRun};
