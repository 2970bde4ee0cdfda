//! Event handlers: competing consumers, broadcast and in-session delivery, retries through the
//! quorum queue's delivery limit, and dead letters (protocol §1.2, §3.2).

use crate::handler::Context;
use crate::handler::{Guarded, HandlerError, guard, seconds};
use crate::transport::flow::{self, EntrypointKind, FlowContext};
use crate::transport::wire;
/// Kontiki's event queue names; they live with the rest of the wire format.
pub use crate::transport::wire::{competing_queue, failed_queue, instance_queue};
use futures_util::future::BoxFuture;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How the instances of a service share an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EventMode {
    /// One shared quorum queue: each event is handled by one instance (Kontiki's default).
    #[default]
    Competing,
    /// One queue per instance: every instance handles every event.
    Broadcast,
    /// One queue per instance bound to `{event}.{instance_id}`: only events published through
    /// a session opened with this instance.
    InSession,
}

impl EventMode {
    /// The catalogue name: `competing`, `broadcast` or `in_session`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Competing => "competing",
            Self::Broadcast => "broadcast",
            Self::InSession => "in_session",
        }
    }
}

/// Where a handler's event types come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventSource {
    /// Literal event types.
    Types(Vec<String>),
    /// A config key holding one event type or a list (Kontiki's `use_config`).
    Config(String),
}

/// An inbound event, as a handler sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Event {
    /// The event type the handler subscribed to (without a session suffix).
    pub event_type: String,
    /// The decoded JSON payload.
    pub payload: Value,
    /// All AMQP headers, when the entrypoint has `include_headers` and the message had any.
    pub headers: Option<Map<String, Value>>,
    /// Whether the broker delivered this message before (a retry).
    pub redelivered: bool,
    /// The service's context: messenger, identity, config.
    pub context: Context,
}

/// The future of an event handler registered with [`EventEntrypoint::with_fn`].
pub type EventFuture = BoxFuture<'static, Result<(), HandlerError>>;

type Handler = dyn Fn(Event) -> EventFuture + Send + Sync;

/// An event handler of a service.
#[derive(Clone)]
pub struct EventEntrypoint {
    pub(crate) name: String,
    pub(crate) source: EventSource,
    pub(crate) mode: EventMode,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) include_headers: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) handler: Arc<Handler>,
}

