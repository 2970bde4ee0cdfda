//! OpenTelemetry traces (feature `otel`): a span per RPC call (client and server), event
//! publish and handle, HTTP request and task run, with W3C `traceparent`/`tracestate` in the
//! AMQP headers, exported over OTLP/HTTP as the `OTEL_*` environment variables say
//! (docs/observability.md, "Traces").
//!
//! Without the feature, [`Telemetry`] and [`OtelSpan`] have no values: every `Option` of them
//! is `None` and the code that uses them compiles to nothing. With the feature but no exporter,
//! a service has no [`Telemetry`] either, and the hot path costs one `None` check per message.

#[cfg(feature = "otel")]
mod on;
#[cfg(all(feature = "otel", feature = "http"))]
pub(crate) use on::set_http_route;
#[cfg(feature = "otel")]
pub(crate) use on::{Instrumented, OtelSpan, Telemetry, instrument};
#[cfg(feature = "otel")]
pub use on::{otlp_requested, tracer_provider_from_env};

#[cfg(not(feature = "otel"))]
mod off;
#[cfg(all(not(feature = "otel"), feature = "http"))]
pub(crate) use off::set_http_route;
#[cfg(not(feature = "otel"))]
pub(crate) use off::{Instrumented, OtelSpan, Telemetry, instrument};
