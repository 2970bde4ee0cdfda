//! Prometheus metrics: what every entrypoint and client records, through the `metrics` facade,
//! and the process-wide exporter that renders them for `GET /metrics`.
//!
//! Names start with `kontiki_`, carry their unit (`_seconds`) and counters end in `_total`.
//! Labels are bounded: service, method, handler, event type, route, task and outcome (an
//! outcome is `ok`, a declared error code, or one of a few fixed words), never an id or a
//! user value. Without the `metrics` cargo feature every function here is empty; with it and
//! `kontiki.metrics.enabled: false` no exporter is installed and the facade drops everything.

use std::time::Duration;

#[cfg(feature = "metrics")]
use super::BUCKET_NANOS;

/// [`BUCKET_NANOS`] in seconds, for the exporter.
#[cfg(feature = "metrics")]
const BUCKETS: [f64; BUCKET_NANOS.len()] = {
    let mut seconds = [0.0; BUCKET_NANOS.len()];
    let mut i = 0;
    while i < BUCKET_NANOS.len() {
        seconds[i] = BUCKET_NANOS[i] as f64 / 1e9;
        i += 1;
    }
    seconds
};

/// A histogram family: its name and what its `HELP` line says.
#[cfg(feature = "metrics")]
#[derive(Debug, Clone, Copy)]
struct Family {
    name: &'static str,
    help: &'static str,
}

/// The duration histograms of the hot paths, rendered from per-thread tallies when
/// kontiki-rt's exporter is the recorder (`sharded`).
#[cfg(feature = "metrics")]
const RPC_SERVER_DURATION: Family = Family {
    name: "kontiki_rpc_server_duration_seconds",
    help: "Time from taking an RPC request to acking it, reply sent",
};
#[cfg(feature = "metrics")]
const RPC_CLIENT_DURATION: Family = Family {
    name: "kontiki_rpc_client_duration_seconds",
    help: "Time a caller waited for a call's reply",
};
#[cfg(feature = "metrics")]
const EVENT_DURATION: Family = Family {
    name: "kontiki_event_handle_duration_seconds",
    help: "Time an event handler took, settlement included",
};
#[cfg(all(feature = "http", feature = "metrics"))]
const HTTP_DURATION: Family = Family {
    name: "kontiki_http_request_duration_seconds",
    help: "Time to answer an HTTP request of a declared route",
};

#[cfg(all(feature = "http", feature = "metrics"))]
use super::sharded::{Flush, Tallies};
#[cfg(feature = "metrics")]
use std::sync::Arc;

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
                        &BUCKETS,
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
        "RPC requests a service answered, by method and outcome (ok, a declared error code, internal, timeout)"
    );
    for family in [RPC_SERVER_DURATION, RPC_CLIENT_DURATION, EVENT_DURATION] {
        describe_histogram!(family.name, Unit::Seconds, family.help);
    }
    #[cfg(feature = "http")]
    describe_histogram!(HTTP_DURATION.name, Unit::Seconds, HTTP_DURATION.help);
    describe_gauge!(
        "kontiki_rpc_server_in_flight",
        Unit::Count,
        "RPC requests being handled now"
    );
    describe_counter!(
        "kontiki_rpc_server_deduplicated_total",
        Unit::Count,
        "RPC requests seen again within the dedup window, answered with the first run's reply"
    );
    describe_counter!(
        "kontiki_rpc_client_calls_total",
        Unit::Count,
        "Calls made through a Messenger, by called service, method and outcome (ok, error code, internal, timeout, unknown_service, connection_lost, error)"
    );
    describe_counter!(
        "kontiki_event_handled_total",
        Unit::Count,
        "Event deliveries settled, by handler, event type and outcome (ok, retried, dead_lettered)"
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
            super::sharded::flush_all();
            h.run_upkeep();
            let mut text = h.render();
            super::sharded::render_all(&mut text);
            text
        })
    }
    #[cfg(not(feature = "metrics"))]
    {
        None
    }
}

