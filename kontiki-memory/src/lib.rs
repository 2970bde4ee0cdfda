//! The `memory://` transport of kontiki-rs: an AMQP 0-9-1 broker inside the current process.
//! It owns the sockets, the frames and the broker state; the runtime only resolves URLs here.
//!
//! With kontiki-rt's `memory` feature, set `kontiki.amqp.url: memory://` (or
//! `memory://<name>`) and every service, client and `Messenger` of the process that uses the
//! same URL talks through one in-process broker, started on first use. No RabbitMQ is needed: this is for the quickstart
//! and for unit tests of services. The runtime code is the same on both transports: the
//! broker listens on `127.0.0.1` on a free port and the runtime connects to it with lapin,
//! exactly as it connects to RabbitMQ.
//!
//! It implements what kontiki-rt relies on, with RabbitMQ's behaviour: topic, direct and
//! fanout exchanges, the default exchange, durable / exclusive / auto-delete queues,
//! competing consumers, per-consumer and per-channel prefetch, ack / nack / reject with
//! requeue and the redelivered flag, quorum-queue delivery limits (`x-delivery-limit`,
//! `x-delivery-count`), dead-lettering with `x-death` headers, message and queue TTLs,
//! `x-max-length` with `x-overflow`, mandatory publishes (`basic.return` 312 NO_ROUTE),
//! publisher confirms, `basic.get` and direct reply-to. Nothing persists beyond the process;
//! see "The memory:// transport" in `docs/runtime.md` for the full list of what is and is not
//! supported.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kontiki_memory::Broker;
//!
//! // A broker of its own (stopped when the last handle is dropped) ...
//! let broker = Broker::start()?;
//! let conn = lapin::Connection::connect(&broker.url(), Default::default()).await?;
//! let channel = conn.create_channel().await?;
//! channel
//!     .queue_declare("demo".into(), Default::default(), Default::default())
//!     .await?;
//! assert_eq!(broker.queues(), ["demo"]);
//! conn.close(200, "bye".into()).await?;
//!
//! // ... or the process-wide broker that `memory://demo` names.
//! let shared = Broker::named("demo")?;
//! assert_eq!(shared.url(), Broker::named("demo")?.url());
//! # Ok(())
//! # }
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod server;
mod state;
mod topic;

use server::Shared;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The in-process broker could not be started, or a `memory://` URL is not valid.
#[derive(Debug, thiserror::Error)]
#[error("in-process broker {url}: {reason}")]
#[non_exhaustive]
pub struct Error {
    /// The `memory://` URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// What this crate's fallible functions return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The scheme of in-process broker URLs.
const SCHEME: &str = "memory://";

/// A running in-process AMQP broker. Cheap to clone; every clone is the same broker.
///
/// A broker from [`Broker::start`] stops (closing its connections) when its last handle is
/// dropped; a broker from [`Broker::named`] (what `memory://<name>` URLs use) lives as long
/// as the process.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    port: u16,
    name: Option<String>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("name", &self.inner.name)
            .field("port", &self.inner.port)
            .finish_non_exhaustive()
    }
}

/// The runtime the brokers run on: their own two threads, so a broker outlives the runtime
/// (or test) that first asked for it.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kontiki-memory-broker")
        .enable_all()
        .build()
        .map_err(|e| Error {
            url: SCHEME.to_owned(),
            reason: format!("could not start its threads: {e}"),
        })?;
    Ok(RUNTIME.get_or_init(|| rt))
}

fn named_brokers() -> &'static Mutex<HashMap<String, Broker>> {
    static BROKERS: OnceLock<Mutex<HashMap<String, Broker>>> = OnceLock::new();
    BROKERS.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Broker {
    /// Starts a broker of its own on `127.0.0.1` and a free port. It stops when the last
    /// handle is dropped. Needs no async runtime.
    pub fn start() -> Result<Self> {
        Self::spawn(None)
    }

    /// The process-wide broker called `name` (`memory://<name>`; `""` is plain `memory://`),
    /// started on first use.
    pub fn named(name: &str) -> Result<Self> {
        let mut brokers = named_brokers()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = brokers.get(name) {
            return Ok(b.clone());
        }
        let broker = Self::spawn(Some(name.to_owned()))?;
        brokers.insert(name.to_owned(), broker.clone());
        Ok(broker)
    }

    fn spawn(name: Option<String>) -> Result<Self> {
        let url = format!("{SCHEME}{}", name.as_deref().unwrap_or("(anonymous)"));
        let fail = |reason: String| Error {
            url: url.clone(),
            reason,
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| fail(format!("could not listen on 127.0.0.1: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(format!("could not make the listener non-blocking: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| fail(format!("could not read the listening port: {e}")))?
            .port();
        let shared = Shared::new();
        let rt = runtime()?;
        let listener = {
            let _enter = rt.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| fail(format!("could not register the listener: {e}")))?
        };
        rt.spawn(server::serve(shared.clone(), listener));
        tracing::debug!(%url, port, "memory broker started");
        Ok(Self {
            inner: Arc::new(Handle { shared, port, name }),
        })
    }

    /// The AMQP URL the broker answers on: `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.inner.port)
    }

    /// The `memory://` URL of a named broker (`None` for one from [`Broker::start`]).
    pub fn memory_url(&self) -> Option<String> {
        self.inner.name.as_ref().map(|n| format!("{SCHEME}{n}"))
    }

    /// The TCP port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The number of messages ready (not delivered) in `queue`; `None` when there is no
    /// such queue.
    pub fn queue_depth(&self, queue: &str) -> Option<usize> {
        self.inner.shared.lock().queue_depth(queue)
    }

    /// The names of the queues that exist now, sorted.
    pub fn queues(&self) -> Vec<String> {
        self.inner.shared.lock().queue_names()
    }

    /// The number of client connections open now.
    pub fn connections(&self) -> usize {
        self.inner.shared.lock().connection_count()
    }
}

/// Whether `url` names an in-process broker.
pub fn is_memory_url(url: &str) -> bool {
    url.starts_with(SCHEME)
}

/// The AMQP URL to connect to for `url`: `memory://[name]` becomes the URL of that named
/// broker (started now if needed); anything else is returned as it is.
pub fn resolve_url(url: &str) -> Result<String> {
    let Some(rest) = url.strip_prefix(SCHEME) else {
        return Ok(url.to_owned());
    };
    let name = rest.trim_end_matches('/');
    if name.contains(['/', '?', '#', '@']) {
        return Err(Error {
            url: url.to_owned(),
            reason: "a memory:// URL is `memory://` or `memory://<name>`, with no path, \
                     query or credentials"
                .to_owned(),
        });
    }
    Ok(Broker::named(name)?.url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_resolve_to_one_broker_per_name() {
        let a = resolve_url("memory://unit-a").unwrap();
        assert_eq!(resolve_url("memory://unit-a/").unwrap(), a);
        assert_ne!(resolve_url("memory://unit-b").unwrap(), a);
        assert!(a.starts_with("amqp://guest:guest@127.0.0.1:"), "{a}");
        assert_eq!(
            resolve_url("amqp://h:5672/%2f").unwrap(),
            "amqp://h:5672/%2f"
        );
        let err = resolve_url("memory://x/y").unwrap_err().to_string();
        assert!(err.contains("memory://x/y"), "{err}");
    }
}
