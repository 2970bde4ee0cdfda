//! The observation hook: a service reports each message it handled and each event and call it
//! sent to an [`Observer`]. The test harness plugs in here (and metrics can); nothing else does.

pub(crate) mod logfile;
pub(crate) mod metrics;
pub(crate) mod otel;
#[cfg(all(feature = "http", feature = "metrics"))]
mod sharded;
pub(crate) mod stats;

/// The histogram buckets of every `_seconds` metric, 0.5 ms to 10 s, in nanoseconds: the
/// tallies of the hot paths (`sharded.rs`) find a duration's bucket without floating point,
/// and `metrics.rs` gives the exporter the same bounds in seconds.
#[cfg(feature = "metrics")]
const BUCKET_NANOS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

use crate::error::RpcError;
use crate::transport::wire::Envelope;
use lapin::types::FieldTable;
use serde_json::{Map, Value};

/// How an event delivery was settled, as an observer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventSettled {
    /// Acked: the handler succeeded.
    Acked,
    /// Rejected with requeue: the delivery is tried again.
    Requeued,
    /// Rejected without requeue: dead-lettered or dropped.
    Rejected,
}

/// Receives what a service handles and sends. Every method is called on the handling task,
/// after the outcome is known, so an implementation must be quick and must not block.
pub(crate) trait Observer: Send + Sync + std::fmt::Debug {
    /// An RPC request was answered with `envelope`.
    fn rpc_handled(
        &self,
        method: &str,
        body: &[u8],
        headers: Option<&FieldTable>,
        envelope: &Envelope,
    );

    /// An event delivery was settled.
    fn event_handled(
        &self,
        handler: &str,
        event_type: &str,
        body: &[u8],
        headers: Option<&FieldTable>,
        redelivered: bool,
        settled: EventSettled,
    );

    /// A task run ended: `Ok(())`, or the error's text (a panic included).
    fn task_ran(&self, task: &str, flow_id: &str, result: Result<(), String>);

    /// An event was published (after the broker confirmed it).
    fn published(
        &self,
        event_type: &str,
        routing_key: &str,
        body: &[u8],
        headers: &Map<String, Value>,
    );

    /// A call to another service ended.
    fn called(&self, service: &str, method: &str, request: Value, result: &Result<Value, RpcError>);
}
