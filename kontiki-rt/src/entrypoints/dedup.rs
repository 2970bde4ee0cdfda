//! Redelivered RPC requests answered without running the handler again.
//!
//! When the connection drops while a handler runs (or after it replied but before the broker
//! got the ack), the broker delivers the request again and, without this, the handler runs a
//! second time. A service remembers the correlation ids of the requests it handled within
//! `kontiki.amqp.rpc.dedup_window` seconds (at most `kontiki.amqp.rpc.dedup_capacity` of them,
//! replies up to [`MAX_KEPT_REPLY`] bytes each): a request seen again is answered with the
//! reply of its first run, or, when that run is still going, with its reply once it ends.
//!
//! What this promises, exactly: **an instance runs a handler at most once per request
//! (correlation id, reply address and body) within the window.** A redelivery that reaches *another* instance of the service runs there
//! (the cache is per instance); a request first seen longer ago than the window, or evicted by
//! the capacity, runs again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Replies larger than this are not kept: a redelivery of such a request runs again.
pub(crate) const MAX_KEPT_REPLY: usize = 64 * 1024;

/// The cache key of a request: its correlation id, its reply address and a hash of its body (a
/// redelivery is the same message; two requests that only share an id are not, and a cached
/// reply only ever goes to the address the first request gave). The hash is foldhash with a
/// seed drawn per process (the cache is per process): a fraction of an instruction a byte where
/// SipHash took about 2.5, which was most of the CPU a 64 KiB call cost over raw lapin.
pub(crate) fn key(correlation_id: &str, reply_to: &str, body: &[u8]) -> String {
    use std::hash::BuildHasher as _;
    static SEED: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
    let hash = SEED.get_or_init(Default::default).hash_one(body);
    format!("{correlation_id}/{reply_to}/{}/{hash:016x}", body.len())
}

/// The outcome of looking a request up.
#[derive(Debug)]
pub(crate) enum Seen {
    /// First time: run it, then call [`Dedup::finish`].
    New,
    /// Handled already: the reply it got (its envelope bytes).
    Done(Arc<[u8]>),
    /// Still running: its reply when it ends (`None` if the run was abandoned or the reply
    /// too large to keep).
    Running(watch::Receiver<Option<Arc<[u8]>>>),
}

#[derive(Debug)]
enum Entry {
    Running(watch::Sender<Option<Arc<[u8]>>>),
    Done(Arc<[u8]>),
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Insertion order, for expiry and the capacity.
    order: VecDeque<(Instant, String)>,
}

/// The per-instance cache of recently handled requests.
#[derive(Debug)]
pub(crate) struct Dedup {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Dedup {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Looks `correlation_id` up and, when new, marks it running.
    pub(crate) fn begin(&self, correlation_id: &str) -> Seen {
        let now = Instant::now();
        let mut inner = self.lock();
        // Expired entries and those over the capacity go, oldest first.
        while let Some((at, _)) = inner.order.front() {
            if now.duration_since(*at) < self.window && inner.order.len() < self.capacity {
                break;
            }
            if let Some((_, id)) = inner.order.pop_front() {
                inner.entries.remove(&id);
            }
        }
        match inner.entries.get(correlation_id) {
            Some(Entry::Done(reply)) => return Seen::Done(reply.clone()),
            Some(Entry::Running(tx)) => return Seen::Running(tx.subscribe()),
            None => {}
        }
        let (tx, _) = watch::channel(None);
        inner
            .entries
            .insert(correlation_id.to_owned(), Entry::Running(tx));
        inner.order.push_back((now, correlation_id.to_owned()));
        Seen::New
    }

    /// Records the reply of a run [`Dedup::begin`] answered `New` for, and hands it to the
    /// redeliveries waiting on it. A reply over [`MAX_KEPT_REPLY`] is handed on, not kept.
    pub(crate) fn finish(&self, correlation_id: &str, reply: &[u8]) {
        let reply: Arc<[u8]> = Arc::from(reply);
        let mut inner = self.lock();
        // Only an entry still there is replaced (one evicted meanwhile has left `order`).
        let Some(entry) = inner.entries.get_mut(correlation_id) else {
            return;
        };
        let previous = if reply.len() <= MAX_KEPT_REPLY {
            std::mem::replace(entry, Entry::Done(reply.clone()))
        } else {
            match inner.entries.remove(correlation_id) {
                Some(e) => e,
                None => return,
            }
        };
        if let Entry::Running(tx) = previous {
            let _ = tx.send(Some(reply));
        }
    }

    /// Forgets a run that ended without a reply to keep (its redeliveries run again).
    pub(crate) fn abandon(&self, correlation_id: &str) {
        let mut inner = self.lock();
        if let Some(Entry::Running(_)) = inner.entries.get(correlation_id) {
            // Dropping the sender wakes the waiters with `None`.
            inner.entries.remove(correlation_id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Waits for the reply of a run in progress; `None` when it ended without one to share.
pub(crate) async fn wait(mut rx: watch::Receiver<Option<Arc<[u8]>>>) -> Option<Arc<[u8]>> {
    loop {
        if let Some(reply) = rx.borrow_and_update().clone() {
            return Some(reply);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_runs_once_and_its_redeliveries_get_its_reply() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        assert!(matches!(d.begin("a"), Seen::New));
        let Seen::Running(rx) = d.begin("a") else {
            panic!("running")
        };
        let waiter = tokio::spawn(wait(rx));
        d.finish("a", b"reply");
        assert_eq!(waiter.await.unwrap().as_deref(), Some(&b"reply"[..]));
        let Seen::Done(r) = d.begin("a") else {
            panic!("done")
        };
        assert_eq!(&*r, b"reply");
    }

    #[tokio::test]
    async fn abandoned_runs_and_large_replies_are_not_kept() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        assert!(matches!(d.begin("a"), Seen::New));
        let Seen::Running(rx) = d.begin("a") else {
            panic!("running")
        };
        d.abandon("a");
        assert_eq!(wait(rx).await, None);
        assert!(matches!(d.begin("a"), Seen::New));
        d.finish("a", &vec![0u8; MAX_KEPT_REPLY + 1]);
        assert!(matches!(d.begin("a"), Seen::New));
    }

    #[test]
    fn the_window_and_the_capacity_bound_it() {
        let d = Dedup::new(Duration::from_secs(60), 3);
        for id in ["a", "b", "c", "d"] {
            assert!(matches!(d.begin(id), Seen::New));
            d.finish(id, b"r");
        }
        assert!(d.len() <= 3);
        assert!(matches!(d.begin("a"), Seen::New), "evicted by the capacity");
        let d = Dedup::new(Duration::ZERO, 100);
        assert!(matches!(d.begin("a"), Seen::New));
        d.finish("a", b"r");
        assert!(matches!(d.begin("a"), Seen::New), "expired at once");
    }
}
