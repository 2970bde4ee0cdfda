//! The [`Messenger`]: calls RPCs and publishes events, inside a service or stand-alone. This
//! file holds the handle and its connection; calls, publishing and sessions sit beside it.

mod call;
mod headers;
mod options;
mod publish;
mod session;

pub use options::{CallOptions, Identity, PublishOptions};
pub use session::Session;

use call::ReplyHook;

use crate::config::{AmqpSettings, TlsSettings};
use crate::error::{Error, Result};
use crate::observe::Observer;
use crate::transport::FastMap;
use crate::transport::connection::{Connector, ConnectorOptions};
use crate::transport::wire::{self};
use futures_util::future::BoxFuture;
use lapin::types::FieldTable;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

pub(super) enum ReplyMsg {
    Body(Vec<u8>),
    ConnectionLost,
}

pub(super) struct Pending {
    tx: oneshot::Sender<ReplyMsg>,
    generation: u64,
}

pub(super) struct Inner {
    connector: Connector,
    /// Request queues seen to exist, and when (see `check_route`).
    /// Keyed by routing key.
    routes: Mutex<FastMap<String, std::time::Instant>>,
    /// Route checks in flight: concurrent calls to a route not yet seen share one check.
    probes: Mutex<FastMap<String, futures_util::future::Shared<BoxFuture<'static, Option<bool>>>>>,
    identity: Identity,
    /// `service_name`, `instance_id`, `host`, built once.
    identity_headers: FieldTable,
    rpc_timeout: Duration,
    /// Calls waiting for their reply, by correlation id (a v4 UUID, kept as its 128 bits).
    pending: Mutex<FastMap<u128, Pending>>,
    owns_connection: bool,
    /// Set by [`crate::testing`]: records what this Messenger publishes and calls.
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
    /// Record calls and publishes in the metrics (`kontiki.metrics.enabled`).
    metrics: std::sync::atomic::AtomicBool,
    /// The metric handles of its calls and publishes, registered on first use.
    metric_handles: crate::observe::metrics::MessengerMetrics,
    /// `kontiki.amqp.max_message_size`: larger messages are refused before they are sent.
    max_message_size: std::sync::atomic::AtomicUsize,
    /// `kontiki.amqp.events.fail_when_subscribers_gone`.
    fail_when_subscribers_gone: std::sync::atomic::AtomicBool,
    /// Event routing keys seen delivered to a queue, and whether their subscribers are gone
    /// (`true`: the last publish found no binding after the whole wait). Written only when a
    /// key's state changes; at most [`MAX_ROUTED_KEYS`] keys.
    routed: std::sync::RwLock<FastMap<String, bool>>,
    /// The tracer of its calls and publishes (feature `otel`); unset, they make no spans.
    telemetry: std::sync::OnceLock<crate::observe::otel::Telemetry>,
}

/// How many event routing keys a Messenger remembers as routed (session events have one key
/// per instance).
pub(super) const MAX_ROUTED_KEYS: usize = 10_000;

/// Publishes events and calls RPCs over one connection.
///
/// Cloning is cheap; clones share the connection and the reply consumer. Many concurrent calls
/// are multiplexed by correlation id on one channel.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("service_name", &self.inner.identity.service_name)
            .field("instance_id", &self.inner.identity.instance_id)
            .finish_non_exhaustive()
    }
}

