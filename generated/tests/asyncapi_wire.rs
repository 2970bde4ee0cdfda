//! The names in the checked-in AsyncAPI documents (generated/asyncapi/) are the ones kontiki-rt
//! uses on the wire: exchanges, queue names, routing keys and Kontiki's reserved headers come
//! from `kontiki_rt::wire`, not from a second copy of the naming rules.

use std::path::PathBuf;

use kontiki_rt::wire;
use serde_json::{Value, json};

/// Stands for the instance id in the documents (an AsyncAPI channel parameter).
const IID: &str = "{instanceId}";

fn documents() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("asyncapi");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    files
        .iter()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
        .collect()
}

fn channel<'a>(doc: &'a Value, op: &'a Value) -> &'a Value {
    let r = op["channel"]["$ref"].as_str().unwrap();
    doc.pointer(r.strip_prefix('#').unwrap()).unwrap()
}

#[test]
fn queue_names_and_routing_keys_are_kontiki_rts() {
    let mut seen = [0usize; 4];
    for doc in documents() {
        let svc = doc["info"]["title"].as_str().unwrap();
        for (id, op) in doc["operations"].as_object().unwrap() {
            let ch = channel(&doc, op);
            let amqp = &ch["bindings"]["amqp"];
            if let Some(method) = op["x-kontiki-rpc"].as_str() {
                let instance = id.ends_with(".instance");
                let (queue, key) = if instance {
                    (
                        wire::rpc_instance_queue(svc, method, IID),
                        wire::rpc_routing_key(svc, method, Some(IID)),
                    )
                } else {
                    (
                        wire::rpc_queue(svc, method),
                        wire::rpc_routing_key(svc, method, None),
                    )
                };
                assert_eq!(ch["address"], json!(queue), "{svc} {id}");
                assert_eq!(
                    amqp["x-kontiki-bindings"],
                    json!([{"exchange": wire::RPC_EXCHANGE, "routingKey": key}])
                );
                seen[0] += 1;
                continue;
            }
            let Some(mode) = op["x-kontiki-mode"].as_str() else {
                // A publish: the event's routing key on the event exchange.
                assert_eq!(op["action"], "send", "{svc} {id}");
                assert_eq!(amqp["exchange"]["name"], wire::EVENT_EXCHANGE);
                seen[1] += 1;
                continue;
            };
            let event = op["messages"][0]["$ref"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let event = if event == "event" {
                "{eventType}"
            } else {
                event
            };
            match mode {
                "competing" => {
                    assert_eq!(ch["address"], json!(wire::competing_queue(svc, event)));
                    assert_eq!(
                        amqp["x-kontiki-queue-arguments"]["x-dead-letter-exchange"],
                        wire::FAILED_EXCHANGE
                    );
                    assert_eq!(
                        amqp["x-kontiki-queue-arguments"]["x-dead-letter-routing-key"],
                        json!(wire::failed_queue(svc, event))
                    );
                    seen[2] += 1;
                }
                "broadcast" | "in_session" => {
                    assert_eq!(ch["address"], json!(wire::instance_queue(svc, event, IID)));
                    seen[3] += 1;
                }
                other => panic!("{svc} {id}: mode {other}"),
            }
            for b in amqp["x-kontiki-bindings"].as_array().unwrap() {
                assert_eq!(b["exchange"], wire::EVENT_EXCHANGE);
            }
        }
        // The session-open RPC is Kontiki's internal method name.
        assert_eq!(
            doc["operations"]["session_open"]["x-kontiki-rpc"],
            wire::SESSION_OPEN_METHOD
        );
    }
    assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
}

#[test]
fn reserved_headers_are_kontikis() {
    for doc in documents() {
        let mut names: Vec<String> = Vec::new();
        for schema in ["kontiki-event-headers", "kontiki-rpc-headers"] {
            let props = doc["components"]["schemas"][schema]["properties"]
                .as_object()
                .unwrap();
            names.extend(
                props
                    .keys()
                    .filter(|k| wire::RESERVED_HEADERS.contains(&k.as_str()))
                    .cloned(),
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names, wire::RESERVED_HEADERS, "{}", doc["info"]["title"]);
    }
}
