//! The `otel` build: spans on an SDK tracer, W3C trace context in AMQP headers, and the
//! OTLP/HTTP exporter the `OTEL_*` environment variables configure.

use crate::error::{Error, Result};
use crate::transport::wire;
use lapin::types::FieldTable;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// `messaging.system` of every message span.
const SYSTEM: &str = "rabbitmq";
/// `rpc.system` of RPC spans: Kontiki's RPC over AMQP.
const RPC_SYSTEM: &str = "kontiki";
/// The longest a flush at shutdown may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A service's (or a stand-alone Messenger's) tracer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Made from the environment by kontiki-rt: shut down (flushed) with the service. A
    /// provider the application passed in is only flushed.
    owned: bool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("owned", &self.inner.owned)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Spans on `provider`; `owned` when kontiki-rt made it (it is then shut down at the end).
    pub(crate) fn new(provider: SdkTracerProvider, owned: bool) -> Self {
        let scope = InstrumentationScope::builder("kontiki-rt")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        Self {
            inner: Arc::new(Inner {
                provider,
                tracer,
                owned,
            }),
        }
    }

    fn start(
        &self,
        name: String,
        kind: SpanKind,
        parent: &Context,
        attributes: Vec<KeyValue>,
    ) -> OtelSpan {
        let span = self
            .inner
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&self.inner.tracer, parent);
        OtelSpan {
            cx: parent.with_span(span),
        }
    }

    /// The client side of a call: a child of the running handler's span, if any.
    pub(crate) fn rpc_client(&self, service: &str, method: &str, routing_key: &str) -> OtelSpan {
        let mut attributes = messaging(wire::RPC_EXCHANGE, routing_key, "send", "publish");
        attributes.extend(rpc(service, method));
        self.start(
            format!("{service}/{method}"),
            SpanKind::Client,
            &Context::current(),
            attributes,
        )
    }

    /// Publishing an event: a child of the running handler's span, if any.
    pub(crate) fn producer(&self, event_type: &str, routing_key: &str) -> OtelSpan {
        self.start(
            format!("publish {event_type}"),
            SpanKind::Producer,
            &Context::current(),
            messaging(wire::EVENT_EXCHANGE, routing_key, "send", "publish"),
        )
    }

    /// The server side of a call: a child of the caller's span when the request carries a
    /// valid `traceparent`, else the root of a new trace.
    pub(crate) fn rpc_server(
        &self,
        headers: Option<&FieldTable>,
        service: &str,
        method: &str,
        routing_key: &str,
        correlation_id: Option<&str>,
    ) -> OtelSpan {
        let mut attributes = messaging(wire::RPC_EXCHANGE, routing_key, "process", "process");
        attributes.extend(rpc(service, method));
        if let Some(cid) = correlation_id {
            attributes.push(KeyValue::new(
                "messaging.message.conversation_id",
                cid.to_owned(),
            ));
        }
        attributes.extend(inbound_ids(headers));
        self.start(
            format!("{service}/{method}"),
            SpanKind::Server,
            &extract(headers),
            attributes,
        )
    }

    /// Handling an event delivery: a child of the publisher's span when the message carries a
    /// valid `traceparent`, else the root of a new trace.
    pub(crate) fn consumer(
        &self,
        headers: Option<&FieldTable>,
        event_type: &str,
        handler: &str,
        queue: &str,
    ) -> OtelSpan {
        let mut attributes = messaging(wire::EVENT_EXCHANGE, event_type, "process", "process");
        attributes.push(KeyValue::new(
            "messaging.destination.subscription.name",
            queue.to_owned(),
        ));
        attributes.push(KeyValue::new("kontiki.handler", handler.to_owned()));
        attributes.extend(inbound_ids(headers));
        self.start(
            format!("process {event_type}"),
            SpanKind::Consumer,
            &extract(headers),
            attributes,
        )
    }

    /// A task run: the root of a new trace.
    pub(crate) fn task(&self, task: &str, flow_id: &str) -> OtelSpan {
        self.start(
            format!("task {task}"),
            SpanKind::Internal,
            &Context::new(),
            vec![
                KeyValue::new("kontiki.task", task.to_owned()),
                KeyValue::new("kontiki.flow_id", flow_id.to_owned()),
            ],
        )
    }

    /// An HTTP request: a child of the caller's span when the request has a valid
    /// `traceparent` header, else the root of a new trace. Named by the method until the
    /// route is known ([`set_http_route`]).
    #[cfg(feature = "http")]
    pub(crate) fn http_server(
        &self,
        headers: &axum::http::HeaderMap,
        method: &str,
        path: &str,
        flow_id: &str,
    ) -> OtelSpan {
        let parent = TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &HttpHeaders(headers));
        self.start(
            method.to_owned(),
            SpanKind::Server,
            &parent,
            vec![
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("url.path", path.to_owned()),
                KeyValue::new("kontiki.flow_id", flow_id.to_owned()),
            ],
        )
    }

    /// Flushes the spans not yet exported; shuts the provider down when kontiki-rt made it.
    /// Bounded by [`FLUSH_TIMEOUT`]. The SDK blocks while it waits for its exporter task, so
    /// this waits on a blocking thread, never on a runtime worker.
    pub(crate) async fn shutdown(&self) {
        let inner = self.inner.clone();
        let done = tokio::task::spawn_blocking(move || {
            if inner.owned {
                inner.provider.shutdown()
            } else {
                inner.provider.force_flush()
            }
        });
        match tokio::time::timeout(FLUSH_TIMEOUT, done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not flush the trace spans"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush the trace spans"),
            Err(_) => tracing::warn!(
                timeout = ?FLUSH_TIMEOUT,
                "the trace spans were not flushed in time"
            ),
        }
    }
}

