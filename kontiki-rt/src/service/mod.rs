//! Services: a wire name, an instance id, entrypoints registered through a dynamic API, and
//! delegates with `setup` / `start` / `stop` hooks. [`Service::start`] declares the topology
//! exactly as Kontiki 2.3.2 does and consumes it; [`RunningService::shutdown`] drains.

use crate::transport::connection::{Connector, ConnectorOptions, Hook, Link};
use crate::config::{Config, Settings};
use crate::error::{Error, Result};
use crate::handler::{Container, Context, Delegate, DynDelegate};
use crate::observe::Observer;
use crate::entrypoints::event::{self, EventEntrypoint, EventMode, EventSource, Outcome};
use crate::clients::messenger::{Identity, Messenger};
use crate::clients::registry::{self, Health, HealthCheck, Registration, RegistryClient, RegistryHook};
use crate::entrypoints::rpc::{self, RpcEntrypoint};
use crate::entrypoints::task::{self, Clock, SystemClock, TaskEntrypoint};
use crate::transport::wire;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// A service definition, built with [`Service::builder`].
pub struct Service {
    name: String,
    version: String,
    registration_disabled: bool,
    rpcs: Vec<RpcEntrypoint>,
    events: Vec<EventEntrypoint>,
    tasks: Vec<TaskEntrypoint>,
    queues: Vec<crate::entrypoints::queue::QueueEntrypoint>,
    clock: Arc<dyn Clock>,
    health: Option<HealthCheck>,
    delegates: Vec<Arc<dyn DynDelegate>>,
    #[cfg(feature = "http")]
    http: crate::entrypoints::http::HttpDefs,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("version", &self.version)
            .field(
                "rpcs",
                &self
                    .rpcs
                    .iter()
                    .map(RpcEntrypoint::name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "events",
                &self
                    .events
                    .iter()
                    .map(EventEntrypoint::name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "delegates",
                &self.delegates.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Builds a [`Service`].
#[derive(Debug)]
pub struct ServiceBuilder {
    service: Service,
}

impl ServiceBuilder {
    /// The service version, reported to the registry (default `1.0.0`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.service.version = version.into();
        self
    }

    /// Adds an RPC entrypoint.
    pub fn rpc(mut self, ep: RpcEntrypoint) -> Self {
        self.service.rpcs.push(ep);
        self
    }

    /// Adds an event handler.
    pub fn event(mut self, ep: EventEntrypoint) -> Self {
        self.service.events.push(ep);
        self
    }

    /// Adds a periodic task.
    pub fn task(mut self, ep: TaskEntrypoint) -> Self {
        self.service.tasks.push(ep);
        self
    }

    /// Adds a plain queue consumer (a queue that is not an RPC or event entrypoint).
    pub fn queue(mut self, ep: crate::entrypoints::queue::QueueEntrypoint) -> Self {
        self.service.queues.push(ep);
        self
    }

    /// Replaces the clock tasks are scheduled by (tests drive cron schedules with
    /// [`TokioClock`](crate::entrypoints::task::TokioClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.service.clock = clock;
        self
    }

    /// The degraded check, run before every heartbeat to the registry (Kontiki's
    /// `@degraded_on`; async here).
    pub fn health_check<F, Fut>(mut self, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Health> + Send + 'static,
    {
        self.service.health = Some(registry::health_check(check));
        self
    }

    /// Adds an HTTP route (Kontiki's `@http`).
    #[cfg(feature = "http")]
    pub fn http(mut self, route: crate::entrypoints::http::HttpRoute) -> Self {
        self.service.http.routes.push(route);
        self
    }

    /// Serves `document_json`, the OpenAPI document of API version `version`, with a Swagger
    /// UI (`kontiki.http.documentation.*`).
    #[cfg(feature = "http")]
    pub fn openapi(mut self, version: impl Into<String>, document_json: impl Into<String>) -> Self {
        self.service
            .http
            .documents
            .push((version.into(), document_json.into()));
        self
    }

    /// Adds a delegate; keep a clone of the `Arc` to use it from handlers.
    pub fn delegate<D: Delegate>(mut self, delegate: Arc<D>) -> Self {
        self.service.delegates.push(delegate);
        self
    }

    /// Checks the definition: names usable on the wire, no duplicates.
    pub fn build(self) -> Result<Service> {
        let s = &self.service;
        check_word(&s.name, "service name")?;
        #[cfg(feature = "http")]
        s.http.check()?;
        let mut seen = BTreeSet::new();
        for ep in &s.rpcs {
            check_word(&ep.name, "rpc name")?;
            if ep.name == wire::SESSION_OPEN_METHOD {
                return Err(Error::Definition(format!(
                    "`{}` is Kontiki's internal session RPC",
                    ep.name
                )));
            }
            if !seen.insert(ep.name.as_str()) {
                return Err(Error::Definition(format!(
                    "rpc `{}` is declared twice",
                    ep.name
                )));
            }
        }
        let mut tasks = BTreeSet::new();
        for ep in &s.tasks {
            if !tasks.insert(ep.name.as_str()) {
                return Err(Error::Definition(format!(
                    "task `{}` is declared twice",
                    ep.name
                )));
            }
            task::check(ep)?;
        }
        let mut handlers = BTreeSet::new();
        for ep in &s.events {
            if !handlers.insert(ep.name.as_str()) {
                return Err(Error::Definition(format!(
                    "event handler `{}` is declared twice",
                    ep.name
                )));
            }
            if ep.max_attempts == Some(0) {
                return Err(Error::Definition(format!(
                    "event handler `{}`: max_attempts must be at least 1",
                    ep.name
                )));
            }
            if let EventSource::Types(types) = &ep.source {
                if types.is_empty() {
                    return Err(Error::Definition(format!(
                        "event handler `{}` handles no event type",
                        ep.name
                    )));
                }
                for t in types {
                    check_word(t, "event type")?;
                }
            }
        }
        Ok(self.service)
    }
}

fn check_word(name: &str, what: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason: format!("a {what} {reason}"),
        })
    };
    if name.is_empty() {
        return bad("may not be empty");
    }
    if name.contains(['*', '#']) {
        return bad("may not contain `*` or `#` (they are AMQP topic wildcards)");
    }
    if name.split('.').any(str::is_empty) {
        return bad("may not have empty dot-separated words");
    }
    if name.len() > 200 {
        return bad("must be shorter than 200 bytes (it is part of queue names)");
    }
    Ok(())
}

