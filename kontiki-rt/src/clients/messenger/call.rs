//! Calls: route checks, direct reply-to, one reply consumer multiplexed by correlation id,
//! timeouts, and decoding the reply envelope into a value or a typed [`RpcError`].

use super::headers::{add_flow, check_reserved, insert_extras, resolve_flow_id, routing_key_short};
use super::{CallOptions, Inner, Messenger, Pending, ReplyMsg, lock};
use crate::error::{Error, RemoteError, Result, RpcError};
use crate::transport::connection::{Connector, Hook, Link};
use crate::transport::flow;
use crate::transport::wire::{self, Reply, RequestBody};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use lapin::BasicProperties;
use lapin::Confirmation;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use serde_json::{Map, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

impl Messenger {
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
        let started = std::time::Instant::now();
        let observer = self.inner.observer.get();
        let request = observer.map(|_| serde_json::from_slice(&body).unwrap_or(Value::Null));
        let span = self.telemetry().map(|t| {
            let routing_key =
                wire::rpc_routing_key(service, method, options.instance_id.as_deref());
            t.rpc_client(service, method, &routing_key)
        });
        let result = self
            .call_raw_unobserved(service, method, body, options, span.as_ref())
            .await;
        if let Some(span) = span {
            if let Err(e) = &result {
                span.fail(client_error_type(e), &e.to_string());
            }
            span.end();
        }
        if self.metrics_on() {
            self.inner.metric_handles.called(
                &self.inner.identity.service_name,
                service,
                method,
                &result,
                started.elapsed(),
            );
        }
        if let (Some(observer), Some(request)) = (observer, request) {
            observer.called(service, method, request, &result);
        }
        result
    }

    async fn call_raw_unobserved(
        &self,
        service: &str,
        method: &str,
        body: Vec<u8>,
        options: CallOptions,
        span: Option<&crate::observe::otel::OtelSpan>,
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
        // The reply comes on this link: a move to another broker waits for it.
        let _work = link.work.token();
        let routing_key = wire::rpc_routing_key(service, method, options.instance_id.as_deref());
        let uuid = uuid::Uuid::new_v4();
        let correlation_id = uuid
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .to_owned();
        let (tx, rx) = oneshot::channel();
        let guard = PendingGuard::new(
            &self.inner,
            uuid.as_u128(),
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
        if let Some(span) = span {
            span.inject(&mut headers);
            span.set_str("messaging.message.conversation_id", &correlation_id);
        }
        let expiration = decimal(u64::try_from(timeout.as_millis().max(1)).unwrap_or(u64::MAX));
        let props = BasicProperties::default()
            .with_correlation_id(correlation_id.as_str().into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            // Transient, and expiring with the caller's timeout: a request nobody waits for any
            // more has no use, and must not run when a stopped service comes back.
            .with_delivery_mode(1)
            .with_expiration(ShortString::from(expiration))
            .with_headers(headers);
        let rk = routing_key_short(&routing_key).map_err(RpcError::Transport)?;
        self.check_size(wire::RPC_EXCHANGE, &routing_key, body.len())
            .map_err(RpcError::Transport)?;
        // In the first moments after a reconnection (a broker restart or crash) the service
        // may not have declared its request queue again yet: wait for it (until the deadline)
        // rather than report an unknown service or method that is only late.
        if link.recovering(super::publish::RECOVERY_WINDOW) {
            while self
                .check_route(
                    &routing_key,
                    service,
                    method,
                    options.instance_id.as_deref(),
                )
                .await
                .is_some()
                && tokio::time::Instant::now() + ROUTE_RETRY < deadline
            {
                tokio::time::sleep(ROUTE_RETRY).await;
            }
        }
        // Bounded by the call's deadline: a blocked connection may not take the publish.
        // Mandatory: a request no queue takes comes back (unknown service or method).
        let publish = || {
            tokio::time::timeout_at(
                deadline,
                link.publish.basic_publish(
                    wire::RPC_EXCHANGE.into(),
                    rk.clone(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &body,
                    props.clone(),
                ),
            )
        };
        let confirm = publish().await;
        let confirm = match confirm {
            Err(_) => return Err(timed_out()),
            Ok(Ok(c)) => c,
            Ok(Err(source)) => {
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
        // A route seen within ROUTE_CACHE needs no check: no future is made for it.
        let mut route = (!self.route_seen(&routing_key)).then(|| {
            Box::pin(self.check_route(
                &routing_key,
                service,
                method,
                options.instance_id.as_deref(),
            ))
        });
        let mut route_pending = route.is_some();
        // Set when the broker returned the request; the route check (still running, or done)
        // then says which of unknown service and unknown method it is.
        let mut returned = false;
        loop {
            if returned
                && link.recovering(super::publish::RECOVERY_WINDOW)
                && tokio::time::Instant::now() + ROUTE_RETRY < deadline
            {
                // Returned just after a reconnection: the service has probably not bound its
                // queue again yet. Publish again (same correlation id) until the deadline.
                tokio::time::sleep(ROUTE_RETRY).await;
                let again = publish().await;
                match again {
                    Ok(Ok(c)) => {
                        confirm = Some(c);
                        returned = false;
                        continue;
                    }
                    Ok(Err(_)) => {
                        link.mark_broken();
                        drop(guard);
                        return Err(RpcError::ConnectionLost {
                            service: service.to_owned(),
                            method: method.to_owned(),
                        });
                    }
                    Err(_) => {
                        drop(guard);
                        return Err(timed_out());
                    }
                }
            }
            if returned && link.recovering(super::publish::RECOVERY_WINDOW) {
                // Still returned when the deadline comes, during recovery: the service did not
                // come back in time, which is a timeout, not proof that it does not exist.
                drop(guard);
                return Err(timed_out());
            }
            if returned && !route_pending {
                drop(guard);
                return Err(self
                    .unroutable(service, method, options.instance_id.clone())
                    .await);
            }
            tokio::select! {
                unknown = async { match route.as_mut() { Some(r) => r.await, None => std::future::pending().await } }, if route_pending => {
                    route_pending = false;
                    // Just after a reconnection a missing queue may only be late: the request
                    // went out mandatory, so a return (and the retry above) decides instead.
                    let recovering = link.recovering(super::publish::RECOVERY_WINDOW);
                    if let Some(e) = unknown.filter(|_| !recovering) {
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
                                exchange: wire::RPC_EXCHANGE.to_owned(), routing_key: routing_key.clone(),
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
    /// `routing_key` is the request's (it names the queue as well as `service`, `method` and
    /// `instance_id` do, and the cache is keyed by it).
    async fn check_route(
        &self,
        routing_key: &str,
        service: &str,
        method: &str,
        instance_id: Option<&str>,
    ) -> Option<RpcError> {
        if self.route_seen(routing_key) {
            return None;
        }
        let queue = match instance_id {
            Some(iid) => wire::rpc_instance_queue(service, method, iid),
            None => wire::rpc_queue(service, method),
        };
        match self.probe(&queue).await {
            Some(true) => {
                let mut routes = lock(&self.inner.routes);
                if routes.len() > 1024 {
                    routes.retain(|_, seen| seen.elapsed() < ROUTE_CACHE);
                }
                routes.insert(routing_key.to_owned(), std::time::Instant::now());
                None
            }
            Some(false) => Some(
                self.unroutable(service, method, instance_id.map(str::to_owned))
                    .await,
            ),
            None => None,
        }
    }

    /// Whether the request queue of `routing_key` was seen to exist within [`ROUTE_CACHE`].
    fn route_seen(&self, routing_key: &str) -> bool {
        lock(&self.inner.routes)
            .get(routing_key)
            .is_some_and(|seen| seen.elapsed() < ROUTE_CACHE)
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
}

/// How often a call made just after a reconnection checks again for its request queue.
const ROUTE_RETRY: Duration = Duration::from_millis(100);

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

/// `n` in decimal, without `core::fmt` (the expiration of every request).
fn decimal(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `n % 10` is below 10.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    String::from_utf8_lossy(&digits[start..]).into_owned()
}

/// RabbitMQ's direct reply-to pseudo queue: replies come straight to the calling channel.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

pub(super) fn decode_reply(service: &str, method: &str, body: &[u8]) -> Result<Value, RpcError> {
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

/// `error.type` of a failed call's span: the remote error code, or the kind of failure.
fn client_error_type(e: &RpcError) -> &str {
    match e {
        RpcError::Client { error, .. } | RpcError::Server { error, .. } => {
            error.code.as_deref().unwrap_or("remote_error")
        }
        RpcError::Timeout { .. } => "timeout",
        RpcError::UnknownService { .. } => "unknown_service",
        RpcError::UnknownMethod { .. } => "unknown_method",
        RpcError::ConnectionLost { .. } => "connection_lost",
        RpcError::InvalidReply { .. } => "invalid_reply",
        _ => "error",
    }
}

/// Removes a pending call when the call ends, however it ends (reply, timeout, cancellation).
struct PendingGuard<'a> {
    inner: &'a Inner,
    correlation_id: u128,
}

impl<'a> PendingGuard<'a> {
    fn new(inner: &'a Inner, correlation_id: u128, pending: Pending) -> Self {
        lock(&inner.pending).insert(correlation_id, pending);
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

/// Starts the direct reply-to consumer on every new connection; fails pending calls of a lost one.
pub(super) struct ReplyHook {
    pub(super) inner: Weak<Inner>,
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
                    // Our ids are v4 UUIDs; anything else is nobody's reply.
                    let pending = uuid::Uuid::try_parse(cid.as_str())
                        .ok()
                        .and_then(|id| lock(&inner.pending).remove(&id.as_u128()));
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
            let keys: Vec<u128> = map
                .iter()
                .filter(|(_, p)| p.generation <= generation)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        for p in lost {
            let _ = p.tx.send(ReplyMsg::ConnectionLost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_writes_what_display_writes() {
        for n in [0, 1, 9, 10, 99, 100, 30_000, 4_294_967_296, u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }
}
