//! Rust ↔ Rust RPC over RabbitMQ: results, errors, timeouts, routing failures, malformed
//! requests, instance targeting, headers and concurrency.

mod support;

use futures_util::StreamExt as _;
use kontiki_rt::{
    Call, CallOptions, HandlerError, RpcEntrypoint, RpcError, RunningService, Service,
};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

fn demo_service(name: &str) -> Service {
    Service::builder(name)
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                let x = call.args[0].as_i64().ok_or_else(|| {
                    HandlerError::client("INVALID_ARGUMENTS", "x must be an integer")
                })?;
                Ok(json!(x * 2))
            })
            .params(["x"]),
        )
        .rpc(
            RpcEntrypoint::new("rpc_example", |call: Call| async move {
                match call.args[0].as_str() {
                    Some("bad_input") => Err(HandlerError::client(
                        "USER_INPUT_ERROR",
                        "Invalid feature value",
                    )),
                    _ => Ok(json!("ok")),
                }
            })
            .params(["feature"]),
        )
        .rpc(RpcEntrypoint::new("boom", |_call: Call| async move {
            Err::<Value, _>(HandlerError::server("kaboom"))
        }))
        .rpc(RpcEntrypoint::new("panics", |_call: Call| async move {
            if std::hint::black_box(true) {
                panic!("deliberate panic in a handler");
            }
            Ok(Value::Null)
        }))
        .rpc(RpcEntrypoint::new("ret_none", |_call: Call| async move {
            Ok(Value::Null)
        }))
        .rpc(
            RpcEntrypoint::new("slow", |call: Call| async move {
                let ms = call.args[0].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!(ms))
            })
            .params(["ms"]),
        )
        .rpc(RpcEntrypoint::new("whoami", |call: Call| async move {
            Ok(json!(
                call.context.container().identity().instance_id.to_string()
            ))
        }))
        .rpc(RpcEntrypoint::new("echo", |call: Call| async move {
            Ok(json!({"args": call.args, "kwargs": call.kwargs}))
        }))
        .rpc(
            RpcEntrypoint::new("hdrs", |call: Call| async move {
                Ok(Value::Object(call.headers.unwrap_or_default()))
            })
            .include_headers(true),
        )
        .build()
        .expect("valid service")
}

async fn start(name: &str) -> RunningService {
    demo_service(name)
        .start(support::service_config(name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
}

#[tokio::test]
async fn results_and_errors_arrive_as_kontiki_sends_them() {
    let name = support::unique("rpc-basic");
    let svc = start(&name).await;
    let m = support::messenger().await;

    assert_eq!(
        m.call(&name, "double", vec![json!(21)], Map::new())
            .await
            .unwrap(),
        json!(42)
    );
    let mut kw = Map::new();
    kw.insert("x".into(), json!(5));
    assert_eq!(
        m.call(&name, "double", vec![], kw).await.unwrap(),
        json!(10)
    );
    assert_eq!(
        m.call(&name, "ret_none", vec![], Map::new()).await.unwrap(),
        Value::Null
    );

    let err = m
        .call(&name, "rpc_example", vec![json!("bad_input")], Map::new())
        .await
        .unwrap_err();
    assert_eq!(err.client_code(), Some("USER_INPUT_ERROR"), "{err}");
    assert!(
        matches!(&err, RpcError::Client { error, .. } if error.message.as_deref() == Some("Invalid feature value"))
    );

    let err = m.call(&name, "boom", vec![], Map::new()).await.unwrap_err();
    assert!(
        // The details stay in the service's log: the reply has a generic message and an id.
        matches!(&err, RpcError::Server { error, .. } if error.code.as_deref() == Some("INTERNAL_ERROR")
            && error.message.as_deref().is_some_and(|m| m.starts_with("internal error (error id ") && !m.contains("kaboom"))),
        "{err}"
    );

    let err = m
        .call(&name, "panics", vec![], Map::new())
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some("INTERNAL_ERROR"), "{err}");
    // The service lives on after the panic.
    assert_eq!(
        m.call(&name, "double", vec![json!(1)], Map::new())
            .await
            .unwrap(),
        json!(2)
    );

    // Wrong arguments are a client error with a precise message.
    let err = m
        .call(&name, "double", vec![json!(1), json!(2)], Map::new())
        .await
        .unwrap_err();
    assert_eq!(err.client_code(), Some("INVALID_ARGUMENTS"), "{err}");
    let mut kw = Map::new();
    kw.insert("zzz".into(), json!(1));
    let err = m
        .call(&name, "double", vec![json!(1)], kw)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unexpected keyword argument `zzz`"),
        "{err}"
    );

    svc.shutdown().await;
    m.close().await;
}

