//! Publishing events: persistent, confirmed by the broker, mandatory where asked, and held
//! back (not lost) while the connection recovers.

use super::headers::{add_flow, check_reserved, insert_extras, resolve_flow_id, routing_key_short};
use super::{Messenger, PublishOptions};
use crate::error::{Error, Result};
use crate::transport::flow;
use crate::transport::wire::{self};
use lapin::BasicProperties;
use lapin::Confirmation;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use std::time::Duration;

impl Messenger {
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
        let span = self
            .telemetry()
            .map(|t| t.producer(event_type, routing_key));
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
            if let Some(span) = &span {
                span.inject(&mut headers);
            }
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers)
        };
        let published = self
            .publish_confirmed(
                wire::EVENT_EXCHANGE,
                routing_key,
                &body,
                build,
                options.mandatory,
                true,
            )
            .await;
        let outcome = match &published {
            Ok(()) => "confirmed",
            Err(Error::Unroutable { .. }) => "unroutable",
            Err(_) => "failed",
        };
        if let Some(span) = span {
            if let Err(e) = &published {
                span.fail(outcome, &e.to_string());
            }
            span.end();
        }
        if self.metrics_on() {
            self.inner.metric_handles.published(
                &self.inner.identity.service_name,
                event_type,
                outcome,
            );
        }
        published?;
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
    /// reconnection, or when this process saw the routing key delivered before
    /// (`kontiki.amqp.events.fail_when_subscribers_gone`): subscribers may not have bound their
    /// queues again yet, so it is published again until they have, bounded by the same wait,
    /// and is then an error (at once for the next publishes, until it is delivered again).
    pub(crate) async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: impl Fn() -> BasicProperties + Sync,
        mandatory: bool,
        retry_unroutable: bool,
    ) -> Result<()> {
        self.check_size(exchange, routing_key, body.len())?;
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
            // The confirm comes on this link: a move to another broker waits for it.
            let _work = link.work.token();
            // Bounded: a connection blocked by a resource alarm takes the publish but never
            // confirms it until the alarm clears.
            let confirmed = tokio::time::timeout_at(deadline, async {
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
                match sent {
                    Ok(confirm) => confirm.await,
                    Err(e) => Err(e),
                }
            })
            .await;
            let Ok(confirmation) = confirmed else {
                tracing::warn!(
                    exchange,
                    routing_key,
                    blocked = link.conn.status().blocked(),
                    "publish not confirmed within the wait"
                );
                return Err(Error::PublishTimeout {
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                    waited: wait,
                });
            };
            match confirmation {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {
                    if retry_unroutable {
                        self.set_routed_state(routing_key, false);
                    }
                    return Ok(());
                }
                Ok(Confirmation::Ack(Some(_))) => {
                    let unroutable = || Error::Unroutable {
                        exchange: exchange.to_owned(),
                        routing_key: routing_key.to_owned(),
                    };
                    if mandatory {
                        return Err(unroutable());
                    }
                    // Subscribers this process saw before have lost their bindings (a broker
                    // restart while they are down drops them: the exchange is not durable).
                    let seen = if retry_unroutable {
                        self.routed_state(routing_key)
                    } else {
                        None
                    };
                    if seen == Some(true) {
                        // Still gone since the last publish waited in vain: fail at once.
                        return Err(unroutable());
                    }
                    let recovering = retry_unroutable && link.recovering(RECOVERY_WINDOW);
                    if seen.is_none() && !recovering {
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
                            "still unroutable after the wait: its subscribers have not bound their queues again"
                        );
                        if seen.is_some() {
                            self.set_routed_state(routing_key, true);
                        }
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
}

/// How long after a reconnection an unroutable event is taken for subscribers that have not
/// bound their queues again yet (their exchange is not durable, so a broker restart drops the
/// bindings until each consumer declares them again).
pub(super) const RECOVERY_WINDOW: Duration = Duration::from_secs(30);
