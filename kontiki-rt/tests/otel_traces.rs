//! OpenTelemetry traces across two Rust services (feature `otel`), received by a real OTLP/HTTP
//! receiver in the test: service A's HTTP route calls service B's RPC, whose handler publishes
//! an event that A handles. Each service is a separate process (`examples/otel_pair.rs`)
//! configured only by the standard `OTEL_*` environment variables; its batch delay is longer
//! than the test, so what arrives was flushed at shutdown.
//!
//! The trace must keep the id of the caller's `traceparent` from the HTTP request to the event
//! handler, with each span the child of the one before and the span kinds of the semantic
//! conventions; a malformed `traceparent` starts a new trace and the request still succeeds.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    span: Span,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Got>>>,
    /// Requests the receiver could not decode.
    bad: Arc<Mutex<Vec<String>>>,
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
async fn start_collector() -> (std::net::SocketAddr, Collector) {
    async fn traces(State(c): State<Collector>, body: Bytes) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        match ExportTraceServiceRequest::decode(body) {
            Ok(req) => {
                let mut spans = c.spans.lock().unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| string_attr(&r.attributes, "service.name"))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            spans.push(Got {
                                service: service.clone(),
                                span,
                            });
                        }
                    }
                }
                (
                    [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
                    .into_response()
            }
            Err(e) => {
                c.bad.lock().unwrap().push(e.to_string());
                (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response()
            }
        }
    }
    let collector = Collector::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(collector.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, collector)
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(got: &Got, key: &str) -> String {
    string_attr(&got.span.attributes, key)
        .unwrap_or_else(|| panic!("span {:?} has no attribute {key}", got.span.name))
}

/// The one span of `trace` named `name` in `service`.
fn find<'a>(spans: &'a [Got], trace: &str, service: &str, name: &str) -> &'a Got {
    let found: Vec<&Got> = spans
        .iter()
        .filter(|g| hex(&g.span.trace_id) == trace && g.service == service && g.span.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one span {name:?} of {service} in trace {trace}; the trace has: {:#?}",
        spans
            .iter()
            .filter(|g| hex(&g.span.trace_id) == trace)
            .map(|g| (
                &g.service,
                &g.span.name,
                g.span.kind,
                hex(&g.span.parent_span_id)
            ))
            .collect::<Vec<_>>()
    );
    found[0]
}

fn assert_child(child: &Got, parent: &Got) {
    assert_eq!(
        hex(&child.span.parent_span_id),
        hex(&parent.span.span_id),
        "{:?} ({}) is not the child of {:?} ({})",
        child.span.name,
        child.service,
        parent.span.name,
        parent.service
    );
}

