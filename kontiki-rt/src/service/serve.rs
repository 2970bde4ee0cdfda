//! The serve hook: on every (re)connection it declares the topology exactly as Kontiki 2.3.2
//! does, starts the consumers, and dispatches each delivery to its RPC, event or queue handler.

use super::builder::check_word;
use crate::entrypoints::dedup::{self, Dedup, Seen};
use crate::entrypoints::event::{self, EventEntrypoint, EventMode, EventSource, Outcome};
use crate::entrypoints::rpc::{self, RpcEntrypoint};
use crate::entrypoints::task::{self};
use crate::error::{Error, Result};
use crate::handler::{Container, Context};
use crate::observe::metrics::{EventMetrics, RpcServerMetrics};
use crate::transport::connection::{Hook, Link};
use crate::transport::wire;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

pub(super) struct ServeState {
    pub(super) container: Arc<Container>,
    pub(super) rpcs: Vec<Arc<RpcEntrypoint>>,
    pub(super) session_rpc: Arc<RpcEntrypoint>,
    pub(super) event_queues: Vec<Arc<EventQueue>>,
    pub(super) queues: Vec<Arc<crate::entrypoints::queue::QueueEntrypoint>>,
    pub(super) shutting_down: AtomicBool,
    /// Set once the broker confirmed the cancellation of every consumer at shutdown: from then
    /// on a delivery still in the client's buffer goes back to the queue. Before that, a
    /// requeued delivery would come straight back to this same consumer (its prefetch slot is
    /// free again) and, on a quorum queue, every such round trip counts as a delivery
    /// attempt, until `x-delivery-limit` dead-letters a message nobody failed on.
    pub(super) consumers_cancelled: AtomicBool,
    /// Cancelled at shutdown: task loops stop starting runs.
    pub(super) stop: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// Consumer tags on the current link, to cancel at shutdown.
    pub(super) consumers: Mutex<Vec<(Arc<Link>, ShortString)>>,
    /// Each RPC method's metric handles, by method name.
    pub(super) rpc_metrics: crate::transport::FastMap<String, RpcServerMetrics>,
    /// Recently handled requests (`kontiki.amqp.rpc.dedup_window`); `None` when off.
    pub(super) dedup: Option<Dedup>,
    /// [`ServiceBuilder::on_connect`](super::ServiceBuilder::on_connect) callbacks.
    pub(super) on_connect: Vec<super::OnConnect>,
}

/// How long one [`ServiceBuilder::on_connect`](super::ServiceBuilder::on_connect) callback may
/// take before it is cancelled (the whole connection setup is bounded by a longer deadline).
const ON_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Declares the topology and starts the consumers on every new connection.
pub(super) struct ServeHook {
    pub(super) state: Arc<ServeState>,
}

impl ServeHook {
    /// Consumes `queue` on the consumer channel, remembering the tag for shutdown.
    async fn start_consumer(
        &self,
        link: &Arc<Link>,
        queue: ShortString,
        dispatch: Dispatch,
    ) -> Result<()> {
        // A reconnection during the shutdown grace period declares the topology again but
        // takes no new deliveries: the instance is draining, not serving.
        if self.state.shutting_down.load(Ordering::SeqCst) {
            tracing::info!(%queue, "shutting down: no consumer on the new connection");
            return Ok(());
        }
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
        // Tracked by the link: a move waits for the consumer to end after its cancel.
        tokio::spawn(link.work.track_future(consume(
            self.state.clone(),
            dispatch,
            link.clone(),
            consumer,
        )));
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
            for callback in &self.state.on_connect {
                let run = callback(self.state.container.messenger.clone());
                match tokio::time::timeout(ON_CONNECT_TIMEOUT, run).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, generation = link.generation, "an on_connect callback failed");
                    }
                    Err(_) => tracing::warn!(
                        generation = link.generation,
                        "an on_connect callback did not finish within {ON_CONNECT_TIMEOUT:?}; cancelled"
                    ),
                }
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

    /// The instance's own queues (broadcast, session, targeted RPC) are exclusive.
    fn exclusive(&self) -> bool {
        true
    }

    /// Cancels the consumers on `link` (the move then waits for them to end and for the
    /// handlers of what they delivered, tracked by the link, to ack on it).
    fn retire<'a>(&'a self, link: &'a Arc<Link>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let tags: Vec<ShortString> = {
                let mut consumers = lock(&self.state.consumers);
                let (mine, rest) = std::mem::take(&mut *consumers)
                    .into_iter()
                    .partition(|(l, _)| Arc::ptr_eq(l, link));
                *consumers = rest;
                mine.into_iter().map(|(_, tag)| tag).collect()
            };
            for tag in tags {
                let cancel = link
                    .consume
                    .basic_cancel(tag, lapin::options::BasicCancelOptions::default());
                if tokio::time::timeout(CANCEL_TIMEOUT, cancel).await.is_err() {
                    tracing::warn!("basic.cancel not confirmed within {CANCEL_TIMEOUT:?}");
                }
            }
        })
    }
}

