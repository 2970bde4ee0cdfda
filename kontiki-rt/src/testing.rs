//! Run services in tests: start them from their generated trait (or a [`Service`] built by
//! hand), call them through their typed clients, publish events to them and wait until they
//! are handled, record what they publish and call, and stand fakes in for the services they
//! call (Kontiki's mock services, Nameko's `worker_factory` and `entrypoint_waiter`).
//!
//! A [`TestBed`] owns a broker URL and a client [`Messenger`]. [`TestBed::new`] takes
//! `KONTIKI_TEST_AMQP_URL` when it is set (run the same tests on RabbitMQ) and otherwise a
//! fresh in-process broker, `memory://testbed-<uuid>`, private to the bed: tests running side
//! by side in one process never see each other's services or messages.
//!
//! Every service started through the bed reports, to its [`ServiceUnderTest`], each RPC it
//! answered, each event delivery it settled and each task run ([`Handled`]), and each event
//! it published and call it made through its messenger ([`Published`], [`OutboundCall`]).
//! Waiting is on those records, with a deadline ([`TestBed::wait_timeout`]): no sleeps.
//!
//! ```no_run
//! use kontiki_rt::testing::{Outcome, TestBed};
//! use kontiki_rt::{Event, EventEntrypoint, HandlerError, Service};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let bed = TestBed::new().await?;
//! // The service calls `prices.quote`: a fake answers for it.
//! let prices = bed.fake("prices").returns("quote", json!(12.5)).start().await?;
//! let shop = bed
//!     .start(
//!         Service::builder("shop")
//!             .event(EventEntrypoint::new("on_order", ["order_placed"], |ev: Event| async move {
//!                 let messenger = ev.context.messenger();
//!                 let price = messenger
//!                     .call("prices", "quote", vec![ev.payload.clone()], Default::default())
//!                     .await
//!                     .map_err(HandlerError::internal)?;
//!                 messenger.publish("order_priced", &price).await.map_err(HandlerError::internal)?;
//!                 Ok(())
//!             }))
//!             .build()?,
//!     )
//!     .await?;
//! bed.messenger().publish("order_placed", &json!({"sku": "A1"})).await?;
//! let handled = shop.wait_handled("on_order", 1).await?;
//! assert_eq!(handled[0].outcome, Outcome::Ok);
//! assert_eq!(prices.handled()[0].body, json!({"args": [{"sku": "A1"}], "kwargs": {}}));
//! assert_eq!(shop.published()[0].payload, json!(12.5));
//! bed.shutdown().await;
//! # Ok(()) }
//! ```

use crate::clients::messenger::Identity;
use crate::clients::messenger::Messenger;
use crate::config::Config;
use crate::entrypoints::queue::{QueueEntrypoint, RawMessage};
use crate::entrypoints::rpc::{Call, RpcEntrypoint};
use crate::error::Result;
use crate::error::RpcError;
use crate::handler::HandlerError;
use crate::observe::{EventSettled, Observer};
use crate::service::{RunningService, Service};
use crate::transport::wire::{self, Envelope, ErrorType};
use lapin::types::FieldTable;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The environment variable that points [`TestBed::new`] at a real broker.
pub const TEST_URL_ENV: &str = "KONTIKI_TEST_AMQP_URL";

/// The kind of entrypoint a [`Handled`] record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// An RPC request answered.
    Rpc,
    /// An event delivery settled.
    Event,
    /// A task run.
    Task,
}

/// How a handled message or task run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Handled: the RPC answered with a result, the event was acked, the task returned `Ok`.
    Ok,
    /// The RPC answered with a client error (`rpc_error(code, message)`).
    ClientError {
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The handler failed: an RPC answered with a server error, a task failed or panicked.
    Error {
        /// What the handler reported.
        message: String,
    },
    /// The event handler failed and the delivery went back to its queue for another attempt
    /// (after the last attempt the broker dead-letters it to the failed queue).
    Retried,
    /// The event delivery was rejected without requeue (a broadcast or session handler
    /// failed, or the payload could not be decoded on a non-competing queue).
    Rejected,
}