/// The outcome label of an RPC reply envelope: `ok`, the client error code, or `internal`.
#[cfg(feature = "metrics")]
fn rpc_outcome(envelope: &crate::transport::wire::Envelope) -> &str {
    use crate::transport::wire::ErrorType;
    match envelope.error_type {
        _ if envelope.success => "ok",
        ErrorType::Client => envelope.error_code.as_deref().unwrap_or("client_error"),
        ErrorType::Server | ErrorType::None => "internal",
    }
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
#[cfg(feature = "metrics")]
fn call_outcome(result: &Result<serde_json::Value, crate::error::RpcError>) -> &str {
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

/// Whether kontiki-rt's exporter is the facade's recorder (which renders `/metrics`, served
/// with the `http` feature only).
#[cfg(feature = "metrics")]
fn own_exporter() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// `labels` as the Prometheus text writes them: `service="a",method="b"`.
#[cfg(all(feature = "http", feature = "metrics"))]
fn rendered_labels(labels: &[(&'static str, String)]) -> String {
    use metrics_exporter_prometheus::formatting::sanitize_label_value;
    let mut out = String::new();
    for (key, value) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        out.push_str(&sanitize_label_value(value));
        out.push('"');
    }
    out
}

/// One series of a duration histogram on a hot path. With kontiki-rt's exporter, each thread
/// tallies its samples apart and `/metrics` renders the series from the tallies (`sharded`):
/// no sample list shared by every request. With another recorder, samples go to the facade as
/// they come.
#[cfg(feature = "metrics")]
#[derive(Debug)]
enum Timing {
    Facade(metrics::Histogram),
    #[cfg(feature = "http")]
    Tallied(Arc<TalliedSeries>),
}

#[cfg(all(feature = "http", feature = "metrics"))]
#[derive(Debug)]
struct TalliedSeries {
    family: Family,
    /// The labels, written.
    labels: String,
    tallies: Tallies<0>,
}

#[cfg(all(feature = "http", feature = "metrics"))]
impl Flush for TalliedSeries {
    fn flush(&self) {}

    fn family(&self) -> (&'static str, &'static str) {
        (self.family.name, self.family.help)
    }

    fn render(&self, out: &mut String) {
        let (counts, sum) = self.tallies.read_durations();
        super::sharded::write_histogram(out, self.family.name, &self.labels, &counts, sum);
    }
}

/// The tallied series made so far, by key: two instances of one service in a process (same
/// service name, same labels) share a series, as they share a histogram of the exporter's.
#[cfg(all(feature = "http", feature = "metrics"))]
type Made<K, T> = std::sync::Mutex<std::collections::BTreeMap<K, std::sync::Weak<T>>>;

/// The series of `key` in `made`, or a new one from `make`, registered for rendering (and,
/// when it `flushes`, for the flushes).
#[cfg(all(feature = "http", feature = "metrics"))]
fn shared<K: Ord, T: Flush + 'static>(
    made: &Made<K, T>,
    key: K,
    flushes: bool,
    make: impl FnOnce() -> T,
) -> Arc<T> {
    let mut made = made
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(it) = made.get(&key).and_then(std::sync::Weak::upgrade) {
        return it;
    }
    let it = Arc::new(make());
    let registered: Arc<dyn Flush> = it.clone();
    super::sharded::register(&registered, flushes);
    // Series of stopped services are forgotten (a service starts with all of its series).
    made.retain(|_, series| series.strong_count() > 0);
    made.insert(key, Arc::downgrade(&it));
    it
}

#[cfg(feature = "metrics")]
impl Timing {
    /// The series of `family` with `labels`: tallied when kontiki-rt's exporter renders it.
    fn new(family: Family, labels: &[(&'static str, String)]) -> Self {
        Self::with(family, labels, own_exporter())
    }

    /// The series of `family` with `labels`, tallied when `tallied` (and `/metrics` is served).
    fn with(family: Family, labels: &[(&'static str, String)], tallied: bool) -> Self {
        #[cfg(feature = "http")]
        if tallied {
            static MADE: Made<(&str, String), TalliedSeries> =
                std::sync::Mutex::new(std::collections::BTreeMap::new());
            let written = rendered_labels(labels);
            let key = (family.name, written.clone());
            return Self::Tallied(shared(&MADE, key, false, || TalliedSeries {
                family,
                labels: written,
                tallies: Tallies::new(),
            }));
        }
        #[cfg(not(feature = "http"))]
        let _ = tallied;
        Self::Facade(metrics::histogram!(family.name, labels))
    }

    fn record(&self, elapsed: Duration) {
        match self {
            Self::Facade(h) => h.record(elapsed.as_secs_f64()),
            #[cfg(feature = "http")]
            Self::Tallied(series) => series
                .tallies
                .add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), None),
        }
    }
}

/// The handles of one HTTP route's metrics: `kontiki_http_requests_total{route, status}` and
/// `kontiki_http_request_duration_seconds{route}`, where `route` is the declared path template
/// (`GET /items/{id}`), never the requested path. Registered when the router is built, so
/// answering a request only bumps atomics (a status's counter is registered on its first
/// answer).
#[cfg(feature = "http")]
#[derive(Debug)]
pub(crate) struct HttpRouteMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<Arc<HttpHandles>>,
}

/// How many statuses of a route have a counter read without a lock.
#[cfg(all(feature = "http", feature = "metrics"))]
const STATUS_SLOTS: usize = 8;

#[cfg(all(feature = "http", feature = "metrics"))]
#[derive(Debug)]
struct HttpHandles {
    labels: [(&'static str, String); 2],
    /// The duration histogram, when the facade records it (another recorder than
    /// kontiki-rt's exporter); with the exporter, the durations are rendered from `tallies`.
    duration: Option<metrics::Histogram>,
    /// The labels as the rendered text writes them, when `duration` is none.
    rendered_labels: String,
    /// The counters of the first statuses answered, filled in order (under `more`'s lock) and
    /// read without a lock: requests on every worker read them at once, and even a read lock
    /// is a write to memory they all share.
    statuses: [std::sync::OnceLock<(u16, metrics::Counter)>; STATUS_SLOTS],
    /// The counters of further statuses.
    more: std::sync::Mutex<Vec<(u16, metrics::Counter)>>,
    /// Durations and answers per status slot, per thread, until flushed (`sharded`).
    tallies: Tallies<STATUS_SLOTS>,
}

#[cfg(all(feature = "http", feature = "metrics"))]
impl Flush for HttpHandles {
    fn flush(&self) {
        if let Some(duration) = &self.duration {
            self.tallies
                .take_durations(|batch| duration.record_many(batch.mean_seconds, batch.count));
        }
        self.tallies.take_statuses(|slot, n| {
            if let Some((_, counter)) = self.statuses[slot].get() {
                counter.increment(n);
            }
        });
    }

    fn family(&self) -> (&'static str, &'static str) {
        (HTTP_DURATION.name, HTTP_DURATION.help)
    }

    fn render(&self, out: &mut String) {
        if self.duration.is_none() {
            let (counts, sum) = self.tallies.read_durations();
            super::sharded::write_histogram(
                out,
                HTTP_DURATION.name,
                &self.rendered_labels,
                &counts,
                sum,
            );
        }
    }
}

#[cfg(feature = "http")]
impl Drop for HttpRouteMetrics {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.flush();
        }
    }
}

#[cfg(feature = "http")]
impl HttpRouteMetrics {
    /// Registers the handles of `route` (`GET /items/{id}`), or none when `on` is false.
    pub(crate) fn new(on: bool, service: &str, route: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            Self::with_recorder(on, !own_exporter(), service, route)
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (on, service, route);
            Self {}
        }
    }

    /// [`new`](Self::new), with durations recorded through the facade (`facade`) or kept for
    /// kontiki-rt's exporter to render ([`render`]): on a busy route, the exporter's histogram
    /// takes a lock-free push of every sample, which costs more than the request's own tally.
    #[cfg(feature = "metrics")]
    fn with_recorder(on: bool, facade: bool, service: &str, route: &str) -> Self {
        static MADE: Made<(bool, String), HttpHandles> =
            std::sync::Mutex::new(std::collections::BTreeMap::new());
        let handles = on.then(|| {
            let labels = [("service", service.to_owned()), ("route", route.to_owned())];
            let written = rendered_labels(&labels);
            shared(&MADE, (facade, written.clone()), true, || HttpHandles {
                duration: facade.then(|| metrics::histogram!(HTTP_DURATION.name, &labels)),
                rendered_labels: written,
                statuses: [const { std::sync::OnceLock::new() }; STATUS_SLOTS],
                more: std::sync::Mutex::new(Vec::new()),
                labels,
                tallies: Tallies::new(),
            })
        });
        Self { handles }
    }

    /// Whether requests are recorded: when not, the caller need not time them.
    pub(crate) fn is_on(&self) -> bool {
        #[cfg(feature = "metrics")]
        {
            self.handles.is_some()
        }
        #[cfg(not(feature = "metrics"))]
        {
            false
        }
    }

    /// A request was answered with `status` after `elapsed`.
    pub(crate) fn served(&self, status: u16, elapsed: Duration) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            // The first statuses answered are tallied with the duration, on this thread's
            // shard; the rest are counted here.
            let slot = h
                .statuses
                .iter()
                .map_while(std::sync::OnceLock::get)
                .position(|(s, _)| *s == status);
            let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            h.tallies.add(nanos, slot);
            if slot.is_some() {
                return;
            }
            let known = |status| {
                h.statuses
                    .iter()
                    .map_while(std::sync::OnceLock::get)
                    .find(|(s, _)| *s == status)
                    .map(|(_, c)| c)
            };
            let mut more = h
                .more
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Another request may have registered it meanwhile.
            if let Some(c) =
                known(status).or_else(|| more.iter().find(|(s, _)| *s == status).map(|(_, c)| c))
            {
                c.increment(1);
                return;
            }
            let mut l = h.labels.to_vec();
            l.push(("status", status.to_string()));
            let c = metrics::counter!("kontiki_http_requests_total", &l);
            c.increment(1);
            match h.statuses.iter().find(|slot| slot.get().is_none()) {
                // Only this lock's holder sets a slot: it is still empty.
                Some(slot) => {
                    let _ = slot.set((status, c));
                }
                None => more.push((status, c)),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (status, elapsed);
    }
}

/// The handles of one RPC method's server-side metrics, registered once when the service
/// starts, so answering a request only bumps atomics (an error code's counter is registered on
/// its first use).
#[derive(Debug)]
pub(crate) struct RpcServerMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<RpcHandles>,
    stats: std::sync::Arc<super::stats::InstanceStats>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct RpcHandles {
    labels: [(&'static str, String); 2],
    ok: metrics::Counter,
    internal: metrics::Counter,
    timeout: metrics::Counter,
    codes: std::sync::Mutex<Vec<(String, metrics::Counter)>>,
    duration: Timing,
    in_flight: metrics::Gauge,
}

impl RpcServerMetrics {
    /// Registers the handles, or none when `on` is false; `stats` counts always.
    pub(crate) fn new(
        on: bool,
        service: &str,
        method: &str,
        stats: std::sync::Arc<super::stats::InstanceStats>,
    ) -> Self {
        #[cfg(feature = "metrics")]
        {
            let handles = on.then(|| {
                let labels = [
                    ("service", service.to_owned()),
                    ("method", method.to_owned()),
                ];
                let with = |outcome: &str| {
                    let mut l = labels.to_vec();
                    l.push(("outcome", outcome.to_owned()));
                    metrics::counter!("kontiki_rpc_server_requests_total", &l)
                };
                RpcHandles {
                    ok: with("ok"),
                    internal: with("internal"),
                    timeout: with("timeout"),
                    codes: std::sync::Mutex::new(Vec::new()),
                    duration: Timing::new(RPC_SERVER_DURATION, &labels),
                    in_flight: metrics::gauge!("kontiki_rpc_server_in_flight", &labels),
                    labels,
                }
            });
            Self { handles, stats }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (on, service, method);
            Self { stats }
        }
    }

    /// A request is being handled.
    pub(crate) fn started(&self) {
        self.stats.started();
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.in_flight.increment(1.0);
        }
    }

    /// The request was answered with `envelope` after `elapsed`; `timed_out`: its handler
    /// ran out of time (outcome `timeout`).
    pub(crate) fn answered(
        &self,
        envelope: &crate::transport::wire::Envelope,
        timed_out: bool,
        elapsed: Duration,
    ) {
        use super::stats::RpcOutcome;
        let outcome = if envelope.success && !timed_out {
            RpcOutcome::Ok
        } else if !timed_out && envelope.error_type == crate::transport::wire::ErrorType::Client {
            RpcOutcome::Declared
        } else {
            RpcOutcome::Failed
        };
        self.stats.rpc_answered(outcome, elapsed);
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.in_flight.decrement(1.0);
            h.duration.record(elapsed);
            if timed_out {
                h.timeout.increment(1);
                return;
            }
            match rpc_outcome(envelope) {
                "ok" => h.ok.increment(1),
                "internal" => h.internal.increment(1),
                code => {
                    let mut codes = h
                        .codes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some((_, c)) = codes.iter().find(|(c, _)| c == code) {
                        c.increment(1);
                    } else {
                        let mut l = h.labels.to_vec();
                        l.push(("outcome", code.to_owned()));
                        let c = metrics::counter!("kontiki_rpc_server_requests_total", &l);
                        c.increment(1);
                        codes.push((code.to_owned(), c));
                    }
                }
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (envelope, timed_out, elapsed);
    }
}

/// The handles of one event route's metrics (handler and event type), registered once.
#[derive(Debug)]
pub(crate) struct EventMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<EventHandles>,
    stats: std::sync::Arc<super::stats::InstanceStats>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct EventHandles {
    ok: metrics::Counter,
    retried: metrics::Counter,
    dead_lettered: metrics::Counter,
    redelivered: metrics::Counter,
    duration: Timing,
    in_flight: metrics::Gauge,
}

impl EventMetrics {
    /// Registers the handles, or none when `on` is false; `stats` counts always.
    pub(crate) fn new(
        on: bool,
        service: &str,
        handler: &str,
        event_type: &str,
        stats: std::sync::Arc<super::stats::InstanceStats>,
    ) -> Self {
        #[cfg(feature = "metrics")]
        {
            let handles = on.then(|| {
                let labels = [
                    ("service", service.to_owned()),
                    ("handler", handler.to_owned()),
                    ("event_type", event_type.to_owned()),
                ];
                let with = |outcome: &str| {
                    let mut l = labels.to_vec();
                    l.push(("outcome", outcome.to_owned()));
                    metrics::counter!("kontiki_event_handled_total", &l)
                };
                EventHandles {
                    ok: with("ok"),
                    retried: with("retried"),
                    dead_lettered: with("dead_lettered"),
                    redelivered: metrics::counter!("kontiki_event_redelivered_total", &labels),
                    duration: Timing::new(EVENT_DURATION, &labels),
                    in_flight: metrics::gauge!(
                        "kontiki_event_in_flight",
                        "service" => service.to_owned(),
                        "handler" => handler.to_owned()
                    ),
                }
            });
            Self { handles, stats }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (on, service, handler, event_type);
            Self { stats }
        }
    }

    /// A delivery is being handled.
    pub(crate) fn started(&self) {
        self.stats.started();
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.in_flight.increment(1.0);
        }
    }

    /// The delivery was settled after `elapsed`.
    pub(crate) fn settled(
        &self,
        settled: super::EventSettled,
        redelivered: bool,
        elapsed: Duration,
    ) {
        self.stats.event_settled(settled);
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.in_flight.decrement(1.0);
            h.duration.record(elapsed);
            match settled {
                super::EventSettled::Acked => h.ok.increment(1),
                super::EventSettled::Requeued => h.retried.increment(1),
                super::EventSettled::Rejected => h.dead_lettered.increment(1),
            }
            if redelivered {
                h.redelivered.increment(1);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (settled, redelivered, elapsed);
    }
}

/// The handles of a Messenger's client-side metrics, registered on the first call to each
/// (service, method) and the first publish of each event type; later calls only bump atomics.
#[derive(Debug, Default)]
pub(crate) struct MessengerMetrics {
    #[cfg(feature = "metrics")]
    calls: std::sync::RwLock<
        crate::transport::FastMap<
            String,
            crate::transport::FastMap<String, std::sync::Arc<CallHandles>>,
        >,
    >,
    #[cfg(feature = "metrics")]
    publishes: std::sync::RwLock<crate::transport::FastMap<String, std::sync::Arc<PublishHandles>>>,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct CallHandles {
    labels: [(&'static str, String); 3],
    ok: metrics::Counter,
    others: std::sync::Mutex<Vec<(String, metrics::Counter)>>,
    duration: Timing,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct PublishHandles {
    confirmed: metrics::Counter,
    unroutable: metrics::Counter,
    failed: metrics::Counter,
}

impl MessengerMetrics {
    /// A call by `service` to `target.method` ended with `result` after `elapsed`.
    pub(crate) fn called(
        &self,
        service: &str,
        target: &str,
        method: &str,
        result: &Result<serde_json::Value, crate::error::RpcError>,
        elapsed: Duration,
    ) {
        #[cfg(feature = "metrics")]
        {
            let cached = self
                .calls
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(target)
                .and_then(|m| m.get(method))
                .cloned();
            let h = cached.unwrap_or_else(|| {
                let labels = [
                    ("service", service.to_owned()),
                    ("target_service", target.to_owned()),
                    ("method", method.to_owned()),
                ];
                let mut ok = labels.to_vec();
                ok.push(("outcome", "ok".to_owned()));
                let h = std::sync::Arc::new(CallHandles {
                    ok: metrics::counter!("kontiki_rpc_client_calls_total", &ok),
                    others: std::sync::Mutex::new(Vec::new()),
                    duration: Timing::new(RPC_CLIENT_DURATION, &labels),
                    labels,
                });
                self.calls
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(target.to_owned())
                    .or_default()
                    .entry(method.to_owned())
                    .or_insert(h)
                    .clone()
            });
            h.duration.record(elapsed);
            match call_outcome(result) {
                "ok" => h.ok.increment(1),
                outcome => {
                    let mut others = h
                        .others
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some((_, c)) = others.iter().find(|(o, _)| o == outcome) {
                        c.increment(1);
                    } else {
                        let mut l = h.labels.to_vec();
                        l.push(("outcome", outcome.to_owned()));
                        let c = metrics::counter!("kontiki_rpc_client_calls_total", &l);
                        c.increment(1);
                        others.push((outcome.to_owned(), c));
                    }
                }
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (service, target, method, result, elapsed);
    }

    /// A publish by `service` of `event_type` ended: `confirmed`, `unroutable` or `failed`.
    pub(crate) fn published(&self, service: &str, event_type: &str, outcome: &'static str) {
        #[cfg(feature = "metrics")]
        {
            let cached = self
                .publishes
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(event_type)
                .cloned();
            let h = cached.unwrap_or_else(|| {
                let with = |o: &'static str| {
                    metrics::counter!(
                        "kontiki_events_published_total",
                        "service" => service.to_owned(),
                        "event_type" => event_type.to_owned(),
                        "outcome" => o,
                    )
                };
                let h = std::sync::Arc::new(PublishHandles {
                    confirmed: with("confirmed"),
                    unroutable: with("unroutable"),
                    failed: with("failed"),
                });
                self.publishes
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(event_type.to_owned())
                    .or_insert(h)
                    .clone()
            });
            match outcome {
                "confirmed" => h.confirmed.increment(1),
                "unroutable" => h.unroutable.increment(1),
                _ => h.failed.increment(1),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (service, event_type, outcome);
    }
}

#[cfg(all(test, feature = "http", feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn each_status_of_a_route_counts_apart_past_the_lock_free_slots() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let m = HttpRouteMetrics::with_recorder(true, true, "svc", "GET /x");
            assert!(m.is_on());
            // More statuses than slots; each answered as often as its rank.
            for (rank, status) in (200..200 + STATUS_SLOTS as u16 + 3).enumerate() {
                for _ in 0..=rank {
                    m.served(status, Duration::from_millis(1));
                }
            }
        });
        let text = handle.render();
        for (rank, status) in (200..200 + STATUS_SLOTS as u16 + 3).enumerate() {
            let line = format!(
                "kontiki_http_requests_total{{service=\"svc\",route=\"GET /x\",status=\"{status}\"}} {}",
                rank + 1
            );
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        assert!(
            text.contains(
                r#"kontiki_http_request_duration_seconds_count{service="svc",route="GET /x"} 66"#
            ),
            "{text}"
        );
        assert!(!HttpRouteMetrics::new(false, "svc", "GET /x").is_on());
    }

    #[test]
    fn buckets_are_half_a_millisecond_to_ten_seconds() {
        assert_eq!(
            BUCKETS,
            [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0
            ]
        );
    }

    #[test]
    fn with_our_exporter_a_route_renders_its_durations_itself() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut own = String::new();
        metrics::with_local_recorder(&recorder, || {
            let m = HttpRouteMetrics::with_recorder(true, false, "s\"v", "GET /x");
            for ms in [1, 2, 3, 20_000] {
                m.served(200, Duration::from_millis(ms));
            }
            let h = m.handles.as_ref().unwrap();
            h.flush();
            h.render(&mut own);
        });
        let labels = r#"service="s\"v",route="GET /x""#;
        let name = HTTP_DURATION.name;
        for line in [
            format!("{name}_bucket{{{labels},le=\"0.001\"}} 1\n"),
            format!("{name}_bucket{{{labels},le=\"0.0025\"}} 2\n"),
            format!("{name}_bucket{{{labels},le=\"10\"}} 3\n"),
            format!("{name}_bucket{{{labels},le=\"+Inf\"}} 4\n"),
            format!("{name}_sum{{{labels}}} 20.006\n"),
            format!("{name}_count{{{labels}}} 4\n"),
        ] {
            assert!(own.contains(&line), "{line} in:\n{own}");
        }
        // The exporter has the counter, and no histogram of its own for the route.
        let text = handle.render();
        assert!(
            text.contains(
                r#"kontiki_http_requests_total{service="s\"v",route="GET /x",status="200"} 4"#
            ),
            "{text}"
        );
        assert!(!text.contains(name), "{text}");
    }

    #[test]
    fn a_tallied_series_renders_in_its_family_until_dropped() {
        let labels = [
            ("service", "tallied".to_owned()),
            ("method", "m\"1".to_owned()),
        ];
        let timing = Timing::with(RPC_SERVER_DURATION, &labels, true);
        let other = Timing::with(
            RPC_SERVER_DURATION,
            &[
                ("service", "tallied".to_owned()),
                ("method", "m2".to_owned()),
            ],
            true,
        );
        for ms in [1, 2, 3] {
            timing.record(Duration::from_millis(ms));
        }
        other.record(Duration::from_secs(60));
        let mut text = String::new();
        super::super::sharded::render_all(&mut text);
        let name = RPC_SERVER_DURATION.name;
        let written = r#"service="tallied",method="m\"1""#;
        for line in [
            format!(
                "# HELP {name} {}\n# TYPE {name} histogram\n",
                RPC_SERVER_DURATION.help
            ),
            format!("{name}_bucket{{{written},le=\"0.001\"}} 1\n"),
            format!("{name}_bucket{{{written},le=\"0.0025\"}} 2\n"),
            format!("{name}_bucket{{{written},le=\"+Inf\"}} 3\n"),
            format!("{name}_sum{{{written}}} 0.006\n"),
            format!("{name}_count{{{written}}} 3\n"),
            format!("{name}_bucket{{service=\"tallied\",method=\"m2\",le=\"10\"}} 0\n"),
            format!("{name}_count{{service=\"tallied\",method=\"m2\"}} 1\n"),
        ] {
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        // One family header for both series.
        assert_eq!(
            text.matches(&format!("# TYPE {name} ")).count(),
            1,
            "{text}"
        );
        drop(timing);
        let mut text = String::new();
        super::super::sharded::render_all(&mut text);
        assert!(!text.contains(written), "{text}");
        assert!(text.contains(r#"method="m2""#), "{text}");
    }

    #[test]
    fn two_instances_of_a_service_share_their_series() {
        let labels = [("service", "twice".to_owned()), ("method", "m".to_owned())];
        let a = Timing::with(RPC_CLIENT_DURATION, &labels, true);
        let b = Timing::with(RPC_CLIENT_DURATION, &labels, true);
        let (Timing::Tallied(sa), Timing::Tallied(sb)) = (&a, &b) else {
            panic!("both tallied");
        };
        assert!(Arc::ptr_eq(sa, sb));
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(1));
        let routes = [
            HttpRouteMetrics::with_recorder(true, false, "twice", "GET /y"),
            HttpRouteMetrics::with_recorder(true, false, "twice", "GET /y"),
        ];
        for r in &routes {
            r.served(200, Duration::from_millis(1));
        }
        let mut text = String::new();
        super::super::sharded::render_all(&mut text);
        for (name, written) in [
            (RPC_CLIENT_DURATION.name, r#"service="twice",method="m""#),
            (HTTP_DURATION.name, r#"service="twice",route="GET /y""#),
        ] {
            let count = format!("{name}_count{{{written}}} ");
            assert_eq!(text.matches(&count).count(), 1, "{count} once in:\n{text}");
            assert!(
                text.contains(&format!("{count}2\n")),
                "{count}2 in:\n{text}"
            );
        }
        // The second instance stopping leaves the first one's series.
        drop(b);
        let mut text = String::new();
        super::super::sharded::render_all(&mut text);
        assert!(text.contains(r#"method="m"} 2"#), "{text}");
    }

    #[test]
    fn with_another_recorder_a_series_goes_to_the_facade() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let timing = Timing::with(
                EVENT_DURATION,
                &[
                    ("service", "facade".to_owned()),
                    ("handler", "h".to_owned()),
                ],
                false,
            );
            assert!(matches!(timing, Timing::Facade(_)));
            timing.record(Duration::from_millis(4));
            timing.record(Duration::from_millis(6));
        });
        let text = handle.render();
        let line = format!(
            "{}_count{{service=\"facade\",handler=\"h\"}} 2",
            EVENT_DURATION.name
        );
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}
