//! Without the `otel` feature: types with no values, so that `Option<Telemetry>` is always
//! `None` and the span code at each entrypoint compiles away.

use lapin::types::FieldTable;
use std::future::Future;

/// No tracer: this type has no values.
#[derive(Debug, Clone)]
pub(crate) enum Telemetry {}

/// No span: this type has no values.
#[derive(Debug)]
pub(crate) enum OtelSpan {}

#[allow(
    dead_code,
    reason = "the same methods as the `otel` build; none can be called without a value"
)]
impl Telemetry {
    pub(crate) fn rpc_client(&self, _service: &str, _method: &str, _routing_key: &str) -> OtelSpan {
        match *self {}
    }
    pub(crate) fn producer(&self, _event_type: &str, _routing_key: &str) -> OtelSpan {
        match *self {}
    }
    pub(crate) fn rpc_server(
        &self,
        _headers: Option<&FieldTable>,
        _service: &str,
        _method: &str,
        _routing_key: &str,
        _correlation_id: Option<&str>,
    ) -> OtelSpan {
        match *self {}
    }
    pub(crate) fn consumer(
        &self,
        _headers: Option<&FieldTable>,
        _event_type: &str,
        _handler: &str,
        _queue: &str,
    ) -> OtelSpan {
        match *self {}
    }
    pub(crate) fn task(&self, _task: &str, _flow_id: &str) -> OtelSpan {
        match *self {}
    }
    #[cfg(feature = "http")]
    pub(crate) fn http_server(
        &self,
        _headers: &axum::http::HeaderMap,
        _method: &str,
        _path: &str,
        _flow_id: &str,
    ) -> OtelSpan {
        match *self {}
    }
    pub(crate) async fn shutdown(&self) {
        match *self {}
    }
}

#[allow(
    dead_code,
    reason = "the same methods as the `otel` build; none can be called without a value"
)]
impl OtelSpan {
    pub(crate) fn inject(&self, _headers: &mut FieldTable) {
        match *self {}
    }
    pub(crate) fn set_str(&self, _key: &'static str, _value: &str) {
        match *self {}
    }
    pub(crate) fn fail(&self, _error_type: &str, _description: &str) {
        match *self {}
    }
    pub(crate) fn end(self) {
        match self {}
    }
}

/// What [`instrument`] makes of a future: the future itself.
pub(crate) type Instrumented<F> = F;

/// Runs `fut` as it is.
pub(crate) fn instrument<F: Future>(_span: Option<&OtelSpan>, fut: F) -> Instrumented<F> {
    fut
}

/// Does nothing.
#[cfg(feature = "http")]
pub(crate) fn set_http_route(_operation: &str) {}