/// Builds a stand-alone [`Messenger`].
#[derive(Debug, Clone)]
pub struct MessengerBuilder {
    url: String,
    client_name: String,
    rpc_timeout: Duration,
    connect_timeout: Duration,
    rebalance_interval: Duration,
    tls: TlsSettings,
    #[cfg(feature = "otel")]
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl MessengerBuilder {
    /// The client name; headers say `kontiki-standalone-<name>` (default `client`).
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// The default RPC timeout (10 s).
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// How long connecting may take (10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With several broker URLs: how often a Messenger that failed over to another broker
    /// than its home tries to move back (30 s; zero: never), as
    /// `kontiki.amqp.rebalance_interval` for a service. Calls and publishes in flight finish
    /// on the old connection first.
    pub fn rebalance_interval(mut self, interval: Duration) -> Self {
        self.rebalance_interval = interval;
        self
    }

    /// TLS to the broker, as `kontiki.amqp.tls` gives it to a service: with
    /// [`TlsSettings::enabled`], an `amqp://` URL becomes `amqps://`, the server certificate
    /// is verified against `ca_cert` (and the URL's host name), and `client_cert` /
    /// `client_key` are presented for mutual TLS. Off by default; an `amqps://` URL without
    /// it verifies against the system's trusted roots.
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// Traces the calls and publishes of this Messenger on `provider` (feature `otel`): a
    /// client span per call, a producer span per publish, each a child of the span active
    /// where it is made, with W3C `traceparent`/`tracestate` in the message headers.
    /// [`Messenger::close`] flushes the provider; shutting it down stays with the caller.
    /// [`tracer_provider_from_env`](crate::otel::tracer_provider_from_env) makes one as a
    /// service would.
    #[cfg(feature = "otel")]
    pub fn tracer_provider(
        mut self,
        provider: opentelemetry_sdk::trace::SdkTracerProvider,
    ) -> Self {
        self.tracer_provider = Some(provider);
        self
    }

    /// Connects; fails after the connect timeout. Reconnects by itself afterwards.
    pub async fn connect(self) -> Result<Messenger> {
        let identity = Identity::new(format!("kontiki-standalone-{}", self.client_name));
        let tls = crate::transport::tls::TlsFiles::load(&self.tls)?;
        let connector = Connector::new(ConnectorOptions {
            url: crate::transport::tls::tls_url(&self.url, tls.is_some()),
            connection_name: format!("{} {}", identity.service_name, identity.instance_id),
            connect_timeout: self.connect_timeout,
            prefetch: 0,
            tls,
            rebalance: self.rebalance_interval,
            // It consumes only replies, on its publishing channel.
            consumer_connection: false,
        });
        let messenger =
            Messenger::on_connector(connector.clone(), identity, self.rpc_timeout, true);
        #[cfg(feature = "otel")]
        if let Some(provider) = self.tracer_provider {
            messenger.set_telemetry(crate::observe::otel::Telemetry::new(provider, false));
        }
        connector.start_required().await?;
        Ok(messenger)
    }
}

impl Messenger {
    /// A stand-alone Messenger connected to `url` (Kontiki's `Messenger(standalone=True)`).
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// Options for a stand-alone Messenger.
    pub fn builder(url: impl Into<String>) -> MessengerBuilder {
        MessengerBuilder {
            url: url.into(),
            client_name: "client".to_owned(),
            rpc_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            rebalance_interval: Duration::from_secs(30),
            tls: TlsSettings::default(),
            #[cfg(feature = "otel")]
            tracer_provider: None,
        }
    }

    /// Options for a stand-alone Messenger from the `kontiki.amqp.*` settings a service reads:
    /// the broker URL (list), `tls`, `rpc.timeout`, `connect_timeout` and `rebalance_interval`.
    /// So a script loads the same config files as the services and connects the same way:
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use kontiki_rt::{Config, Messenger, Settings};
    ///
    /// let settings = Settings::from_config(&Config::load(&["config.yaml"])?)?;
    /// let messenger = Messenger::builder_from_settings(&settings.amqp)
    ///     .client_name("nightly-report")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder_from_settings(amqp: &AmqpSettings) -> MessengerBuilder {
        Self::builder(amqp.url.as_str())
            .rpc_timeout(amqp.rpc_timeout)
            .connect_timeout(amqp.connect_timeout)
            .rebalance_interval(amqp.rebalance_interval)
            .tls(amqp.tls.clone())
    }

    /// A Messenger on an existing connector; its reply consumer starts with every connection.
    pub(crate) fn on_connector(
        connector: Connector,
        identity: Identity,
        rpc_timeout: Duration,
        owns_connection: bool,
    ) -> Self {
        let mut identity_headers = FieldTable::default();
        identity_headers.insert(
            "service_name".into(),
            wire::header_str(identity.service_name.as_bytes()),
        );
        identity_headers.insert(
            "instance_id".into(),
            wire::header_str(identity.instance_id.as_bytes()),
        );
        identity_headers.insert("host".into(), wire::header_str(identity.host.as_bytes()));
        let inner = Arc::new(Inner {
            connector: connector.clone(),
            routes: Mutex::new(FastMap::default()),
            probes: Mutex::new(FastMap::default()),
            identity_headers,
            identity,
            rpc_timeout,
            pending: Mutex::new(FastMap::default()),
            owns_connection,
            observer: std::sync::OnceLock::new(),
            metrics: std::sync::atomic::AtomicBool::new(true),
            metric_handles: crate::observe::metrics::MessengerMetrics::default(),
            max_message_size: std::sync::atomic::AtomicUsize::new(
                crate::config::AmqpSettings::DEFAULT_MAX_MESSAGE_SIZE,
            ),
            fail_when_subscribers_gone: std::sync::atomic::AtomicBool::new(false),
            routed: std::sync::RwLock::new(FastMap::default()),
            telemetry: std::sync::OnceLock::new(),
        });
        connector.add_hook(Arc::new(ReplyHook {
            inner: Arc::downgrade(&inner),
        }));
        Self { inner }
    }

    /// Who this Messenger says it is.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The default RPC timeout.
    pub fn rpc_timeout(&self) -> Duration {
        self.inner.rpc_timeout
    }

