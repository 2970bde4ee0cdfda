//! The registry client every service runs (protocol §5.1): `registry.register` after
//! `kontiki.registration.delay`, heartbeats every `kontiki.heartbeat.interval` with the result
//! of the service's degraded check, `registry.unregister` at graceful shutdown, answers to
//! `register_again`, registration again after a reconnect, and exception and context reports.
//!
//! A registry that is absent never blocks or breaks the service: reports are published in the
//! background and their failures only logged. The per-instance `register_again` queue is
//! exclusive and auto-delete, so it goes away with the instance (Kontiki leaks a durable one
//! per start, protocol §11 #1); the Python registry reaches it all the same, by routing key.

use crate::clients::messenger::{Identity, Messenger};
use crate::error::{Error, Result};
use crate::observe::stats::InstanceStats;
use crate::transport::connection::{Hook, Link};
use crate::transport::flow::FlowContext;
use crate::transport::wire;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a service's degraded check says (Kontiki's `@degraded_on`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Health {
    /// Working normally.
    #[default]
    Ok,
    /// Working, but degraded; the reason is shown in the registry and kontiki-tui.
    Degraded(Option<String>),
}

impl Health {
    /// Degraded with a reason.
    pub fn degraded(reason: impl Into<String>) -> Self {
        Self::Degraded(Some(reason.into()))
    }
}

/// The degraded check, run before every heartbeat (async, unlike Kontiki's).
pub(crate) type HealthCheck = Arc<dyn Fn() -> BoxFuture<'static, Health> + Send + Sync>;

/// Wraps an async closure as a health check.
pub(crate) fn health_check<F, Fut>(f: F) -> HealthCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Health> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// Publishes to `registry_admin_exchange` for one instance.
pub(crate) struct RegistryClient {
    messenger: Messenger,
    identity: Identity,
    register_body: Value,
    delay: Duration,
    interval: Duration,
    report_uncaught: bool,
    check: Option<HealthCheck>,
    /// The instance's counters, sent with each heartbeat.
    stats: Arc<InstanceStats>,
    registered: AtomicBool,
    /// Bounds the exception reports being published at once.
    reports: ReportGate,
}

/// How many exception reports may be on their way to the broker at once; beyond that a report
/// is dropped and counted (a handler failing on every message of a flood while publishing is
/// slow, under a resource alarm say, would otherwise pile up a task per failure).
const MAX_REPORTS_IN_FLIGHT: usize = 32;

/// Admits exception reports up to [`MAX_REPORTS_IN_FLIGHT`] at once and counts the rest.
#[derive(Debug)]
struct ReportGate {
    permits: Arc<tokio::sync::Semaphore>,
    dropped: std::sync::atomic::AtomicU64,
}

impl ReportGate {
    fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A permit to publish one report, held until it is sent; `None` (and counted) when
    /// `limit` reports are in flight already.
    fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The first, then every 1,000th: a flood must not flood the log too.
            if n == 1 || n.is_multiple_of(1000) {
                tracing::warn!(
                    dropped = n,
                    "exception reports dropped: {MAX_REPORTS_IN_FLIGHT} are being published already"
                );
            }
        }
        permit
    }
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("service_name", &self.identity.service_name)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// What goes into the register body besides identity.
pub(crate) struct Registration {
    pub(crate) version: String,
    pub(crate) group: String,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) delay: Duration,
    pub(crate) report_uncaught: bool,
    pub(crate) entrypoints: Vec<Value>,
    pub(crate) public: Option<Map<String, Value>>,
}

