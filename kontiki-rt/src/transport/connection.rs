//! The broker connection: connects with a bounded timeout, keeps three long-lived channels,
//! and after a broker restart or a closed connection reconnects with backoff and runs every
//! registered [`Hook`] again, so exchanges, queues, bindings, QoS and consumers come back.
//!
//! kontiki-rt does its own recovery rather than lapin's `enable_auto_recover`: the topology is
//! a pure function of the service definition, so declaring it again is simple and exact, and
//! the runtime must know the moment a connection is lost to fail in-flight calls at once.
//!
//! Given several brokers (a cluster), a process picks one at random, its *home*, so that
//! replicas spread over the nodes. After a failover it is on another node; every
//! `kontiki.amqp.rebalance_interval` it tries its home again and, once the home answers,
//! *moves* back without losing work: the new connection takes publishes and calls, the old
//! one's consumers are cancelled and its handlers and calls in flight finish (within
//! [`RETIRE_TIMEOUT`]), then it closes and the instance's own exclusive queues are declared
//! again on the new one. So the fleet spreads out again after a node returns.

use crate::error::{Error, Result, redact_url};
use crate::transport::header_guard::{GuardedReactor, HeaderGuard};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use lapin::options::{BasicQosOptions, ConfirmSelectOptions};
use lapin::tcp::AMQPUriTcpExt as _;
use lapin::{Channel, Connection, ConnectionProperties};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Settings of a [`Connector`].
#[derive(Debug, Clone)]
pub(crate) struct ConnectorOptions {
    pub(crate) url: String,
    /// Shown in the broker's management UI.
    pub(crate) connection_name: String,
    pub(crate) connect_timeout: Duration,
    /// `basic.qos` of the consumer channel, per consumer (Kontiki: `max_pending_messages`).
    pub(crate) prefetch: u16,
    /// CA and client certificate for `amqps://`.
    pub(crate) tls: Option<crate::transport::tls::TlsFiles>,
    /// How often a process that failed over to another broker of its list tries to move back
    /// to its home broker (`kontiki.amqp.rebalance_interval`); zero: never.
    pub(crate) rebalance: Duration,
    /// A second connection for the consumer channel (a service's consumers and acks, so that
    /// they flow while a resource alarm blocks the publishing connection); off for a
    /// stand-alone Messenger, which consumes only replies, on its publishing channel.
    pub(crate) consumer_connection: bool,
}

/// One live connection and its channels. Replaced as a whole on reconnect.
#[derive(Debug)]
pub(crate) struct Link {
    /// Carries the publish and reply channels.
    pub(crate) conn: Connection,
    /// Carries only the consumer channel (topology, consumers, acks), as RabbitMQ advises: a
    /// resource alarm blocks connections that publish, and acks must flow meanwhile. `None`
    /// when the consumer channel is on `conn` ([`ConnectorOptions::consumer_connection`] off).
    pub(crate) consume_conn: Option<Connection>,
    /// Publisher confirms on: events, RPC requests, registry messages. Also carries the
    /// direct reply-to consumer of the Messenger, which must share the publishing channel.
    pub(crate) publish: Channel,
    /// QoS `prefetch` per consumer: every RPC and event consumer of the service, on
    /// `consume_conn`.
    pub(crate) consume: Channel,
    /// No confirms: RPC replies (transient, like Kontiki's).
    pub(crate) reply: Channel,
    /// Counts connections made by this connector, from 1.
    pub(crate) generation: u64,
    /// When this connection was made.
    pub(crate) connected_at: std::time::Instant,
    /// The broker of the URL list both connections are on; `None` for a single URL, or when
    /// the two connections went to different brokers.
    pub(crate) node: Option<usize>,
    /// Work that must end on this link before a move closes it: its consumers and the
    /// handlers of what they delivered (their acks go on this link), publishes waiting for
    /// their confirms and calls waiting for their replies.
    pub(crate) work: tokio_util::task::TaskTracker,
    /// Set when the link is being retired by a move: its consumers ending is then expected.
    retiring: std::sync::atomic::AtomicBool,
    broken: CancellationToken,
}

impl Link {
    /// Marks the link unusable; the supervisor reconnects.
    pub(crate) fn mark_broken(&self) {
        self.broken.cancel();
    }