/// One RPC request answered, event delivery settled or task run, as recorded by the service.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Handled {
    /// What kind of entrypoint ran.
    pub kind: Kind,
    /// The RPC method, event handler or task name.
    pub entrypoint: String,
    /// The event type, for events.
    pub event_type: Option<String>,
    /// The message body as JSON (the RPC request `{"args", "kwargs"}` or the event payload),
    /// a JSON string of the lossy UTF-8 text when it was not JSON, `null` for task runs.
    pub body: Value,
    /// The flow id the message carried.
    pub flow_id: Option<String>,
    /// The broker's redelivered flag (events).
    pub redelivered: bool,
    /// How it ended.
    pub outcome: Outcome,
}

/// An event the service published through its messenger (after the broker confirmed it).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Published {
    /// The event type.
    pub event_type: String,
    /// The routing key (the event type, or `{event_type}.{session}` for session events).
    pub routing_key: String,
    /// The payload as JSON.
    pub payload: Value,
    /// The extra headers the publisher set (Kontiki's own headers are not repeated).
    pub headers: Map<String, Value>,
}

/// Why an outbound call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallFailure {
    /// The client error code, or the server's code for server errors, when there is one.
    pub code: Option<String>,
    /// The error as displayed.
    pub message: String,
}

/// A call the service made through its messenger, with its result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OutboundCall {
    /// The service called.
    pub service: String,
    /// The method called.
    pub method: String,
    /// The request body (`{"args": [...], "kwargs": {...}}`).
    pub request: Value,
    /// What came back.
    pub result: std::result::Result<Value, CallFailure>,
}

#[derive(Debug, Default)]
struct Log {
    handled: Vec<Handled>,
    published: Vec<Published>,
    calls: Vec<OutboundCall>,
}

/// Collects what one service handles and sends. Only services run under [`TestBed`] have one.
#[derive(Debug)]
pub(crate) struct Recorder {
    log: watch::Sender<Log>,
}

fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn flow_id(headers: Option<&FieldTable>) -> Option<String> {
    wire::header_text(headers, "flow_id").map(str::to_owned)
}

impl Recorder {
    fn new() -> Self {
        Self {
            log: watch::Sender::new(Log::default()),
        }
    }

    fn push_handled(&self, record: Handled) {
        self.log.send_modify(|log| log.handled.push(record));
    }

    /// Waits until `ready` holds for the log, or `timeout` passes.
    async fn wait<T>(
        &self,
        timeout: Duration,
        what: impl FnOnce() -> String,
        mut ready: impl FnMut(&Log) -> Option<T>,
    ) -> std::result::Result<T, WaitTimeout> {
        let mut rx = self.log.subscribe();
        let mut found = None;
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|log| {
                found = ready(log);
                found.is_some()
            }),
        )
        .await;
        match (waited, found) {
            (Ok(Ok(_)), Some(value)) => Ok(value),
            _ => {
                let log = self.log.borrow();
                Err(WaitTimeout {
                    waited: timeout,
                    what: what(),
                    seen: log
                        .handled
                        .iter()
                        .map(|h| format!("{} {:?}", h.entrypoint, h.outcome))
                        .collect(),
                })
            }
        }
    }
}

impl Observer for Recorder {
    fn rpc_handled(
        &self,
        method: &str,
        body: &[u8],
        headers: Option<&FieldTable>,
        envelope: &Envelope,
    ) {
        let outcome = match envelope.error_type {
            _ if envelope.success => Outcome::Ok,
            ErrorType::Client => Outcome::ClientError {
                code: envelope.error_code.clone().unwrap_or_default(),
                message: envelope.message.clone().unwrap_or_default(),
            },
            ErrorType::Server | ErrorType::None => Outcome::Error {
                message: envelope.message.clone().unwrap_or_default(),
            },
        };
        self.push_handled(Handled {
            kind: Kind::Rpc,
            entrypoint: method.to_owned(),
            event_type: None,
            body: body_json(body),
            flow_id: flow_id(headers),
            redelivered: false,
            outcome,
        });
    }

    fn event_handled(
        &self,
        handler: &str,
        event_type: &str,
        body: &[u8],
        headers: Option<&FieldTable>,
        redelivered: bool,
        settled: EventSettled,
    ) {
        let outcome = match settled {
            EventSettled::Acked => Outcome::Ok,
            EventSettled::Requeued => Outcome::Retried,
            EventSettled::Rejected => Outcome::Rejected,
        };
        self.push_handled(Handled {
            kind: Kind::Event,
            entrypoint: handler.to_owned(),
            event_type: Some(event_type.to_owned()),
            body: body_json(body),
            flow_id: flow_id(headers),
            redelivered,
            outcome,
        });
    }

