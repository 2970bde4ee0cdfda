//! The [`Messenger`]: calls RPCs and publishes events, inside a service or stand-alone.

use crate::error::{Error, RemoteError, Result, RpcError};
use crate::observe::Observer;
use crate::transport::connection::{Connector, ConnectorOptions, Hook, Link};
use crate::transport::flow;
use crate::transport::wire::{self, Reply, RequestBody};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use lapin::BasicProperties;
use lapin::Confirmation;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// The longest a queue-existence check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a request queue seen to exist is taken to exist.
const ROUTE_CACHE: Duration = Duration::from_secs(10);

/// Whether `queue` exists: `None` when it could not be checked. A passive declare of a
/// missing queue closes its channel, so each check has a channel of its own, on the side
/// connection.
async fn queue_exists(connector: &Connector, queue: &str) -> Option<bool> {
    let q = ShortString::try_new(queue).ok()?;
    let probe = async {
        let ch = connector.side_channel().await.ok()?;
        let found = ch
            .queue_declare(
                q,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        Some((ch, found))
    };
    // Bounded: a check that cannot conclude says nothing, it never holds up a call.
    let (ch, found) = tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok()??;
    // A failed passive declare has the broker close the channel already.
    match found {
        Ok(_) => {
            let _ = ch.close(200, "probe done".into()).await;
            Some(true)
        }
        Err(e) if e.to_string().contains("NOT_FOUND") => Some(false),
        // An exclusive (per-instance) queue of another connection exists.
        Err(e) if e.to_string().contains("RESOURCE_LOCKED") => Some(true),
        Err(_) => None,
    }
}

/// RabbitMQ's direct reply-to pseudo queue: replies come straight to the calling channel.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// How long after a reconnection an unroutable event is taken for subscribers that have not
/// bound their queues again yet (their exchange is not durable, so a broker restart drops the
/// bindings until each consumer declares them again).
const RECOVERY_WINDOW: Duration = Duration::from_secs(30);

/// Who sends: written into the `service_name`, `instance_id` and `host` headers.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The logical service name (`kontiki-standalone-<client>` for stand-alone clients).
    pub service_name: Arc<str>,
    /// A uuid4 per process (per stand-alone Messenger).
    pub instance_id: Arc<str>,
    /// The host name.
    pub host: Arc<str>,
}

impl Identity {
    /// An identity with a fresh instance id and this machine's host name.
    pub fn new(service_name: impl Into<Arc<str>>) -> Self {
        Self {
            service_name: service_name.into(),
            instance_id: Arc::from(uuid::Uuid::new_v4().to_string()),
            host: Arc::from(gethostname::gethostname().to_string_lossy().into_owned()),
        }
    }
}

/// Per-call options of [`Messenger::call_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// Overrides the Messenger's default timeout (`kontiki.amqp.rpc.timeout`).
    pub timeout: Option<Duration>,
    /// Sends the request to one instance only (`{svc}.{method}.{instance_id}`).
    pub instance_id: Option<String>,
    /// Extra headers; Kontiki's reserved names are refused.
    pub headers: Map<String, Value>,
    /// An explicit flow id for this call only (not remembered for later calls).
    pub flow_id: Option<String>,
}

impl CallOptions {
    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Targets one instance.
    pub fn instance(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = Some(instance_id.into());
        self
    }

    /// Adds an extra header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Sets the flow id of this call.
    pub fn flow_id(mut self, flow_id: impl Into<String>) -> Self {
        self.flow_id = Some(flow_id.into());
        self
    }
}

/// Per-publish options of [`Messenger::publish_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// Extra headers; Kontiki's reserved names are refused.
    pub headers: Map<String, Value>,
    /// An explicit flow id for this message only.
    pub flow_id: Option<String>,
    /// Fail with [`Error::Unroutable`] when no queue is bound for the event type.
    pub mandatory: bool,
}