impl Service {
    /// Starts a definition for the service with wire name `name`.
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder {
            service: Service {
                name: name.into(),
                version: "1.0.0".to_owned(),
                registration_disabled: false,
                rpcs: Vec::new(),
                events: Vec::new(),
                tasks: Vec::new(),
                queues: Vec::new(),
                clock: Arc::new(SystemClock),
                health: None,
                delegates: Vec::new(),
                #[cfg(feature = "http")]
                http: Default::default(),
                observer: None,
            },
        }
    }

    /// The wire name (`kontiki.service_name` overrides it at start).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the version reported to the registry (the runner passes its own).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Turns registration off whatever the config says (`--disable-service-registration`).
    pub fn with_registration_disabled(mut self, disabled: bool) -> Self {
        self.registration_disabled |= disabled;
        self
    }

    /// Makes the started service report what it handles and sends to `observer`.
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "only the test harness plugs an observer in")
    )]
    pub(crate) fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sets up delegates, connects, declares the topology, consumes, and starts delegates.
    pub async fn start(self, config: Config) -> Result<RunningService> {
        let settings = Settings::from_config(&config)?;
        let name = settings
            .service_name
            .clone()
            .unwrap_or_else(|| self.name.clone());
        check_word(&name, "service name")?;
        let identity = Identity::new(name.as_str());
        let tls = crate::transport::tls::TlsFiles::load(&settings.amqp.tls)?;
        let connector = Connector::new(ConnectorOptions {
            url: crate::transport::tls::tls_url(&settings.amqp.url, tls.is_some()),
            connection_name: format!("{name} {}", identity.instance_id),
            connect_timeout: settings.amqp.connect_timeout,
            prefetch: settings.amqp.max_pending_messages,
            tls,
        });
        let messenger = Messenger::on_connector(
            connector.clone(),
            identity.clone(),
            settings.amqp.rpc_timeout,
            false,
        );
        if let Some(observer) = &self.observer {
            messenger.observe(observer.clone());
        }
        let container = Arc::new(Container {
            config,
            settings,
            identity,
            version: self.version,
            messenger,
            registry: std::sync::OnceLock::new(),
            observer: self.observer.clone(),
        });

        for d in &self.delegates {
            d.setup(&container)
                .await
                .map_err(|source| Error::Delegate {
                    delegate: d.name().to_owned(),
                    phase: "setup",
                    source,
                })?;
        }

        let event_queues = plan_event_queues(&self.events, &container)?;
        let tasks = self
            .tasks
            .iter()
            .map(|t| task::resolve(t, &container.config))
            .collect::<Result<Vec<_>>>()?;
        let state = Arc::new(ServeState {
            container: container.clone(),
            rpcs: self.rpcs.into_iter().map(Arc::new).collect(),
            event_queues,
            session_rpc: Arc::new(session_open_entrypoint()),
            queues: self.queues.into_iter().map(Arc::new).collect(),
            shutting_down: AtomicBool::new(false),
            consumers_cancelled: AtomicBool::new(false),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            consumers: Mutex::new(Vec::new()),
        });
        connector.add_hook(Arc::new(ServeHook {
            state: state.clone(),
        }));
        let registration_on = !self.registration_disabled
            && !container.settings.registration.disable
            && !container.settings.amqp.disable;
        if registration_on {
            let reg = &container.settings.registration;
            let client = Arc::new(RegistryClient::new(
                container.messenger.clone(),
                Registration {
                    version: container.version.clone(),
                    group: reg.group.clone(),
                    heartbeat_interval: container.settings.heartbeat.interval,
                    delay: reg.delay,
                    report_uncaught: reg.report_uncaught_exceptions,
                    entrypoints: catalogue(&state, &tasks, {
                        #[cfg(feature = "http")]
                        {
                            self.http.catalogue(&container)
                        }
                        #[cfg(not(feature = "http"))]
                        {
                            Vec::new()
                        }
                    }),
                    public: container.settings.public.clone(),
                },
                self.health.clone(),
            ));
            let _ = container.registry.set(client.clone());
            connector.add_hook(Arc::new(RegistryHook { client }));
        }
        if container.settings.amqp.disable {
            // `kontiki.amqp.disable`: no broker at all; the messenger fails at once.
            tracing::info!("AMQP is disabled (kontiki.amqp.disable): no RPC, no events");
            connector.close().await;
        } else if container.settings.amqp.required {
            connector.start_required().await?;
        } else {
            connector.start_background();
        }
        #[cfg(feature = "http")]
        let http = crate::entrypoints::http::start(&self.http, &container).await?;
        tracing::info!(
            service = %container.identity.service_name,
            instance_id = %container.identity.instance_id,
            version = %container.version,
            registration = if self.registration_disabled || container.settings.registration.disable { "disabled" } else { "enabled" },
            "service started"
        );

        if let Some(client) = container.registry.get() {
            state.tracker.spawn(client.clone().run(state.stop.clone()));
        }
        for t in tasks {
            tracing::debug!(task = t.name(), "starting task loop");
            state.tracker.spawn(task::run_loop(
                t,
                Context::new(container.clone()),
                self.clock.clone(),
                state.stop.clone(),
            ));
        }

        for d in &self.delegates {
            d.start(&container)
                .await
                .map_err(|source| Error::Delegate {
                    delegate: d.name().to_owned(),
                    phase: "start",
                    source,
                })?;
        }
        Ok(RunningService {
            state,
            connector,
            delegates: self.delegates,
            #[cfg(feature = "http")]
            http,
        })
    }
}