    fn task_ran(&self, name: &str, flow_id: &str, result: std::result::Result<(), String>) {
        let outcome = match result {
            Ok(()) => Outcome::Ok,
            Err(message) => Outcome::Error { message },
        };
        self.push_handled(Handled {
            kind: Kind::Task,
            entrypoint: name.to_owned(),
            event_type: None,
            body: Value::Null,
            flow_id: Some(flow_id.to_owned()),
            redelivered: false,
            outcome,
        });
    }

    fn published(
        &self,
        event_type: &str,
        routing_key: &str,
        body: &[u8],
        headers: &Map<String, Value>,
    ) {
        let record = Published {
            event_type: event_type.to_owned(),
            routing_key: routing_key.to_owned(),
            payload: body_json(body),
            headers: headers.clone(),
        };
        self.log.send_modify(|log| log.published.push(record));
    }

    fn called(
        &self,
        service: &str,
        method: &str,
        request: Value,
        result: &std::result::Result<Value, RpcError>,
    ) {
        let result = match result {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(CallFailure {
                code: e
                    .client_code()
                    .or_else(|| e.remote_code())
                    .map(str::to_owned),
                message: e.to_string(),
            }),
        };
        let record = OutboundCall {
            service: service.to_owned(),
            method: method.to_owned(),
            request,
            result,
        };
        self.log.send_modify(|log| log.calls.push(record));
    }
}

/// A wait on a [`ServiceUnderTest`] or an [`EventTap`] ran out of time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("waited {waited:?} for {what}; the service handled: [{}]", seen.join(", "))]
pub struct WaitTimeout {
    /// How long it waited.
    pub waited: Duration,
    /// What it waited for.
    pub what: String,
    /// What had been handled by then (entrypoint and outcome).
    pub seen: Vec<String>,
}

/// A broker URL, a client messenger and the services started on them, for one test.
#[derive(Debug)]
pub struct TestBed {
    url: String,
    messenger: Messenger,
    wait_timeout: Duration,
}

impl TestBed {
    /// A bed on `KONTIKI_TEST_AMQP_URL` when it is set, else on a fresh in-process broker
    /// (`memory://testbed-<uuid>`) that no other bed shares.
    pub async fn new() -> Result<TestBed> {
        let url = match std::env::var(TEST_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => format!("memory://testbed-{}", uuid::Uuid::new_v4().simple()),
        };
        Self::with_url(url).await
    }

    /// A bed on the broker at `url` (`amqp://…` or `memory://…`).
    pub async fn with_url(url: impl Into<String>) -> Result<TestBed> {
        let url = url.into();
        let messenger = Messenger::builder(url.clone())
            .client_name("testbed")
            .rpc_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        Ok(TestBed {
            url,
            messenger,
            wait_timeout: Duration::from_secs(10),
        })
    }

    /// How long the `wait_*` methods of the services started from now on wait (default 10 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The broker URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test's own messenger: build typed clients on it
    /// (`RpcServiceClient::new(bed.messenger().clone())`), publish events, call services.
    pub fn messenger(&self) -> &Messenger {
        &self.messenger
    }

    /// The configuration services get: this bed's broker, registration off, RPC timeout 5 s,
    /// shutdown grace 5 s, `kontiki.service_name` = `service_name`.
    pub fn config(&self, service_name: &str) -> Result<Config> {
        self.config_with(service_name, "")
    }

    /// [`TestBed::config`] with `extra_yaml` merged on top (`app.*` settings, `kontiki.*`
    /// overrides such as `amqp.max_attempts`).
    pub fn config_with(&self, service_name: &str, extra_yaml: &str) -> Result<Config> {
        let base = serde_json::json!({
            "kontiki": {
                "service_name": service_name,
                "amqp": {"url": self.url, "rpc": {"timeout": 5}},
                "shutdown": {"grace_seconds": 5},
                "registration": {"disable": true},
            }
        });
        let mut config = Config::from_value(base)?;
        if !extra_yaml.trim().is_empty() {
            config.merge_yaml_str("test.yaml", extra_yaml, |_| None)?;
        }
        Ok(config)
    }