/// One span, in the OpenTelemetry context it is the active span of.
#[derive(Debug)]
pub(crate) struct OtelSpan {
    cx: Context,
}

impl OtelSpan {
    /// Writes `traceparent` (and `tracestate`, when there is one) into an outgoing message's
    /// headers, and records the message's flow and hop ids, written before.
    pub(crate) fn inject(&self, headers: &mut FieldTable) {
        TraceContextPropagator::new().inject_context(&self.cx, &mut HeaderWriter(headers));
        let span = self.cx.span();
        if let Some(hop) = wire::header_text(Some(headers), "hop_id") {
            span.set_attribute(KeyValue::new("messaging.message.id", hop.to_owned()));
        }
        if let Some(flow) = wire::header_text(Some(headers), "flow_id") {
            span.set_attribute(KeyValue::new("kontiki.flow_id", flow.to_owned()));
        }
    }

    /// Sets a string attribute.
    pub(crate) fn set_str(&self, key: &'static str, value: &str) {
        self.cx
            .span()
            .set_attribute(KeyValue::new(key, value.to_owned()));
    }

    /// Marks the span failed: `error.type` and an error status with `description`.
    pub(crate) fn fail(&self, error_type: &str, description: &str) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
        span.set_status(Status::error(description.to_owned()));
    }

    /// Ends the span (its end time is now).
    pub(crate) fn end(self) {
        self.cx.span().end();
    }

    /// The W3C trace id and span id, as hex (tests).
    #[cfg(test)]
    fn ids(&self) -> (String, String) {
        let span = self.cx.span();
        let sc = span.span_context();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    }
}

/// What [`instrument`] makes of a future.
pub(crate) type Instrumented<F> =
    futures_util::future::Either<opentelemetry::context::WithContext<F>, F>;

/// Runs `fut` with `span` as the active span, so that the calls and publishes it makes are the
/// span's children.
pub(crate) fn instrument<F: Future>(span: Option<&OtelSpan>, fut: F) -> Instrumented<F> {
    use opentelemetry::context::FutureExt as _;
    match span {
        Some(span) => futures_util::future::Either::Left(fut.with_context(span.cx.clone())),
        None => futures_util::future::Either::Right(fut),
    }
}

/// Names the running HTTP request's span by its route once routing found it: `operation` is
/// `GET /items/{id}`, and `http.route` the path template. Does nothing outside an HTTP span.
#[cfg(feature = "http")]
pub(crate) fn set_http_route(operation: &str) {
    let cx = Context::current();
    let span = cx.span();
    span.update_name(operation.to_owned());
    if let Some((_, route)) = operation.split_once(' ') {
        span.set_attribute(KeyValue::new("http.route", route.to_owned()));
    }
}