/// The longest the cancellation of one consumer may take (at shutdown, or on a move).
pub(super) const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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
            let _ = link
                .or_broken(delivery.acker.nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                }))
                .await;
            continue;
        }
        let state2 = state.clone();
        let link = link.clone();
        // Tracked by the link too: a move to another broker waits for the handler's ack.
        let work = link.work.clone();
        // The handler futures are spawned as they are: an `async move` around them would copy
        // the whole (large) future once more on its first poll.
        match &dispatch {
            Dispatch::Rpc(ep) => {
                state.tracker.spawn(work.track_future(handle_rpc(
                    state2,
                    ep.clone(),
                    link,
                    delivery,
                )));
            }
            Dispatch::Events(queue) => {
                state.tracker.spawn(work.track_future(handle_event(
                    state2,
                    queue.clone(),
                    link,
                    delivery,
                )));
            }
            Dispatch::Queue(ep) => {
                let ep = ep.clone();
                let context = Context::new(state2.container.clone());
                state
                    .tracker
                    .spawn(work.track_future(crate::entrypoints::queue::handle(
                        ep, context, link, delivery,
                    )));
            }
        }
    }
    if !state.shutting_down.load(Ordering::SeqCst) && !link.is_broken() && !link.is_retiring() {
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
        instance_id = %state.container.identity.instance_id,
        method = %ep.name,
        correlation_id = correlation_id.as_deref().unwrap_or(""),
        flow_id = wire::header_text(headers, "flow_id").unwrap_or(""),
    );
    let otel = state.container.messenger.telemetry().map(|t| {
        t.rpc_server(
            headers,
            &state.container.identity.service_name,
            &ep.name,
            delivery.routing_key.as_str(),
            correlation_id.as_deref(),
        )
    });
    let traced = async {
        // A request this instance handled (or is handling) within the dedup window is answered
        // with the reply of its first run: a redelivery after a lost connection does not run
        // the handler again (entrypoints::dedup says what exactly is promised).
        // Keyed by the correlation id and the body: a redelivery is the same message, while
        // two different requests that share an id (a client's bug) are both run.
        let key = correlation_id
            .as_deref()
            .filter(|_| state.dedup.is_some())
            .map(|cid| {
                let reply_to = delivery.properties.reply_to().as_ref();
                dedup::key(cid, reply_to.map_or("", |r| r.as_str()), &delivery.data)
            });
        let mut run = None;
        if let (Some(dedup), Some(key)) = (state.dedup.as_ref(), key.as_ref()) {
            match dedup.begin(key) {
                Seen::New => run = Some(RunGuard { dedup, key }),
                Seen::Done(reply) => {
                    answer_again(&state, &ep, &link, &delivery, &reply).await;
                    return;
                }
                Seen::Running(rx) => {
                    if let Some(reply) = dedup::wait(rx).await {
                        answer_again(&state, &ep, &link, &delivery, &reply).await;
                        return;
                    }
                    // The first run ended with no reply to share: this one runs.
                }
            }
        }
        let metrics = state.rpc_metrics.get(&*ep.name);
        let started = std::time::Instant::now();
        if let Some(m) = metrics {
            m.started();
        }
        let context = Context::new(state.container.clone());
        let rpc::Answer {
            envelope,
            timed_out,
        } = rpc::serve(&ep, &delivery.data, headers, context).await;
        let mut body = envelope.to_bytes();
        let max = state.container.settings.amqp.max_message_size;
        if body.len() > max {
            // Sent, the broker would close the reply channel; the caller gets an error.
            tracing::error!(
                size = body.len(),
                max,
                "rpc reply larger than kontiki.amqp.max_message_size; replying with an error"
            );
            body = wire::Envelope::server_error(format!(
                "the reply is {} bytes, more than the {max} of kontiki.amqp.max_message_size",
                body.len()
            ))
            .to_bytes();
        }
        if let Some(run) = run.take() {
            run.finish(&body);
        }
        send_reply(&link, props, &body).await;
        if let Err(e) = link
            .or_broken(delivery.acker.ack(BasicAckOptions::default()))
            .await
        {
            tracing::warn!(error = %e, "could not ack the request (it will be redelivered)");
        }
        if let Some(m) = metrics {
            m.answered(&envelope, timed_out, started.elapsed());
        }
        if let Some(span) = &otel {
            server_outcome(span, &envelope, timed_out);
        }
        if let Some(observer) = state.container.observer() {
            observer.rpc_handled(&ep.name, &delivery.data, headers, &envelope);
        }
    };
    in_spans(traced, span, otel.as_ref()).await;
    if let Some(span) = otel {
        span.end();
    }
}

