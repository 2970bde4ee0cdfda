//! The transport: the supervised broker connection and its channels, the wire format Kontiki
//! 2.3.2 writes, flow and hop ids, and TLS. Nothing here knows about entrypoints or services.

pub(crate) mod connection;
pub mod flow;
pub(crate) mod header_guard;
pub(crate) mod tls;
pub mod wire;

/// A hash map for the per-message path (pending calls, route and dedup caches, metric handles):
/// foldhash, seeded per process, instead of std's SipHash, which costs more than the rest of a
/// lookup. Its keys are ids and names this process makes or has bounded room for.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
