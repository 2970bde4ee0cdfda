//! Plain queue consumers: queues that are not Kontiki RPC or event entrypoints, such as the
//! registry's intake queues (`registry.register.queue`, ...) or a tap on an exchange.
//!
//! A [`QueueEntrypoint`] names a queue, its declare flags and arguments, its bindings, the
//! exchanges to declare first and any exchange-to-exchange bindings. The service declares all
//! of it on every (re)connection, consumes the queue, and hands each delivery to the handler
//! as a [`RawMessage`]: acked when the handler returns `Ok`, rejected without requeue (and
//! logged) when it returns `Err`, panics or runs past its timeout
//! ([`QueueEntrypoint::timeout`]); a panic or a timeout is reported like an RPC handler's.
//!
//! [`Messenger::publish_raw`] is the matching publisher: raw bytes to any exchange, with or
//! without headers.

use crate::clients::messenger::Messenger;
use crate::error::{Error, Result};
use crate::handler::Context;
use crate::handler::{Guarded, HandlerError, guard, seconds};
use crate::transport::wire;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicRejectOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The type of an exchange to declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeType {
    /// `topic`.
    Topic,
    /// `direct`.
    Direct,
    /// `fanout`.
    Fanout,
    /// `headers`.
    Headers,
}

impl ExchangeType {
    fn kind(self) -> ExchangeKind {
        match self {
            Self::Topic => ExchangeKind::Topic,
            Self::Direct => ExchangeKind::Direct,
            Self::Fanout => ExchangeKind::Fanout,
            Self::Headers => ExchangeKind::Headers,
        }
    }
}

/// One message taken from a [`QueueEntrypoint`]'s queue.
#[derive(Debug)]
#[non_exhaustive]
pub struct RawMessage {
    /// The body, as sent.
    pub body: Vec<u8>,
    /// The AMQP headers as JSON, `None` when the message had none.
    pub headers: Option<Map<String, Value>>,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The exchange it was published to (`""` for the default exchange).
    pub exchange: String,
    /// The service's context (messenger, config, identity).
    pub context: Context,
}

type QueueHandler =
    Arc<dyn Fn(RawMessage) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// A plain queue consumed by a service.
#[derive(Clone)]
pub struct QueueEntrypoint {
    pub(crate) queue: String,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    arguments: Map<String, Value>,
    bindings: Vec<(String, String)>,
    exchanges: Vec<(String, ExchangeType, bool)>,
    exchange_bindings: Vec<(String, String, String)>,
    timeout: Option<Duration>,
    handler: QueueHandler,
}

impl std::fmt::Debug for QueueEntrypoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueEntrypoint")
            .field("queue", &self.queue)
            .field("durable", &self.durable)
            .field("exclusive", &self.exclusive)
            .field("auto_delete", &self.auto_delete)
            .field("arguments", &self.arguments)
            .field("bindings", &self.bindings)
            .field("exchanges", &self.exchanges)
            .field("exchange_bindings", &self.exchange_bindings)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl QueueEntrypoint {
    /// A consumer of `queue` (classic, durable, not exclusive, not auto-delete, no arguments,
    /// no bindings until added) handing its messages to `handler`.
    pub fn new<F, Fut>(queue: impl Into<String>, handler: F) -> Self
    where
        F: Fn(RawMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Self {
            queue: queue.into(),
            durable: true,
            exclusive: false,
            auto_delete: false,
            arguments: Map::new(),
            bindings: Vec::new(),
            exchanges: Vec::new(),
            exchange_bindings: Vec::new(),
            timeout: None,
            handler: Arc::new(move |m| Box::pin(handler(m))),
        }
    }

    /// How long the handler may run on one message (default `kontiki.handler_timeout`, 300 s;
    /// `kontiki.handler_timeouts.<queue>` wins over this). A handler still running then is
    /// cancelled at its next `.await` and the message rejected, as when the handler fails.
    /// Code that blocks its thread cannot be cancelled: run it under
    /// `tokio::task::spawn_blocking`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.queue
    }

    /// Sets the declare flags (default: durable, not exclusive, not auto-delete).
    pub fn flags(mut self, durable: bool, exclusive: bool, auto_delete: bool) -> Self {
        self.durable = durable;
        self.exclusive = exclusive;
        self.auto_delete = auto_delete;
        self
    }

    /// Adds a queue argument (`x-max-length`, `x-queue-type`, ...).
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// Binds the queue to `exchange` with `key`.
    pub fn bind(mut self, exchange: impl Into<String>, key: impl Into<String>) -> Self {
        self.bindings.push((exchange.into(), key.into()));
        self
    }

    /// Declares `exchange` (no arguments, not auto-delete, not internal) before the queue.
    pub fn exchange(
        mut self,
        exchange: impl Into<String>,
        kind: ExchangeType,
        durable: bool,
    ) -> Self {
        self.exchanges.push((exchange.into(), kind, durable));
        self
    }

    /// Binds exchange `destination` to exchange `source` with `key` (after the exchanges are
    /// declared).
    pub fn exchange_bind(
        mut self,
        destination: impl Into<String>,
        source: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        self.exchange_bindings
            .push((destination.into(), source.into(), key.into()));
        self
    }
}