fn session_open_entrypoint() -> RpcEntrypoint {
    RpcEntrypoint::new(wire::SESSION_OPEN_METHOD, |call: rpc::Call| async move {
        let iid = call.context.container().identity().instance_id.to_string();
        Ok(Value::Array(vec![
            Value::String(iid),
            Value::String(uuid::Uuid::new_v4().to_string()),
        ]))
    })
}

struct ServeState {
    container: Arc<Container>,
    rpcs: Vec<Arc<RpcEntrypoint>>,
    session_rpc: Arc<RpcEntrypoint>,
    event_queues: Vec<Arc<EventQueue>>,
    queues: Vec<Arc<crate::entrypoints::queue::QueueEntrypoint>>,
    shutting_down: AtomicBool,
    /// Set once the broker confirmed the cancellation of every consumer at shutdown: from then
    /// on a delivery still in the client's buffer goes back to the queue. Before that, a
    /// requeued delivery would come straight back to this same consumer (its prefetch slot is
    /// free again) and, on a quorum queue, every such round trip counts as a delivery
    /// attempt, until `x-delivery-limit` dead-letters a message nobody failed on.
    consumers_cancelled: AtomicBool,
    /// Cancelled at shutdown: task loops stop starting runs.
    stop: CancellationToken,
    tracker: TaskTracker,
    /// Consumer tags on the current link, to cancel at shutdown.
    consumers: Mutex<Vec<(Arc<Link>, ShortString)>>,
}