    /// Starts `service` with [`TestBed::config`]. It is consuming when this returns: events
    /// published from now on reach it.
    pub async fn start(&self, service: Service) -> Result<ServiceUnderTest> {
        let config = self.config(service.name())?;
        self.start_with(service, config).await
    }

    /// Starts `service` with `config` (build it with [`TestBed::config_with`]).
    pub async fn start_with(&self, service: Service, config: Config) -> Result<ServiceUnderTest> {
        let observer = Arc::new(Recorder::new());
        let running = service
            .with_observer(observer.clone())
            .start(config)
            .await?;
        Ok(ServiceUnderTest {
            running,
            observer,
            wait_timeout: self.wait_timeout,
        })
    }

    /// A fake service named `name` for the service under test to call: give each method a
    /// canned result, a client error or a function, then [`FakeService::start`].
    pub fn fake(&self, name: impl Into<String>) -> FakeService<'_> {
        FakeService {
            bed: self,
            builder: Service::builder(name),
        }
    }

    /// Records every event published on the event exchange whose routing key matches
    /// `pattern` (`*` one word, `#` any number), from now on.
    pub async fn tap(&self, pattern: &str) -> Result<EventTap> {
        let (tx, _) = watch::channel(Vec::<TappedEvent>::new());
        let tx = Arc::new(tx);
        let sink = tx.clone();
        let queue = format!("testbed-tap-{}", uuid::Uuid::new_v4().simple());
        let ep = QueueEntrypoint::new(queue, move |msg: RawMessage| {
            let sink = sink.clone();
            async move {
                let event = TappedEvent {
                    event_type: msg
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("event_type"))
                        .and_then(Value::as_str)
                        .unwrap_or(&msg.routing_key)
                        .to_owned(),
                    routing_key: msg.routing_key,
                    payload: body_json(&msg.body),
                    headers: msg.headers.unwrap_or_default(),
                };
                sink.send_modify(|events| events.push(event));
                Ok::<(), HandlerError>(())
            }
        })
        .flags(false, true, true)
        .bind(wire::EVENT_EXCHANGE, pattern);
        let name = format!("testbed-tap-{}", uuid::Uuid::new_v4().simple());
        let service = Service::builder(name.clone()).queue(ep).build()?;
        let running = service.start(self.config(&name)?).await?;
        Ok(EventTap {
            running,
            events: tx,
            pattern: pattern.to_owned(),
            wait_timeout: self.wait_timeout,
        })
    }

    /// Closes the bed's messenger. Services started from it stop with their own
    /// [`ServiceUnderTest::shutdown`] (or when dropped with the runtime).
    pub async fn shutdown(self) {
        self.messenger.close().await;
    }
}

/// A service started by a [`TestBed`], with what it handled, published and called.
#[derive(Debug)]
pub struct ServiceUnderTest {
    running: RunningService,
    observer: Arc<Recorder>,
    wait_timeout: Duration,
}

impl ServiceUnderTest {
    /// The running service.
    pub fn running(&self) -> &RunningService {
        &self.running
    }

    /// Its name, instance id and host.
    pub fn identity(&self) -> &Identity {
        self.running.identity()
    }

    /// Its messenger.
    pub fn messenger(&self) -> &Messenger {
        self.running.messenger()
    }

