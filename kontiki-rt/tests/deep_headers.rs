//! Headers nested 20,000 levels deep (issue 15, item 6): published by any broker user (here
//! Python aio-pika), delivered unchanged by RabbitMQ. Without the runtime's header guard, lapin's
//! recursive parser overflows the stack of its I/O thread and the process (this test) aborts.
//! With it, the request is answered and the event handled without those headers, and the
//! service keeps serving.

mod support;

use kontiki_rt::{Call, Event, EventEntrypoint, RpcEntrypoint, Service};
use serde_json::{Map, Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_nested_20000_deep_are_dropped_and_the_message_served() {
    let name = support::unique("deep-headers");
    let event = format!("{name}.happened");
    let rec = support::Recorder::new();
    let rec2 = rec.clone();
    let running = Service::builder(name.as_str())
        .rpc(
            RpcEntrypoint::new("echo", |call: Call| async move {
                let dropped = call
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(kontiki_rt::wire::HEADERS_DROPPED))
                    .is_some();
                Ok(json!({"arg": call.args.first().cloned().unwrap_or(Value::Null), "dropped": dropped}))
            })
            .include_headers(true),
        )
        .event(
            EventEntrypoint::new("on_event", [event.as_str()], move |ev: Event| {
                let rec = rec2.clone();
                async move {
                    let headers = ev.headers.unwrap_or_default();
                    rec.record("event", json!({"payload": ev.payload, "headers": headers}));
                    Ok(())
                }
            })
            .include_headers(true),
        )
        .build()
        .expect("service")
        .start(support::service_config(&name, "  http:\n    disable: true\n"))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));

    let reply = &support::py::publish_deep_headers(&[
        "--service",
        &name,
        "--method",
        "echo",
        "--event",
        &event,
        "--depth",
        "20000",
    ])
    .await;
    assert_eq!(reply["success"], json!(true), "{reply}");
    assert_eq!(
        reply["result"],
        json!({"arg": "deep", "dropped": true}),
        "answered, without the deep headers"
    );

    let items = rec.wait_for(1, 30).await;
    let (_, seen) = &items[0];
    assert_eq!(seen["payload"], json!({"n": "deep"}));
    let headers = seen["headers"].as_object().expect("headers");
    assert!(!headers.contains_key("deep"), "{headers:?}");
    let why = headers[kontiki_rt::wire::HEADERS_DROPPED]
        .as_str()
        .expect("the reason");
    assert!(why.contains("deeper than 64 levels"), "{why}");

    // Still serving, on the same connection.
    let m = support::messenger().await;
    let v = m
        .call(&name, "echo", vec![json!(7)], Map::new())
        .await
        .expect("a call after the deep messages");
    assert_eq!(v, json!({"arg": 7, "dropped": false}));
    m.publish(&event, &json!({"n": "plain"}))
        .await
        .expect("publish");
    let items = rec.wait_for(2, 30).await;
    assert_eq!(items[1].1["payload"], json!({"n": "plain"}));

    running.shutdown().await;
    m.close().await;
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}
