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