/// A started service.
pub struct RunningService {
    state: Arc<ServeState>,
    connector: Connector,
    delegates: Vec<Arc<dyn DynDelegate>>,
    #[cfg(feature = "http")]
    http: Option<crate::entrypoints::http::HttpServer>,
}

impl std::fmt::Debug for RunningService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningService")
            .field("identity", &self.state.container.identity)
            .finish_non_exhaustive()
    }
}

impl RunningService {
    /// The service's name, instance id and host.
    pub fn identity(&self) -> &Identity {
        &self.state.container.identity
    }

    /// The service's messenger.
    pub fn messenger(&self) -> &Messenger {
        &self.state.container.messenger
    }

    /// The container (config, settings).
    pub fn container(&self) -> &Container {
        &self.state.container
    }

    /// The address the HTTP server listens on, when it runs.
    #[cfg(feature = "http")]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(crate::entrypoints::http::HttpServer::local_addr)
    }

    /// Graceful shutdown: stop accepting (consumers cancelled; what arrives before the broker
    /// confirms the cancellation is handled, deliveries that arrive after it go back to the
    /// queue), drain in-flight handlers within `kontiki.shutdown.grace_seconds`,
    /// stop delegates, close. Unfinished deliveries are requeued by the broker.
    pub async fn shutdown(self) {
        let state = &self.state;
        state.shutting_down.store(true, Ordering::SeqCst);
        #[cfg(feature = "http")]
        if let Some(http) = &self.http {
            http.stop_accepting();
        }
        state.stop.cancel();
        let consumers: Vec<_> = std::mem::take(&mut *lock(&state.consumers));
        for (link, tag) in consumers {
            if !link.is_broken() {
                let _ = link
                    .consume
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await;
            }
        }
        state.consumers_cancelled.store(true, Ordering::SeqCst);
        if let Some(registry) = state.container.registry.get() {
            registry.unregister().await;
        }
        state.tracker.close();
        let grace = state.container.settings.shutdown.grace;
        #[cfg(feature = "http")]
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout(grace, state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?grace, in_flight = state.tracker.len(), "grace period over; closing with handlers still running (their messages are requeued)");
        }
        #[cfg(feature = "http")]
        if let Some(http) = self.http {
            http.drain(deadline).await;
        }
        for d in self.delegates.iter().rev() {
            if let Err(e) = d.stop(&state.container).await {
                tracing::warn!(delegate = d.name(), error = %e, "delegate stop failed");
            }
        }
        self.connector.close().await;
        tracing::info!(service = %state.container.identity.service_name, "service stopped");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Declares the topology and starts the consumers on every new connection.
