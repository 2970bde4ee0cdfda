//! The AsyncAPI documents of every contract in idl/, checked against the contracts without
//! node: every `$ref` resolves, every event, handler and RPC has its channel and operation,
//! queue names, bindings and arguments are Kontiki's, and payload schemas are the OpenAPI
//! documents' components. scripts/asyncapi-validate.sh runs the real AsyncAPI parser on top.

use std::path::{Path, PathBuf};

use kontiki_codegen::{Opts, generate, generate_asyncapi};
use kontiki_idl::model::{EventMode, EventSource, Service};
use serde_json::{Value, json};

fn idl_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../idl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kontiki"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    files
}

/// Every service of idl/ with its document.
fn documents() -> Vec<(Service, Value)> {
    let files = idl_files();
    let out = generate_asyncapi(&files, &Opts::default()).unwrap();
    let mut docs = Vec::new();
    for f in &files {
        let model = kontiki_idl::load(f).unwrap();
        for svc in &model.root_package().unwrap().services {
            let version = svc.version.as_deref().unwrap_or("1.0.0");
            let name = format!("asyncapi/{}.{version}.json", svc.wire_name);
            let text = out.files.text(&name).unwrap_or_else(|| {
                panic!(
                    "no {name} among {:?}",
                    out.files.names().collect::<Vec<_>>()
                )
            });
            assert!(text.ends_with("}\n"), "{name}");
            docs.push((svc.clone(), serde_json::from_str(text).unwrap()));
        }
    }
    assert_eq!(
        docs.len(),
        out.files.names().count(),
        "one document per service"
    );
    docs
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("{r} does not resolve")),
        None => v,
    }
}

/// The channel an operation is on.
fn op_channel<'a>(doc: &'a Value, op: &'a Value) -> &'a Value {
    deref(doc, &op["channel"])
}

fn op<'a>(doc: &'a Value, id: &str) -> &'a Value {
    let op = &doc["operations"][id];
    assert!(
        op.is_object(),
        "no operation {id} in {}: {:?}",
        doc["info"]["title"],
        doc["operations"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    op
}

#[test]
fn every_reference_resolves() {
    for (svc, doc) in documents() {
        assert_eq!(doc["asyncapi"], "3.0.0");
        assert_eq!(doc["info"]["title"], json!(svc.wire_name));
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external {r}"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{}: {r} does not resolve",
                svc.wire_name
            );
        }
        // An operation's messages are messages of its channel (AsyncAPI 3 requires it).
        for (id, op) in doc["operations"].as_object().unwrap() {
            let channel = op["channel"]["$ref"].as_str().unwrap();
            for m in op["messages"].as_array().unwrap() {
                let m = m["$ref"].as_str().unwrap();
                assert!(m.starts_with(&format!("{channel}/messages/")), "{id}: {m}");
            }
        }
    }
}

