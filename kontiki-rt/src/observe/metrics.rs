//! Prometheus metrics: what every entrypoint and client records, through the `metrics` facade,
//! and the process-wide exporter that renders them for `GET /metrics`.
//!
//! Names start with `kontiki_`, carry their unit (`_seconds`) and counters end in `_total`.
//! Labels are bounded: service, method, handler, event type, route, task and outcome (an
//! outcome is `ok`, a declared error code, or one of a few fixed words), never an id or a
//! user value. Without the `metrics` cargo feature every function here is empty; with it and
//! `kontiki.metrics.enabled: false` no exporter is installed and the facade drops everything.

use std::time::Duration;

/// The histogram buckets of every `_seconds` metric: 0.5 ms to 10 s.
#[cfg(feature = "metrics")]
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide exporter, installed by the first service that starts with metrics on.
#[cfg(feature = "metrics")]
static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls return the same
/// answer). `false` when another recorder was installed first: then kontiki-rt's metrics go to
/// that one and `/metrics` says so.
pub(crate) fn install() -> bool {
    #[cfg(feature = "metrics")]
    {
        HANDLE
            .get_or_init(|| {
                let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("_seconds".to_owned()),
                        BUCKETS,
                    );
                let recorder = match builder {
                    Ok(b) => b.build_recorder(),
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: could not configure the exporter");
                        return None;
                    }
                };
                let handle = recorder.handle();
                if let Err(e) = metrics::set_global_recorder(recorder) {
                    tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics stays empty");
                    return None;
                }
                describe();
                // Histograms keep their samples until upkeep folds them into buckets.
                let upkeep = handle.clone();
                std::thread::Builder::new()
                    .name("kontiki-metrics-upkeep".to_owned())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        }
                    })
                    .map_err(|e| tracing::warn!(error = %e, "metrics: no upkeep thread"))
                    .ok();
                Some(handle)
            })
            .is_some()
    }
    #[cfg(not(feature = "metrics"))]
    {
        false
    }
}

/// The HELP text and unit of every metric (Prometheus tools want both).
#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "kontiki_rpc_server_requests_total",
        Unit::Count,
        "RPC requests a service answered, by method and outcome (ok, a declared error code, internal)"
    );
    describe_histogram!(
        "kontiki_rpc_server_duration_seconds",
        Unit::Seconds,
        "Time from taking an RPC request to acking it, reply sent"
    );
    describe_gauge!(
        "kontiki_rpc_server_in_flight",
        Unit::Count,
        "RPC requests being handled now"
    );
    describe_counter!(
        "kontiki_rpc_client_calls_total",
        Unit::Count,
        "Calls made through a Messenger, by called service, method and outcome (ok, error code, internal, timeout, unknown_service, connection_lost, error)"
    );
    describe_histogram!(
        "kontiki_rpc_client_duration_seconds",
        Unit::Seconds,
        "Time a caller waited for a call's reply"
    );
    describe_counter!(
        "kontiki_event_handled_total",
        Unit::Count,
        "Event deliveries settled, by handler, event type and outcome (ok, retried, dead_lettered)"
    );
    describe_histogram!(
        "kontiki_event_handle_duration_seconds",
        Unit::Seconds,
        "Time an event handler took, settlement included"
    );
    describe_counter!(
        "kontiki_event_redelivered_total",
        Unit::Count,
        "Event deliveries the broker marked redelivered"
    );
    describe_gauge!(
        "kontiki_event_in_flight",
        Unit::Count,
        "Event deliveries being handled now"
    );
    describe_counter!(
        "kontiki_events_published_total",
        Unit::Count,
        "Events published, by event type and outcome (confirmed, unroutable, failed)"
    );
    describe_counter!(
        "kontiki_task_runs_total",
        Unit::Count,
        "Periodic task runs, by task and outcome (ok, error)"
    );
    describe_histogram!(
        "kontiki_task_duration_seconds",
        Unit::Seconds,
        "Time a periodic task run took"
    );
    describe_counter!(
        "kontiki_http_requests_total",
        Unit::Count,
        "HTTP requests answered by a declared route, by route template and status"
    );
    describe_histogram!(
        "kontiki_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request of a declared route"
    );
    describe_counter!(
        "kontiki_connection_reconnects_total",
        Unit::Count,
        "Broker connections made again after a loss"
    );
}

/// The exposition text (Prometheus text format 0.0.4), or `None` when no exporter of ours is
/// installed.
#[cfg(feature = "http")]
pub(crate) fn render() -> Option<String> {
    #[cfg(feature = "metrics")]
    {
        HANDLE.get().and_then(Option::as_ref).map(|h| {
            h.run_upkeep();
            h.render()
        })
    }
    #[cfg(not(feature = "metrics"))]
    {
        None
    }
}

/// The outcome label of an RPC reply envelope: `ok`, the client error code, or `internal`.
pub(crate) fn rpc_outcome(envelope: &crate::transport::wire::Envelope) -> &str {
    use crate::transport::wire::ErrorType;
    match envelope.error_type {
        _ if envelope.success => "ok",
        ErrorType::Client => envelope.error_code.as_deref().unwrap_or("client_error"),
        ErrorType::Server | ErrorType::None => "internal",
    }
}

