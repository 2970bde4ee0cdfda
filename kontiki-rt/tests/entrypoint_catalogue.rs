//! The entrypoint catalogue a service registers with (protocol §5.6): events (one entry per
//! event type, `max_attempts` for competing only), then RPCs, then HTTP routes, then tasks; by
//! handler name within a kind; the session-open RPC left out.

mod support;

use kontiki_rt::http::{HttpResponse, Method, StatusCode};
use kontiki_rt::{
    Call, Event, EventEntrypoint, EventMode, HttpRoute, RpcEntrypoint, Schedule, Service,
    TaskEntrypoint, TaskRun,
};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn the_register_body_lists_every_entrypoint_in_kontikis_order() {
    let name = support::unique("catalogue");
    let ok_event = |_e: Event| async { Ok(()) };
    let config = kontiki_rt::Config::from_yaml_str(
        "cat.yaml",
        &format!(
            "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n  registration:\n    delay: 3600\n  http:\n    port: 0\n    address: 127.0.0.1\napp:\n  ping: /ping\n",
            support::amqp_url()
        ),
    )
    .unwrap();
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("zeta", |_c: Call| async {
            Ok(json!(1))
        }))
        .rpc(RpcEntrypoint::new("alpha", |_c: Call| async {
            Ok(json!(1))
        }))
        .event(EventEntrypoint::new("on_multi", ["m.b", "m.a"], ok_event).max_attempts(2))
        .event(EventEntrypoint::new("on_bcast", ["b.x"], ok_event).mode(EventMode::Broadcast))
        .event(EventEntrypoint::new("on_sess", ["s.x"], ok_event).mode(EventMode::InSession))
        .http(
            HttpRoute::new(Method::GET, "/hello/{who}", |_r| async {
                Ok(HttpResponse::empty(StatusCode::OK))
            })
            .name("hello"),
        )
        .http(
            HttpRoute::from_config(Method::GET, "app.ping", |_r| async {
                Ok(HttpResponse::empty(StatusCode::OK))
            })
            .name("ping"),
        )
        .task(TaskEntrypoint::new(
            "tick",
            Schedule::Every(Duration::from_secs(10)),
            |_r: TaskRun| async { Ok(()) },
        ))
        .task(TaskEntrypoint::new(
            "nightly",
            Schedule::Cron("0 3 * * *".into()),
            |_r: TaskRun| async { Ok(()) },
        ))
        .build()
        .unwrap()
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let body = svc
        .container()
        .registration()
        .expect("registration is on")
        .clone();
    assert_eq!(
        body["entrypoints"],
        json!([
            {"type": "event", "name": "b.x", "handler": "on_bcast", "mode": "broadcast"},
            {"type": "event", "name": "m.a", "handler": "on_multi", "mode": "competing", "max_attempts": 2},
            {"type": "event", "name": "m.b", "handler": "on_multi", "mode": "competing", "max_attempts": 2},
            {"type": "event", "name": "s.x", "handler": "on_sess", "mode": "in_session"},
            {"type": "rpc", "name": "alpha", "handler": "alpha"},
            {"type": "rpc", "name": "zeta", "handler": "zeta"},
            {"type": "http", "method": "GET", "path": "/hello/{who}", "handler": "hello"},
            {"type": "http", "method": "GET", "path": "/ping", "handler": "ping"},
            {"type": "task", "handler": "nightly", "schedule": "0 3 * * *"},
            {"type": "task", "handler": "tick", "schedule": 10},
        ])
    );
    assert_eq!(body["kontiki_version"], json!("2.3.2"));
    assert_eq!(body["group"], json!("business"));
    assert!(
        body.get("config").is_none(),
        "no public config, no `config` key"
    );
    svc.shutdown().await;
    support::delete_queues(&[
        format!("{name}.m.a.queue"),
        format!("{name}.m.a.failed"),
        format!("{name}.m.b.queue"),
        format!("{name}.m.b.failed"),
    ])
    .await;
}
