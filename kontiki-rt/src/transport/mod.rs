//! The transport: the supervised broker connection and its channels, the wire format Kontiki
//! 2.3.2 writes, flow and hop ids, and TLS. Nothing here knows about entrypoints or services.

pub(crate) mod connection;
pub mod flow;
pub(crate) mod header_guard;
pub(crate) mod tls;
pub mod wire;