#[tokio::test]
async fn timeouts_and_routing_failures_are_typed_and_fast() {
    let name = support::unique("rpc-route");
    let svc = start(&name).await;
    let m = support::messenger().await;

    let started = Instant::now();
    let err = m
        .call_with(
            &name,
            "slow",
            serde_json::from_value(json!({"args": [2000]})).unwrap(),
            CallOptions::default().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "timeout took {:?}",
        started.elapsed()
    );

    // Nobody serves this service: the request is returned at once, no waiting for the timeout.
    let err = m
        .call(&support::unique("nobody"), "anything", vec![], Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::UnknownService { .. }), "{err}");
    let err = m
        .call(&name, "no_such_method", vec![], Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::UnknownMethod { .. }), "{err}");

    // Reserved header names are refused before sending.
    let err = m
        .call_with(
            &name,
            "echo",
            Default::default(),
            CallOptions::default().header("flow_id", "x"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved header names"), "{err}");

    svc.shutdown().await;
    m.close().await;
}

#[tokio::test]
async fn targeting_reaches_exactly_one_of_two_instances() {
    let name = support::unique("rpc-target");
    let a = start(&name).await;
    let b = start(&name).await;
    let m = support::messenger().await;
    for svc in [&a, &b] {
        let iid = svc.identity().instance_id.to_string();
        for _ in 0..5 {
            let got = m
                .call_with(
                    &name,
                    "whoami",
                    Default::default(),
                    CallOptions::default().instance(iid.clone()),
                )
                .await
                .unwrap();
            assert_eq!(got, json!(iid));
        }
    }
    // An instance that does not exist: returned, typed.
    let err = m
        .call_with(
            &name,
            "whoami",
            Default::default(),
            CallOptions::default().instance("00000000-0000-0000-0000-000000000000"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::UnknownMethod {
                instance_id: Some(_),
                ..
            }
        ),
        "{err}"
    );
    a.shutdown().await;
    b.shutdown().await;
    m.close().await;
}

#[tokio::test]
async fn extra_headers_reach_include_headers_handlers() {
    let name = support::unique("rpc-hdrs");
    let svc = start(&name).await;
    let m = support::messenger().await;
    let got = m
        .call_with(
            &name,
            "hdrs",
            Default::default(),
            CallOptions::default()
                .header("tenant", "t1")
                .header("num", 5)
                .flow_id("f00000000001"),
        )
        .await
        .unwrap();
    let h = got.as_object().unwrap();
    assert_eq!(h["tenant"], json!("t1"));
    assert_eq!(h["num"], json!(5));
    assert_eq!(h["flow_id"], json!("f00000000001"));
    assert_eq!(h["remote_method"], json!("hdrs"));
    assert_eq!(h["rpc_service"], json!(name));
    assert_eq!(h["service_name"], json!("kontiki-standalone-test"));
    assert_eq!(h["hop_id"].as_str().unwrap().len(), 16);
    let mut keys: Vec<_> = h.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "flow_id",
            "hop_id",
            "host",
            "instance_id",
            "num",
            "remote_method",
            "rpc_service",
            "service_name",
            "tenant",
            "timestamp"
        ]
    );
    // The flow id of one call does not stick to the next (Kontiki's bug, protocol §11 #6).
    let next = m.call(&name, "hdrs", vec![], Map::new()).await.unwrap();
    assert_ne!(next["flow_id"], json!("f00000000001"));
    svc.shutdown().await;
    m.close().await;
}

#[tokio::test]
async fn two_hundred_concurrent_calls_on_one_messenger() {
    let name = support::unique("rpc-conc");
    let svc = start(&name).await;
    let m = support::messenger().await;
    let calls = (0..200i64).map(|i| {
        let m = m.clone();
        let name = name.clone();
        async move { (i, m.call(&name, "double", vec![json!(i)], Map::new()).await) }
    });
    let results = futures_util::future::join_all(calls).await;
    for (i, r) in results {
        assert_eq!(r.unwrap(), json!(i * 2));
    }
    svc.shutdown().await;
    m.close().await;
}