struct ServeHook {
    state: Arc<ServeState>,
}

impl ServeHook {
    /// Consumes `queue` on the consumer channel, remembering the tag for shutdown.
    async fn start_consumer(
        &self,
        link: &Arc<Link>,
        queue: ShortString,
        dispatch: Dispatch,
    ) -> Result<()> {
        let consumer = link
            .consume
            .basic_consume(
                queue.clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| Error::Amqp {
                operation: format!("consume {queue}"),
                source,
            })?;
        lock(&self.state.consumers).push((link.clone(), consumer.tag()));
        tokio::spawn(consume(
            self.state.clone(),
            dispatch,
            link.clone(),
            consumer,
        ));
        Ok(())
    }
}

impl Hook for ServeHook {
    fn up<'a>(&'a self, link: &'a Arc<Link>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ch = &link.consume;
            let svc = self.state.container.identity.service_name.clone();
            let iid = self.state.container.identity.instance_id.clone();
            let amqp = |operation: String| move |source| Error::Amqp { operation, source };
            for ex in [wire::EVENT_EXCHANGE, wire::RPC_EXCHANGE] {
                ch.exchange_declare(
                    ex.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp(format!("declare exchange {ex}")))?;
            }
            let mut eps: Vec<Arc<RpcEntrypoint>> = vec![self.state.session_rpc.clone()];
            eps.extend(self.state.rpcs.iter().cloned());
            for ep in eps {
                let shared = wire::rpc_queue(&svc, &ep.name);
                let own = wire::rpc_instance_queue(&svc, &ep.name, &iid);
                let durable = QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                };
                let exclusive = QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                };
                for (queue, options, key) in [
                    (shared, durable, wire::rpc_routing_key(&svc, &ep.name, None)),
                    (
                        own,
                        exclusive,
                        wire::rpc_routing_key(&svc, &ep.name, Some(&iid)),
                    ),
                ] {
                    let q =
                        ShortString::try_new(queue.as_str()).map_err(|_| Error::InvalidName {
                            name: queue.clone(),
                            reason: "a queue name may have at most 255 bytes".to_owned(),
                        })?;
                    ch.queue_declare(q.clone(), options, FieldTable::default())
                        .await
                        .map_err(amqp(format!("declare queue {queue}")))?;
                    ch.queue_bind(
                        q.clone(),
                        wire::RPC_EXCHANGE.into(),
                        key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(amqp(format!("bind queue {queue} to {key}")))?;
                    self.start_consumer(link, q.clone(), Dispatch::Rpc(ep.clone()))
                        .await?;
                }
            }
            if self
                .state
                .event_queues
                .iter()
                .any(|q| matches!(q.kind, EventQueueKind::Competing { .. }))
            {
                ch.exchange_declare(
                    wire::FAILED_EXCHANGE.into(),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(amqp(format!("declare exchange {}", wire::FAILED_EXCHANGE)))?;
            }
            for plan in &self.state.event_queues {
                let q = short(&plan.queue)?;
                let (options, args) = match &plan.kind {
                    EventQueueKind::Competing { args, failed_queue } => {
                        let fq = short(failed_queue)?;
                        ch.queue_declare(
                            fq.clone(),
                            QueueDeclareOptions {
                                durable: true,
                                ..Default::default()
                            },
                            event::failed_queue_args(),
                        )
                        .await
                        .map_err(amqp(format!("declare queue {failed_queue}")))?;
                        ch.queue_bind(
                            fq.clone(),
                            wire::FAILED_EXCHANGE.into(),
                            fq,
                            QueueBindOptions::default(),
                            FieldTable::default(),
                        )
                        .await
                        .map_err(amqp(format!("bind queue {failed_queue}")))?;
                        let durable = QueueDeclareOptions {
                            durable: true,
                            ..Default::default()
                        };
                        (durable, args.clone())
                    }
                    EventQueueKind::Instance => {
                        let exclusive = QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..Default::default()
                        };
                        (exclusive, FieldTable::default())
                    }
                };
                ch.queue_declare(q.clone(), options, args)
                    .await
                    .map_err(amqp(format!("declare queue {}", plan.queue)))?;
                for route in &plan.routes {
                    ch.queue_bind(
                        q.clone(),
                        wire::EVENT_EXCHANGE.into(),
                        short(&route.binding_key)?,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(amqp(format!(
                        "bind queue {} to {}",
                        plan.queue, route.binding_key
                    )))?;
                }
                self.start_consumer(link, q, Dispatch::Events(plan.clone()))
                    .await?;
            }
            for ep in &self.state.queues {
                let q = crate::entrypoints::queue::declare(ch, ep).await?;
                self.start_consumer(link, q, Dispatch::Queue(ep.clone()))
                    .await?;
            }
            Ok(())
        })
    }

    fn down(&self, generation: u64) {
        lock(&self.state.consumers).retain(|(link, _)| link.generation > generation);
    }
}

