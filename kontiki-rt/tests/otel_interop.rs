//! Traced Rust services and clients (feature `otel`) beside the real Python Kontiki 2.3.2 (a
//! venv made by scripts/python-env.sh), which knows nothing of trace context: the
//! `traceparent` a Rust client writes reaches Python handlers as an ordinary header and
//! changes nothing for them, and what Python sends to a traced Rust service is handled as
//! before, as the root of a new trace, or as the child of a `traceparent` Python passed on.

mod support;

use kontiki_rt::{Call, Event, EventEntrypoint, Messenger, RpcEntrypoint, Service};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Map, json};
use std::time::Duration;
use support::py::{Probe, PyService};

fn provider() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (provider, exporter)
}

/// Waits (bounded) until `exporter` holds a span that `pred` accepts.
async fn wait_span(exporter: &InMemorySpanExporter, pred: impl Fn(&SpanData) -> bool) -> SpanData {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let spans = exporter.get_finished_spans().unwrap();
        if let Some(s) = spans.iter().find(|s| pred(s)) {
            return s.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such span within 15 s; spans: {:#?}",
            spans
                .iter()
                .map(|s| (&s.name, s.span_kind.clone(), s.parent_span_id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn traceparent(span: &SpanData) -> String {
    format!(
        "00-{}-{}-01",
        span.span_context.trace_id(),
        span.span_context.span_id()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_kontiki_and_traced_rust_work_together() {
    let _vhost = support::use_own_vhost("kontiki-otel-interop");

    // Rust client with traces on -> Python service.
    let py_name = support::unique("otel-py");
    let py = PyService::start(&py_name, "").await;
    let (client_provider, client_spans) = provider();
    let messenger = Messenger::builder(support::amqp_url())
        .client_name("otel-interop")
        .rpc_timeout(Duration::from_secs(10))
        .tracer_provider(client_provider.clone())
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let headers = messenger
        .call(&py_name, "hdrs", vec![], Map::new())
        .await
        .expect("a Python handler answers a request that carries traceparent");
    let call_span = wait_span(&client_spans, |s| {
        s.name == format!("{py_name}/hdrs") && s.span_kind == SpanKind::Client
    })
    .await;
    assert_eq!(
        headers["traceparent"],
        json!(traceparent(&call_span)),
        "the Python handler sees the client span's traceparent: {headers}"
    );
    // Kontiki's own headers are there as ever.
    assert!(
        headers["flow_id"].is_string() && headers["hop_id"].is_string(),
        "{headers}"
    );
    let echoed = messenger
        .call(&py_name, "echo", vec![json!(1), json!("a")], Map::new())
        .await
        .unwrap();
    assert_eq!(echoed["args"], json!([1, "a"]), "{echoed}");
    // An event from the traced Rust client reaches the Python handler with the producer span's
    // traceparent.
    messenger
        .publish("proto.simple", &json!({"n": 1}))
        .await
        .unwrap();
    let publish_span = wait_span(&client_spans, |s| {
        s.name == "publish proto.simple" && s.span_kind == SpanKind::Producer
    })
    .await;
    let got = messenger
        .call(
            &py_name,
            "wait_received",
            vec![],
            [
                ("name".to_owned(), json!("proto.simple")),
                ("kind".to_owned(), json!("event")),
                ("timeout".to_owned(), json!(10)),
            ]
            .into_iter()
            .collect(),
        )
        .await
        .unwrap();
    let got = got.as_array().expect("a list of records");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], json!({"n": 1}));
    assert_eq!(
        got[0]["headers"]["traceparent"],
        json!(traceparent(&publish_span))
    );

    // Python client -> traced Rust service: calls and events work; without a traceparent each
    // starts a trace of its own, and a traceparent Python passes on is continued.
    let rs_name = support::unique("otel-rs");
    let event = format!("otel_interop_{}", std::process::id());
    let (service_provider, service_spans) = provider();
    let running = Service::builder(&rs_name)
        .rpc(RpcEntrypoint::new("echo", |call: Call| async move {
            Ok(json!({"args": call.args}))
        }))
        .event(EventEntrypoint::new(
            "on_interop",
            [event.as_str()],
            |_event: Event| async move { Ok(()) },
        ))
        .tracer_provider(service_provider.clone())
        .build()
        .unwrap()
        .start(support::service_config(&rs_name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let mut probe = Probe::start().await;
    let r = probe
        .cmd(json!({"op": "call", "service": rs_name, "method": "echo", "args": [7], "kwargs": {}}))
        .await;
    assert_eq!(r["result"], json!({"args": [7]}), "{r}");
    let server = wait_span(&service_spans, |s| {
        s.name == format!("{rs_name}/echo") && s.span_kind == SpanKind::Server
    })
    .await;
    assert_eq!(server.parent_span_id, opentelemetry::trace::SpanId::INVALID);

    let upstream_trace = "0af7651916cd43dd8448eb211c80319c";
    let upstream_span = "b7ad6b7169203331";
    for (n, extra) in [
        (
            1,
            json!({"traceparent": format!("00-{upstream_trace}-{upstream_span}-01")}),
        ),
        (
            2,
            json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-XYZ-01"}),
        ),
    ] {
        let r = probe
            .cmd(json!({"op": "publish", "event": event, "payload": {"n": n}, "extra_headers": extra}))
            .await;
        assert_eq!(r["ok"], json!(true), "{r}");
    }
    let continued = wait_span(&service_spans, |s| {
        s.span_kind == SpanKind::Consumer && s.span_context.trace_id().to_string() == upstream_trace
    })
    .await;
    assert_eq!(continued.parent_span_id.to_string(), upstream_span);
    assert!(continued.parent_span_is_remote);
    // The malformed one: handled all the same, as the root of a new trace.
    let fresh = wait_span(&service_spans, |s| {
        s.span_kind == SpanKind::Consumer && s.span_context.trace_id().to_string() != upstream_trace
    })
    .await;
    assert_eq!(fresh.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(
        fresh
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "messaging.rabbitmq.destination.routing_key")
            .map(|kv| kv.value.to_string()),
        Some(event.clone())
    );

    drop(probe);
    running.shutdown().await;
    messenger.close().await;
    py.stop().await;
    let _ = (client_provider.shutdown(), service_provider.shutdown());
    // The vhost, and every queue in it, goes when `_vhost` drops.
}
