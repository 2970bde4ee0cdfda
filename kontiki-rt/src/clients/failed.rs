//! Failed messages: what a competing handler could not handle within `max_attempts`
//! deliveries, dead-lettered into `{service}.{event}.failed`. List, replay and drop them; the
//! registry and the `kontiki` CLI use these.

use crate::clients::messenger::Messenger;
use crate::error::{Error, Result};
use crate::transport::wire;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use serde_json::{Map, Value};

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FailedMessage {
    /// The body as JSON; a body that is not JSON comes as Kontiki's bytes form
    /// `{"__bytes__": true, "data": <base64>}` (so one bad message never breaks a listing).
    pub body: Value,
    /// Whether the body was JSON.
    pub is_json: bool,
    /// The headers, including the broker's `x-death` history.
    pub headers: Map<String, Value>,
}

/// A page of a failed queue.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FailedMessages {
    /// Messages ready in the failed queue.
    pub count: u32,
    /// Up to `limit` of them, oldest first.
    pub messages: Vec<FailedMessage>,
}

/// Headers the broker adds when dead-lettering; a replayed message starts afresh without them.
const DEATH_HEADERS: [&str; 8] = [
    "x-death",
    "x-delivery-count",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

impl Messenger {
    /// Lists up to `limit` messages of `{service}.{event}.failed`, oldest first, leaving them
    /// in the queue. AMQP has no peek: each listed message is taken and returned
    /// (`basic.get` + `nack(requeue)`), as Kontiki's registry does.
    pub async fn list_failed(
        &self,
        service: &str,
        event: &str,
        limit: u32,
    ) -> Result<FailedMessages> {
        let queue = wire::failed_queue(service, event);
        let ch = self.ops_channel().await?;
        let count = passive_count(&ch, &queue).await?;
        let mut messages = Vec::new();
        let mut last_tag = None;
        for _ in 0..limit {
            let Some(msg) = ch
                .basic_get(short(&queue)?, BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp(&queue, "get"))?
            else {
                break;
            };
            last_tag = Some(msg.delivery.delivery_tag);
            let headers = msg
                .delivery
                .properties
                .headers()
                .as_ref()
                .map(wire::table_to_json)
                .unwrap_or_default();
            let (body, is_json) = match serde_json::from_slice::<Value>(&msg.delivery.data) {
                Ok(v) => (v, true),
                Err(_) => (wire::bytes_to_json(&msg.delivery.data), false),
            };
            messages.push(FailedMessage {
                body,
                is_json,
                headers,
            });
        }
        if let Some(tag) = last_tag {
            ch.basic_nack(
                tag,
                BasicNackOptions {
                    multiple: true,
                    requeue: true,
                },
            )
            .await
            .map_err(amqp(&queue, "return listed messages"))?;
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(FailedMessages { count, messages })
    }

    /// Moves up to `count` failed messages back to the queue they failed in,
    /// `{service}.{event}.queue` only (not to every subscriber of the event, unlike Kontiki's
    /// registry), with their original headers and properties. Returns how many were replayed.
    /// Each copy is confirmed by the broker before the original is removed.
    pub async fn replay_failed(&self, service: &str, event: &str, count: u32) -> Result<u32> {
        let queue = wire::failed_queue(service, event);
        let target = wire::competing_queue(service, event);
        let ch = self.ops_channel().await?;
        passive_count(&ch, &target).await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp(&queue, "enable confirms"))?;
        let mut replayed = 0;
        while replayed < count {
            let Some(msg) = ch
                .basic_get(short(&queue)?, BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp(&queue, "get"))?
            else {
                break;
            };
            let d = &msg.delivery;
            let mut props: BasicProperties = d.properties.clone();
            if let Some(h) = d.properties.headers() {
                let mut kept = FieldTable::default();
                for (k, v) in h.inner() {
                    if !DEATH_HEADERS.contains(&k.as_str()) {
                        kept.insert(k.clone(), v.clone());
                    }
                }
                props = props.with_headers(kept);
            }
            let confirm = ch
                .basic_publish(
                    "".into(),
                    short(&target)?,
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &d.data,
                    props,
                )
                .await
                .map_err(amqp(&target, "publish replay"))?
                .await
                .map_err(amqp(&target, "confirm replay"))?;
            if !matches!(confirm, Confirmation::Ack(None)) {
                return Err(Error::Nacked {
                    exchange: String::new(),
                    routing_key: target,
                });
            }
            ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
                .await
                .map_err(amqp(&queue, "ack replayed"))?;
            replayed += 1;
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(replayed)
    }

    /// Removes up to `count` failed messages for good. Returns how many were dropped.
    pub async fn drop_failed(&self, service: &str, event: &str, count: u32) -> Result<u32> {
        let queue = wire::failed_queue(service, event);
        let ch = self.ops_channel().await?;
        passive_count(&ch, &queue).await?;
        let mut dropped = 0;
        while dropped < count {
            let Some(msg) = ch
                .basic_get(short(&queue)?, BasicGetOptions { no_ack: false })
                .await
                .map_err(amqp(&queue, "get"))?
            else {
                break;
            };
            ch.basic_ack(msg.delivery.delivery_tag, BasicAckOptions::default())
                .await
                .map_err(amqp(&queue, "ack dropped"))?;
            dropped += 1;
        }
        let _ = ch.close(200, "done".into()).await;
        Ok(dropped)
    }

    /// Binds each `(queue, routing key)` of `bindings` to `exchange` where the queue exists,
    /// and says for each whether it did (`false`: no such queue, nothing declared). One
    /// channel serves them all, opened again after a missing queue closed it.
    ///
    /// A broker restart drops the bindings of durable queues to Kontiki's non-durable
    /// `event_exchange` until their consumer declares them again; the registry restores those
    /// of the competing queues it knows with this, so events published while a consumer is
    /// down still reach its queue.
    pub async fn bind_existing_queues(
        &self,
        exchange: &str,
        bindings: &[(String, String)],
    ) -> Result<Vec<bool>> {
        let exchange_name = short(exchange)?;
        let mut bound = Vec::with_capacity(bindings.len());
        let mut channel: Option<Channel> = None;
        for (queue, routing_key) in bindings {
            let ch = match &channel {
                Some(ch) => ch.clone(),
                None => channel.insert(self.ops_channel().await?).clone(),
            };
            if let Err(e) = passive_count(&ch, queue).await {
                if !e.to_string().contains("NOT_FOUND") {
                    return Err(e);
                }
                // The broker closed the channel with the 404.
                channel = None;
                bound.push(false);
                continue;
            }
            ch.queue_bind(
                short(queue)?,
                exchange_name.clone(),
                short(routing_key)?,
                lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp(queue, "bind"))?;
            bound.push(true);
        }
        if let Some(ch) = channel {
            let _ = ch.close(200, "done".into()).await;
        }
        Ok(bound)
    }

    /// A channel of its own for an operation that may fail with a channel error (a missing
    /// queue closes the channel).
    async fn ops_channel(&self) -> Result<Channel> {
        self.side_channel().await
    }
}

async fn passive_count(ch: &Channel, queue: &str) -> Result<u32> {
    let q = ch
        .queue_declare(
            short(queue)?,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp(queue, "find queue (passive declare)"))?;
    Ok(q.message_count())
}

fn short(name: &str) -> Result<ShortString> {
    ShortString::try_new(name).map_err(|_| Error::InvalidName {
        name: name.to_owned(),
        reason: "AMQP names may have at most 255 bytes".to_owned(),
    })
}

fn amqp<'a>(queue: &'a str, what: &'a str) -> impl FnOnce(lapin::Error) -> Error + 'a {
    move |source| Error::Amqp {
        operation: format!("{what} on {queue}"),
        source,
    }
}