/// What a consumer hands its deliveries to.
#[derive(Clone)]
enum Dispatch {
    Rpc(Arc<RpcEntrypoint>),
    Events(Arc<EventQueue>),
    Queue(Arc<crate::entrypoints::queue::QueueEntrypoint>),
}

async fn consume(
    state: Arc<ServeState>,
    dispatch: Dispatch,
    link: Arc<Link>,
    mut consumer: lapin::Consumer,
) {
    while let Some(delivery) = consumer.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, queue = %consumer.queue(), "consumer stream error");
                break;
            }
        };
        if state.consumers_cancelled.load(Ordering::SeqCst) {
            // Stop accepting: back to the queue for another instance. Only once the broker
            // confirmed the cancel, so that it cannot hand the message straight back here.
            let _ = delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await;
            continue;
        }
        let state2 = state.clone();
        let link = link.clone();
        match &dispatch {
            Dispatch::Rpc(ep) => {
                let ep = ep.clone();
                state
                    .tracker
                    .spawn(async move { handle_rpc(state2, ep, link, delivery).await });
            }
            Dispatch::Events(queue) => {
                let queue = queue.clone();
                state
                    .tracker
                    .spawn(async move { handle_event(state2, queue, delivery).await });
            }
            Dispatch::Queue(ep) => {
                let ep = ep.clone();
                let context = Context::new(state2.container.clone());
                state
                    .tracker
                    .spawn(crate::entrypoints::queue::handle(ep, context, delivery));
            }
        }
    }
    if !state.shutting_down.load(Ordering::SeqCst) && !link.is_broken() {
        tracing::warn!(queue = %consumer.queue(), "consumer ended unexpectedly; reconnecting");
        link.mark_broken();
    }
}

