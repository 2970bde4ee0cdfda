//! An instance's own counters of the work it did, sent with every heartbeat (`stats`) so the
//! registry and `kontiki services` can show them. Always on: each message costs a few relaxed
//! atomic additions. Python Kontiki's registry ignores the extra heartbeat key.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Counters since the instance started.
#[derive(Debug, Default)]
pub(crate) struct InstanceStats {
    rpc_ok: AtomicU64,
    rpc_errors: AtomicU64,
    rpc_failed: AtomicU64,
    rpc_micros: AtomicU64,
    events_ok: AtomicU64,
    events_retried: AtomicU64,
    events_dead_lettered: AtomicU64,
    in_flight: AtomicI64,
}

/// How an RPC request was answered, for [`InstanceStats::rpc_answered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcOutcome {
    /// A result.
    Ok,
    /// A declared error code (`rpc_error`).
    Declared,
    /// An internal error or the handler timeout.
    Failed,
}

impl InstanceStats {
    /// A request or delivery is being handled.
    pub(crate) fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered after `elapsed`.
    pub(crate) fn rpc_answered(&self, outcome: RpcOutcome, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = match outcome {
            RpcOutcome::Ok => &self.rpc_ok,
            RpcOutcome::Declared => &self.rpc_errors,
            RpcOutcome::Failed => &self.rpc_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.rpc_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// An event delivery was settled.
    pub(crate) fn event_settled(&self, settled: super::EventSettled) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = match settled {
            super::EventSettled::Acked => &self.events_ok,
            super::EventSettled::Requeued => &self.events_retried,
            super::EventSettled::Rejected => &self.events_dead_lettered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The heartbeat's `stats` object.
    pub(crate) fn snapshot(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let answered = get(&self.rpc_ok) + get(&self.rpc_errors) + get(&self.rpc_failed);
        let mean_ms = if answered == 0 {
            0.0
        } else {
            // Rounded to microseconds.
            (get(&self.rpc_micros) as f64 / answered as f64).round() / 1000.0
        };
        json!({
            "rpc_ok": get(&self.rpc_ok),
            "rpc_errors": get(&self.rpc_errors),
            "rpc_failed": get(&self.rpc_failed),
            "rpc_mean_ms": mean_ms,
            "events_ok": get(&self.events_ok),
            "events_retried": get(&self.events_retried),
            "events_dead_lettered": get(&self.events_dead_lettered),
            "in_flight": self.in_flight.load(Ordering::Relaxed).max(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::EventSettled;

    #[test]
    fn the_snapshot_counts_each_outcome_and_the_mean() {
        let s = InstanceStats::default();
        for _ in 0..3 {
            s.started();
        }
        s.rpc_answered(RpcOutcome::Ok, Duration::from_millis(2));
        s.rpc_answered(RpcOutcome::Declared, Duration::from_millis(4));
        s.started();
        s.event_settled(EventSettled::Rejected);
        assert_eq!(
            s.snapshot(),
            json!({
                "rpc_ok": 1, "rpc_errors": 1, "rpc_failed": 0, "rpc_mean_ms": 3.0,
                "events_ok": 0, "events_retried": 0, "events_dead_lettered": 1,
                "in_flight": 1,
            })
        );
    }
}