    /// Resolves once the link is broken.
    pub(crate) async fn broken(&self) {
        self.broken.cancelled().await;
    }

    /// True while this is a reconnection younger than `window`: consumers of other processes
    /// may not have declared their bindings again yet.
    pub(crate) fn recovering(&self, window: Duration) -> bool {
        self.generation > 1 && self.connected_at.elapsed() < window
    }

    /// True once the link is broken.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.is_cancelled()
    }

    /// Runs a lapin operation on this link (an ack, a reply) until it completes or the link
    /// breaks: lapin can take an operation just as the connection dies and then never resolve
    /// it, which held a handler, and with it a graceful shutdown, for the whole grace period.
    pub(crate) async fn or_broken<T>(
        &self,
        op: impl std::future::Future<Output = lapin::Result<T>>,
    ) -> lapin::Result<T> {
        tokio::select! {
            r = op => r,
            () = self.broken() => Err(lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the broker connection was lost",
            ))),
        }
    }

    /// True once a move to another broker retires this link (its consumers are cancelled on
    /// purpose).
    pub(crate) fn is_retiring(&self) -> bool {
        self.retiring.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes both connections, each bounded by [`CLOSE_TIMEOUT`] (the close handshake of a
    /// connection blocked by a resource alarm may never complete).
    pub(crate) async fn close(&self, reason: &str) {
        for conn in std::iter::once(&self.conn).chain(&self.consume_conn) {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, reason.into())).await;
        }
    }
}

/// The longest the setup of one hook (declarations and consumers) may take on a new link.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a connection close may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a move to the home broker waits for the old link's handlers and calls in
/// flight; what is still running then is requeued by the broker (a request the instance runs
/// again is answered from its dedup cache) or fails with `ConnectionLost`.
pub(crate) const RETIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Something that must be (re)done on every new connection and undone when it drops.
pub(crate) trait Hook: Send + Sync + 'static {
    /// Declares topology and starts consumers on a fresh link.
    fn up<'a>(&'a self, link: &'a Arc<Link>) -> BoxFuture<'a, Result<()>>;
    /// The link is gone (in-flight work tied to it must fail now).
    fn down(&self, generation: u64);
    /// True when [`Hook::up`] declares exclusive queues, which only one connection can hold:
    /// on a move it runs once the old link is closed, not before.
    fn exclusive(&self) -> bool {
        false
    }
    /// A move is retiring `link`: take no new work on it (the move then waits for the work
    /// tracked by [`Link::work`]).
    fn retire<'a>(&'a self, link: &'a Arc<Link>) -> BoxFuture<'a, ()> {
        let _ = link;
        Box::pin(async {})
    }
}

#[derive(Debug, Clone)]
pub(crate) enum State {
    Connecting,
    Up(Arc<Link>),
    Closed,
}

struct Inner {
    opts: ConnectorOptions,
    /// A second connection, made on first use, for operations that may fail with a channel
    /// error (passive declares of queues that may not exist). lapin 4.12 can take a
    /// broker-closed channel for a connection error, so they stay off the main connection.
    side: tokio::sync::Mutex<Option<Connection>>,
    state: watch::Sender<State>,
    hooks: Mutex<Vec<Arc<dyn Hook>>>,
    shutdown: CancellationToken,
    generation: std::sync::atomic::AtomicU64,
}

/// Owns the connection to the broker for one service or stand-alone Messenger.
#[derive(Clone)]
pub(crate) struct Connector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("url", &redact_url(&self.inner.opts.url))
            .field("connection_name", &self.inner.opts.connection_name)
            .finish_non_exhaustive()
    }
}