impl RegistryClient {
    pub(crate) fn new(
        messenger: Messenger,
        stats: Arc<InstanceStats>,
        reg: Registration,
        check: Option<HealthCheck>,
    ) -> Self {
        let identity = messenger.identity().clone();
        let interval_secs = reg.heartbeat_interval.as_secs_f64();
        let heartbeat_interval = if reg.heartbeat_interval.subsec_nanos() == 0 {
            json!(reg.heartbeat_interval.as_secs())
        } else {
            json!(interval_secs)
        };
        let mut body = Map::new();
        body.insert("service_name".into(), json!(&*identity.service_name));
        body.insert("instance_id".into(), json!(&*identity.instance_id));
        body.insert("pid".into(), json!(std::process::id()));
        body.insert("host".into(), json!(&*identity.host));
        body.insert("service_version".into(), json!(reg.version));
        body.insert("kontiki_version".into(), json!(wire::KONTIKI_VERSION));
        body.insert("heartbeat_interval".into(), heartbeat_interval);
        body.insert("group".into(), json!(reg.group));
        body.insert("entrypoints".into(), Value::Array(reg.entrypoints));
        if let Some(public) = reg.public.filter(|p| !p.is_empty()) {
            body.insert("config".into(), Value::Object(public));
        }
        Self {
            messenger,
            identity,
            register_body: Value::Object(body),
            delay: reg.delay,
            interval: reg.heartbeat_interval,
            report_uncaught: reg.report_uncaught,
            check,
            stats,
            registered: AtomicBool::new(false),
            reports: ReportGate::new(MAX_REPORTS_IN_FLIGHT),
        }
    }

    /// The register body (the entrypoint catalogue included).
    pub(crate) fn register_body(&self) -> &Value {
        &self.register_body
    }

    async fn publish(&self, routing_key: &str, body: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(body).map_err(Error::Encode)?;
        self.messenger
            .publish_confirmed(
                wire::REGISTRY_ADMIN_EXCHANGE,
                routing_key,
                &bytes,
                || BasicProperties::default().with_delivery_mode(2),
                false,
                false,
            )
            .await
    }

    async fn publish_logged(&self, routing_key: &str, body: &Value) {
        if let Err(e) = self.publish(routing_key, body).await {
            tracing::warn!(error = %e, routing_key, "could not publish to the registry");
        }
    }

    pub(crate) async fn register(&self) {
        self.publish_logged("registry.register", &self.register_body)
            .await;
        self.registered.store(true, Ordering::SeqCst);
        tracing::debug!("registered with the registry");
    }

    async fn heartbeat(&self) {
        let health = match &self.check {
            Some(check) => check().await,
            None => Health::Ok,
        };
        let mut body = Map::new();
        body.insert("service_name".into(), json!(&*self.identity.service_name));
        body.insert("instance_id".into(), json!(&*self.identity.instance_id));
        match health {
            Health::Ok => {
                body.insert("degraded".into(), json!(false));
            }
            Health::Degraded(reason) => {
                body.insert("degraded".into(), json!(true));
                if let Some(r) = reason {
                    body.insert("reason".into(), json!(r));
                }
            }
        }
        // kontiki-rs only; Kontiki's registry reads the keys above and ignores this one.
        body.insert("stats".into(), self.stats.snapshot());
        self.publish_logged("registry.heartbeat", &Value::Object(body))
            .await;
    }

