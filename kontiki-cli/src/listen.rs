//! `kontiki listen PATTERN`: a tap on `event_exchange`.
//!
//! An exclusive, auto-delete, server-named queue bound with the pattern; deliveries are taken
//! without acks (the queue is the tap's own, nothing is lost for the services). kontiki-rt's
//! Messenger has no consumer of its own, so this speaks lapin directly.

use crate::cli::ListenArgs;
use crate::conn::Broker;
use crate::exit::{Exit, Failure};
use crate::out;
use chrono::{SecondsFormat, Utc};
use futures_util::StreamExt as _;
use kontiki_rt::wire::{self, EVENT_EXCHANGE};
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ExchangeKind};
use serde_json::{Map, Value};

/// The headers a line shows by name; every other one is an extra, shown as a JSON object.
const SHOWN: [&str; 10] = [
    "event_type",
    "service_name",
    "instance_id",
    "host",
    "timestamp",
    "flow_id",
    "hop_id",
    "parent_hop_id",
    "entrypoint",
    "operation",
];

fn amqp_failure(what: &str, e: lapin::Error) -> Failure {
    Failure::new(
        Exit::Connection,
        "CONNECTION_FAILED",
        format_args!("{what}: {e}"),
    )
}

/// What is suspicious about a topic pattern: a `*` or `#` inside a word matches only itself,
/// because AMQP topic wildcards stand for whole dot-separated words (`thing_*` never matches
/// `thing_happened`; `thing.*` matches `thing.happened`).
pub(crate) fn pattern_warnings(pattern: &str) -> Vec<String> {
    pattern
        .split('.')
        .filter(|word| word.len() > 1 && (word.contains('*') || word.contains('#')))
        .map(|word| {
            format!(
                "`{word}` in `{pattern}` matches only the literal word `{word}`: `*` and `#` \
                 are wildcards only as a whole dot-separated word (`orders.*`, `#`)"
            )
        })
        .collect()
}

/// Connects to the first broker of `--amqp-url` (a comma-separated list for a cluster) that
/// answers, with the TLS options; the error names the last one tried.
async fn connect_first(broker: &Broker) -> Result<Connection, Failure> {
    kontiki_rt::connect_lapin(
        &broker.url,
        "kontiki listen",
        &broker.tls,
        broker.connect_timeout,
    )
    .await
    .map_err(|e| Failure::from_error(&e))
}

/// Taps until `--count` events were printed, the reader closed stdout, or Ctrl-C.
pub(crate) async fn listen(broker: &Broker, args: ListenArgs) -> Result<(), Failure> {
    let pattern = ShortString::try_new(args.pattern.as_str())
        .map_err(|_| Failure::usage("a topic pattern may have at most 255 bytes"))?;
    for warning in pattern_warnings(&args.pattern) {
        eprintln!("warning: {warning}");
    }
    let conn = connect_first(broker).await?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| amqp_failure("open a channel", e))?;
    // Kontiki's flags (topic, not durable): whoever declares it first, the others agree.
    ch.exchange_declare(
        EVENT_EXCHANGE.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| amqp_failure("declare event_exchange", e))?;
    let queue = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_failure("declare the tap queue", e))?;
    let name = queue.name().clone();
    ch.queue_bind(
        name.clone(),
        EVENT_EXCHANGE.into(),
        pattern,
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|e| amqp_failure(&format!("bind the tap queue with {}", args.pattern), e))?;
    let mut consumer = ch
        .basic_consume(
            name,
            "kontiki-listen".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_failure("consume the tap queue", e))?;
    eprintln!("listening on {}", args.pattern);

    let mut seen = 0u64;
    let outcome = loop {
        if args.count.is_some_and(|n| seen >= n) {
            break Ok(());
        }
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let delivery = match delivery {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                break Err(Failure::new(
                    Exit::Connection,
                    "CONNECTION_LOST",
                    format_args!("the tap stopped: {e}"),
                ));
            }
            None => {
                break Err(Failure::new(
                    Exit::Connection,
                    "CONNECTION_LOST",
                    "the broker closed the tap",
                ));
            }
        };
        let event = Event {
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            exchange: delivery.exchange.as_str().to_owned(),
            routing_key: delivery.routing_key.as_str().to_owned(),
            headers: delivery
                .properties
                .headers()
                .as_ref()
                .map(wire::table_to_json)
                .unwrap_or_default(),
            body: delivery.data,
        };
        let text = if args.json {
            event.to_json().to_string()
        } else {
            event.to_line()
        };
        if out::line(&text).is_err() {
            break Ok(());
        }
        seen += 1;
    };
    let _ = conn.close(200, "tap done".into()).await;
    outcome
}

/// One tapped message.
#[derive(Debug)]
struct Event {
    /// When the tap received it (UTC).
    time: String,
    exchange: String,
    routing_key: String,
    headers: Map<String, Value>,
    body: Vec<u8>,
}

