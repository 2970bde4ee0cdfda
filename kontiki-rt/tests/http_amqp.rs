//! An HTTP handler that publishes an event and calls an RPC on the real broker: the request's
//! flow id (the response's `flow_id` header) is the one the event and the RPC carry, with
//! `entrypoint=http` and `operation="POST /touch/{what}"`.

mod support;

use kontiki_rt::http::{HttpError, HttpRequest, HttpResponse, HttpRoute, Method, StatusCode};
use kontiki_rt::{Call, Event, EventEntrypoint, RpcEntrypoint, Service};
use serde_json::{Map, Value, json};
use std::time::Duration;

#[tokio::test]
async fn the_request_flow_crosses_into_events_and_rpcs() {
    let name = support::unique("http-amqp");
    let event_type = format!("{name}.touched");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Map<String, Value>>();
    let svc_name = name.clone();
    let ev = event_type.clone();
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new(
            "inbound_flow",
            |_call: Call| async move {
                let scope = kontiki_rt::flow::current().expect("rpc scope");
                Ok(json!({
                    "flow_id": &*scope.flow_id,
                    "entrypoint": scope.entrypoint.as_str(),
                }))
            },
        ))
        .event(
            EventEntrypoint::new("on_touched", [event_type.as_str()], move |e: Event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(e.headers.unwrap_or_default());
                    Ok(())
                }
            })
            .include_headers(true),
        )
        .http(HttpRoute::new(
            Method::POST,
            "/touch/{what}",
            move |req: HttpRequest| {
                let (svc_name, ev) = (svc_name.clone(), ev.clone());
                async move {
                    let what: String = req.path_param("what")?;
                    let m = req.context.messenger();
                    m.publish(&ev, &json!({ "what": what }))
                        .await
                        .map_err(HttpError::internal)?;
                    let rpc = m
                        .call(&svc_name, "inbound_flow", vec![], Map::new())
                        .await
                        .map_err(HttpError::internal)?;
                    Ok(HttpResponse::json(StatusCode::OK, &json!({ "rpc": rpc })))
                }
            },
        ))
        .build()
        .expect("valid definition")
        .start(support::service_config(
            &name,
            "  http:\n    address: 127.0.0.1\n    port: 0\n",
        ))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let addr = svc.http_addr().expect("HTTP runs beside AMQP");

    let res = reqwest::Client::new()
        .post(format!("http://{addr}/touch/door"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let flow = res.headers()["flow_id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({"rpc": {"flow_id": flow, "entrypoint": "rpc"}}),
        "the RPC ran in the request's flow"
    );

    let headers = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the event arrives")
        .expect("channel open");
    assert_eq!(headers["flow_id"], json!(flow));
    assert_eq!(headers["entrypoint"], json!("http"));
    assert_eq!(headers["operation"], json!("POST /touch/{what}"));
    assert!(
        headers.get("parent_hop_id").is_none(),
        "an HTTP scope has no inbound hop: {headers:?}"
    );
    svc.shutdown().await;
}

/// A 500 (an unmapped error, a panic) is reported to the registry once, with the request's
/// flow; a mapped error is an answer and is not reported.
#[tokio::test]
async fn unmapped_errors_and_panics_are_reported_to_the_registry() {
    use futures_util::StreamExt as _;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    };
    use lapin::types::FieldTable;

    let name = support::unique("http-report");
    // A tap on the registry's exchange, for this service's exception reports.
    let conn = lapin::Connection::connect(&support::amqp_url(), Default::default())
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        "registry_admin_exchange".into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = ch
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
        q.name().clone(),
        "registry_admin_exchange".into(),
        "registry.exception".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut reports = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let svc = Service::builder(name.as_str())
        .http(HttpRoute::new(
            Method::GET,
            "/fail/{how}",
            |req: HttpRequest| async move {
                match req.path_param::<String>("how")?.as_str() {
                    "mapped" => Err(HttpError::mapped(StatusCode::CONFLICT, "taken")),
                    "error" => Err(HttpError::internal("disk on fire")),
                    _ => panic!("handler blew up"),
                }
            },
        ))
        .build()
        .unwrap()
        .start(
            kontiki_rt::Config::from_yaml_str(
                "report.yaml",
                &format!(
                    "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n  registration:\n    delay: 0\n  http:\n    address: 127.0.0.1\n    port: 0\n",
                    support::amqp_url()
                ),
            )
            .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let addr = svc.http_addr().unwrap();
    let client = reqwest::Client::new();
    let mut flows = Vec::new();
    for how in ["mapped", "error", "panic"] {
        let res = client
            .get(format!("http://{addr}/fail/{how}"))
            .send()
            .await
            .unwrap();
        flows.push((
            res.status().as_u16(),
            res.headers()["flow_id"].to_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        flows.iter().map(|f| f.0).collect::<Vec<_>>(),
        [409, 500, 500]
    );

    let mut got = Vec::new();
    while got.len() < 2 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), reports.next())
            .await
            .expect("two exception reports")
            .expect("consumer open")
            .expect("delivery");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        let body: Value = serde_json::from_slice(&delivery.data).unwrap();
        if body["service_name"] == json!(name) {
            got.push(body);
        }
    }
    svc.shutdown().await;
    // Reports are sent from spawned tasks: their order is not the requests' order.
    got.sort_by_key(|r| r["exception_type"].as_str().unwrap_or_default().to_owned());
    for (report, (kind, message, flow)) in got.iter().zip([
        ("HttpHandlerError", "disk on fire", &flows[1].1),
        ("Panic", "panicked: handler blew up", &flows[2].1),
    ]) {
        assert_eq!(report["exception_type"], json!(kind), "{report}");
        assert!(
            report["message"].as_str().unwrap().contains(message),
            "{report}"
        );
        assert_eq!(report["flow_id"], json!(flow), "{report}");
        assert_eq!(report["entrypoint"], json!("http"), "{report}");
        assert_eq!(report["operation"], json!("GET /fail/{how}"), "{report}");
    }
}