    /// Registers after the delay, then sends heartbeats until `stop`.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        tokio::select! {
            () = tokio::time::sleep(self.delay) => {}
            () = stop.cancelled() => return,
        }
        self.register().await;
        loop {
            self.heartbeat().await;
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// `registry.unregister`, bounded so a missing broker cannot hold the shutdown.
    pub(crate) async fn unregister(&self) {
        let body = json!({
            "service_name": &*self.identity.service_name,
            "instance_id": &*self.identity.instance_id,
        });
        if tokio::time::timeout(
            Duration::from_secs(5),
            self.publish_logged("registry.unregister", &body),
        )
        .await
        .is_err()
        {
            tracing::warn!("registry.unregister was not confirmed within 5 s");
        }
    }

    fn report_body(
        &self,
        flow: Option<&FlowContext>,
        id_key: &str,
        mut fields: Map<String, Value>,
    ) -> Value {
        fields.insert("service_name".into(), json!(&*self.identity.service_name));
        fields.insert("instance_id".into(), json!(&*self.identity.instance_id));
        fields.insert("timestamp".into(), json!(wire::timestamp_now()));
        fields.insert(id_key.into(), json!(wire::random_hex(8)));
        match flow {
            Some(f) => {
                fields.insert("flow_id".into(), json!(&*f.flow_id));
                fields.insert("hop_id".into(), json!(f.inbound_hop_id.as_deref()));
                fields.insert("entrypoint".into(), json!(f.entrypoint.as_str()));
                fields.insert("operation".into(), json!(&*f.operation));
            }
            None => {
                fields.insert("flow_id".into(), json!(wire::new_flow_id()));
                fields.insert("hop_id".into(), Value::Null);
                fields.insert("entrypoint".into(), Value::Null);
                fields.insert("operation".into(), Value::Null);
            }
        }
        Value::Object(fields)
    }

    /// Reports an exception (always, when registration is on).
    pub(crate) fn report_exception(
        self: &Arc<Self>,
        flow: Option<&FlowContext>,
        exception_type: &str,
        message: &str,
    ) {
        let mut fields = Map::new();
        fields.insert("exception_type".into(), json!(exception_type));
        fields.insert("message".into(), json!(message));
        let Some(permit) = self.reports.admit() else {
            return;
        };
        let body = self.report_body(flow, "exception_id", fields);
        let this = self.clone();
        tokio::spawn(async move {
            this.publish_logged("registry.exception", &body).await;
            drop(permit);
        });
    }

    /// Reports an uncaught handler error when `report_uncaught_exceptions` is on.
    pub(crate) fn report_uncaught(
        self: &Arc<Self>,
        flow: &FlowContext,
        exception_type: &str,
        message: &str,
    ) {
        if self.report_uncaught {
            self.report_exception(Some(flow), exception_type, message);
        }
    }

    /// Sends a context record (`registry.context`).
    pub(crate) fn add_context(self: &Arc<Self>, flow: Option<&FlowContext>, context: Value) {
        let mut fields = Map::new();
        fields.insert("context".into(), context);
        let body = self.report_body(flow, "context_id", fields);
        let this = self.clone();
        tokio::spawn(async move { this.publish_logged("registry.context", &body).await });
    }
}

/// Declares the `register_again` queue on every connection and registers again after a
/// reconnect.
pub(crate) struct RegistryHook {
    pub(crate) client: Arc<RegistryClient>,
}

impl Hook for RegistryHook {
    fn up<'a>(&'a self, link: &'a Arc<Link>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ch = &link.consume;
            let amqp = |operation: &str| {
                let operation = operation.to_owned();
                move |source| Error::Amqp { operation, source }
            };
            ch.exchange_declare(
                wire::REGISTRY_ADMIN_EXCHANGE.into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp("declare registry_admin_exchange"))?;
            let id = &self.client.identity;
            let key = format!("{}.{}.register_again", id.service_name, id.instance_id);
            let queue = format!("{key}.queue");
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp("declare the register_again queue"))?;
            ch.queue_bind(
                queue.as_str().into(),
                wire::REGISTRY_ADMIN_EXCHANGE.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp("bind the register_again queue"))?;
            let mut consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(amqp("consume the register_again queue"))?;
            let client = self.client.clone();
            tokio::spawn(async move {
                while let Some(Ok(_)) = consumer.next().await {
                    tracing::info!("the registry asked to register again");
                    client.register().await;
                }
            });
            if link.generation > 1 && self.client.registered.load(Ordering::SeqCst) {
                let client = self.client.clone();
                tokio::spawn(async move { client.register().await });
            }
            Ok(())
        })
    }

    fn down(&self, _generation: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_reports_beyond_the_bound_are_dropped_and_counted() {
        let gate = ReportGate::new(3);
        let held: Vec<_> = (0..3)
            .map(|_| gate.admit().expect("within the bound"))
            .collect();
        assert!(gate.admit().is_none(), "a fourth report in flight");
        assert!(gate.admit().is_none());
        assert_eq!(gate.dropped.load(Ordering::Relaxed), 2);
        drop(held);
        assert!(
            gate.admit().is_some(),
            "admitted again once the others were sent"
        );
        assert_eq!(gate.dropped.load(Ordering::Relaxed), 2);
    }
}