/// A raw client sends malformed requests: each gets a CLIENT error reply with a precise code.
#[tokio::test]
async fn malformed_requests_get_an_error_reply() {
    let name = support::unique("rpc-bad");
    let svc = start(&name).await;
    let conn = Connection::connect(&support::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let reply_q = ch
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
        .unwrap();
    let mut replies = ch
        .basic_consume(
            reply_q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let cases: [(&[u8], &str, &str); 4] = [
        (b"not json", "INVALID_REQUEST", "not valid JSON"),
        (b"[1, 2]", "INVALID_REQUEST", "must be a JSON object"),
        (
            br#"{"args": {"x": 1}}"#,
            "INVALID_REQUEST",
            "`args` must be a JSON array",
        ),
        (
            br#"{"args": [], "kwargs": {}}"#,
            "INVALID_ARGUMENTS",
            "missing required argument `x`",
        ),
    ];
    for (i, (body, code, text)) in cases.iter().enumerate() {
        let cid = format!("bad-{i}");
        ch.basic_publish(
            "rpc_exchange".into(),
            format!("{name}.double").as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_correlation_id(cid.as_str().into())
                .with_reply_to(reply_q.name().clone()),
        )
        .await
        .unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .expect("a reply")
            .unwrap()
            .unwrap();
        assert_eq!(
            d.properties.correlation_id().as_ref().map(|c| c.as_str()),
            Some(cid.as_str())
        );
        let v: Value = serde_json::from_slice(&d.data).unwrap();
        assert_eq!(v["error_type"], json!("CLIENT"), "{v}");
        assert_eq!(v["error_code"], json!(code), "{v}");
        assert!(v["message"].as_str().unwrap().contains(text), "{v}");
    }

    // Two requests with one correlation id, the first still running: both are answered
    // (Kontiki drops the second without a reply, and its caller times out).
    for ms in [300, 10] {
        ch.basic_publish(
            "rpc_exchange".into(),
            format!("{name}.slow").as_str().into(),
            BasicPublishOptions::default(),
            format!("{{\"args\": [{ms}]}}").as_bytes(),
            BasicProperties::default()
                .with_correlation_id("dup".into())
                .with_reply_to(reply_q.name().clone()),
        )
        .await
        .unwrap();
    }
    let mut answered = Vec::new();
    for _ in 0..2 {
        let d = tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .expect("both duplicates are answered")
            .unwrap()
            .unwrap();
        assert_eq!(
            d.properties.correlation_id().as_ref().map(|c| c.as_str()),
            Some("dup")
        );
        let v: Value = serde_json::from_slice(&d.data).unwrap();
        answered.push(v["result"].clone());
    }
    assert_eq!(answered, vec![json!(10), json!(300)]);
    svc.shutdown().await;
    conn.close(200, "".into()).await.unwrap();
}

#[tokio::test]
async fn a_service_with_amqp_disabled_starts_without_a_broker() {
    let config = kontiki_rt::Config::from_yaml_str(
        "off.yaml",
        "kontiki:\n  amqp:\n    url: \"amqp://guest:guest@127.0.0.1:1/%2f\"\n    disable: true\n",
    )
    .unwrap();
    let svc = demo_service("amqp-off")
        .start(config)
        .await
        .expect("starts without a broker");
    let err = svc
        .messenger()
        .call("x", "y", vec![], Map::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    svc.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_broker_fails_start_with_a_clear_error() {
    let config = kontiki_rt::Config::from_yaml_str(
        "bad.yaml",
        "kontiki:\n  amqp:\n    url: \"amqp://guest:guest@127.0.0.1:1/%2f\"\n    connect_timeout: 2\n",
    )
    .unwrap();
    let err = demo_service("amqp-bad").start(config).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("could not connect to the broker at amqp://guest:***@127.0.0.1:1/%2f")
            || text.starts_with(
                "connecting to the broker at amqp://guest:***@127.0.0.1:1/%2f timed out"
            ),
        "{text}"
    );
}

/// With a catch-all binding on `rpc_exchange` (the Kontiki registry binds one to its timeline
/// exchange), nothing is returned as unroutable; the route check still answers at once.
#[tokio::test]
async fn unknown_services_fail_fast_even_with_a_catch_all_binding() {
    let conn = Connection::connect(&support::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let tap = ch
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
        .unwrap();
    ch.queue_bind(
        tap.name().clone(),
        "rpc_exchange".into(),
        "#".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let name = support::unique("rpc-catchall");
    let svc = start(&name).await;
    let m = support::messenger().await;
    let started = Instant::now();
    let err = m
        .call(&support::unique("nobody"), "anything", vec![], Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::UnknownService { .. }), "{err}");
    let err = m
        .call(&name, "no_such_method", vec![], Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::UnknownMethod { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        m.call(&name, "double", vec![json!(4)], Map::new())
            .await
            .unwrap(),
        json!(8)
    );
    svc.shutdown().await;
    m.close().await;
    conn.close(200, "".into()).await.unwrap();
}