/// The attributes of a message span (messaging semantic conventions, RabbitMQ).
fn messaging(exchange: &str, routing_key: &str, op_type: &str, op_name: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", SYSTEM),
        KeyValue::new("messaging.operation.type", op_type.to_owned()),
        KeyValue::new("messaging.operation.name", op_name.to_owned()),
        KeyValue::new("messaging.destination.name", exchange.to_owned()),
        KeyValue::new(
            "messaging.rabbitmq.destination.routing_key",
            routing_key.to_owned(),
        ),
    ]
}

/// The `rpc.*` attributes of a call.
fn rpc(service: &str, method: &str) -> [KeyValue; 3] {
    [
        KeyValue::new("rpc.system", RPC_SYSTEM),
        KeyValue::new("rpc.service", service.to_owned()),
        KeyValue::new("rpc.method", method.to_owned()),
    ]
}

/// The message id (`hop_id`) and flow id of an inbound message.
fn inbound_ids(headers: Option<&FieldTable>) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(2);
    if let Some(hop) = wire::header_text(headers, "hop_id") {
        out.push(KeyValue::new("messaging.message.id", hop.to_owned()));
    }
    if let Some(flow) = wire::header_text(headers, "flow_id") {
        out.push(KeyValue::new("kontiki.flow_id", flow.to_owned()));
    }
    out
}

/// The remote span context of an inbound message's `traceparent`/`tracestate`; an empty
/// context (a new trace) when there is none or it is malformed.
fn extract(headers: Option<&FieldTable>) -> Context {
    match headers {
        Some(h) => {
            TraceContextPropagator::new().extract_with_context(&Context::new(), &HeaderReader(h))
        }
        None => Context::new(),
    }
}

/// Writes trace context into AMQP headers as long strings, as Kontiki writes its own; an empty
/// value (the `tracestate` of a trace without one) is left out, as W3C trace context asks.
struct HeaderWriter<'a>(&'a mut FieldTable);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let Some(k) = wire::header_key(key) {
            self.0.insert(k, wire::header_str(value));
        }
    }
}

/// Reads trace context from AMQP headers (long or short strings; anything else is absent).
struct HeaderReader<'a>(&'a FieldTable);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        wire::header_text(Some(self.0), key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|k| k.as_str()).collect()
    }
}

/// Reads trace context from HTTP request headers.
#[cfg(feature = "http")]
struct HttpHeaders<'a>(&'a axum::http::HeaderMap);

#[cfg(feature = "http")]
impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// Whether the `OTEL_*` environment variables ask for OTLP trace export: not when
/// `OTEL_SDK_DISABLED=true`; when `OTEL_TRACES_EXPORTER` is set, only if it lists `otlp`;
/// otherwise when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn otlp_requested() -> bool {
    requested(&|name| std::env::var(name).ok())
}

fn requested(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    if let Some(exporters) = set("OTEL_TRACES_EXPORTER") {
        return exporters
            .split(',')
            .any(|e| e.trim().eq_ignore_ascii_case("otlp"));
    }
    set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
}