async fn handle_rpc(
    state: Arc<ServeState>,
    ep: Arc<RpcEntrypoint>,
    link: Arc<Link>,
    delivery: Delivery,
) {
    let props = &delivery.properties;
    let headers = props.headers().as_ref();
    let correlation_id = props
        .correlation_id()
        .as_ref()
        .map(|c| c.as_str().to_owned());
    let span = tracing::info_span!(
        "rpc",
        service = %state.container.identity.service_name,
        method = %ep.name,
        correlation_id = correlation_id.as_deref().unwrap_or(""),
        flow_id = wire::header_text(headers, "flow_id").unwrap_or(""),
    );
    async {
        let context = Context::new(state.container.clone());
        let envelope = rpc::serve(&ep, &delivery.data, headers, context).await;
        if let Some(reply_to) = props.reply_to() {
            let mut reply_props = BasicProperties::default().with_delivery_mode(1);
            if let Some(cid) = props.correlation_id() {
                reply_props = reply_props.with_correlation_id(cid.clone());
            }
            let body = envelope.to_bytes();
            if let Err(e) = link
                .reply
                .basic_publish(
                    "".into(),
                    reply_to.clone(),
                    BasicPublishOptions::default(),
                    &body,
                    reply_props,
                )
                .await
            {
                tracing::warn!(error = %e, "could not send the reply");
            }
        }
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            tracing::warn!(error = %e, "could not ack the request (it will be redelivered)");
        }
        if let Some(observer) = state.container.observer() {
            observer.rpc_handled(&ep.name, &delivery.data, headers, &envelope);
        }
    }
    .instrument(span)
    .await;
}

/// The entrypoint catalogue of the register body (protocol §5.6): events, then RPCs, then
/// HTTP routes, then tasks; by handler name within a kind; one entry per event type.
fn catalogue(
    state: &ServeState,
    tasks: &[task::ResolvedTask],
    mut http: Vec<(String, Value)>,
) -> Vec<Value> {
    let max_attempts_default = state.container.settings.amqp.max_attempts;
    let mut events: Vec<(String, String, Value)> = Vec::new();
    for plan in &state.event_queues {
        for route in &plan.routes {
            let mut entry = serde_json::Map::new();
            entry.insert("type".into(), Value::from("event"));
            entry.insert("name".into(), Value::from(route.event_type.as_str()));
            entry.insert("handler".into(), Value::from(route.ep.name.as_str()));
            entry.insert("mode".into(), Value::from(route.ep.mode.as_str()));
            if route.ep.mode == EventMode::Competing {
                let attempts = route.ep.max_attempts.unwrap_or(max_attempts_default);
                entry.insert("max_attempts".into(), Value::from(attempts));
            }
            events.push((
                route.ep.name.clone(),
                route.event_type.clone(),
                Value::Object(entry),
            ));
        }
    }
    events.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut rpcs: Vec<(String, Value)> = state
        .rpcs
        .iter()
        .map(|ep| {
            let entry = serde_json::json!({"type": "rpc", "name": ep.name, "handler": ep.name});
            (ep.name.clone(), entry)
        })
        .collect();
    rpcs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut task_entries: Vec<(String, Value)> = tasks
        .iter()
        .map(|t| {
            let entry = serde_json::json!({"type": "task", "handler": t.name(), "schedule": t.catalogue_schedule()});
            (t.name().to_owned(), entry)
        })
        .collect();
    task_entries.sort_by(|a, b| a.0.cmp(&b.0));
    events
        .into_iter()
        .map(|e| e.2)
        .chain(rpcs.into_iter().map(|e| e.1))
        .chain({
            http.sort_by(|a, b| a.0.cmp(&b.0));
            http.into_iter().map(|e| e.1)
        })
        .chain(task_entries.into_iter().map(|e| e.1))
        .collect()
}

fn short(name: &str) -> Result<ShortString> {
    ShortString::try_new(name).map_err(|_| Error::InvalidName {
        name: name.to_owned(),
        reason: "AMQP names may have at most 255 bytes".to_owned(),
    })
}

/// One event queue of the service and the handlers its deliveries go to.
struct EventQueue {
    queue: String,
    kind: EventQueueKind,
    routes: Vec<EventRoute>,
}

enum EventQueueKind {
    Competing {
        args: FieldTable,
        failed_queue: String,
    },
    /// Per-instance, exclusive, auto-delete (broadcast and in-session).
    Instance,
}