impl PublishOptions {
    /// Adds an extra header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Sets the flow id of this message.
    pub fn flow_id(mut self, flow_id: impl Into<String>) -> Self {
        self.flow_id = Some(flow_id.into());
        self
    }

    /// Fails when nothing is subscribed to the event type.
    pub fn mandatory(mut self) -> Self {
        self.mandatory = true;
        self
    }
}

enum ReplyMsg {
    Body(Vec<u8>),
    ConnectionLost,
}

struct Pending {
    tx: oneshot::Sender<ReplyMsg>,
    generation: u64,
}

struct Inner {
    connector: Connector,
    /// Request queues seen to exist, and when (see `check_route`).
    routes: Mutex<HashMap<String, std::time::Instant>>,
    /// Route checks in flight: concurrent calls to a route not yet seen share one check.
    probes: Mutex<HashMap<String, futures_util::future::Shared<BoxFuture<'static, Option<bool>>>>>,
    identity: Identity,
    /// `service_name`, `instance_id`, `host`, built once.
    identity_headers: FieldTable,
    rpc_timeout: Duration,
    pending: Mutex<HashMap<String, Pending>>,
    owns_connection: bool,
    /// Set by [`crate::testing`]: records what this Messenger publishes and calls.
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
}

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

    /// Connects; fails after the connect timeout. Reconnects by itself afterwards.
    pub async fn connect(self) -> Result<Messenger> {
        let identity = Identity::new(format!("kontiki-standalone-{}", self.client_name));
        let connector = Connector::new(ConnectorOptions {
            url: self.url,
            connection_name: format!("{} {}", identity.service_name, identity.instance_id),
            connect_timeout: self.connect_timeout,
            prefetch: 0,
            tls: None,
        });
        let messenger =
            Messenger::on_connector(connector.clone(), identity, self.rpc_timeout, true);
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
        }
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
            routes: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            identity_headers,
            identity,
            rpc_timeout,
            pending: Mutex::new(HashMap::new()),
            owns_connection,
            observer: std::sync::OnceLock::new(),
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

    /// Calls `service.method(*args, **kwargs)` and returns its result.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, RpcError> {
        self.call_with(
            service,
            method,
            RequestBody { args, kwargs },
            CallOptions::default(),
        )
        .await
    }

    /// Calls with per-call options (timeout, target instance, headers, flow id).
    pub async fn call_with(
        &self,
        service: &str,
        method: &str,
        body: RequestBody,
        options: CallOptions,
    ) -> Result<Value, RpcError> {
        let bytes = serde_json::to_vec(&body).map_err(Error::Encode)?;
        self.call_raw(service, method, bytes, options).await
    }

    /// Calls with a request body already encoded as JSON bytes.
    pub async fn call_raw(
        &self,
        service: &str,
        method: &str,
        body: Vec<u8>,
        options: CallOptions,
    ) -> Result<Value, RpcError> {
        let Some(observer) = self.inner.observer.get() else {
            return self
                .call_raw_unobserved(service, method, body, options)
                .await;
        };
        let request = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let result = self
            .call_raw_unobserved(service, method, body, options)
            .await;
        observer.called(service, method, request, &result);
        result
    }

    /// Makes `observer` see what this Messenger publishes and calls. A second observer is
    /// ignored.
    pub(crate) fn observe(&self, observer: Arc<dyn Observer>) {
        let _ = self.inner.observer.set(observer);
    }

    async fn call_raw_unobserved(
        &self,
        service: &str,
        method: &str,
        body: Vec<u8>,
        options: CallOptions,
    ) -> Result<Value, RpcError> {
        let timeout = options.timeout.unwrap_or(self.inner.rpc_timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || RpcError::Timeout {
            service: service.to_owned(),
            method: method.to_owned(),
            timeout,
        };
        check_reserved(&options.headers)?;
        let link = match self.inner.connector.link(timeout).await {
            Ok(link) => link,
            Err(Error::NotConnected { .. }) => return Err(timed_out()),
            Err(e) => return Err(e.into()),
        };
        let routing_key = wire::rpc_routing_key(service, method, options.instance_id.as_deref());
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let guard = PendingGuard::new(
            &self.inner,
            correlation_id.clone(),
            Pending {
                tx,
                generation: link.generation,
            },
        );

        let mut headers = self.base_headers();
        headers.insert("remote_method".into(), wire::header_str(method));
        headers.insert("rpc_service".into(), wire::header_str(service));
        insert_extras(&mut headers, &options.headers)?;
        let scope = flow::current();
        add_flow(
            &mut headers,
            &resolve_flow_id(options.flow_id.as_deref(), scope.as_ref()),
            scope.as_ref(),
        );
        let expiration = timeout.as_millis().max(1).to_string();
        let props = BasicProperties::default()
            .with_correlation_id(correlation_id.as_str().into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            // Transient, and expiring with the caller's timeout: a request nobody waits for any
            // more has no use, and must not run when a stopped service comes back.
            .with_delivery_mode(1)
            .with_expiration(ShortString::from(expiration))
            .with_headers(headers);
        let rk = routing_key_short(&routing_key).map_err(RpcError::Transport)?;
        let confirm = link
            .publish
            .basic_publish(
                wire::RPC_EXCHANGE.into(),
                rk,
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &body,
                props,
            )
            .await;
        let confirm = match confirm {
            Ok(c) => c,
            Err(source) => {
                link.mark_broken();
                tracing::debug!(error = %source, "rpc publish failed");
                return Err(RpcError::ConnectionLost {
                    service: service.to_owned(),
                    method: method.to_owned(),
                });
            }
        };
        let mut rx = rx;
        let mut confirm = Some(confirm);
        // Beside the mandatory flag (which a catch-all binding, such as the Kontiki registry's
        // `rpc_exchange` → `registry_event_exchange` `#`, defeats), check that the target queue
        // exists; cached, so it costs a round trip once per method every few seconds.
        let mut route = Box::pin(self.check_route(service, method, options.instance_id.as_deref()));
        let mut route_pending = true;
        // Set when the broker returned the request; the route check (still running, or done)
        // then says which of unknown service and unknown method it is.
        let mut returned = false;
        loop {
            if returned && !route_pending {
                drop(guard);
                return Err(self
                    .unroutable(service, method, options.instance_id.clone())
                    .await);
            }
            tokio::select! {
                unknown = &mut route, if route_pending => {
                    route_pending = false;
                    if let Some(e) = unknown {
                        drop(guard);
                        return Err(e);
                    }
                }
                reply = &mut rx => {
                    drop(guard);
                    return match reply {
                        Ok(ReplyMsg::Body(bytes)) => decode_reply(service, method, &bytes),
                        Ok(ReplyMsg::ConnectionLost) | Err(_) => Err(RpcError::ConnectionLost {
                            service: service.to_owned(), method: method.to_owned(),
                        }),
                    };
                }
                confirmation = async { match confirm.as_mut() { Some(c) => c.await, None => std::future::pending().await } } => {
                    confirm = None;
                    match confirmation {
                        Ok(Confirmation::Ack(Some(_returned))) => returned = true,
                        Ok(Confirmation::Nack(_)) => {
                            drop(guard);
                            return Err(RpcError::Transport(Error::Nacked {
                                exchange: wire::RPC_EXCHANGE.to_owned(), routing_key,
                            }));
                        }
                        Ok(_) => {}
                        Err(_) => {
                            drop(guard);
                            return Err(RpcError::ConnectionLost { service: service.to_owned(), method: method.to_owned() });
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    drop(guard);
                    return Err(timed_out());
                }
            }
        }
    }

    /// `None` when the queue a request goes to exists (or cannot be checked), else the typed
    /// error for a request nobody can take.
    async fn check_route(
        &self,
        service: &str,
        method: &str,
        instance_id: Option<&str>,
    ) -> Option<RpcError> {
        let queue = match instance_id {
            Some(iid) => wire::rpc_instance_queue(service, method, iid),
            None => wire::rpc_queue(service, method),
        };
        if let Some(seen) = lock(&self.inner.routes).get(&queue)
            && seen.elapsed() < ROUTE_CACHE
        {
            return None;
        }
        match self.probe(&queue).await {
            Some(true) => {
                let mut routes = lock(&self.inner.routes);
                if routes.len() > 1024 {
                    routes.retain(|_, seen| seen.elapsed() < ROUTE_CACHE);
                }
                routes.insert(queue, std::time::Instant::now());
                None
            }
            Some(false) => Some(
                self.unroutable(service, method, instance_id.map(str::to_owned))
                    .await,
            ),
            None => None,
        }
    }

    /// [`queue_exists`], shared by every caller that asks about `queue` while it runs (a burst
    /// of calls to a new route makes one check, not one each).
    async fn probe(&self, queue: &str) -> Option<bool> {
        use futures_util::FutureExt as _;
        let check = {
            let mut probes = lock(&self.inner.probes);
            probes
                .entry(queue.to_owned())
                .or_insert_with(|| {
                    let connector = self.inner.connector.clone();
                    let queue = queue.to_owned();
                    async move { queue_exists(&connector, &queue).await }
                        .boxed()
                        .shared()
                })
                .clone()
        };
        let found = check.clone().await;
        let mut probes = lock(&self.inner.probes);
        if probes
            .get(queue)
            .is_some_and(|running| running.ptr_eq(&check))
        {
            probes.remove(queue);
        }
        found
    }

    /// Tells an unknown service from an unknown method: every Kontiki service has the
    /// session-open RPC queue.
    async fn unroutable(
        &self,
        service: &str,
        method: &str,
        instance_id: Option<String>,
    ) -> RpcError {
        let probe_queue = wire::rpc_queue(service, wire::SESSION_OPEN_METHOD);
        let service_exists = queue_exists(&self.inner.connector, &probe_queue)
            .await
            .unwrap_or(false);
        if service_exists || instance_id.is_some() {
            RpcError::UnknownMethod {
                service: service.to_owned(),
                method: method.to_owned(),
                instance_id,
            }
        } else {
            RpcError::UnknownService {
                service: service.to_owned(),
                method: method.to_owned(),
            }
        }
    }

    /// Publishes an event; returns once the broker has confirmed it.
    pub async fn publish(&self, event_type: &str, payload: &impl Serialize) -> Result<()> {
        self.publish_with(event_type, payload, PublishOptions::default())
            .await
    }

    /// Publishes an event with extra headers, an explicit flow id, or as mandatory.
    pub async fn publish_with(
        &self,
        event_type: &str,
        payload: &impl Serialize,
        options: PublishOptions,
    ) -> Result<()> {
        let body = serde_json::to_vec(payload).map_err(Error::Encode)?;
        self.publish_event(event_type, event_type, body, &options, None)
            .await
    }

    /// Publishes one event message with Kontiki's headers, retrying on a new connection when
    /// the current one drops before the broker confirmed.
    pub(crate) async fn publish_event(
        &self,
        routing_key: &str,
        event_type: &str,
        body: Vec<u8>,
        options: &PublishOptions,
        session_id: Option<&str>,
    ) -> Result<()> {
        check_reserved(&options.headers)?;
        let mut extras = FieldTable::default();
        insert_extras(&mut extras, &options.headers)?;
        let scope = flow::current();
        let flow_id = resolve_flow_id(options.flow_id.as_deref(), scope.as_ref());
        // Built per attempt (a retry is rare), so the happy path never clones the headers.
        let build = || {
            let mut headers = self.base_headers();
            headers.insert("event_type".into(), wire::header_str(event_type));
            headers.insert("reply_to".into(), AMQPValue::Void);
            if let Some(sid) = session_id {
                headers.insert("session_id".into(), wire::header_str(sid));
            }
            for (k, v) in extras.inner() {
                headers.insert(k.clone(), v.clone());
            }
            add_flow(&mut headers, &flow_id, scope.as_ref());
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers)
        };
        self.publish_confirmed(
            wire::EVENT_EXCHANGE,
            routing_key,
            &body,
            build,
            options.mandatory,
            true,
        )
        .await?;
        if let Some(observer) = self.inner.observer.get() {
            observer.published(event_type, routing_key, &body, &options.headers);
        }
        Ok(())
    }

    /// Publishes with confirms on the publish channel; waits (bounded by the RPC timeout) for
    /// the connection while it recovers and publishes again when it dropped mid-way.
    ///
    /// Messages go out `mandatory`, as Kontiki's do. A message the broker returns as
    /// unroutable is an error when the caller asked for `mandatory`; otherwise it means no
    /// queue subscribes to it, which is normal for an event, except in the first moments of a
    /// reconnection, when subscribers may not have bound their queues again yet: then it is
    /// published again until they have (bounded by the same wait).
    pub(crate) async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: impl Fn() -> BasicProperties + Sync,
        mandatory: bool,
        retry_unroutable: bool,
    ) -> Result<()> {
        let wait = self.inner.rpc_timeout;
        let deadline = tokio::time::Instant::now() + wait;
        let rk = routing_key_short(routing_key)?;
        let mut backoff = Duration::from_millis(20);
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let link = self
                .inner
                .connector
                .link(remaining)
                .await
                .map_err(|e| match e {
                    Error::NotConnected { .. } => Error::NotConnected { waited: wait },
                    other => other,
                })?;
            let sent = link
                .publish
                .basic_publish(
                    exchange.into(),
                    rk.clone(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    body,
                    props(),
                )
                .await;
            let confirmation = match sent {
                Ok(confirm) => confirm.await,
                Err(e) => Err(e),
            };
            match confirmation {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => return Ok(()),
                Ok(Confirmation::Ack(Some(_))) => {
                    let unroutable = || Error::Unroutable {
                        exchange: exchange.to_owned(),
                        routing_key: routing_key.to_owned(),
                    };
                    if mandatory {
                        return Err(unroutable());
                    }
                    if !retry_unroutable || !link.recovering(RECOVERY_WINDOW) {
                        tracing::debug!(
                            exchange,
                            routing_key,
                            "no queue subscribes to this message"
                        );
                        return Ok(());
                    }
                    if tokio::time::Instant::now() + backoff >= deadline {
                        tracing::warn!(
                            exchange,
                            routing_key,
                            "still unroutable after the reconnection wait"
                        );
                        return Err(unroutable());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Ok(Confirmation::Nack(_)) => {
                    return Err(Error::Nacked {
                        exchange: exchange.to_owned(),
                        routing_key: routing_key.to_owned(),
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, exchange, routing_key, "publish not confirmed; retrying on a new connection");
                    link.mark_broken();
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::Amqp {
                            operation: format!("publish to {exchange} {routing_key}"),
                            source: e,
                        });
                    }
                }
            }
        }
    }

    /// Opens a session with one instance of `service` (Kontiki's `open_session`).
    pub async fn open_session(&self, service: &str) -> Result<Session, RpcError> {
        let result = self
            .call(service, wire::SESSION_OPEN_METHOD, Vec::new(), Map::new())
            .await?;
        let pair = result.as_array().filter(|a| a.len() == 2);
        let (Some(Value::String(instance_id)), Some(Value::String(session_id))) =
            (pair.and_then(|a| a.first()), pair.and_then(|a| a.get(1)))
        else {
            return Err(RpcError::InvalidReply {
                service: service.to_owned(),
                method: wire::SESSION_OPEN_METHOD.to_owned(),
                reason: format!("expected [instance_id, session_id], got {result}"),
            });
        };
        Ok(Session {
            messenger: self.clone(),
            service: service.to_owned(),
            instance_id: instance_id.clone(),
            session_id: session_id.clone(),
        })
    }

    fn base_headers(&self) -> FieldTable {
        // The identity headers are the same for every message: clone the prebuilt table.
        let mut h = self.inner.identity_headers.clone();
        h.insert("timestamp".into(), wire::header_str(wire::timestamp_now()));
        h
    }

    /// A channel on the side connection, for operations that may fail with a channel error.
    pub(crate) async fn side_channel(&self) -> Result<lapin::Channel> {
        self.inner.connector.side_channel().await
    }

    /// Closes the connection when this Messenger owns it (stand-alone); a service's Messenger
    /// closes with the service.
    pub async fn close(&self) {
        if self.inner.owns_connection {
            self.inner.connector.close().await;
        }
    }
}

/// A session with one instance of a service: events published through it reach only that
/// instance's `in_session` handlers.
#[derive(Debug, Clone)]
pub struct Session {
    messenger: Messenger,
    service: String,
    instance_id: String,
    session_id: String,
}

impl Session {
    /// The instance the session is pinned to.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The session id the service handed out.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The service the session was opened with.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Publishes an event to the pinned instance (routing key `{event}.{instance_id}`).
    pub async fn publish(&self, event_type: &str, payload: &impl Serialize) -> Result<()> {
        self.publish_with(event_type, payload, PublishOptions::default())
            .await
    }

    /// Publishes with options. The `event_type` header is the plain event type (Kontiki
    /// writes the routing key there, protocol §11 #7; no receiver reads it).
    pub async fn publish_with(
        &self,
        event_type: &str,
        payload: &impl Serialize,
        options: PublishOptions,
    ) -> Result<()> {
        let body = serde_json::to_vec(payload).map_err(Error::Encode)?;
        let routing_key = format!("{event_type}.{}", self.instance_id);
        self.messenger
            .publish_event(
                &routing_key,
                event_type,
                body,
                &options,
                Some(&self.session_id),
            )
            .await
    }
}

fn routing_key_short(routing_key: &str) -> Result<ShortString> {
    ShortString::try_new(routing_key).map_err(|_| Error::InvalidName {
        name: routing_key.to_owned(),
        reason: "a routing key may have at most 255 bytes".to_owned(),
    })
}

fn check_reserved(extras: &Map<String, Value>) -> Result<()> {
    let reserved = wire::reserved_header_names(extras.keys().map(String::as_str));
    if reserved.is_empty() {
        Ok(())
    } else {
        Err(Error::ReservedHeaders(reserved))
    }
}

/// Writes user extras into `headers` (Kontiki's order: extras before the flow headers).
fn insert_extras(headers: &mut FieldTable, extras: &Map<String, Value>) -> Result<()> {
    for (k, v) in extras {
        let key = wire::header_key(k).ok_or_else(|| {
            Error::InvalidHeader(format!("header name longer than 255 bytes: {k:.40}..."))
        })?;
        headers.insert(key, wire::json_to_amqp(v));
    }
    Ok(())
}

/// The flow of an outbound message: the explicit one, else the running handler's, else new.
fn resolve_flow_id(explicit: Option<&str>, scope: Option<&flow::FlowContext>) -> Arc<str> {
    match (explicit, scope) {
        (Some(f), _) => Arc::from(f),
        (None, Some(ctx)) => ctx.flow_id.clone(),
        (None, None) => Arc::from(wire::new_flow_id()),
    }
}

/// Writes `flow_id`, a new `hop_id`, and inside a handler `entrypoint`, `operation` and
/// `parent_hop_id`.
fn add_flow(headers: &mut FieldTable, flow_id: &Arc<str>, scope: Option<&flow::FlowContext>) {
    headers.insert("flow_id".into(), wire::header_str(flow_id.as_bytes()));
    headers.insert("hop_id".into(), wire::header_str(wire::new_hop_id()));
    if let Some(ctx) = scope {
        headers.insert(
            "entrypoint".into(),
            wire::header_str(ctx.entrypoint.as_str()),
        );
        headers.insert(
            "operation".into(),
            wire::header_str(ctx.operation.as_bytes()),
        );
        if let Some(hop) = &ctx.inbound_hop_id {
            headers.insert("parent_hop_id".into(), wire::header_str(hop.as_bytes()));
        }
    }
}

fn decode_reply(service: &str, method: &str, body: &[u8]) -> Result<Value, RpcError> {
    match wire::decode_reply(body) {
        Ok(Reply::Success(v)) => Ok(v),
        Ok(Reply::ClientError { code, message }) => Err(RpcError::Client {
            service: service.to_owned(),
            method: method.to_owned(),
            error: RemoteError { code, message },
        }),
        Ok(Reply::ServerError { code, message }) => Err(RpcError::Server {
            service: service.to_owned(),
            method: method.to_owned(),
            error: RemoteError { code, message },
        }),
        Err(e) => Err(RpcError::InvalidReply {
            service: service.to_owned(),
            method: method.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Removes a pending call when the call ends, however it ends (reply, timeout, cancellation).
struct PendingGuard<'a> {
    inner: &'a Inner,
    correlation_id: String,
}

impl<'a> PendingGuard<'a> {
    fn new(inner: &'a Inner, correlation_id: String, pending: Pending) -> Self {
        lock(&inner.pending).insert(correlation_id.clone(), pending);
        Self {
            inner,
            correlation_id,
        }
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.pending).remove(&self.correlation_id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the direct reply-to consumer on every new connection; fails pending calls of a lost one.
struct ReplyHook {
    inner: Weak<Inner>,
}

impl Hook for ReplyHook {
    fn up<'a>(&'a self, link: &'a Arc<Link>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Kontiki's Messenger declares both exchanges: they are not durable, so after a
            // broker restart they exist only once some client declared them again.
            for ex in [wire::EVENT_EXCHANGE, wire::RPC_EXCHANGE] {
                link.publish
                    .exchange_declare(
                        ex.into(),
                        lapin::ExchangeKind::Topic,
                        lapin::options::ExchangeDeclareOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|source| Error::Amqp {
                        operation: format!("declare exchange {ex}"),
                        source,
                    })?;
            }
            let mut consumer = link
                .publish
                .basic_consume(
                    DIRECT_REPLY_TO.into(),
                    "kontiki-replies".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|source| Error::Amqp {
                    operation: "consume direct reply-to".to_owned(),
                    source,
                })?;
            let weak = self.inner.clone();
            let link = link.clone();
            tokio::spawn(async move {
                while let Some(delivery) = consumer.next().await {
                    let Ok(delivery) = delivery else { break };
                    let Some(inner) = weak.upgrade() else { return };
                    let Some(cid) = delivery.properties.correlation_id().as_ref() else {
                        tracing::debug!("reply without correlation id dropped");
                        continue;
                    };
                    let pending = lock(&inner.pending).remove(cid.as_str());
                    match pending {
                        Some(p) => {
                            let _ = p.tx.send(ReplyMsg::Body(delivery.data));
                        }
                        None => {
                            tracing::debug!(correlation_id = %cid, "late or unknown reply dropped")
                        }
                    }
                }
                if !link.is_broken() {
                    link.mark_broken();
                }
            });
            Ok(())
        })
    }

    fn down(&self, generation: u64) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let lost: Vec<Pending> = {
            let mut map = lock(&inner.pending);
            let keys: Vec<String> = map
                .iter()
                .filter(|(_, p)| p.generation <= generation)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        for p in lost {
            let _ = p.tx.send(ReplyMsg::ConnectionLost);
        }
    }
}