/// The tracer provider a service installs when [`otlp_requested`]: OTLP over HTTP with
/// protobuf (`OTEL_EXPORTER_OTLP_ENDPOINT`, default `http://localhost:4318`; `_HEADERS`,
/// `_TIMEOUT` and their `_TRACES_` forms), batched on the Tokio runtime (`OTEL_BSP_*`),
/// sampled as `OTEL_TRACES_SAMPLER`/`_ARG` say (default `parentbased_always_on`), with the
/// resource of `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`; `service.name` defaults to
/// `service_name` and `service.instance.id` to `instance_id`. `Ok(None)` when the environment
/// does not ask for export. Must be called inside a Tokio runtime.
///
/// A service calls this itself; a stand-alone [`Messenger`](crate::Messenger) takes the
/// provider through [`MessengerBuilder::tracer_provider`](crate::MessengerBuilder::tracer_provider).
pub fn tracer_provider_from_env(
    service_name: &str,
    instance_id: &str,
) -> Result<Option<SdkTracerProvider>> {
    if !otlp_requested() {
        return Ok(None);
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(p) = std::env::var(var) {
            if !p.is_empty() && p != "http/protobuf" {
                tracing::warn!(
                    variable = var,
                    protocol = %p,
                    "kontiki-rt exports traces as http/protobuf only; this protocol is ignored"
                );
            }
            break;
        }
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(|e| Error::Telemetry(Box::new(e)))?;
    let detected = opentelemetry_sdk::Resource::builder().build();
    let mut resource = opentelemetry_sdk::Resource::builder();
    let service_key = Key::from_static_str("service.name");
    let unnamed = match detected.get(&service_key) {
        Some(Value::String(s)) => s.as_str().starts_with("unknown_service"),
        _ => true,
    };
    if unnamed {
        resource = resource.with_service_name(service_name.to_owned());
    }
    if detected
        .get(&Key::from_static_str("service.instance.id"))
        .is_none()
    {
        resource =
            resource.with_attribute(KeyValue::new("service.instance.id", instance_id.to_owned()));
    }
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource.build())
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn export_is_asked_for_by_an_endpoint_or_the_exporter_list() {
        assert!(!requested(&env(&[])));
        assert!(requested(&env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:4318"
        )])));
        assert!(requested(&env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )])));
        assert!(requested(&env(&[("OTEL_TRACES_EXPORTER", "console,otlp")])));
        assert!(!requested(&env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ])));
        assert!(!requested(&env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ])));
        assert!(!requested(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
    }

    fn telemetry() -> Telemetry {
        Telemetry::new(SdkTracerProvider::builder().build(), true)
    }

    #[test]
    fn trace_context_goes_into_headers_and_comes_back_as_the_parent() {
        let t = telemetry();
        let client = t.rpc_client("svc", "m", "svc.m");
        let mut headers = FieldTable::default();
        headers.insert("hop_id".into(), wire::header_str("0123456789abcdef"));
        client.inject(&mut headers);
        let (trace_id, span_id) = client.ids();
        let tp = wire::header_text(Some(&headers), "traceparent").unwrap();
        assert_eq!(tp, format!("00-{trace_id}-{span_id}-01"));
        assert!(headers.inner().get("tracestate").is_none());
        let server = t.rpc_server(Some(&headers), "svc", "m", "svc.m", Some("cid"));
        let (server_trace, server_span) = server.ids();
        assert_eq!(server_trace, trace_id);
        assert_ne!(server_span, span_id);
        client.end();
        server.end();
    }

    #[test]
    fn tracestate_is_passed_on() {
        let t = telemetry();
        let mut inbound = FieldTable::default();
        inbound.insert(
            "traceparent".into(),
            wire::header_str("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        inbound.insert("tracestate".into(), wire::header_str("vendor=abc,other=1"));
        let server = t.rpc_server(Some(&inbound), "svc", "m", "svc.m", None);
        let mut outbound = FieldTable::default();
        server.inject(&mut outbound);
        assert_eq!(
            wire::header_text(Some(&outbound), "tracestate"),
            Some("vendor=abc,other=1")
        );
        assert!(
            wire::header_text(Some(&outbound), "traceparent")
                .unwrap()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        server.end();
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        let t = telemetry();
        for bad in [
            "",
            "garbage",
            "00-zz4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra-é",
        ] {
            let mut headers = FieldTable::default();
            headers.insert("traceparent".into(), wire::header_str(bad));
            let span = t.consumer(Some(&headers), "e", "h", "q");
            assert!(
                !extract(Some(&headers)).span().span_context().is_valid(),
                "{bad:?} was taken as a parent"
            );
            assert!(span.cx.span().span_context().is_valid());
            span.end();
        }
        // Not a string at all.
        let mut headers = FieldTable::default();
        headers.insert("traceparent".into(), lapin::types::AMQPValue::LongInt(5));
        assert!(!extract(Some(&headers)).span().span_context().is_valid());
    }
}