#[test]
fn events_have_routing_key_and_queue_channels_with_kontikis_names() {
    let mut modes = Vec::new();
    for (svc, doc) in documents() {
        let s = &svc.wire_name;
        for e in &svc.emits {
            let op = op(&doc, &format!("publish.{}", e.name));
            assert_eq!(op["action"], "send");
            let ch = op_channel(&doc, op);
            assert_eq!(ch["address"], json!(e.name));
            assert_eq!(
                ch["bindings"]["amqp"]["exchange"],
                json!({"name": "event_exchange", "type": "topic", "durable": false, "autoDelete": false})
            );
            assert_eq!(op["bindings"]["amqp"]["deliveryMode"], 2);
        }
        for h in &svc.handlers {
            let events: Vec<String> = match &h.source {
                EventSource::Events(events) => events.iter().map(|e| e.name.clone()).collect(),
                EventSource::Config(_) => vec!["{eventType}".to_owned()],
            };
            for ev in events {
                let id = match &h.source {
                    EventSource::Events(_) => format!("{}.{ev}", h.name),
                    EventSource::Config(_) => h.name.clone(),
                };
                let op = op(&doc, &id);
                assert_eq!(op["action"], "receive");
                let ch = op_channel(&doc, op);
                let amqp = &ch["bindings"]["amqp"];
                assert_eq!(amqp["is"], "queue");
                assert_eq!(amqp["queue"]["name"], ch["address"]);
                let bound = amqp["x-kontiki-bindings"].as_array().unwrap();
                modes.push(h.mode);
                match h.mode {
                    EventMode::Competing => {
                        assert_eq!(op["x-kontiki-mode"], "competing");
                        assert_eq!(ch["address"], json!(format!("{s}.{ev}.queue")));
                        assert_eq!(
                            amqp["queue"],
                            json!({"name": format!("{s}.{ev}.queue"), "durable": true, "exclusive": false, "autoDelete": false})
                        );
                        assert_eq!(
                            bound,
                            &[json!({"exchange": "event_exchange", "routingKey": ev})]
                        );
                        let args = &amqp["x-kontiki-queue-arguments"];
                        assert_eq!(
                            args,
                            &json!({
                                "x-queue-type": "quorum",
                                "x-delivery-limit": h.max_attempts - 1,
                                "x-delayed-retry-type": "failed",
                                "x-delayed-retry-min": 1000,
                                "x-delayed-retry-max": 30000,
                                "x-dead-letter-exchange": "kontiki.failed",
                                "x-dead-letter-routing-key": format!("{s}.{ev}.failed"),
                                "x-dead-letter-strategy": "at-least-once",
                                "x-overflow": "reject-publish",
                            })
                        );
                        // The failed queue, bound to kontiki.failed.
                        let failed = doc["channels"]
                            .as_object()
                            .unwrap()
                            .values()
                            .find(|c| c["address"] == json!(format!("{s}.{ev}.failed")))
                            .unwrap_or_else(|| panic!("no failed queue for {s}.{ev}"));
                        assert_eq!(
                            failed["bindings"]["amqp"]["x-kontiki-bindings"],
                            json!([{"exchange": "kontiki.failed", "routingKey": format!("{s}.{ev}.failed")}])
                        );
                        assert_eq!(
                            failed["bindings"]["amqp"]["x-kontiki-queue-arguments"],
                            json!({"x-queue-type": "quorum", "x-max-length": 10000, "x-overflow": "reject-publish"})
                        );
                    }
                    EventMode::Broadcast | EventMode::InSession => {
                        let key = if h.mode == EventMode::Broadcast {
                            assert_eq!(op["x-kontiki-mode"], "broadcast");
                            ev.clone()
                        } else {
                            assert_eq!(op["x-kontiki-mode"], "in_session");
                            format!("{ev}.{{instanceId}}")
                        };
                        assert_eq!(
                            ch["address"],
                            json!(format!("{s}.{ev}.{{instanceId}}.queue"))
                        );
                        assert_eq!(amqp["queue"]["exclusive"], true);
                        assert_eq!(amqp["queue"]["autoDelete"], true);
                        assert_eq!(amqp["queue"]["durable"], false);
                        assert!(ch["parameters"]["instanceId"].is_object());
                        assert!(
                            bound.contains(
                                &json!({"exchange": "event_exchange", "routingKey": key})
                            ),
                            "{bound:?}"
                        );
                    }
                }
            }
        }
    }
    for mode in [
        EventMode::Competing,
        EventMode::Broadcast,
        EventMode::InSession,
    ] {
        assert!(modes.contains(&mode), "idl/ has no {mode:?} handler");
    }
}

