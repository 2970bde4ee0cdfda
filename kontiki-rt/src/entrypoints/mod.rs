//! The entrypoint kinds a service exposes: RPC, events, plain queues, periodic tasks and HTTP
//! routes. Each sits on [`crate::handler`] and the transport; none knows the service.

pub mod event;
#[cfg(feature = "http")]
pub mod http;
pub mod queue;
pub mod rpc;
pub mod task;