fn short(name: &str) -> Result<ShortString> {
    ShortString::try_new(name).map_err(|_| Error::InvalidName {
        name: name.to_owned(),
        reason: "AMQP names may have at most 255 bytes".to_owned(),
    })
}

/// Declares the exchanges, exchange bindings, the queue and its bindings.
pub(crate) async fn declare(ch: &Channel, ep: &QueueEntrypoint) -> Result<ShortString> {
    let amqp = |operation: String| move |source| Error::Amqp { operation, source };
    for (ex, kind, durable) in &ep.exchanges {
        ch.exchange_declare(
            short(ex)?,
            kind.kind(),
            ExchangeDeclareOptions {
                durable: *durable,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp(format!("declare exchange {ex}")))?;
    }
    for (dest, source, key) in &ep.exchange_bindings {
        ch.exchange_bind(
            short(dest)?,
            short(source)?,
            short(key)?,
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp(format!("bind exchange {dest} to {source} ({key})")))?;
    }
    let q = short(&ep.queue)?;
    ch.queue_declare(
        q.clone(),
        QueueDeclareOptions {
            durable: ep.durable,
            exclusive: ep.exclusive,
            auto_delete: ep.auto_delete,
            ..Default::default()
        },
        wire::json_map_to_table(&ep.arguments),
    )
    .await
    .map_err(amqp(format!("declare queue {}", ep.queue)))?;
    for (ex, key) in &ep.bindings {
        ch.queue_bind(
            q.clone(),
            short(ex)?,
            short(key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp(format!("bind queue {} to {ex} ({key})", ep.queue)))?;
    }
    Ok(q)
}

/// Hands one delivery to the handler; acks on `Ok`, rejects without requeue on `Err`, a panic
/// or the timeout.
pub(crate) async fn handle(
    ep: Arc<QueueEntrypoint>,
    context: Context,
    link: Arc<crate::transport::connection::Link>,
    mut delivery: lapin::message::Delivery,
) {
    let msg = RawMessage {
        // The delivery is settled through its acker below: its body can move, not be copied.
        body: std::mem::take(&mut delivery.data),
        headers: delivery
            .properties
            .headers()
            .as_ref()
            .map(wire::table_to_json),
        routing_key: delivery.routing_key.as_str().to_owned(),
        exchange: delivery.exchange.as_str().to_owned(),
        context: context.clone(),
    };
    let limit = context
        .container()
        .settings
        .handlers
        .timeout_for(&ep.queue, ep.timeout);
    // Reported as a message consumer: Kontiki's exception records know no queue kind.
    let report = |kind: &str, what: &str| {
        let scope = crate::transport::flow::FlowContext::inbound(
            crate::transport::flow::EntrypointKind::Event,
            ep.queue.as_str(),
            None,
            None,
        );
        context.container().report_uncaught(&scope, kind, what);
    };
    // Settled whatever happens: an unsettled delivery holds a prefetch slot for good.
    let ok = match guard(limit, (ep.handler)(msg)).await {
        Guarded::Returned(Ok(())) => true,
        Guarded::Returned(Err(e)) => {
            tracing::warn!(queue = %ep.queue, error = %e, "queue handler failed; message rejected");
            false
        }
        Guarded::Panicked(what) => {
            tracing::error!(queue = %ep.queue, panic = %what, "queue handler panicked; message rejected");
            report("Panic", &what);
            false
        }
        Guarded::TimedOut => {
            let what = format!(
                "queue handler `{}` timed out after {}",
                ep.queue,
                seconds(limit)
            );
            tracing::error!(queue = %ep.queue, timeout = %seconds(limit), "queue handler timed out; cancelled, message rejected");
            report("HandlerTimeout", &what);
            false
        }
    };
    let result = if ok {
        link.or_broken(delivery.acker.ack(BasicAckOptions::default()))
            .await
    } else {
        link.or_broken(delivery.acker.reject(BasicRejectOptions { requeue: false }))
            .await
    };
    if let Err(e) = result {
        tracing::warn!(queue = %ep.queue, error = %e, "could not settle the delivery");
    }
}

impl Messenger {
    /// Publishes `body` as is on `exchange` with `routing_key` (delivery mode 2), with the
    /// given AMQP headers or none, and waits for the broker's confirm. No Kontiki headers are
    /// added. A message no queue takes is not an error.
    pub async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        headers: Option<Map<String, Value>>,
    ) -> Result<()> {
        let props = || {
            let props = BasicProperties::default().with_delivery_mode(2);
            match &headers {
                Some(h) => props.with_headers(wire::json_map_to_table(h)),
                None => props,
            }
        };
        self.publish_confirmed(exchange, routing_key, body, props, false, false)
            .await
    }
}
