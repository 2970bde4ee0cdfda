//! AsyncAPI 3.0 documents, one per service: what the service consumes and publishes over AMQP,
//! with the exchanges, routing keys, queues and queue arguments Kontiki 2.3.2 (and kontiki-rt)
//! declare for it.
//!
//! The document describes the service itself: its `receive` operations are its RPCs (each with
//! a reply) and its event handlers, its `send` operations the events it `emits`. Channels come
//! in two kinds, following the AMQP binding 0.3.0: routing keys on an exchange (`is:
//! routingKey`), where publishers send, and the queues the service consumes (`is: queue`). The
//! binding has no field for queue arguments or for the exchange a queue is bound to, so a queue
//! channel carries them as `x-kontiki-queue-arguments` and `x-kontiki-bindings`. Names that
//! depend on the running instance use the channel parameter `instanceId`; queues of handlers
//! whose event types come from configuration use `eventType`.
//!
//! Payload schemas come from [`crate::schema`], the code that builds the OpenAPI documents'
//! schemas: declared types are components with the same names in both.

use std::collections::BTreeSet;

use kontiki_idl::model::{self as idl, EventMode, EventSource, Model, NamedType, Package, TypeRef};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::schema::Cx;

/// The topic exchange of events (`event_exchange`, non-durable).
const EVENT_EXCHANGE: &str = "event_exchange";
/// The topic exchange of RPC requests (`rpc_exchange`, non-durable).
const RPC_EXCHANGE: &str = "rpc_exchange";
/// The direct, durable exchange competing event queues dead-letter into.
const FAILED_EXCHANGE: &str = "kontiki.failed";
/// The internal RPC every Kontiki service answers to open a session.
const SESSION_OPEN: &str = "___kontiki__internal_session_open__";
/// The version of the AMQP bindings used.
const AMQP_BINDING: &str = "0.3.0";
/// The component schema of the headers of an event.
const EVENT_HEADERS: &str = "kontiki-event-headers";
/// The component schema of the headers of an RPC request.
const RPC_HEADERS: &str = "kontiki-rpc-headers";
/// Version used when the service declares none (as the generated Rust and Kontiki's runner).
const DEFAULT_VERSION: &str = "1.0.0";

/// One generated document.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// `asyncapi/<wire name>.<version>.json`.
    pub(crate) file: String,
    /// Pretty JSON with a final newline.
    pub(crate) json: String,
}

/// The AsyncAPI document of `service`.
pub(crate) fn document(model: &Model, pkg: &Package, service: &idl::Service) -> Result<Document> {
    let version = service.version.as_deref().unwrap_or(DEFAULT_VERSION);
    let file = format!("asyncapi/{}.{version}.json", service.wire_name);
    let doc = Builder::new(model, pkg, service).build(version);
    let json = serde_json::to_string_pretty(&doc).map_err(|source| Error::AsyncApi {
        file: file.clone(),
        source,
    })?;
    Ok(Document {
        file,
        json: format!("{json}\n"),
    })
}

/// A name usable as a channel, operation, message or component key (`[A-Za-z0-9._-]`).
fn key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A JSON pointer to a channel's message.
fn channel_message(channel: &str, message: &str) -> Value {
    json!({ "$ref": format!("#/channels/{channel}/messages/{message}") })
}

fn channel_ref(channel: &str) -> Value {
    json!({ "$ref": format!("#/channels/{channel}") })
}

fn message_ref(message: &str) -> Value {
    json!({ "$ref": format!("#/components/messages/{message}") })
}

fn docs_text(docs: &kontiki_idl::ast::Docs) -> Option<String> {
    (!docs.is_empty()).then(|| docs.lines().join("\n"))
}

/// The AMQP binding of a routing-key channel on a Kontiki exchange.
fn exchange_binding(name: &str, kind: &str, durable: bool) -> Value {
    json!({
        "amqp": {
            "is": "routingKey",
            "exchange": { "name": name, "type": kind, "durable": durable, "autoDelete": false },
            "bindingVersion": AMQP_BINDING,
        }
    })
}