impl std::fmt::Debug for EventEntrypoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventEntrypoint")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("mode", &self.mode)
            .field("max_attempts", &self.max_attempts)
            .field("include_headers", &self.include_headers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EventEntrypoint {
    /// A handler named `name` (its function name, listed in the registry catalogue) for the
    /// given event types; competing by default.
    pub fn new<I, S, F, Fut>(name: impl Into<String>, event_types: I, handler: F) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Self::with_source(
            name,
            EventSource::Types(event_types.into_iter().map(Into::into).collect()),
            handler,
        )
    }

    /// A handler whose event types are read from the config key `key` at start: a non-empty
    /// string or list of strings (Kontiki's `use_config=True`).
    pub fn from_config<F, Fut>(name: impl Into<String>, key: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Self::with_source(name, EventSource::Config(key.into()), handler)
    }

    /// A handler served by a plain function over shared state, `handler(&state, event)`, for
    /// the given event types. A service registers all its handlers this way through one
    /// closure type, so each handler costs rustc only its function (generated adapters use it).
    pub fn with_fn<S: Send + Sync + 'static>(
        name: impl Into<String>,
        event_types: &[&str],
        state: Arc<S>,
        handler: fn(&Arc<S>, Event) -> EventFuture,
    ) -> Self {
        let types = event_types.iter().map(|t| (*t).to_owned()).collect();
        Self::boxed(
            name.into(),
            EventSource::Types(types),
            Arc::new(move |ev| handler(&state, ev)),
        )
    }

    /// [`with_fn`](Self::with_fn) with the event types read from the config key `key` at
    /// start, as [`from_config`](Self::from_config).
    pub fn from_config_with_fn<S: Send + Sync + 'static>(
        name: impl Into<String>,
        key: impl Into<String>,
        state: Arc<S>,
        handler: fn(&Arc<S>, Event) -> EventFuture,
    ) -> Self {
        Self::boxed(
            name.into(),
            EventSource::Config(key.into()),
            Arc::new(move |ev| handler(&state, ev)),
        )
    }

    fn with_source<F, Fut>(name: impl Into<String>, source: EventSource, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Self::boxed(
            name.into(),
            source,
            Arc::new(move |ev| Box::pin(handler(ev))),
        )
    }

    fn boxed(name: String, source: EventSource, handler: Arc<Handler>) -> Self {
        Self {
            name,
            source,
            mode: EventMode::Competing,
            max_attempts: None,
            include_headers: false,
            timeout: None,
            handler,
        }
    }

    /// Sets the delivery mode.
    pub fn mode(mut self, mode: EventMode) -> Self {
        self.mode = mode;
        self
    }

    /// Competing handlers: deliveries before the message is dead-lettered (default
    /// `kontiki.amqp.max_attempts`, 3). Part of the queue's identity: every replica, in any
    /// language, must use the same value.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Hands the message's headers to the handler.
    pub fn include_headers(mut self, yes: bool) -> Self {
        self.include_headers = yes;
        self
    }

    /// How long the handler may run on one delivery (default `kontiki.handler_timeout`,
    /// 300 s; `kontiki.handler_timeouts.<name>` wins over this). A handler still running then
    /// is cancelled at its next `.await` and the delivery counts as a failed attempt: competing
    /// events are requeued (and dead-lettered after `max_attempts`), others rejected. Code that
    /// blocks its thread cannot be cancelled: run it under `tokio::task::spawn_blocking`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The delivery mode.
    pub fn delivery_mode(&self) -> EventMode {
        self.mode
    }
}

/// An integer argument as Python's pamqp writes it: the smallest signed type that fits.
pub(crate) fn int_arg(v: i64) -> AMQPValue {
    wire::json_to_amqp(&Value::from(v))
}

fn str_arg(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The arguments of a competing queue, exactly as Kontiki 2.3.2 declares them.
pub(crate) fn competing_queue_args(service: &str, event: &str, max_attempts: u32) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), str_arg("quorum"));
    t.insert(
        "x-delivery-limit".into(),
        int_arg(i64::from(max_attempts) - 1),
    );
    t.insert("x-delayed-retry-type".into(), str_arg("failed"));
    t.insert("x-delayed-retry-min".into(), int_arg(1000));
    t.insert("x-delayed-retry-max".into(), int_arg(30000));
    t.insert(
        "x-dead-letter-exchange".into(),
        str_arg(wire::FAILED_EXCHANGE),
    );
    t.insert(
        "x-dead-letter-routing-key".into(),
        str_arg(&failed_queue(service, event)),
    );
    t.insert("x-dead-letter-strategy".into(), str_arg("at-least-once"));
    t.insert("x-overflow".into(), str_arg("reject-publish"));
    t
}

/// The arguments of a failed-message queue, exactly as Kontiki 2.3.2 declares them.
pub(crate) fn failed_queue_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), str_arg("quorum"));
    t.insert("x-max-length".into(), int_arg(10000));
    t.insert("x-overflow".into(), str_arg("reject-publish"));
    t
}

/// What to do with a delivery once its handler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ack,
    /// Reject; `requeue` for competing queues (the broker counts attempts).
    Reject {
        requeue: bool,
    },
}

impl Outcome {
    /// The outcome as the observation hook reports it.
    pub(crate) fn settled(&self) -> crate::observe::EventSettled {
        use crate::observe::EventSettled;
        match self {
            Outcome::Ack => EventSettled::Acked,
            Outcome::Reject { requeue: true } => EventSettled::Requeued,
            Outcome::Reject { requeue: false } => EventSettled::Rejected,
        }
    }
}