    /// The largest message this Messenger sends (`kontiki.amqp.max_message_size`, 16 MiB by
    /// default); a larger one fails with [`Error::MessageTooLarge`] and is not sent.
    pub fn max_message_size(&self) -> usize {
        self.inner
            .max_message_size
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets [`Messenger::max_message_size`].
    pub fn set_max_message_size(&self, bytes: usize) {
        self.inner
            .max_message_size
            .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets `kontiki.amqp.events.fail_when_subscribers_gone` (default `false`): when `true`, an event whose
    /// routing key this Messenger saw delivered before, and that no queue takes any more, is
    /// published again within the publish wait and then fails with
    /// [`Error::Unroutable`](crate::Error::Unroutable) (at once while it stays so), instead of
    /// being dropped while the publish reports success. `false` drops it, as Kontiki does
    /// (right where subscribers leave on purpose: broadcast and session queues).
    pub fn set_fail_when_subscribers_gone(&self, fail: bool) {
        self.inner
            .fail_when_subscribers_gone
            .store(fail, std::sync::atomic::Ordering::Relaxed);
    }

    /// The state of an event routing key: `None` never seen routed, `Some(gone)` otherwise.
    pub(super) fn routed_state(&self, routing_key: &str) -> Option<bool> {
        if !self
            .inner
            .fail_when_subscribers_gone
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        self.inner
            .routed
            .read()
            .ok()
            .and_then(|m| m.get(routing_key).copied())
    }

    /// Records that `routing_key` was delivered (`gone: false`) or found without subscribers
    /// after the whole wait (`gone: true`); a no-op when nothing changes or the setting is off
    /// (then a confirmed publish costs one atomic load, no lock).
    pub(super) fn set_routed_state(&self, routing_key: &str, gone: bool) {
        if !self
            .inner
            .fail_when_subscribers_gone
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let known = self
            .inner
            .routed
            .read()
            .ok()
            .map(|m| (m.get(routing_key).copied(), m.len()));
        match known {
            Some((Some(was), _)) if was == gone => {}
            Some((None, len)) if len >= MAX_ROUTED_KEYS => {}
            Some(_) => {
                if let Ok(mut m) = self.inner.routed.write() {
                    m.insert(routing_key.to_owned(), gone);
                }
            }
            None => {}
        }
    }

    /// `Err(MessageTooLarge)` when `size` is over the limit.
    pub(crate) fn check_size(&self, exchange: &str, routing_key: &str, size: usize) -> Result<()> {
        let max = self.max_message_size();
        if size > max {
            tracing::warn!(
                exchange,
                routing_key,
                size,
                max,
                "message too large; not sent"
            );
            return Err(Error::MessageTooLarge {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                size,
                max,
            });
        }
        Ok(())
    }

    /// Whether this Messenger records metrics (a service's follows `kontiki.metrics.enabled`).
    pub(crate) fn set_metrics(&self, on: bool) {
        self.inner
            .metrics
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn metrics_on(&self) -> bool {
        self.inner
            .metrics
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes `observer` see what this Messenger publishes and calls. A second observer is
    /// ignored.
    pub(crate) fn observe(&self, observer: Arc<dyn Observer>) {
        let _ = self.inner.observer.set(observer);
    }

    /// Traces this Messenger's calls and publishes with `telemetry`; a second one is ignored.
    #[cfg_attr(
        not(feature = "otel"),
        allow(dead_code, reason = "no Telemetry value exists without the feature")
    )]
    pub(crate) fn set_telemetry(&self, telemetry: crate::observe::otel::Telemetry) {
        let _ = self.inner.telemetry.set(telemetry);
    }

    /// The tracer of this Messenger (and of its service's entrypoints), when traces are on.
    pub(crate) fn telemetry(&self) -> Option<&crate::observe::otel::Telemetry> {
        self.inner.telemetry.get()
    }

    fn base_headers(&self) -> FieldTable {
        // The identity headers are the same for every message: clone the prebuilt table.
        let mut h = self.inner.identity_headers.clone();
        h.insert("timestamp".into(), wire::header_str(wire::timestamp_now()));
        h
    }

    /// Whether the connection is up (and its hooks, consumers included, ran on it).
    pub(crate) fn is_connected(&self) -> bool {
        matches!(
            self.inner.connector.state(),
            crate::transport::connection::State::Up(link) if !link.is_broken()
        )
    }

    /// A channel on the side connection, for operations that may fail with a channel error.
    pub(crate) async fn side_channel(&self) -> Result<lapin::Channel> {
        self.inner.connector.side_channel().await
    }

    /// How many connections this Messenger's connector has made: 1 after the first, one more
    /// with each reconnection (after a broker restart, for example).
    pub fn connection_generation(&self) -> u64 {
        self.inner.connector.generation()
    }

    /// Closes the connection when this Messenger owns it (stand-alone); a service's Messenger
    /// closes with the service.
    pub async fn close(&self) {
        if self.inner.owns_connection {
            self.inner.connector.close().await;
            if let Some(telemetry) = self.telemetry() {
                telemetry.shutdown().await;
            }
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