/// Waits (bounded) until `proc` logged a line containing `what`, and returns that line.
async fn wait_log(proc: &support::Proc, what: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = proc.log().lines().find(|l| l.contains(what)) {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what:?} in the log within 30 s:\n{}",
            proc.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, then wait (bounded) for a clean exit.
async fn stop(mut proc: support::Proc) {
    proc.terminate();
    let status = tokio::time::timeout(Duration::from_secs(30), proc.child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within 30 s after SIGTERM:\n{}", proc.log()))
        .unwrap();
    assert!(status.success(), "exit {status}:\n{}", proc.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_crosses_http_rpc_and_event_across_two_services() {
    let _vhost = support::use_own_vhost("kontiki-otel-traces");
    let (collector_addr, collector) = start_collector().await;
    let endpoint = format!("http://{collector_addr}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Longer than the test: the spans arrive by the flush at shutdown.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("NO_COLOR", "1"),
    ];
    let suffix = std::process::id();
    let a_name = format!("otel-a-{suffix}");
    let b_name = format!("otel-b-{suffix}");
    let event = format!("otel_doubled_{suffix}");
    let config = |name: &str, extra: &str| {
        format!(
            "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n    rpc:\n      timeout: 10\n  registration:\n    disable: true\n  shutdown:\n    grace_seconds: 5\n  http:\n    address: 127.0.0.1\n    port: 0\n{extra}",
            support::amqp_url()
        )
    };
    let bin = support::example_bin_with("otel_pair", &["otel"]);
    let b = support::spawn_service_with(
        bin.clone(),
        "otel_pair",
        &config(
            &b_name,
            &format!(
                "otel_pair:\n  peer: nobody\n  publish: {event}\n  events: [otel_unused_{suffix}]\n"
            ),
        ),
        &env,
    )
    .await;
    let a = support::spawn_service_with(
        bin,
        "otel_pair",
        &config(
            &a_name,
            &format!("otel_pair:\n  peer: {b_name}\n  events: [{event}]\n"),
        ),
        &env,
    )
    .await;
    assert!(a.log().contains("OpenTelemetry traces on"), "{}", a.log());
    let line = wait_log(&a, "HTTP listening").await;
    let http = line
        .split("address=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    // The caller's trace: the test plays an upstream service that already has a span.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{http}/relay/21"))
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"doubled": 42})
    );
    wait_log(&a, "handled doubled 42").await;
    // A malformed traceparent is ignored: a new trace, and the request still succeeds.
    let res = client
        .get(format!("http://{http}/relay/5"))
        .header("traceparent", "00-not-a-trace-id-01")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    wait_log(&a, "handled doubled 10").await;
    // Probes are not traced.
    let res = client
        .get(format!("http://{http}/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    stop(a).await;
    stop(b).await;
    assert!(collector.bad.lock().unwrap().is_empty());
    let spans = collector.spans.lock().unwrap().clone();

    let route = "GET /relay/{x}";
    let rpc = format!("{b_name}/double");
    let publish = format!("publish {event}");
    let process = format!("process {event}");
    let http_span = find(&spans, trace, &a_name, route);
    let client_span = find(&spans, trace, &a_name, &rpc);
    let server_span = find(&spans, trace, &b_name, &rpc);
    let producer = find(&spans, trace, &b_name, &publish);
    let consumer = find(&spans, trace, &a_name, &process);
    assert_eq!(hex(&http_span.span.parent_span_id), caller_span);
    assert_child(client_span, http_span);
    assert_child(server_span, client_span);
    assert_child(producer, server_span);
    assert_child(consumer, producer);
    assert_eq!(
        spans
            .iter()
            .filter(|g| hex(&g.span.trace_id) == trace)
            .count(),
        5,
        "{spans:#?}"
    );

    assert_eq!(http_span.span.kind, SpanKind::Server as i32);
    assert_eq!(client_span.span.kind, SpanKind::Client as i32);
    assert_eq!(server_span.span.kind, SpanKind::Server as i32);
    assert_eq!(producer.span.kind, SpanKind::Producer as i32);
    assert_eq!(consumer.span.kind, SpanKind::Consumer as i32);

    assert_eq!(attr(http_span, "http.route"), "/relay/{x}");
    assert_eq!(attr(http_span, "http.response.status_code"), "200");
    for s in [client_span, server_span, producer, consumer] {
        assert_eq!(attr(s, "messaging.system"), "rabbitmq");
    }
    assert_eq!(
        attr(client_span, "messaging.destination.name"),
        "rpc_exchange"
    );
    assert_eq!(
        attr(client_span, "messaging.rabbitmq.destination.routing_key"),
        format!("{b_name}.double")
    );
    assert_eq!(attr(client_span, "messaging.operation.type"), "send");
    assert_eq!(attr(server_span, "messaging.operation.type"), "process");
    assert_eq!(attr(client_span, "rpc.method"), "double");
    assert_eq!(attr(server_span, "rpc.service"), b_name);
    // The correlation id and the hop id name the same message on both sides.
    assert_eq!(
        attr(client_span, "messaging.message.conversation_id"),
        attr(server_span, "messaging.message.conversation_id")
    );
    assert_eq!(
        attr(client_span, "messaging.message.id"),
        attr(server_span, "messaging.message.id")
    );
    assert_eq!(
        attr(producer, "messaging.message.id"),
        attr(consumer, "messaging.message.id")
    );
    assert_eq!(
        attr(producer, "messaging.destination.name"),
        "event_exchange"
    );
    assert_eq!(
        attr(consumer, "messaging.rabbitmq.destination.routing_key"),
        event
    );
    // Kontiki's flow id runs through the whole trace too.
    let flow = attr(http_span, "kontiki.flow_id");
    for s in [client_span, server_span, producer, consumer] {
        assert_eq!(attr(s, "kontiki.flow_id"), flow);
    }

    assert!(
        !spans
            .iter()
            .any(|g| string_attr(&g.span.attributes, "url.path").as_deref() == Some("/live")),
        "a probe was traced: {spans:#?}"
    );

    // The request with the malformed traceparent: its HTTP span is a root, and the call and
    // the event that followed share its new trace.
    let other: Vec<&Got> = spans
        .iter()
        .filter(|g| g.span.name == route && hex(&g.span.trace_id) != trace)
        .collect();
    assert_eq!(other.len(), 1, "{spans:#?}");
    assert!(other[0].span.parent_span_id.is_empty());
    let other_trace = hex(&other[0].span.trace_id);
    assert_child(find(&spans, &other_trace, &a_name, &rpc), other[0]);
    assert_child(
        find(&spans, &other_trace, &a_name, &process),
        find(&spans, &other_trace, &b_name, &publish),
    );
}