/// How a queue is declared.
#[derive(Clone, Copy)]
enum QueueKind {
    /// Classic, durable, shared by the replicas (RPC).
    SharedClassic,
    /// Quorum, durable, shared (competing events and their failed queues).
    Quorum,
    /// Classic, non-durable, exclusive, auto-delete: one instance's own.
    Instance,
}

/// The AMQP binding of a queue channel, with the queue's arguments and its bindings.
fn queue_binding(
    name: &str,
    kind: QueueKind,
    args: Option<Value>,
    bound: &[(&str, String)],
) -> Value {
    let (durable, exclusive) = match kind {
        QueueKind::SharedClassic | QueueKind::Quorum => (true, false),
        QueueKind::Instance => (false, true),
    };
    let mut amqp = json!({
        "is": "queue",
        "queue": { "name": name, "durable": durable, "exclusive": exclusive, "autoDelete": exclusive },
        "bindingVersion": AMQP_BINDING,
        "x-kontiki-bindings": bound
            .iter()
            .map(|(exchange, routing_key)| json!({ "exchange": exchange, "routingKey": routing_key }))
            .collect::<Vec<_>>(),
    });
    if let Some(args) = args {
        amqp["x-kontiki-queue-arguments"] = args;
    }
    json!({ "amqp": amqp })
}

/// The arguments of a competing event queue, as kontiki-rt and Kontiki 2.3.2 declare them.
fn competing_args(service: &str, event: &str, max_attempts: u32) -> Value {
    json!({
        "x-queue-type": "quorum",
        "x-delivery-limit": i64::from(max_attempts) - 1,
        "x-delayed-retry-type": "failed",
        "x-delayed-retry-min": 1000,
        "x-delayed-retry-max": 30000,
        "x-dead-letter-exchange": FAILED_EXCHANGE,
        "x-dead-letter-routing-key": format!("{service}.{event}.failed"),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    })
}

/// The arguments of a failed-message queue.
fn failed_args() -> Value {
    json!({ "x-queue-type": "quorum", "x-max-length": 10000, "x-overflow": "reject-publish" })
}

fn instance_param() -> Value {
    json!({ "description": "The instance id of the consuming replica (a uuid made at start)." })
}

fn string_schema(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// The headers Kontiki writes on every event or RPC request, by name, with the required ones.
fn reserved_headers(event: bool) -> (Map<String, Value>, Vec<&'static str>) {
    let mut p = Map::new();
    let mut put = |name: &str, schema: Value| {
        p.insert(name.to_owned(), schema);
    };
    put(
        "service_name",
        string_schema(
            "The sender's service name (`kontiki-standalone-<client>` for a standalone Messenger).",
        ),
    );
    put("instance_id", string_schema("The sender's instance id."));
    put("host", string_schema("The sender's host name."));
    put(
        "timestamp",
        json!({ "type": "string", "format": "date-time", "description": "When it was sent (UTC, ISO 8601)." }),
    );
    put(
        "flow_id",
        string_schema("The flow the message belongs to (12 hex characters, or a caller's string)."),
    );
    put(
        "hop_id",
        string_schema("A new id for each message sent (16 hex characters)."),
    );
    put(
        "parent_hop_id",
        string_schema(
            "The `hop_id` of the message whose handler sent this one (sent from a handler only).",
        ),
    );
    put(
        "entrypoint",
        json!({
            "type": "string",
            "enum": ["rpc", "event", "http", "task"],
            "description": "The kind of handler that sent it (sent from a handler only).",
        }),
    );
    put(
        "operation",
        string_schema(
            "The handler that sent it: RPC method, event type, `METHOD /path` or task (sent from a handler only).",
        ),
    );
    let mut required = vec![
        "service_name",
        "instance_id",
        "host",
        "timestamp",
        "flow_id",
        "hop_id",
    ];
    if event {
        put(
            "event_type",
            string_schema(
                "The routing key used (for a session event, with the `.{instanceId}` suffix).",
            ),
        );
        put(
            "reply_to",
            json!({ "type": ["string", "null"], "description": "Always present; void unless the publisher gave one." }),
        );
        put(
            "session_id",
            string_schema("The session (session events only)."),
        );
        required.extend(["event_type", "reply_to"]);
    } else {
        put("remote_method", string_schema("The RPC method called."));
        put("rpc_service", string_schema("The service called."));
        required.extend(["remote_method", "rpc_service"]);
    }
    (p, required)
}

struct Builder<'a> {
    cx: Cx<'a>,
    model: &'a Model,
    service: &'a idl::Service,
    used: BTreeSet<(String, String)>,
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    messages: Map<String, Value>,
}

