#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod amqp;
pub mod cli;
#[doc(hidden)]
pub mod codegen;
pub mod config;
mod error;
pub mod event;
mod failed;
pub mod flow;
mod messenger;
pub mod rpc;
mod service;
pub mod task;
mod tls;
pub mod wire;

pub use config::{Config, ConfigError, Settings, get_parameter};
pub use error::{BoxError, Error, RemoteError, Result, RpcError};
pub use event::{Event, EventEntrypoint, EventMode};
pub use failed::{FailedMessage, FailedMessages};
pub use messenger::{CallOptions, Identity, Messenger, MessengerBuilder, PublishOptions, Session};
pub use rpc::{Call, HandlerError, RpcEntrypoint};
pub use service::{
    Container, Context, Delegate, RunningService, Service, ServiceBuilder, shutdown_signal,
};
pub use task::{Schedule, TaskEntrypoint, TaskRun};