/// Records a request's outcome on its server span: a declared (client) error is the caller's
/// fault and leaves the status unset, as a 4xx does on an HTTP server span; a server error or a
/// timeout marks the span failed.
fn server_outcome(
    span: &crate::observe::otel::OtelSpan,
    envelope: &wire::Envelope,
    timed_out: bool,
) {
    match envelope.error_type {
        wire::ErrorType::None => {}
        wire::ErrorType::Client => {
            span.set_str(
                "error.type",
                envelope.error_code.as_deref().unwrap_or("CLIENT"),
            );
        }
        wire::ErrorType::Server => span.fail(
            if timed_out {
                "timeout"
            } else {
                envelope.error_code.as_deref().unwrap_or("INTERNAL_ERROR")
            },
            envelope.message.as_deref().unwrap_or(""),
        ),
    }
}

/// Sends `body` to the request's `reply_to` (if any) with its correlation id.
async fn send_reply(link: &Link, props: &BasicProperties, body: &[u8]) {
    let Some(reply_to) = props.reply_to() else {
        return;
    };
    let mut reply_props = BasicProperties::default().with_delivery_mode(1);
    if let Some(cid) = props.correlation_id() {
        reply_props = reply_props.with_correlation_id(cid.clone());
    }
    if let Err(e) = link
        .or_broken(link.reply.basic_publish(
            "".into(),
            reply_to.clone(),
            BasicPublishOptions::default(),
            body,
            reply_props,
        ))
        .await
    {
        tracing::warn!(error = %e, "could not send the reply");
    }
}

/// Answers a request seen again with the reply of its first run, and acks it.
async fn answer_again(
    state: &ServeState,
    ep: &RpcEntrypoint,
    link: &Link,
    delivery: &Delivery,
    reply: &[u8],
) {
    tracing::info!(
        redelivered = delivery.redelivered,
        "request seen again within the dedup window: answered with its first run's reply"
    );
    #[cfg(feature = "metrics")]
    if state.container.settings.metrics.enabled {
        metrics::counter!(
            "kontiki_rpc_server_deduplicated_total",
            "service" => state.container.identity.service_name.to_string(),
            "method" => ep.name.to_string()
        )
        .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (state, ep);
    send_reply(link, &delivery.properties, reply).await;
    if let Err(e) = link
        .or_broken(delivery.acker.ack(BasicAckOptions::default()))
        .await
    {
        tracing::warn!(error = %e, "could not ack the request (it will be redelivered)");
    }
}

/// A run recorded in the dedup cache: [`RunGuard::finish`] shares its reply; dropped without
/// it (the task ended early), the entry is abandoned so that redeliveries do not wait for good.
struct RunGuard<'a> {
    dedup: &'a Dedup,
    key: &'a dedup::Key,
}