impl<'a> Builder<'a> {
    fn new(model: &'a Model, pkg: &'a Package, service: &'a idl::Service) -> Self {
        Builder {
            cx: Cx { model, pkg },
            model,
            service,
            used: BTreeSet::new(),
            channels: Map::new(),
            operations: Map::new(),
            messages: Map::new(),
        }
    }

    fn svc(&self) -> &'a str {
        &self.service.wire_name
    }

    /// The JSON Schema of `ty`, remembering the declared types it reaches.
    fn schema(&mut self, ty: &TypeRef, docs: &kontiki_idl::ast::Docs) -> Value {
        self.cx.collect(ty, &mut self.used);
        serde_json::to_value(self.cx.annotated(ty, docs, None)).unwrap_or(Value::Null)
    }

    fn build(mut self, version: &str) -> Value {
        // Events the service publishes or handles, with their routing-key channels.
        for e in &self.service.emits {
            self.event_message(e);
            let channel = self.event_channel(e);
            let id = format!("publish.{}", key(&e.name));
            self.operations.insert(
                id,
                json!({
                    "action": "send",
                    "channel": channel_ref(&channel),
                    "messages": [channel_message(&channel, &key(&e.name))],
                    "summary": format!("Publishes `{}`.", e.name),
                    "description": format!(
                        "Published on `{EVENT_EXCHANGE}` with routing key `{}`, persistent (delivery mode 2); a session publish uses `{}.{{instanceId}}` and a `session_id` header.",
                        e.name, e.name
                    ),
                    "bindings": { "amqp": { "deliveryMode": 2, "bindingVersion": AMQP_BINDING } },
                }),
            );
        }
        let handlers = self.service.handlers.clone();
        for h in &handlers {
            self.handler(h);
        }
        // RPCs, then the internal session-open RPC every Kontiki service answers.
        let rpcs = self.service.rpcs.clone();
        for r in &rpcs {
            self.rpc(r);
        }
        self.session_open();
        self.reply_channel(&rpcs);

        let mut schemas = Map::new();
        for (package, name) in self.used.clone() {
            let named = NamedType {
                package: package.clone(),
                name: name.clone(),
                kind: idl::NamedKind::Struct,
            };
            if let Some(def) = self.model.type_def(&named) {
                schemas.insert(
                    self.cx.component_name(&package, &name),
                    serde_json::to_value(self.cx.type_def_schema(def)).unwrap_or(Value::Null),
                );
            }
        }
        for (name, event) in [(EVENT_HEADERS, true), (RPC_HEADERS, false)] {
            schemas.insert(name.to_owned(), self.headers_schema(event));
        }

        let mut description = docs_text(&self.service.docs).unwrap_or_default();
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!(
            "The AMQP contract of `{}` on the Kontiki 2.3.2 wire protocol: its RPCs (requests on `{RPC_EXCHANGE}`, replies through the default exchange to the caller's `reply_to`), the events it handles and publishes (on `{EVENT_EXCHANGE}`), and the queues it declares. Bodies are JSON (UTF-8, no content type set). HTTP routes are in the OpenAPI documents.",
            self.svc()
        ));
        json!({
            "asyncapi": "3.0.0",
            "info": {
                "title": self.svc(),
                "version": version,
                "description": description,
                "x-kontiki-version": "2.3.2",
            },
            "defaultContentType": "application/json",
            "servers": {
                "rabbitmq": {
                    "host": "{host}:{port}",
                    "protocol": "amqp",
                    "protocolVersion": "0.9.1",
                    "description": "The RabbitMQ broker of `kontiki.amqp.url`.",
                    "variables": {
                        "host": { "default": "localhost" },
                        "port": { "default": "5672" },
                    },
                }
            },
            "channels": self.channels,
            "operations": self.operations,
            "components": { "schemas": schemas, "messages": self.messages },
        })
    }

    /// The headers of an event or an RPC request: Kontiki's own, then the declared ones.
    fn headers_schema(&mut self, event: bool) -> Value {
        let (mut properties, required) = reserved_headers(event);
        for h in &self.service.headers.clone() {
            let mut schema = self.schema(&h.ty, &h.docs);
            if h.docs.is_empty()
                && let Value::Object(o) = &mut schema
            {
                o.entry("description").or_insert_with(|| {
                    json!(format!("A header declared by `{}`.", self.service.name))
                });
            }
            properties.insert(h.name.clone(), schema);
        }
        json!({
            "type": "object",
            "description": if event {
                "Headers of an event (AMQP string values; declared headers keep their JSON types)."
            } else {
                "Headers of an RPC request (AMQP string values; declared headers keep their JSON types)."
            },
            "properties": properties,
            "required": required,
        })
    }

    /// The event's docs, from the package that declares it.
    fn event_docs(&self, package: &str, name: &str) -> Option<String> {
        self.model
            .packages
            .iter()
            .find(|p| p.name == package)
            .and_then(|p| p.events.iter().find(|e| e.name == name))
            .and_then(|e| docs_text(&e.docs))
    }

    /// Adds the message of a declared event (once); returns its component key.
    fn event_message(&mut self, e: &idl::EventRef) -> String {
        let id = format!("event.{}", key(&e.name));
        if !self.messages.contains_key(&id) {
            let payload = self.schema(&e.payload, &kontiki_idl::ast::Docs::default());
            let mut m = json!({
                "name": e.name,
                "title": e.name,
                "summary": format!("The `{}` event.", e.name),
                "contentType": "application/json",
                "headers": { "$ref": format!("#/components/schemas/{EVENT_HEADERS}") },
                "payload": payload,
            });
            if let Some(d) = self.event_docs(&e.package, &e.name) {
                m["description"] = json!(d);
            }
            self.messages.insert(id.clone(), m);
        }
        id
    }

    /// The routing-key channel of an event on `event_exchange`; returns its key.
    fn event_channel(&mut self, e: &idl::EventRef) -> String {
        let id = format!("events.{}", key(&e.name));
        if !self.channels.contains_key(&id) {
            let msg = self.event_message(e);
            self.channels.insert(
                id.clone(),
                json!({
                    "address": e.name,
                    "title": format!("{} (routing key)", e.name),
                    "description": format!("Events `{}` on `{EVENT_EXCHANGE}` (topic, non-durable).", e.name),
                    "messages": { key(&e.name): message_ref(&msg) },
                    "bindings": exchange_binding(EVENT_EXCHANGE, "topic", false),
                }),
            );
        }
        id
    }

    /// The routing-key channel of session events (`{event}.{instanceId}`).
    fn session_channel(&mut self, e: &idl::EventRef) -> String {
        let id = format!("events.{}.session", key(&e.name));
        if !self.channels.contains_key(&id) {
            let msg = self.event_message(e);
            self.channels.insert(
                id.clone(),
                json!({
                    "address": format!("{}.{{instanceId}}", e.name),
                    "title": format!("{} (session routing key)", e.name),
                    "description": format!(
                        "Session events `{}`, sent to the replica that opened the session (`{SESSION_OPEN}` returned its instance id), with a `session_id` header.",
                        e.name
                    ),
                    "parameters": { "instanceId": instance_param() },
                    "messages": { key(&e.name): message_ref(&msg) },
                    "bindings": exchange_binding(EVENT_EXCHANGE, "topic", false),
                }),
            );
        }
        id
    }

    /// The queue channels and receive operations of one event handler.
    fn handler(&mut self, h: &idl::EventHandler) {
        let svc = self.svc().to_owned();
        // (event type as queue names use it, channel message key, message component, channel
        // id stem)
        let targets: Vec<(String, String, String, String)> = match &h.source {
            EventSource::Events(events) => events
                .iter()
                .map(|e| {
                    let msg = self.event_message(e);
                    match h.mode {
                        EventMode::InSession => {
                            self.session_channel(e);
                        }
                        EventMode::Competing | EventMode::Broadcast => {
                            self.event_channel(e);
                        }
                    }
                    (e.name.clone(), key(&e.name), msg, key(&e.name))
                })
                .collect(),
            EventSource::Config(config_key) => {
                let msg = format!("event.config.{}", key(config_key));
                if !self.messages.contains_key(&msg) {
                    self.messages.insert(
                        msg.clone(),
                        json!({
                            "name": format!("config:{config_key}"),
                            "title": format!("Events of config key {config_key}"),
                            "summary": format!("An event whose type is read from config key `{config_key}`."),
                            "contentType": "application/json",
                            "headers": { "$ref": format!("#/components/schemas/{EVENT_HEADERS}") },
                            "payload": {},
                        }),
                    );
                }
                vec![(
                    "{eventType}".to_owned(),
                    "event".to_owned(),
                    msg,
                    format!("config.{}", key(config_key)),
                )]
            }
        };
        let from_config = matches!(h.source, EventSource::Config(_));
        for (event, msg_key, msg, stem) in targets {
            let mut params = Map::new();
            if from_config {
                params.insert(
                    "eventType".to_owned(),
                    json!({ "description": "Each event type the handler's config key holds (one queue and binding each)." }),
                );
            }
            let (channel, mode, mode_text) = match h.mode {
                EventMode::Competing => {
                    let queue = format!("{svc}.{event}.queue");
                    let failed = format!("{svc}.{event}.failed");
                    let channel = format!("queues.{stem}");
                    let failed_channel = format!("queues.{stem}.failed");
                    self.channels.insert(
                        channel.clone(),
                        json!({
                            "address": queue,
                            "title": queue,
                            "description": format!(
                                "The competing queue of `{event}`: replicas share it; a message is delivered up to {} times, then dead-lettered to `{FAILED_EXCHANGE}` with routing key `{failed}`.",
                                h.max_attempts
                            ),
                            "parameters": params,
                            "messages": { msg_key.clone(): message_ref(&msg) },
                            "bindings": queue_binding(
                                &queue,
                                QueueKind::Quorum,
                                Some(competing_args(&svc, &event, h.max_attempts)),
                                &[(EVENT_EXCHANGE, event.clone())],
                            ),
                        }),
                    );
                    self.channels.insert(
                        failed_channel,
                        json!({
                            "address": failed,
                            "title": failed,
                            "description": format!(
                                "Failed `{event}` messages: those `{}` gave up on, kept for `kontiki failed list|replay|drop` (replay republishes them on `{EVENT_EXCHANGE}`).",
                                h.name
                            ),
                            "parameters": params,
                            "messages": { msg_key.clone(): message_ref(&msg) },
                            "bindings": queue_binding(
                                &failed,
                                QueueKind::Quorum,
                                Some(failed_args()),
                                &[(FAILED_EXCHANGE, failed.clone())],
                            ),
                        }),
                    );
                    (
                        channel,
                        "competing",
                        format!(
                            "Competing consumers: one shared quorum queue, each message to one replica, {} attempts.",
                            h.max_attempts
                        ),
                    )
                }
                EventMode::Broadcast | EventMode::InSession => {
                    let queue = format!("{svc}.{event}.{{instanceId}}.queue");
                    let channel = format!("queues.{stem}.instance");
                    let session = matches!(h.mode, EventMode::InSession);
                    let routing_key = if session {
                        format!("{event}.{{instanceId}}")
                    } else {
                        event.clone()
                    };
                    params.insert("instanceId".to_owned(), instance_param());
                    let entry = self.channels.entry(channel.clone()).or_insert_with(|| {
                        json!({
                            "address": queue,
                            "title": queue,
                            "description": format!("The own queue of each replica for `{event}`."),
                            "parameters": params,
                            "messages": { msg_key.clone(): message_ref(&msg) },
                            "bindings": queue_binding(&queue, QueueKind::Instance, None, &[]),
                        })
                    });
                    // Broadcast and in-session handlers of one event share the queue, with
                    // both bindings (as Kontiki declares it).
                    if let Some(Value::Array(bound)) =
                        entry.pointer_mut("/bindings/amqp/x-kontiki-bindings")
                    {
                        let b = json!({ "exchange": EVENT_EXCHANGE, "routingKey": routing_key });
                        if !bound.contains(&b) {
                            bound.push(b);
                        }
                    }
                    if session {
                        (
                            channel,
                            "in_session",
                            "In session: only the replica that opened the session gets the event (routing key `<event>.<its instance id>`).".to_owned(),
                        )
                    } else {
                        (
                            channel,
                            "broadcast",
                            "Broadcast: every replica gets a copy in its own exclusive queue."
                                .to_owned(),
                        )
                    }
                }
            };
            let mut description = docs_text(&h.docs).unwrap_or_default();
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&mode_text);
            let mut op = json!({
                "action": "receive",
                "channel": channel_ref(&channel),
                "messages": [channel_message(&channel, &msg_key)],
                "summary": format!("`{}` handles `{event}`.", h.name),
                "description": description,
                "bindings": { "amqp": { "ack": true, "bindingVersion": AMQP_BINDING } },
                "x-kontiki-handler": h.name,
                "x-kontiki-mode": mode,
            });
            if matches!(h.mode, EventMode::Competing) {
                op["x-kontiki-max-attempts"] = json!(h.max_attempts);
            }
            let id = if from_config {
                h.name.clone()
            } else {
                format!("{}.{}", h.name, key(&event))
            };
            self.operations.insert(id, op);
        }
    }

    /// The request message of an RPC: `{"args": [...], "kwargs": {...}}`.
    fn request_message(&mut self, method: &str, params: &[idl::Field]) -> String {
        let mut args = Vec::new();
        let mut kwargs = Map::new();
        for p in params {
            let s = self.schema(&p.ty, &p.docs);
            let mut s = s;
            if let (Some(d), Value::Object(o)) = (&p.default, &mut s) {
                o.insert("default".to_owned(), crate::model::to_json(d));
            }
            args.push(s.clone());
            kwargs.insert(p.name.clone(), s);
        }
        // A tuple (draft-07 `items` array), which may not be empty.
        let args = if args.is_empty() {
            json!({ "type": "array", "maxItems": 0 })
        } else {
            json!({ "type": "array", "items": args, "maxItems": params.len() })
        };
        let payload = json!({
            "type": "object",
            "title": format!("{method} request"),
            "description": "Arguments by position (`args`, in declaration order) or by name (`kwargs`); Kontiki's Python client writes both keys, and a missing key means none.",
            "properties": {
                "args": args,
                "kwargs": { "type": "object", "properties": kwargs, "additionalProperties": false },
            },
        });
        let id = format!("rpc.{}.request", key(method));
        self.messages.insert(
            id.clone(),
            json!({
                "name": format!("{method} request"),
                "title": format!("{}.{method} request", self.svc()),
                "contentType": "application/json",
                "headers": { "$ref": format!("#/components/schemas/{RPC_HEADERS}") },
                "payload": payload,
                "correlationId": {
                    "description": "The AMQP `correlation_id` property (a uuid); the reply carries the same.",
                    "location": "$message.header#/correlation_id",
                },
                "bindings": { "amqp": { "messageType": format!("{}.{method}", self.svc()), "bindingVersion": AMQP_BINDING } },
            }),
        );
        id
    }

    /// The reply message of an RPC: Kontiki's `RpcReturn` envelope around `result`.
    fn reply_message(&mut self, method: &str, result: Value, errors: &[idl::ErrorRef]) {
        let mut codes: Vec<String> = errors
            .iter()
            .map(|e| format!("`{}` ({})", e.code, e.message))
            .collect();
        codes.dedup();
        let client = if codes.is_empty() {
            "no declared client error".to_owned()
        } else {
            format!("client errors {}", codes.join(", "))
        };
        let payload = json!({
            "title": format!("{method} reply"),
            "description": format!(
                "Kontiki's `RpcReturn` envelope: the result, or an error with `error_type` `CLIENT` ({client}) or `SERVER` (`INTERNAL_ERROR`, the handler failed)."
            ),
            "oneOf": [
                {
                    "type": "object",
                    "title": "success",
                    "properties": {
                        "__rpcreturn__": { "const": true },
                        "success": { "const": true },
                        "result": result,
                        "message": { "type": "null" },
                        "error_type": { "const": "NONE" },
                        "error_code": { "type": "null" },
                    },
                    "required": ["__rpcreturn__", "success", "result"],
                },
                {
                    "type": "object",
                    "title": "error",
                    "properties": {
                        "__rpcreturn__": { "const": true },
                        "success": { "const": false },
                        "result": { "type": "null" },
                        "message": { "type": "string", "description": "What went wrong." },
                        "error_type": { "type": "string", "enum": ["CLIENT", "SERVER"] },
                        "error_code": { "type": ["string", "null"], "description": "The error code." },
                    },
                    "required": ["__rpcreturn__", "success", "message", "error_type"],
                },
            ],
        });
        let id = format!("rpc.{}.reply", key(method));
        let mut m = json!({
            "name": format!("{method} reply"),
            "title": format!("{}.{method} reply", self.svc()),
            "summary": "Sent to the default exchange with the request's `reply_to` as routing key; transient (delivery mode 1), no headers.",
            "contentType": "application/json",
            "payload": payload,
            "correlationId": {
                "description": "The request's `correlation_id`, copied (left out when the request had none).",
                "location": "$message.header#/correlation_id",
            },
        });
        if !errors.is_empty() {
            m["x-kontiki-errors"] = errors
                .iter()
                .map(|e| json!({ "code": e.code, "message": e.message }))
                .collect();
        }
        self.messages.insert(id, m);
    }

    /// The channels and operations of one RPC method.
    fn rpc_channels(
        &mut self,
        method: &str,
        request: &str,
        op_id: &str,
        summary: String,
        description: String,
    ) {
        let svc = self.svc().to_owned();
        let m = key(method);
        let route = format!("{svc}.{method}");
        let shared = format!("{svc}.{method}.queue");
        let own = format!("{svc}.{method}.{{instanceId}}.queue");
        let msgs = json!({ "request": message_ref(request) });
        let params = json!({ "instanceId": instance_param() });
        let entries = [
            (
                format!("rpc.{m}"),
                json!({
                    "address": route,
                    "title": format!("{route} (routing key)"),
                    "description": format!("Requests to `{route}` on `{RPC_EXCHANGE}` (topic, non-durable): any replica answers."),
                    "messages": msgs,
                    "bindings": exchange_binding(RPC_EXCHANGE, "topic", false),
                }),
            ),
            (
                format!("rpc.{m}.instance"),
                json!({
                    "address": format!("{route}.{{instanceId}}"),
                    "title": format!("{route}.{{instanceId}} (routing key)"),
                    "description": format!("Requests to `{route}` for one replica, by instance id."),
                    "parameters": params,
                    "messages": msgs,
                    "bindings": exchange_binding(RPC_EXCHANGE, "topic", false),
                }),
            ),
            (
                format!("rpc.{m}.queue"),
                json!({
                    "address": shared,
                    "title": shared,
                    "description": "The request queue the replicas share.",
                    "messages": msgs,
                    "bindings": queue_binding(&shared, QueueKind::SharedClassic, None, &[(RPC_EXCHANGE, route.clone())]),
                }),
            ),
            (
                format!("rpc.{m}.instance-queue"),
                json!({
                    "address": own,
                    "title": own,
                    "description": "The request queue of one replica.",
                    "parameters": params,
                    "messages": msgs,
                    "bindings": queue_binding(&own, QueueKind::Instance, None, &[(RPC_EXCHANGE, format!("{route}.{{instanceId}}"))]),
                }),
            ),
        ];
        for (id, channel) in entries {
            self.channels.insert(id, channel);
        }
        let reply_op = json!({
            "channel": channel_ref("rpc.reply"),
            "messages": [channel_message("rpc.reply", &m)],
            "address": {
                "location": "$message.header#/reply_to",
                "description": "The request's AMQP `reply_to` property: RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`) from kontiki-rs callers, a callback queue from Python Kontiki's.",
            },
        });
        for (suffix, queue_channel) in [
            ("", format!("rpc.{m}.queue")),
            (".instance", format!("rpc.{m}.instance-queue")),
        ] {
            self.operations.insert(
                format!("{op_id}{suffix}"),
                json!({
                    "action": "receive",
                    "channel": channel_ref(&queue_channel),
                    "messages": [channel_message(&queue_channel, "request")],
                    "summary": summary,
                    "description": description,
                    "reply": reply_op,
                    "bindings": { "amqp": { "ack": true, "bindingVersion": AMQP_BINDING } },
                    "x-kontiki-rpc": method,
                }),
            );
        }
    }

    fn rpc(&mut self, r: &idl::Rpc) {
        let request = self.request_message(&r.name, &r.params);
        let result = match &r.returns {
            Some(t) => self.schema(t, &kontiki_idl::ast::Docs::default()),
            None => json!({ "type": "null" }),
        };
        self.reply_message(&r.name, result, &r.errors);
        let summary = format!("The RPC `{}.{}`.", self.svc(), r.name);
        let description = docs_text(&r.docs).unwrap_or_else(|| summary.clone());
        self.rpc_channels(&r.name, &request, &key(&r.name), summary, description);
    }

    fn session_open(&mut self) {
        let request = self.request_message(SESSION_OPEN, &[]);
        let result = json!({
            "type": "array",
            "items": [
                { "type": "string", "description": "The instance id of the replica that opened the session." },
                { "type": "string", "description": "The new session id." },
            ],
            "minItems": 2,
            "maxItems": 2,
        });
        self.reply_message(SESSION_OPEN, result, &[]);
        self.rpc_channels(
            SESSION_OPEN,
            &request,
            "session_open",
            "Opens a session (Kontiki's internal RPC, answered by every service).".to_owned(),
            "Returns the replica's instance id and a new session id; session events then go to routing key `<event>.<instance id>` with a `session_id` header.".to_owned(),
        );
    }

    /// The channel replies go to: the caller's `reply_to`, through the default exchange.
    fn reply_channel(&mut self, rpcs: &[idl::Rpc]) {
        let mut messages = Map::new();
        for method in rpcs.iter().map(|r| r.name.as_str()).chain([SESSION_OPEN]) {
            messages.insert(
                key(method),
                message_ref(&format!("rpc.{}.reply", key(method))),
            );
        }
        self.channels.insert(
            "rpc.reply".to_owned(),
            json!({
                "address": null,
                "title": "RPC replies",
                "description": "The caller's reply queue, named by the request's `reply_to`; replies go through the default exchange (`\"\"`).",
                "messages": messages,
                "bindings": exchange_binding("", "default", true),
            }),
        );
    }
}