/// Decodes an event delivery as the runtime hands it to a handler: the JSON payload and, when
/// `include_headers`, the AMQP headers as JSON (`None` when there are none). Never panics; the
/// error is why the body is not JSON (the delivery is then rejected).
///
/// ```
/// let (payload, headers) = kontiki_rt::event::decode_delivery(br#"{"n": 1}"#, None, true)?;
/// assert_eq!(payload["n"], 1);
/// assert!(headers.is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn decode_delivery(
    body: &[u8],
    headers: Option<&FieldTable>,
    include_headers: bool,
) -> Result<(Value, Option<Map<String, Value>>), serde_json::Error> {
    let payload: Value = serde_json::from_slice(body)?;
    let headers_json = if include_headers {
        headers.map(wire::table_to_json).filter(|m| !m.is_empty())
    } else {
        None
    };
    Ok((payload, headers_json))
}

/// Runs one event delivery through its handler, for at most its timeout. Never panics.
pub(crate) async fn serve(
    ep: &EventEntrypoint,
    event_type: &str,
    body: &[u8],
    headers: Option<&FieldTable>,
    redelivered: bool,
    context: Context,
) -> Outcome {
    let on_error = Outcome::Reject {
        requeue: ep.mode == EventMode::Competing,
    };
    let ctx = FlowContext::inbound(
        EntrypointKind::Event,
        event_type,
        wire::header_text(headers, "flow_id"),
        wire::header_text(headers, "hop_id"),
    );
    let (payload, headers_json) = match decode_delivery(body, headers, ep.include_headers) {
        Ok(decoded) => decoded,
        Err(e) => {
            tracing::error!(handler = %ep.name, error = %e, "event payload is not JSON; rejecting it");
            context.container().report_uncaught(
                &ctx,
                "InvalidPayload",
                &format!("event payload is not JSON: {e}"),
            );
            return on_error;
        }
    };
    let reporter = context.clone();
    let report_scope = ctx.clone();
    let event = Event {
        event_type: event_type.to_owned(),
        payload,
        headers: headers_json,
        redelivered,
        context,
    };
    let limit = reporter
        .container()
        .settings
        .handlers
        .timeout_for(&ep.name, ep.timeout);
    let fut = (ep.handler)(event);
    let requeue = matches!(on_error, Outcome::Reject { requeue: true });
    match guard(limit, flow::scope(ctx, fut)).await {
        Guarded::Returned(Ok(())) => Outcome::Ack,
        Guarded::Returned(Err(e)) => {
            tracing::error!(handler = %ep.name, error = %e, requeue, "event handler failed");
            reporter.container().report_uncaught(
                &report_scope,
                "EventHandlerError",
                &e.to_string(),
            );
            on_error
        }
        Guarded::Panicked(msg) => {
            tracing::error!(handler = %ep.name, panic = %msg, requeue, "event handler panicked");
            reporter
                .container()
                .report_uncaught(&report_scope, "Panic", &msg);
            on_error
        }
        Guarded::TimedOut => {
            let msg = format!(
                "event handler `{}` timed out after {}",
                ep.name,
                seconds(limit)
            );
            tracing::error!(handler = %ep.name, timeout = %seconds(limit), requeue, "event handler timed out; cancelled");
            reporter
                .container()
                .report_uncaught(&report_scope, "HandlerTimeout", &msg);
            on_error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn competing_arguments_match_kontiki() {
        let t = competing_queue_args("svc", "ev", 3);
        let keys: Vec<&str> = t.inner().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), 9);
        assert!(matches!(
            t.inner().get("x-delivery-limit"),
            Some(AMQPValue::ShortShortInt(2))
        ));
        assert!(matches!(
            t.inner().get("x-delayed-retry-min"),
            Some(AMQPValue::ShortInt(1000))
        ));
        assert!(matches!(
            t.inner().get("x-dead-letter-routing-key"),
            Some(AMQPValue::LongString(s)) if s.as_bytes() == b"svc.ev.failed"
        ));
        assert!(matches!(
            failed_queue_args().inner().get("x-max-length"),
            Some(AMQPValue::ShortInt(10000))
        ));
    }
}