impl Connector {
    pub(crate) fn new(opts: ConnectorOptions) -> Self {
        let (state, _) = watch::channel(State::Connecting);
        Self {
            inner: Arc::new(Inner {
                opts,
                side: tokio::sync::Mutex::new(None),
                state,
                hooks: Mutex::new(Vec::new()),
                shutdown: CancellationToken::new(),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Adds a hook; it runs on every connection made from now on (not on the current one).
    pub(crate) fn add_hook(&self, hook: Arc<dyn Hook>) {
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(hook);
    }

    /// Connects now (failing after the connect timeout), then keeps reconnecting in the
    /// background whenever the connection drops.
    pub(crate) async fn start_required(&self) -> Result<()> {
        let link = connect_once(&self.inner).await?;
        self.inner.state.send_replace(State::Up(link.clone()));
        self.spawn_supervisor(Some(link));
        Ok(())
    }

    /// Connects in the background, retrying with backoff until it succeeds (Kontiki's
    /// `amqp.required: false`).
    pub(crate) fn start_background(&self) {
        self.spawn_supervisor(None);
    }

    fn spawn_supervisor(&self, first: Option<Arc<Link>>) {
        let inner = self.inner.clone();
        tokio::spawn(supervise(inner, first));
    }

    pub(crate) fn state(&self) -> State {
        self.inner.state.borrow().clone()
    }

    /// The live link, waiting up to `wait` for one while (re)connecting.
    pub(crate) async fn link(&self, wait: Duration) -> Result<Arc<Link>> {
        let mut rx = self.inner.state.subscribe();
        let waited = async {
            loop {
                match &*rx.borrow_and_update() {
                    State::Up(link) if !link.is_broken() => return Ok(link.clone()),
                    State::Closed => return Err(Error::Closed),
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        };
        match tokio::time::timeout(wait, waited).await {
            Ok(r) => r,
            Err(_) => Err(Error::NotConnected { waited: wait }),
        }
    }

    /// A fresh channel on the side connection (see `Inner::side`), connecting it first when
    /// needed.
    pub(crate) async fn side_channel(&self) -> Result<Channel> {
        // In a task of its own: callers are bounded (a route check gives up after a few
        // seconds), and a caller that gives up must not abort a connection half made, or under
        // load every impatient caller would start another one.
        let inner = self.inner.clone();
        tokio::spawn(async move { side_channel(&inner).await })
            .await
            .map_err(|_| Error::Closed)?
    }

    /// How many connections this connector has made (1 after the first; each reconnection
    /// adds one).
    pub(crate) fn generation(&self) -> u64 {
        self.inner
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes the connection and stops reconnecting.
    pub(crate) async fn close(&self) {
        if let Some(side) = self.inner.side.lock().await.take() {
            let _ = side.close(200, "shutdown".into()).await;
        }
        self.inner.shutdown.cancel();
        let link = match self.state() {
            State::Up(link) => Some(link),
            _ => None,
        };
        self.inner.state.send_replace(State::Closed);
        if let Some(link) = link {
            link.close("shutdown").await;
            link.mark_broken();
            self.notify_down(link.generation);
        }
    }

    fn notify_down(&self, generation: u64) {
        notify_down(&self.inner, generation);
    }
}

fn notify_down(inner: &Inner, generation: u64) {
    let hooks: Vec<_> = inner
        .hooks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for hook in hooks {
        hook.down(generation);
    }
}

/// The delays between reconnection attempts: exponential from 100 ms to 5 s, each with random
/// jitter, so the replicas of a service do not reconnect in lock step after a broker restart.
fn reconnect_delays() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder as _;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

async fn supervise(inner: Arc<Inner>, mut link: Option<Arc<Link>>) {
    let mut delays = reconnect_delays();
    loop {
        if let Some(l) = link.take() {
            if inner.shutdown.is_cancelled() {
                return;
            }
            inner.state.send_replace(State::Up(l.clone()));
            let home = tokio::select! {
                () = l.broken() => None,
                () = inner.shutdown.cancelled() => return,
                new = home_answers(&inner, &l) => Some(new),
            };
            if let Some(new) = home {
                link = Some(move_home(&inner, l, new).await);
                continue;
            }
            if inner.shutdown.is_cancelled() {
                return;
            }
            inner.state.send_replace(State::Connecting);
            tracing::warn!(url = %redact_url(&inner.opts.url), "broker connection lost; reconnecting");
            notify_down(&inner, l.generation);
            l.close("reconnecting").await;
        }
        if inner.shutdown.is_cancelled() {
            return;
        }
        match connect_once(&inner).await {
            Ok(l) => {
                tracing::info!(url = %redact_url(&inner.opts.url), generation = l.generation, "connected to the broker");
                // `kontiki_connection_reconnects_total` (docs/observability.md), labelled by the
                // connection name's first word: the service or client name.
                #[cfg(feature = "metrics")]
                if l.generation > 1 {
                    let name = &inner.opts.connection_name;
                    let service = name.split(' ').next().unwrap_or(name).to_owned();
                    metrics::counter!("kontiki_connection_reconnects_total", "service" => service)
                        .increment(1);
                }
                delays = reconnect_delays();
                link = Some(l);
            }
            Err(e) => {
                let backoff = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in = ?backoff, "broker connection failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = inner.shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Resolves with a new link (channels open, no hook run yet) on the home broker of the URL
/// list once it answers, trying every `rebalance` interval while `link` is on another broker;
/// never resolves for a single URL, with rebalancing off, or when `link` is home already.
async fn home_answers(inner: &Arc<Inner>, link: &Arc<Link>) -> Arc<Link> {
    let len = inner.opts.url.split(',').count();
    let interval = inner.opts.rebalance;
    if len < 2 || interval.is_zero() {
        return std::future::pending().await;
    }
    let home = placement(&inner.opts.url, len).home;
    if link.node == Some(home) {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(interval).await;
        if link.is_broken() {
            // The supervisor reconnects (to any broker, home first).
            return std::future::pending().await;
        }
        match open_link(inner, Some(home)).await {
            Ok(new) => return new,
            Err(e) => tracing::debug!(error = %e, "home broker not back yet"),
        }
    }
}

/// Moves from `old` to `new` (on the home broker) without losing work: hooks that can share
/// the broker with the old link come up on `new`, which then takes publishes and calls; the
/// old link's consumers are cancelled and its work in flight finishes (within
/// [`RETIRE_TIMEOUT`]); it closes; then the hooks with exclusive queues come up on `new`.
/// Returns the link the supervisor watches next (`new`, broken if its setup failed, so that
/// the supervisor reconnects).
async fn move_home(inner: &Arc<Inner>, old: Arc<Link>, new: Arc<Link>) -> Arc<Link> {
    let hooks: Vec<_> = inner
        .hooks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let url = inner
        .opts
        .url
        .split(',')
        .nth(new.node.unwrap_or(0))
        .unwrap_or("");
    tracing::info!(url = %redact_url(url.trim()), generation = new.generation, "moving back to the home broker");
    let shared: Vec<_> = hooks.iter().filter(|h| !h.exclusive()).cloned().collect();
    if let Err(e) = run_hooks(&new, &shared).await {
        tracing::warn!(error = %e, "setting up on the home broker failed; staying");
        new.mark_broken();
        new.close("setup failed").await;
        return old;
    }
    inner.state.send_replace(State::Up(new.clone()));
    old.retiring
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let retire = async {
        futures_util::future::join_all(hooks.iter().map(|h| h.retire(&old))).await;
        old.work.close();
        old.work.wait().await;
    };
    tokio::select! {
        r = tokio::time::timeout(RETIRE_TIMEOUT, retire) => if r.is_err() {
            tracing::warn!(timeout = ?RETIRE_TIMEOUT, "work on the old connection did not end in time; closing it (unacked deliveries go back to their queues)");
        },
        () = inner.shutdown.cancelled() => {}
    }
    old.close("moved to the home broker").await;
    old.mark_broken();
    notify_down(inner, old.generation);
    // The side connection is made again on first use, on the home broker now preferred.
    if let Some(side) = inner.side.lock().await.take() {
        let _ = tokio::time::timeout(
            CLOSE_TIMEOUT,
            side.close(200, "moved to the home broker".into()),
        )
        .await;
    }
    let exclusive: Vec<_> = hooks.iter().filter(|h| h.exclusive()).cloned().collect();
    if let Err(e) = run_hooks(&new, &exclusive).await {
        tracing::warn!(error = %e, "setup on the home broker failed after the move; reconnecting");
        new.mark_broken();
    }
    #[cfg(feature = "metrics")]
    {
        let name = &inner.opts.connection_name;
        let service = name.split(' ').next().unwrap_or(name).to_owned();
        metrics::counter!("kontiki_connection_moves_total", "service" => service).increment(1);
    }
    new
}

/// The AMQP URL for `url`: `memory://[name]` becomes that in-process broker's (with the
/// `memory` feature; without it such a URL is an error that says so).
fn resolve_memory_url(url: &str) -> Result<String> {
    #[cfg(feature = "memory")]
    {
        kontiki_memory::resolve_url(url).map_err(|e| Error::MemoryBroker {
            url: e.url,
            reason: e.reason,
        })
    }
    #[cfg(not(feature = "memory"))]
    {
        if url.starts_with("memory://") {
            return Err(Error::MemoryBroker {
                url: url.to_owned(),
                reason: "kontiki-rt was built without its `memory` feature; enable it to use \
                         the in-process broker"
                    .to_owned(),
            });
        }
        Ok(url.to_owned())
    }
}

/// Opens a bare lapin connection to the first broker of `url` (a comma-separated list for a
/// cluster) that answers, with the TLS of `tls` (as [`crate::MessengerBuilder::tls`] takes it)
/// and the same errors as services and Messengers ([`Error::Tls`] says why a TLS handshake
/// failed). For tools that speak AMQP directly beside the runtime, such as `kontiki listen`;
/// nothing recovers the connection when it is lost.
pub async fn connect_lapin(
    url: &str,
    connection_name: &str,
    tls: &crate::config::TlsSettings,
    connect_timeout: Duration,
) -> Result<Connection> {
    let tls = crate::transport::tls::TlsFiles::load(tls)?;
    let opts = ConnectorOptions {
        url: crate::transport::tls::tls_url(url, tls.is_some()),
        connection_name: connection_name.to_owned(),
        connect_timeout,
        prefetch: 0,
        tls,
        rebalance: Duration::ZERO,
        consumer_connection: false,
    };
    open_connection(&opts, connection_name, None)
        .await
        .map(|(conn, _)| conn)
}

/// Opens one connection named `name` to the broker of `opts` (an in-process broker for
/// `memory://`), with TLS when configured, bounded by the connect timeout; with several
/// brokers, to `only` of them, or else to the first that answers. Returns the connection and
/// the index of its broker in the list (`None` for a single URL).
async fn open_connection(
    opts: &ConnectorOptions,
    name: &str,
    only: Option<usize>,
) -> Result<(Connection, Option<usize>)> {
    let urls: Vec<&str> = opts.url.split(',').map(str::trim).collect();
    if urls.len() == 1 {
        return Ok((open_one(opts, urls[0], name).await?, None));
    }
    // Several brokers (a cluster): start at the one that answered last (the home, a random
    // one, at first, so the replicas of a service spread over the nodes) and go round once.
    let placement = placement(&opts.url, urls.len());
    if let Some(i) = only.filter(|i| *i < urls.len()) {
        let conn = open_one(opts, urls[i], name).await?;
        placement
            .preferred
            .store(i, std::sync::atomic::Ordering::Relaxed);
        return Ok((conn, Some(i)));
    }
    let start = placement
        .preferred
        .load(std::sync::atomic::Ordering::Relaxed)
        % urls.len();
    let mut last_error = None;
    for i in (0..urls.len()).map(|k| (start + k) % urls.len()) {
        match open_one(opts, urls[i], name).await {
            Ok(conn) => {
                if i != start {
                    tracing::info!(url = %redact_url(urls[i]), "connected to another broker of the list");
                }
                placement
                    .preferred
                    .store(i, std::sync::atomic::Ordering::Relaxed);
                return Ok((conn, Some(i)));
            }
            Err(e) => {
                tracing::debug!(error = %e, "broker did not answer; trying the next of the list");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or(Error::NotConnected {
        waited: opts.connect_timeout,
    }))
}

/// Where the connections of one process to one URL list go.
#[derive(Debug)]
struct Placement {
    /// Drawn at random per process, so that replicas started together spread over the
    /// brokers; a process that failed over moves back to it (`home_answers`).
    home: usize,
    /// The broker to try first: the one that answered last.
    preferred: std::sync::atomic::AtomicUsize,
}

/// The placement for one URL list, shared by every connection of the process to that list.
fn placement(list: &str, len: usize) -> Arc<Placement> {
    static PLACEMENTS: std::sync::OnceLock<
        Mutex<std::collections::HashMap<String, Arc<Placement>>>,
    > = std::sync::OnceLock::new();
    let mut map = PLACEMENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(list.to_owned())
        .or_insert_with(|| {
            let home = (uuid::Uuid::new_v4().as_u128() % len.max(1) as u128) as usize;
            Arc::new(Placement {
                home,
                preferred: std::sync::atomic::AtomicUsize::new(home),
            })
        })
        .clone()
}

/// Opens one connection to the broker at `url`.
async fn open_one(opts: &ConnectorOptions, one_url: &str, name: &str) -> Result<Connection> {
    let url = redact_url(one_url);
    // `memory://` names an in-process broker: connect to it like to any other.
    let target = resolve_memory_url(one_url)?;
    if opts.tls.is_some() && target != one_url {
        return Err(Error::MemoryBroker {
            url: one_url.to_owned(),
            reason: "TLS (`kontiki.amqp.tls`) is not supported by the in-process broker".to_owned(),
        });
    }
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let connect = async {
        let uri: lapin::uri::AMQPUri = target.parse().map_err(|reason: String| {
            lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                reason,
            ))
        })?;
        let tls = opts.tls.as_ref().map(|t| t.to_lapin()).unwrap_or_default();
        // The socket (TLS included) is made on tokio's reactor; lapin reads it through the
        // header guard, which keeps headers nested too deep from its recursive parser.
        let sockets = lapin::runtime::default_runtime()?;
        let runtime = async_rs::Runtime::new(async_rs::util::RuntimeParts::new(
            async_rs::Tokio::current(),
            GuardedReactor::current(),
        ));
        Connection::connector(
            uri,
            runtime,
            async move |uri, _| {
                let stream = uri
                    .connect_with_config_async(tls.as_ref(), &sockets)
                    .await?;
                Ok(lapin::tcp::AsyncTcpStream::Plain(HeaderGuard::new(stream)))
            },
            props,
        )
        .await
    };
    match tokio::time::timeout(opts.connect_timeout, connect).await {
        Err(_) => Err(Error::ConnectTimeout {
            url,
            timeout: opts.connect_timeout,
        }),
        Ok(Err(source)) => Err(crate::transport::tls::connect_error(
            url,
            source,
            opts.tls.as_ref(),
        )),
        Ok(Ok(conn)) => Ok(conn),
    }
}

async fn connect_once(inner: &Arc<Inner>) -> Result<Arc<Link>> {
    let link = open_link(inner, None).await?;
    let hooks: Vec<_> = inner
        .hooks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Err(e) = run_hooks(&link, &hooks).await {
        link.mark_broken();
        link.close("setup failed").await;
        return Err(e);
    }
    Ok(link)
}

/// Runs `hooks` on `link` in order, each bounded by [`HOOK_TIMEOUT`] (a broker that stops
/// answering mid-setup must not stall the supervisor).
async fn run_hooks(link: &Arc<Link>, hooks: &[Arc<dyn Hook>]) -> Result<()> {
    for hook in hooks {
        match tokio::time::timeout(HOOK_TIMEOUT, hook.up(link)).await {
            Ok(up) => up?,
            Err(_) => {
                return Err(Error::NotConnected {
                    waited: HOOK_TIMEOUT,
                });
            }
        }
    }
    Ok(())
}

/// Opens the connection of a link, and its consumer connection when
/// [`ConnectorOptions::consumer_connection`] is on (to broker `only` of the list, or to the
/// first that answers), and its channels; runs no hook.
async fn open_link(inner: &Arc<Inner>, only: Option<usize>) -> Result<Arc<Link>> {
    let opts = &inner.opts;
    let (conn, node) = open_connection(opts, &opts.connection_name, only).await?;
    let (consume_conn, node) = if opts.consumer_connection {
        // The consumer connection goes to the same broker (the list's preferred one is now it).
        let consume_name = format!("{} (consume)", opts.connection_name);
        match open_connection(opts, &consume_name, only).await {
            Ok((c, consume_node)) => (Some(c), node.filter(|n| consume_node == Some(*n))),
            Err(e) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "setup failed".into()))
                    .await;
                return Err(e);
            }
        }
    } else {
        (None, node)
    };
    let broken = CancellationToken::new();
    watch_connection(&conn, broken.clone());
    if let Some(c) = &consume_conn {
        watch_connection(c, broken.clone());
    }
    match open_channels(inner, conn, consume_conn, node, broken.clone()).await {
        Ok(link) => Ok(link),
        Err(e) => {
            // The watcher tasks end with the token.
            broken.cancel();
            Err(e)
        }
    }
}

/// Breaks the link on any connection-level error of `conn` (the broker closing us, a socket
/// error, a missed heartbeat).
fn watch_connection(conn: &Connection, broken: CancellationToken) {
    let mut events = conn.events_listener();
    let watcher = broken;
    let status = conn.status().clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    // Channel errors (a passive declare of a missing queue) come here too;
                    // only a connection that is no longer connected breaks the link.
                    Some(lapin::Event::Error(e)) if status.connected() => {
                        tracing::debug!(error = %e, "channel error; the connection is still up");
                    }
                    Some(lapin::Event::Error(e)) => {
                        tracing::debug!(error = %e, "connection error event");
                        watcher.cancel();
                        return;
                    }
                    Some(_) => {}
                    None => { watcher.cancel(); return; }
                },
                () = watcher.cancelled() => return,
            }
        }
    });
}

/// Opens the three channels of a link (publish and reply on `conn`, consume on
/// `consume_conn`, or on `conn` without one); closes both connections when one fails.
async fn open_channels(
    inner: &Arc<Inner>,
    conn: Connection,
    consume_conn: Option<Connection>,
    node: Option<usize>,
    broken: CancellationToken,
) -> Result<Arc<Link>> {
    let opts = &inner.opts;
    let channels = async {
        let amqp = |operation: &str| {
            let operation = operation.to_owned();
            move |source| Error::Amqp { operation, source }
        };
        let publish = conn
            .create_channel()
            .await
            .map_err(amqp("open publish channel"))?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp("enable publisher confirms"))?;
        let consume = consume_conn
            .as_ref()
            .unwrap_or(&conn)
            .create_channel()
            .await
            .map_err(amqp("open consumer channel"))?;
        consume
            .basic_qos(opts.prefetch, BasicQosOptions { global: false })
            .await
            .map_err(amqp("set prefetch"))?;
        let reply = conn
            .create_channel()
            .await
            .map_err(amqp("open reply channel"))?;
        Ok::<_, Error>((publish, consume, reply))
    };
    let (publish, consume, reply) = match channels.await {
        Ok(c) => c,
        Err(e) => {
            for c in std::iter::once(&conn).chain(&consume_conn) {
                let _ =
                    tokio::time::timeout(CLOSE_TIMEOUT, c.close(200, "setup failed".into())).await;
            }
            return Err(e);
        }
    };
    let generation = inner
        .generation
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    Ok(Arc::new(Link {
        conn,
        consume_conn,
        publish,
        consume,
        reply,
        generation,
        connected_at: std::time::Instant::now(),
        node,
        work: tokio_util::task::TaskTracker::new(),
        retiring: std::sync::atomic::AtomicBool::new(false),
        broken,
    }))
}

/// [`Connector::side_channel`]'s work: connects the side connection when it is missing or
/// broken, then opens a channel on it.
async fn side_channel(inner: &Inner) -> Result<Channel> {
    let mut side = inner.side.lock().await;
    let usable = side.as_ref().is_some_and(|c| c.status().connected());
    if !usable {
        let name = format!("{} (ops)", inner.opts.connection_name);
        *side = Some(open_connection(&inner.opts, &name, None).await?.0);
    }
    let conn = side.as_ref().ok_or(Error::Closed)?;
    conn.create_channel().await.map_err(|source| Error::Amqp {
        operation: "open a channel on the side connection".to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_bounded_and_jittered() {
        let a: Vec<Duration> = reconnect_delays().take(12).collect();
        let b: Vec<Duration> = reconnect_delays().take(12).collect();
        assert_eq!(a.len(), 12, "the delays never run out");
        for d in a.iter().chain(&b) {
            // At most the 5 s cap plus up to as much jitter.
            assert!(
                *d >= Duration::from_millis(100) && *d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
        assert!(
            a[11] >= Duration::from_secs(5),
            "the delays grow to the cap: {a:?}"
        );
        // Jitter: two replicas do not wait the same 12 delays (equal by chance: ~0).
        assert_ne!(a, b, "no jitter between two sequences");
    }
}