/// One RPC request served: `kontiki_rpc_server_requests_total` and
/// `kontiki_rpc_server_duration_seconds`.
pub(crate) fn rpc_served(service: &str, method: &str, outcome: &str, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("service", service.to_owned()),
            ("method", method.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        metrics::counter!("kontiki_rpc_server_requests_total", &labels).increment(1);
        metrics::histogram!("kontiki_rpc_server_duration_seconds", &labels[..2])
            .record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (service, method, outcome, elapsed);
}

/// A handler started (`delta` 1) or ended (`delta` -1): `kontiki_<kind>_in_flight`.
pub(crate) fn in_flight(kind: InFlight, service: &str, name: &str, delta: f64) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("service", service.to_owned()),
            (kind.label(), name.to_owned()),
        ];
        metrics::gauge!(kind.metric(), &labels).increment(delta);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (kind, service, name, delta);
}

/// What an in-flight gauge counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InFlight {
    /// RPC requests being handled (`kontiki_rpc_server_in_flight{method}`).
    Rpc,
    /// Event deliveries being handled (`kontiki_event_in_flight{handler}`).
    Event,
}

impl InFlight {
    #[cfg(feature = "metrics")]
    fn metric(self) -> &'static str {
        match self {
            InFlight::Rpc => "kontiki_rpc_server_in_flight",
            InFlight::Event => "kontiki_event_in_flight",
        }
    }

    #[cfg(feature = "metrics")]
    fn label(self) -> &'static str {
        match self {
            InFlight::Rpc => "method",
            InFlight::Event => "handler",
        }
    }
}

/// One event delivery settled: `kontiki_event_handled_total{outcome=ok|retried|dead_lettered}`,
/// `kontiki_event_handle_duration_seconds`, and `kontiki_event_redelivered_total` when the
/// broker marked it redelivered.
pub(crate) fn event_handled(
    service: &str,
    handler: &str,
    event_type: &str,
    settled: super::EventSettled,
    redelivered: bool,
    elapsed: Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match settled {
            super::EventSettled::Acked => "ok",
            super::EventSettled::Requeued => "retried",
            super::EventSettled::Rejected => "dead_lettered",
        };
        let labels = [
            ("service", service.to_owned()),
            ("handler", handler.to_owned()),
            ("event_type", event_type.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        metrics::counter!("kontiki_event_handled_total", &labels).increment(1);
        metrics::histogram!("kontiki_event_handle_duration_seconds", &labels[..3])
            .record(elapsed.as_secs_f64());
        if redelivered {
            metrics::counter!("kontiki_event_redelivered_total", &labels[..3]).increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (service, handler, event_type, settled, redelivered, elapsed);
}

/// One task run: `kontiki_task_runs_total{outcome=ok|error}` and
/// `kontiki_task_duration_seconds`.
pub(crate) fn task_ran(service: &str, task: &str, ok: bool, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        let outcome = if ok { "ok" } else { "error" };
        let labels = [
            ("service", service.to_owned()),
            ("task", task.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        metrics::counter!("kontiki_task_runs_total", &labels).increment(1);
        metrics::histogram!("kontiki_task_duration_seconds", &labels[..2])
            .record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (service, task, ok, elapsed);
}

/// The outcome label of a call as its caller saw it.
pub(crate) fn call_outcome(result: &Result<serde_json::Value, crate::error::RpcError>) -> &str {
    use crate::error::RpcError;
    match result {
        Ok(_) => "ok",
        Err(e) => match e {
            RpcError::Timeout { .. } => "timeout",
            RpcError::UnknownService { .. } => "unknown_service",
            RpcError::ConnectionLost { .. } => "connection_lost",
            _ => e
                .client_code()
                .or_else(|| e.remote_code())
                .unwrap_or("error"),
        },
    }
}

/// One call made through a Messenger: `kontiki_rpc_client_calls_total` and
/// `kontiki_rpc_client_duration_seconds`, labelled by the calling and the called service.
pub(crate) fn rpc_called(
    service: &str,
    target: &str,
    method: &str,
    outcome: &str,
    elapsed: Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("service", service.to_owned()),
            ("target_service", target.to_owned()),
            ("method", method.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        metrics::counter!("kontiki_rpc_client_calls_total", &labels).increment(1);
        metrics::histogram!("kontiki_rpc_client_duration_seconds", &labels[..3])
            .record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (service, target, method, outcome, elapsed);
}

/// One event publish ended: `kontiki_events_published_total{outcome=confirmed|unroutable|failed}`.
pub(crate) fn event_published(service: &str, event_type: &str, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(
            "kontiki_events_published_total",
            "service" => service.to_owned(),
            "event_type" => event_type.to_owned(),
            "outcome" => outcome,
        )
        .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (service, event_type, outcome);
}

/// One HTTP request answered: `kontiki_http_requests_total{route, status}` and
/// `kontiki_http_request_duration_seconds{route}`. `route` is the declared path template
/// (`GET /items/{id}`), never the requested path.
#[cfg(feature = "http")]
pub(crate) fn http_served(service: &str, route: &str, status: u16, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("service", service.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        metrics::counter!("kontiki_http_requests_total", &labels).increment(1);
        metrics::histogram!("kontiki_http_request_duration_seconds", &labels[..2])
            .record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (service, route, status, elapsed);
}
