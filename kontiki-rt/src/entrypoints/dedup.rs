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

use crate::transport::FastMap;
use std::collections::VecDeque;
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
/// Shared (`Arc`) by the map and the eviction queue, so that a request costs one key.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// `{correlation_id}/{reply_to}`, compared exactly.
    address: Box<str>,
    body_len: usize,
    body_hash: u64,
}

/// The key of a request with `correlation_id`, answered to `reply_to`, whose body is `body`.
pub(crate) fn key(correlation_id: &str, reply_to: &str, body: &[u8]) -> Arc<Key> {
    use std::hash::BuildHasher as _;
    static SEED: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
    let mut address = String::with_capacity(correlation_id.len() + 1 + reply_to.len());
    address.push_str(correlation_id);
    address.push('/');
    address.push_str(reply_to);
    Arc::new(Key {
        address: address.into_boxed_str(),
        body_len: body.len(),
        body_hash: SEED.get_or_init(Default::default).hash_one(body),
    })
}

/// What the cache knows of a request.
#[derive(Debug)]
pub(crate) enum Seen {
    /// Not seen (or forgotten): run it; then [`Dedup::finish`] or [`Dedup::abandon`].
    New,
    /// Handled: answer with this reply.
    Done(Arc<[u8]>),
    /// Being handled: its reply comes on this channel (`None` if the run is abandoned).
    Running(watch::Receiver<Option<Arc<[u8]>>>),
}

#[derive(Debug)]
enum Entry {
    /// The channel is made when a redelivery first waits for the run (rarely): most runs
    /// never need one.
    Running(Option<watch::Sender<Option<Arc<[u8]>>>>),
    Done(Arc<[u8]>),
}

#[derive(Debug, Default)]
struct Inner {
    entries: FastMap<Arc<Key>, Entry>,
    /// Keys in the order they were first seen, to expire and evict the oldest.
    order: VecDeque<(Instant, Arc<Key>)>,
}

/// The per-instance cache of recent requests and their replies.
#[derive(Debug)]
pub(crate) struct Dedup {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Dedup {
    /// Remembers requests for `window`, at most `capacity` of them.
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

    /// Looks `key` up; a new request is recorded as running.
    pub(crate) fn begin(&self, key: &Arc<Key>) -> Seen {
        let now = Instant::now();
        let mut inner = self.lock();
        while let Some((at, _)) = inner.order.front() {
            if now.duration_since(*at) < self.window && inner.order.len() < self.capacity {
                break;
            }
            if let Some((_, old)) = inner.order.pop_front() {
                inner.entries.remove(&old);
            }
        }
        match inner.entries.get_mut(key) {
            Some(Entry::Done(reply)) => return Seen::Done(reply.clone()),
            Some(Entry::Running(tx)) => {
                let tx = tx.get_or_insert_with(|| watch::channel(None).0);
                return Seen::Running(tx.subscribe());
            }
            None => {}
        }
        inner.entries.insert(key.clone(), Entry::Running(None));
        inner.order.push_back((now, key.clone()));
        Seen::New
    }

    /// The run of `key` replied `reply`: kept for redeliveries (unless larger than
    /// [`MAX_KEPT_REPLY`]) and handed to those already waiting.
    pub(crate) fn finish(&self, key: &Key, reply: &[u8]) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        let kept = reply.len() <= MAX_KEPT_REPLY;
        let previous = if kept {
            std::mem::replace(entry, Entry::Done(Arc::from(reply)))
        } else {
            match inner.entries.remove(key) {
                Some(e) => e,
                None => return,
            }
        };
        drop(inner);
        if let Entry::Running(Some(tx)) = previous {
            let _ = tx.send(Some(Arc::from(reply)));
        }
    }

    /// The run of `key` ended without a reply to share: redeliveries run again.
    pub(crate) fn abandon(&self, key: &Key) {
        let mut inner = self.lock();
        if let Some(Entry::Running(_)) = inner.entries.get(key) {
            inner.entries.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Waits for a running request's reply: `None` when its run was abandoned.
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

    fn k(id: &str) -> Arc<Key> {
        key(id, "amq.rabbitmq.reply-to.x", b"{}")
    }

    #[tokio::test]
    async fn a_request_runs_once_and_its_redeliveries_get_its_reply() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        let a = k("a");
        assert!(matches!(d.begin(&a), Seen::New));
        let Seen::Running(rx) = d.begin(&k("a")) else {
            panic!("running")
        };
        let Seen::Running(rx2) = d.begin(&k("a")) else {
            panic!("running")
        };
        let waiter = tokio::spawn(wait(rx));
        let waiter2 = tokio::spawn(wait(rx2));
        d.finish(&a, b"reply");
        assert_eq!(waiter.await.unwrap().as_deref(), Some(&b"reply"[..]));
        assert_eq!(waiter2.await.unwrap().as_deref(), Some(&b"reply"[..]));
        let Seen::Done(r) = d.begin(&k("a")) else {
            panic!("done")
        };
        assert_eq!(&*r, b"reply");
    }

    #[tokio::test]
    async fn abandoned_runs_and_large_replies_are_not_kept() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        let a = k("a");
        assert!(matches!(d.begin(&a), Seen::New));
        let Seen::Running(rx) = d.begin(&a) else {
            panic!("running")
        };
        d.abandon(&a);
        assert_eq!(wait(rx).await, None);
        assert!(matches!(d.begin(&a), Seen::New));
        d.finish(&a, &vec![0u8; MAX_KEPT_REPLY + 1]);
        assert!(matches!(d.begin(&a), Seen::New));
    }

    #[test]
    fn the_window_and_the_capacity_bound_it() {
        let d = Dedup::new(Duration::from_secs(60), 3);
        for id in ["a", "b", "c", "d"] {
            assert!(matches!(d.begin(&k(id)), Seen::New));
            d.finish(&k(id), b"r");
        }
        assert!(d.len() <= 3);
        assert!(
            matches!(d.begin(&k("a")), Seen::New),
            "evicted by the capacity"
        );
        let d = Dedup::new(Duration::ZERO, 100);
        assert!(matches!(d.begin(&k("a")), Seen::New));
        d.finish(&k("a"), b"r");
        assert!(matches!(d.begin(&k("a")), Seen::New), "expired at once");
    }

    #[test]
    fn the_reply_address_and_the_body_are_part_of_the_key() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        assert!(matches!(d.begin(&key("id", "to", b"body")), Seen::New));
        d.finish(&key("id", "to", b"body"), b"r");
        assert!(matches!(d.begin(&key("id", "to", b"body")), Seen::Done(_)));
        assert!(matches!(
            d.begin(&key("id", "elsewhere", b"body")),
            Seen::New
        ));
        assert!(matches!(d.begin(&key("id", "to", b"other")), Seen::New));
        assert!(matches!(d.begin(&key("id/to", "", b"body")), Seen::New));
    }
}