impl Event {
    /// The body as JSON; a body that is not JSON in Kontiki's bytes form.
    fn payload(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| wire::bytes_to_json(&self.body))
    }

    fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// `--json`: every header, the payload as JSON.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("time".into(), Value::from(self.time.as_str()));
        m.insert("exchange".into(), Value::from(self.exchange.as_str()));
        m.insert("routing_key".into(), Value::from(self.routing_key.as_str()));
        m.insert(
            "event_type".into(),
            Value::from(self.header("event_type").unwrap_or(&self.routing_key)),
        );
        m.insert("headers".into(), Value::Object(self.headers.clone()));
        m.insert("payload".into(), self.payload());
        Value::Object(m)
    }

    /// `TIME EVENT from=SERVICE[INSTANCE] flow=.. hop=.. parent=.. via=ENTRYPOINT:OPERATION
    /// [session=..] [headers={extras}] PAYLOAD`.
    fn to_line(&self) -> String {
        let mut parts = vec![self.time.clone(), self.routing_key.clone()];
        if let Some(svc) = self.header("service_name") {
            let iid: String = self
                .header("instance_id")
                .unwrap_or_default()
                .chars()
                .filter(|c| *c != '-')
                .take(12)
                .collect();
            parts.push(if iid.is_empty() {
                format!("from={svc}")
            } else {
                format!("from={svc}[{iid}]")
            });
        }
        for (key, label) in [
            ("flow_id", "flow"),
            ("hop_id", "hop"),
            ("parent_hop_id", "parent"),
        ] {
            if let Some(v) = self.header(key) {
                parts.push(format!("{label}={v}"));
            }
        }
        match (self.header("entrypoint"), self.header("operation")) {
            (Some(e), Some(o)) => parts.push(format!("via={e}:{o}")),
            (Some(e), None) => parts.push(format!("via={e}")),
            _ => {}
        }
        if let Some(sid) = self.header("session_id") {
            parts.push(format!("session={sid}"));
        }
        let extras: Map<String, Value> = self
            .headers
            .iter()
            .filter(|(k, v)| {
                !SHOWN.contains(&k.as_str())
                    && k.as_str() != "session_id"
                    && !(k.as_str() == "reply_to" && v.is_null())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !extras.is_empty() {
            parts.push(format!("headers={}", Value::Object(extras)));
        }
        parts.push(self.payload().to_string());
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_wildcard_inside_a_word_is_warned_about() {
        assert_eq!(pattern_warnings("thing_*").len(), 1);
        assert_eq!(pattern_warnings("a.b#.c*").len(), 2);
        assert!(pattern_warnings("thing_*")[0].contains("`thing_*`"));
    }

    #[test]
    fn whole_word_wildcards_are_not_warned_about() {
        for ok in [
            "#",
            "*",
            "orders.*",
            "registry.#",
            "*.created.#",
            "thing_happened",
        ] {
            assert!(pattern_warnings(ok).is_empty(), "{ok}");
        }
    }

    fn event(headers: Value, body: &[u8]) -> Event {
        Event {
            time: "2026-11-29T14:00:00.000Z".into(),
            exchange: "event_exchange".into(),
            routing_key: "proto.chained".into(),
            headers: headers.as_object().cloned().unwrap_or_default(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_line_shows_kontiki_headers_by_name_and_extras_as_json() {
        let e = event(
            json!({
                "event_type": "proto.chained", "service_name": "proto-svc",
                "instance_id": "77470e96-622e-4558-9a24-1bb47dc1f0f9", "host": "vm",
                "timestamp": "2026-11-29T04:20:31.822797+00:00", "reply_to": null,
                "flow_id": "chainflow001", "hop_id": "b09ba3bba4f0b55e",
                "parent_hop_id": "d2347f5cebce24ad", "entrypoint": "rpc", "operation": "chain",
                "tenant": "t1", "n": 5
            }),
            br#"{"from": "chain"}"#,
        );
        assert_eq!(
            e.to_line(),
            "2026-11-29T14:00:00.000Z proto.chained from=proto-svc[77470e96622e] flow=chainflow001 \
             hop=b09ba3bba4f0b55e parent=d2347f5cebce24ad via=rpc:chain headers={\"n\":5,\"tenant\":\"t1\"} \
             {\"from\":\"chain\"}"
        );
    }

    #[test]
    fn a_message_without_headers_or_json_still_prints() {
        let e = event(json!({}), b"\xffnot json");
        assert_eq!(
            e.to_line(),
            "2026-11-29T14:00:00.000Z proto.chained {\"__bytes__\":true,\"data\":\"/25vdCBqc29u\"}"
        );
        let j = e.to_json();
        assert_eq!(j["event_type"], json!("proto.chained"));
        assert_eq!(j["payload"]["__bytes__"], json!(true));
    }
}