#[test]
fn rpcs_are_received_on_their_queues_and_reply_to_reply_to() {
    let mut rpcs = 0;
    for (svc, doc) in documents() {
        let s = &svc.wire_name;
        let methods = svc
            .rpcs
            .iter()
            .map(|r| (r.name.clone(), r.name.clone(), r.params.clone()))
            .chain([(
                "session_open".to_owned(),
                "___kontiki__internal_session_open__".to_owned(),
                Vec::new(),
            )]);
        for (id, m, params) in methods {
            rpcs += 1;
            for (op_id, queue, key, exclusive) in [
                (
                    id.clone(),
                    format!("{s}.{m}.queue"),
                    format!("{s}.{m}"),
                    false,
                ),
                (
                    format!("{id}.instance"),
                    format!("{s}.{m}.{{instanceId}}.queue"),
                    format!("{s}.{m}.{{instanceId}}"),
                    true,
                ),
            ] {
                let op = op(&doc, &op_id);
                assert_eq!(op["action"], "receive");
                let ch = op_channel(&doc, op);
                assert_eq!(ch["address"], json!(queue));
                let amqp = &ch["bindings"]["amqp"];
                assert_eq!(
                    amqp["queue"],
                    json!({"name": queue, "durable": !exclusive, "exclusive": exclusive, "autoDelete": exclusive})
                );
                assert_eq!(
                    amqp["x-kontiki-bindings"],
                    json!([{"exchange": "rpc_exchange", "routingKey": key}])
                );
                // The reply: to the request's reply_to, through the default exchange.
                let reply = &op["reply"];
                assert_eq!(reply["channel"]["$ref"], "#/channels/rpc.reply");
                assert_eq!(reply["address"]["location"], "$message.header#/reply_to");
                let reply_channel = deref(&doc, &reply["channel"]);
                assert_eq!(reply_channel["address"], Value::Null);
                assert_eq!(
                    reply_channel["bindings"]["amqp"]["exchange"]["type"],
                    "default"
                );
                let reply_msg = deref(&doc, deref(&doc, &reply["messages"][0]));
                let envelope = &reply_msg["payload"]["oneOf"];
                assert_eq!(
                    envelope[0]["properties"]["__rpcreturn__"],
                    json!({"const": true})
                );
                assert_eq!(
                    envelope[1]["properties"]["error_type"]["enum"],
                    json!(["CLIENT", "SERVER"])
                );
                // The request: args by position, kwargs by name, in declaration order.
                let request = deref(&doc, deref(&doc, &op["messages"][0]));
                assert_eq!(
                    request["correlationId"]["location"],
                    "$message.header#/correlation_id"
                );
                let payload = &request["payload"]["properties"];
                let names: Vec<&String> = payload["kwargs"]["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect();
                let mut declared: Vec<&String> = params.iter().map(|p| &p.name).collect();
                declared.sort();
                assert_eq!(names, declared, "{s}.{m}");
                assert_eq!(payload["args"]["maxItems"], json!(params.len()));
            }
            // Clients publish on rpc_exchange.
            let route = &doc["channels"][format!("rpc.{m}")];
            assert_eq!(route["address"], json!(format!("{s}.{m}")));
            assert_eq!(
                route["bindings"]["amqp"]["exchange"]["name"],
                "rpc_exchange"
            );
        }
    }
    assert!(rpcs > 20, "{rpcs}");
}

#[test]
fn headers_are_kontikis_and_the_declared_ones() {
    let (svc, doc) = documents()
        .into_iter()
        .find(|(s, _)| !s.headers.is_empty())
        .expect("a service of idl/ declares headers");
    for (schema, kind_header) in [
        ("kontiki-event-headers", "event_type"),
        ("kontiki-rpc-headers", "remote_method"),
    ] {
        let h = &doc["components"]["schemas"][schema];
        for reserved in [
            "service_name",
            "instance_id",
            "flow_id",
            "hop_id",
            kind_header,
        ] {
            assert!(
                h["properties"][reserved].is_object(),
                "{schema}: {reserved}"
            );
            assert!(
                h["required"].as_array().unwrap().contains(&json!(reserved)),
                "{schema}: {reserved}"
            );
        }
        for declared in &svc.headers {
            assert!(
                h["properties"][&declared.name].is_object(),
                "{schema}: {}",
                declared.name
            );
        }
    }
}

#[test]
fn payload_schemas_are_the_openapi_components() {
    let files = idl_files();
    let openapi = generate(&files, &Opts::default()).unwrap();
    let asyncapi = generate_asyncapi(&files, &Opts::default()).unwrap();
    let mut shared = 0;
    for (name, text) in openapi.files.iter() {
        if !name.starts_with("openapi/") {
            continue;
        }
        let oa: Value = serde_json::from_slice(text).unwrap();
        let service = oa["info"]["title"].as_str().unwrap();
        let (_, aa) = asyncapi
            .files
            .iter()
            .find(|(n, _)| n.starts_with(&format!("asyncapi/{service}.")))
            .unwrap();
        let aa: Value = serde_json::from_slice(aa).unwrap();
        for (component, schema) in oa["components"]["schemas"].as_object().unwrap() {
            if let Some(other) = aa["components"]["schemas"].get(component) {
                assert_eq!(schema, other, "{service}: {component}");
                shared += 1;
            }
        }
    }
    assert!(shared >= 3, "{shared}");
}