    /// The address its HTTP server listens on, when it has routes.
    #[cfg(feature = "http")]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.http_addr()
    }

    /// Every RPC answered, event delivery settled and task run so far, in order.
    pub fn handled(&self) -> Vec<Handled> {
        self.observer.log.borrow().handled.clone()
    }

    /// Every event it published so far.
    pub fn published(&self) -> Vec<Published> {
        self.observer.log.borrow().published.clone()
    }

    /// Every call it made so far.
    pub fn calls(&self) -> Vec<OutboundCall> {
        self.observer.log.borrow().calls.clone()
    }

    /// Waits until `entrypoint` (an RPC method, event handler or task name) has been handled
    /// `n` times, with any outcome, and returns those records.
    pub async fn wait_handled(
        &self,
        entrypoint: &str,
        n: usize,
    ) -> std::result::Result<Vec<Handled>, WaitTimeout> {
        self.observer
            .wait(
                self.wait_timeout,
                || format!("{n} × {entrypoint}"),
                |log| {
                    let hits: Vec<Handled> = log
                        .handled
                        .iter()
                        .filter(|h| h.entrypoint == entrypoint)
                        .cloned()
                        .collect();
                    (hits.len() >= n).then_some(hits)
                },
            )
            .await
    }

    /// Waits until `n` events of `event_type` have been published by the service.
    pub async fn wait_published(
        &self,
        event_type: &str,
        n: usize,
    ) -> std::result::Result<Vec<Published>, WaitTimeout> {
        self.observer
            .wait(
                self.wait_timeout,
                || format!("{n} published {event_type}"),
                |log| {
                    let hits: Vec<Published> = log
                        .published
                        .iter()
                        .filter(|p| p.event_type == event_type)
                        .cloned()
                        .collect();
                    (hits.len() >= n).then_some(hits)
                },
            )
            .await
    }

    /// Waits until the service has handled something for which `pred` holds.
    pub async fn wait_for(
        &self,
        what: &str,
        mut pred: impl FnMut(&Handled) -> bool,
    ) -> std::result::Result<Handled, WaitTimeout> {
        self.observer
            .wait(
                self.wait_timeout,
                || what.to_owned(),
                |log| log.handled.iter().find(|h| pred(h)).cloned(),
            )
            .await
    }

    /// Stops the service gracefully.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// A stand-in for a service that the service under test calls, built by [`TestBed::fake`].
#[derive(Debug)]
pub struct FakeService<'a> {
    bed: &'a TestBed,
    builder: crate::service::ServiceBuilder,
}

impl FakeService<'_> {
    /// `method` answers `result` whatever it is called with.
    pub fn returns(self, method: &str, result: Value) -> Self {
        self.handler(method, move |_call: Call| {
            let result = result.clone();
            async move { Ok(result) }
        })
    }

    /// `method` answers the client error `code` with `message`.
    pub fn fails(self, method: &str, code: &str, message: &str) -> Self {
        let (code, message) = (code.to_owned(), message.to_owned());
        self.handler(method, move |_call: Call| {
            let error = HandlerError::client(code.clone(), message.clone());
            async move { Err(error) }
        })
    }

    /// `method` runs `handler` (the same handler type as [`RpcEntrypoint::new`]).
    pub fn handler<F, Fut>(mut self, method: &str, handler: F) -> Self
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Value, HandlerError>> + Send + 'static,
    {
        self.builder = self.builder.rpc(RpcEntrypoint::new(method, handler));
        self
    }

    /// Starts the fake; what it was called with is in its [`ServiceUnderTest::handled`].
    pub async fn start(self) -> Result<ServiceUnderTest> {
        let service = self.builder.build()?;
        self.bed.start(service).await
    }
}

/// An event seen by an [`EventTap`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TappedEvent {
    /// The `event_type` header (the routing key when it is missing).
    pub event_type: String,
    /// The routing key.
    pub routing_key: String,
    /// The payload as JSON.
    pub payload: Value,
    /// Every AMQP header, as JSON.
    pub headers: Map<String, Value>,
}

/// Records the events that pass on the event exchange, made by [`TestBed::tap`].
#[derive(Debug)]
pub struct EventTap {
    running: RunningService,
    events: Arc<watch::Sender<Vec<TappedEvent>>>,
    pattern: String,
    wait_timeout: Duration,
}

impl EventTap {
    /// The events seen so far, in arrival order.
    pub fn events(&self) -> Vec<TappedEvent> {
        self.events.borrow().clone()
    }

    /// Waits until `n` events of `event_type` have passed and returns them.
    pub async fn wait_for(
        &self,
        event_type: &str,
        n: usize,
    ) -> std::result::Result<Vec<TappedEvent>, WaitTimeout> {
        let mut rx = self.events.subscribe();
        let mut found = Vec::new();
        let waited = tokio::time::timeout(
            self.wait_timeout,
            rx.wait_for(|events| {
                found = events
                    .iter()
                    .filter(|e| e.event_type == event_type)
                    .cloned()
                    .collect();
                found.len() >= n
            }),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(found),
            _ => Err(WaitTimeout {
                waited: self.wait_timeout,
                what: format!("{n} × {event_type} on the tap `{}`", self.pattern),
                seen: self.events().iter().map(|e| e.event_type.clone()).collect(),
            }),
        }
    }

    /// Stops the tap (its queue goes with it).
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}