impl RunGuard<'_> {
    fn finish(self, reply: &[u8]) {
        self.dedup.finish(self.key, reply);
        std::mem::forget(self);
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.dedup.abandon(self.key);
    }
}

/// The entrypoint catalogue of the register body (protocol §5.6): events, then RPCs, then
/// HTTP routes, then tasks; by handler name within a kind; one entry per event type.
pub(super) fn catalogue(
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
            let entry = serde_json::json!({"type": "rpc", "name": &*ep.name, "handler": &*ep.name});
            (ep.name.to_string(), entry)
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
pub(super) struct EventQueue {
    queue: String,
    kind: EventQueueKind,
    routes: Vec<EventRoute>,
}

pub(super) enum EventQueueKind {
    Competing {
        args: FieldTable,
        failed_queue: String,
    },
    /// Per-instance, exclusive, auto-delete (broadcast and in-session).
    Instance,
}

pub(super) struct EventRoute {
    binding_key: String,
    event_type: String,
    ep: Arc<EventEntrypoint>,
    metrics: EventMetrics,
}

/// Resolves event types (config keys too) into the queues Kontiki would declare.
pub(super) fn plan_event_queues(
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
                metrics: EventMetrics::new(
                    container.settings.metrics.enabled,
                    &container.identity.service_name,
                    &ep_arc.name,
                    &event_type,
                    container.stats.clone(),
                ),
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

async fn handle_event(
    state: Arc<ServeState>,
    queue: Arc<EventQueue>,
    link: Arc<Link>,
    delivery: Delivery,
) {
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
        instance_id = %state.container.identity.instance_id,
        handler = %route.ep.name,
        event_type = %route.event_type,
        flow_id = wire::header_text(headers, "flow_id").unwrap_or(""),
    );
    let otel = state
        .container
        .messenger
        .telemetry()
        .map(|t| t.consumer(headers, &route.event_type, &route.ep.name, &queue.queue));
    let traced = async {
        let started = std::time::Instant::now();
        route.metrics.started();
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
            Outcome::Ack => {
                link.or_broken(delivery.acker.ack(BasicAckOptions::default()))
                    .await
            }
            Outcome::Reject { requeue } => {
                link.or_broken(delivery.acker.reject(BasicRejectOptions { requeue }))
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not settle the event delivery (it will be redelivered)");
        }
        if let (Some(span), Outcome::Reject { requeue }) = (&otel, &outcome) {
            span.fail(
                if *requeue { "retried" } else { "dead_lettered" },
                "the handler failed",
            );
        }
        route
            .metrics
            .settled(outcome.settled(), delivery.redelivered, started.elapsed());
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
    };
    in_spans(traced, span, otel.as_ref()).await;
    if let Some(span) = otel {
        span.end();
    }
}

/// A delivery's handling inside its tracing span and its OpenTelemetry server span (when
/// traces are on). When no subscriber wants the tracing span (the default without a log layer
/// at info), it skips `Instrumented`, which enters and leaves the span on every poll. A plain
/// function, not an `async fn`: the caller awaits the wrapper itself, with no state machine of
/// its own around it on the per-message path.
fn in_spans<F: std::future::Future<Output = ()>>(
    traced: F,
    span: tracing::Span,
    otel: Option<&crate::observe::otel::OtelSpan>,
) -> futures_util::future::Either<
    crate::observe::otel::Instrumented<F>,
    tracing::instrument::Instrumented<crate::observe::otel::Instrumented<F>>,
> {
    let traced = crate::observe::otel::instrument(otel, traced);
    if span.is_disabled() {
        futures_util::future::Either::Left(traced)
    } else {
        futures_util::future::Either::Right(traced.instrument(span))
    }
}

/// Locks `m`, taking the data of a poisoned lock (a panicking handler never leaves it half
/// written).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