struct EventRoute {
    binding_key: String,
    event_type: String,
    ep: Arc<EventEntrypoint>,
}

/// Resolves event types (config keys too) into the queues Kontiki would declare.
fn plan_event_queues(
    events: &[EventEntrypoint],
    container: &Container,
) -> Result<Vec<Arc<EventQueue>>> {
    let svc = &*container.identity.service_name;
    let iid = &*container.identity.instance_id;
    let mut plans: Vec<EventQueue> = Vec::new();
    for ep in events {
        let ep_arc = Arc::new(ep.clone());
        let types = match &ep.source {
            EventSource::Types(t) => t.clone(),
            EventSource::Config(key) => container.config.event_types(key)?,
        };
        for event_type in types {
            check_word(&event_type, "event type")?;
            let (queue, binding_key, kind) = match ep.mode {
                EventMode::Competing => {
                    let attempts = ep
                        .max_attempts
                        .unwrap_or(container.settings.amqp.max_attempts);
                    (
                        event::competing_queue(svc, &event_type),
                        event_type.clone(),
                        EventQueueKind::Competing {
                            args: event::competing_queue_args(svc, &event_type, attempts),
                            failed_queue: event::failed_queue(svc, &event_type),
                        },
                    )
                }
                EventMode::Broadcast => (
                    event::instance_queue(svc, &event_type, iid),
                    event_type.clone(),
                    EventQueueKind::Instance,
                ),
                EventMode::InSession => (
                    event::instance_queue(svc, &event_type, iid),
                    format!("{event_type}.{iid}"),
                    EventQueueKind::Instance,
                ),
            };
            let route = EventRoute {
                binding_key,
                event_type,
                ep: ep_arc.clone(),
            };
            match plans.iter_mut().find(|p| p.queue == queue) {
                Some(plan) => {
                    if let Some(other) = plan
                        .routes
                        .iter()
                        .find(|r| r.binding_key == route.binding_key)
                    {
                        return Err(Error::Definition(format!(
                            "event `{}` is handled twice in {} mode (by `{}` and `{}`)",
                            route.event_type,
                            ep.mode.as_str(),
                            other.ep.name,
                            ep.name
                        )));
                    }
                    plan.routes.push(route);
                }
                None => plans.push(EventQueue {
                    queue,
                    kind,
                    routes: vec![route],
                }),
            }
        }
    }
    Ok(plans.into_iter().map(Arc::new).collect())
}

async fn handle_event(state: Arc<ServeState>, queue: Arc<EventQueue>, delivery: Delivery) {
    let headers = delivery.properties.headers().as_ref();
    let key = delivery.routing_key.as_str();
    let Some(route) = queue
        .routes
        .iter()
        .find(|r| r.binding_key == key)
        .or_else(|| queue.routes.first())
    else {
        return;
    };
    let span = tracing::info_span!(
        "event",
        service = %state.container.identity.service_name,
        handler = %route.ep.name,
        event_type = %route.event_type,
        flow_id = wire::header_text(headers, "flow_id").unwrap_or(""),
    );
    async {
        let context = Context::new(state.container.clone());
        let outcome = event::serve(
            &route.ep,
            &route.event_type,
            &delivery.data,
            headers,
            delivery.redelivered,
            context,
        )
        .await;
        let result = match outcome {
            Outcome::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
            Outcome::Reject { requeue } => {
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue })
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not settle the event delivery (it will be redelivered)");
        }
        if let Some(observer) = state.container.observer() {
            observer.event_handled(
                &route.ep.name,
                &route.event_type,
                &delivery.data,
                headers,
                delivery.redelivered,
                outcome.settled(),
            );
        }
    }
    .instrument(span)
    .await;
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The service's reply wait is bounded by this when it has nothing else.
#[allow(dead_code, reason = "used by the registry client in a later change")]
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(10);
