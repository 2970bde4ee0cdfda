//! The Kontiki service registry, `ServiceRegistry`: a drop-in replacement for Python's
//! `kontiki_registry` 2.3.2 that kontiki-tui 2.1.2 uses unchanged.
//!
//! It consumes the registry intake queues (`registry.register|unregister|heartbeat|exception|context.queue`)
//! and the timeline queue (`event_tracker.queue`), keeps everything in memory, computes
//! instance status (active / degraded / down after 3 × the heartbeat interval), publishes
//! lifecycle events on `event_exchange`, and serves the RPCs and HTTP routes of the
//! `registry.kontiki` contract through the generated [`service_registry::ServiceRegistry`]
//! trait. See docs/registry.md.
//!
//! Better than Kontiki where its registry has known bugs, without changing the wire: the
//! timeline and the exception list are bounded (oldest dropped first, counted); a non-JSON
//! message in a failed queue is listed in Kontiki's bytes form instead of failing the listing;
//! replay goes back to the failed queue's own service with its headers; instances that died
//! without unregistering expire; a degraded heartbeat without a reason clears the old reason;
//! `register_again` is sent after a short, configurable grace instead of 15 s.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use crate::registry::{
    Dropped, ExceptionRecord, FailedMessages, InstanceDeregistered, InstanceInfo,
    InstanceRegistered, InstanceStats, InstanceStatus, Registration, Replayed, Services,
    StatusChanged, TimelineEntry, service_registry,
};
use chrono::{DateTime, SubsecRound as _, Utc};
use kontiki_rt::{
    Config, Context, ExchangeType, HandlerError, Messenger, QueueEntrypoint, RawMessage, Service,
};
use serde_json::{Map, Value};
use service_registry::{
    DropFailedMessagesError, GetEventsError, GetExceptionsError, GetFilteredEventsError,
    GetFilteredExceptionsError, GetServicesError, HttpGetEventsError, HttpGetExceptionsError,
    HttpGetFilteredEventsError, HttpGetFilteredExceptionsError, HttpGetServicesByStatusError,
    HttpGetServicesError, HttpListInstancesError, ListFailedMessagesError, ListInstancesError,
    LiveError, ReplayFailedMessagesError, ServiceRegistryPublisher,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `registry.kontiki`, the registry's contract (types, the `ServiceRegistry` service), generated
/// by `build.rs`.
pub mod registry {
    kontiki_rt::include_idl!("registry");
}

/// Exchange the services send register / heartbeat / ... messages to.
pub const ADMIN_EXCHANGE: &str = "registry_admin_exchange";
/// Exchange the timeline queue reads (fed from `event_exchange` and `rpc_exchange`).
pub const TIMELINE_EXCHANGE: &str = "registry_event_exchange";
/// The timeline queue.
pub const TIMELINE_QUEUE: &str = "event_tracker.queue";
/// Event type of context records in the timeline.
pub const CONTEXT_RECORDED: &str = "registry.context.recorded";
/// The longest heartbeat interval the registry honours (a day); a registration saying more is
/// treated as saying this.
pub const MAX_HEARTBEAT_INTERVAL_SECS: f64 = 86_400.0;
/// At most this many instances are remembered as asked to `register_again` within one grace
/// period; heartbeats of further unknown instances go unanswered until entries age out.
pub const MAX_ASKED_AGAIN: usize = 10_000;

/// The registry's settings (top-level `activity_tracker.*` and `registry.*` config keys).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RegistrySettings {
    /// `activity_tracker.disable`: no timeline, no exception or context queues.
    pub tracker_disabled: bool,
    /// Retention of timeline entries and exception records (`activity_tracker.ttl_minutes`,
    /// else `ttl_hours`, default 168 h); `None` when both are ≤ 0 (only the caps apply).
    pub ttl: Option<Duration>,
    /// `activity_tracker.cleanup_interval_seconds` (default 3600).
    pub cleanup_interval: Duration,
    /// `activity_tracker.max_events` (default 10000): timeline cap, oldest dropped first.
    pub max_events: usize,
    /// `activity_tracker.max_exceptions` (default 1000): exception cap, oldest dropped first.
    pub max_exceptions: usize,
    /// `activity_tracker.include_registry_calls` (default `false`): keep RPC requests made to
    /// the registry itself (kontiki-tui polls it) in the timeline.
    pub include_registry_calls: bool,
    /// `activity_tracker.queue_max_length` (default 100000, 0 = no limit): the most messages
    /// `event_tracker.queue` holds while no registry consumes it; the oldest are dropped first
    /// (`x-max-length`, `x-overflow: drop-head`). Kontiki declares the queue without a limit.
    pub timeline_queue_max_length: u64,
    /// `registry.max_instances` (default 10000): registrations of new instances beyond this
    /// many are refused (logged and counted), so random instance ids cannot grow the registry
    /// without bound.
    pub max_instances: usize,
    /// `registry.expire_after_seconds` (default 3600, 0 = never): an instance down for this
    /// long is removed (and `registry.instance.deregistered` published).
    pub expire_after: Option<Duration>,
    /// `registry.register_again_grace_seconds` (default 2): heartbeats of unknown instances
    /// received this soon after start are ignored (Kontiki: 15 s).
    pub register_again_grace: Duration,
    /// `registry.failed_messages` (default `off`): what callers may do with the failed queues.
    pub failed_messages: FailedMessagesAccess,
}

/// What the registry lets any caller do with the services' failed queues
/// (`registry.failed_messages`). Failed messages carry the bodies and headers of real traffic,
/// and replay or drop changes state, so the default is `off`: the registry then answers
/// `list_failed_messages`, `replay_failed_messages` and `drop_failed_messages` with client
/// error `FORBIDDEN`. Every broker user that may publish to `rpc_exchange` can call the
/// registry, so turn this on only where those users are trusted (see docs/SECURITY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailedMessagesAccess {
    /// `off`: no listing, no replay, no drop.
    #[default]
    Off,
    /// `read`: `list_failed_messages` only.
    Read,
    /// `manage`: list, replay and drop.
    Manage,
}

impl FailedMessagesAccess {
    /// Reads the config value: `off`, `read` or `manage`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "off" => Some(Self::Off),
            "read" => Some(Self::Read),
            "manage" => Some(Self::Manage),
            _ => None,
        }
    }

    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Read => "read",
            Self::Manage => "manage",
        }
    }

    fn allows(self, wanted: Self) -> Result<(), Forbidden> {
        let rank = |a: Self| match a {
            Self::Off => 0,
            Self::Read => 1,
            Self::Manage => 2,
        };
        if rank(self) >= rank(wanted) {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "registry.failed_messages is {}; this operation needs {}",
                self.as_str(),
                wanted.as_str()
            )))
        }
    }
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            tracker_disabled: false,
            ttl: Some(Duration::from_secs(168 * 3600)),
            cleanup_interval: Duration::from_secs(3600),
            max_events: 10_000,
            max_exceptions: 1_000,
            include_registry_calls: false,
            timeline_queue_max_length: 100_000,
            expire_after: Some(Duration::from_secs(3600)),
            register_again_grace: Duration::from_secs(2),
            max_instances: 10_000,
            failed_messages: FailedMessagesAccess::Off,
        }
    }
}

impl RegistrySettings {
    /// Reads the settings from a service config.
    pub fn from_config(config: &Config) -> Result<Self, kontiki_rt::ConfigError> {
        let d = Self::default();
        let ttl = match seconds(config, "activity_tracker.ttl_minutes", 0.0, 60.0)? {
            Some(ttl) => Some(ttl),
            None => seconds(config, "activity_tracker.ttl_hours", 168.0, 3600.0)?,
        };
        let cleanup = seconds(
            config,
            "activity_tracker.cleanup_interval_seconds",
            3600.0,
            1.0,
        )?;
        let grace = seconds(config, "registry.register_again_grace_seconds", 2.0, 1.0)?;
        let access: String = config.get_or("registry.failed_messages", "off".to_owned())?;
        let failed_messages = FailedMessagesAccess::parse(&access).ok_or_else(|| {
            kontiki_rt::ConfigError::InvalidValue {
                path: "registry.failed_messages".to_owned(),
                message: format!("must be one of off, read, manage, found {access:?}"),
                files: Vec::new(),
            }
        })?;
        Ok(Self {
            tracker_disabled: config.get_or("activity_tracker.disable", false)?,
            ttl,
            cleanup_interval: cleanup
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_secs(1)),
            max_events: config.get_or("activity_tracker.max_events", d.max_events)?,
            max_exceptions: config.get_or("activity_tracker.max_exceptions", d.max_exceptions)?,
            include_registry_calls: config
                .get_or("activity_tracker.include_registry_calls", false)?,
            timeline_queue_max_length: config.get_or(
                "activity_tracker.queue_max_length",
                d.timeline_queue_max_length,
            )?,
            expire_after: seconds(config, "registry.expire_after_seconds", 3600.0, 1.0)?,
            register_again_grace: grace.unwrap_or(Duration::ZERO),
            max_instances: config.get_or("registry.max_instances", d.max_instances)?,
            failed_messages,
        })
    }
}

/// The number at `path` (or `default`) times `unit` seconds; `None` when not positive (Kontiki's
/// "off"). A value too large for a duration, or not a number, is an error naming the key.
fn seconds(
    config: &Config,
    path: &str,
    default: f64,
    unit: f64,
) -> Result<Option<Duration>, kontiki_rt::ConfigError> {
    let value: f64 = config.get_or(path, default)?;
    if value.is_nan() || value <= 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(value * unit)
        .map(Some)
        .map_err(|_| kontiki_rt::ConfigError::InvalidValue {
            path: path.to_owned(),
            message: format!("is too large, found {value}"),
            files: Vec::new(),
        })
}

/// One registered instance.
#[derive(Debug, Clone)]
struct Instance {
    metadata: Registration,
    last_heartbeat: Option<DateTime<Utc>>,
    last_seen: Option<Instant>,
    registered_at: Instant,
    degraded: bool,
    reason: Option<String>,
    tracked: InstanceStatus,
    /// The counters of its last heartbeat (kontiki-rs instances send them).
    stats: Option<InstanceStats>,
}

impl Instance {
    fn timeout(&self) -> Duration {
        let interval = self
            .metadata
            .heartbeat_interval
            .filter(|i| i.is_finite() && *i > 0.0)
            .unwrap_or(10.0)
            // A remote value: 1e20 must not overflow the duration (it panicked).
            .min(MAX_HEARTBEAT_INTERVAL_SECS);
        Duration::from_secs_f64(interval * 3.0)
    }

    fn status(&self, now: Instant) -> InstanceStatus {
        match self.last_seen {
            Some(t) if now.duration_since(t) <= self.timeout() => {
                if self.degraded {
                    InstanceStatus::Degraded
                } else {
                    InstanceStatus::Active
                }
            }
            _ => InstanceStatus::Down,
        }
    }

    fn live(&self, now: Instant) -> bool {
        self.status(now) != InstanceStatus::Down
    }
}

/// A bounded list, oldest first.
#[derive(Debug)]
struct Bounded<T> {
    items: VecDeque<T>,
    dropped: u64,
}

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            dropped: 0,
        }
    }
}

impl<T> Bounded<T> {
    fn push(&mut self, item: T, cap: usize, what: &str) {
        if cap == 0 {
            self.dropped += 1;
            return;
        }
        while self.items.len() >= cap {
            self.items.pop_front();
            self.dropped += 1;
            if self.dropped == 1 || self.dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped = self.dropped,
                    cap,
                    "{what} is full: dropping the oldest entries"
                );
            }
        }
        self.items.push_back(item);
    }
}

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<String, BTreeMap<String, Instance>>,
    timeline: Bounded<TimelineEntry>,
    exceptions: Bounded<ExceptionRecord>,
    /// Last `register_again` sent per instance (at most one per grace period), at most
    /// [`MAX_ASKED_AGAIN`] entries.
    asked_again: HashMap<String, Instant>,
    /// When `asked_again` was last pruned.
    asked_pruned: Option<Instant>,
    /// Heartbeats of unknown instances not answered with `register_again` because
    /// `asked_again` was full.
    asks_suppressed: u64,
    /// Registrations of new instances refused at `registry.max_instances`.
    registrations_refused: u64,
    last_cleanup: Option<Instant>,
    /// `(service, event type)` of every competing handler a registration declared, kept after
    /// its instances leave (their durable queue stays), at most [`MAX_SUBSCRIPTIONS`]; dropped
    /// when the queue is found gone ([`Registry::restore_bindings`]).
    subscriptions: std::collections::BTreeSet<(String, String)>,
}

/// How many competing subscriptions the registry remembers for [`Registry::restore_bindings`].
const MAX_SUBSCRIPTIONS: usize = 100_000;

/// Counters of what the bounded lists dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DropCounts {
    /// Timeline entries dropped (cap or retention).
    pub events: u64,
    /// Exception records dropped (cap or retention).
    pub exceptions: u64,
    /// Registrations of new instances refused because `registry.max_instances` were known.
    pub registrations_refused: u64,
    /// Heartbeats of unknown instances left unanswered because [`MAX_ASKED_AGAIN`] instances
    /// were asked to register again within the last grace period.
    pub asks_suppressed: u64,
}

/// The registry: state plus the generated trait's implementation.
#[derive(Debug)]
pub struct Registry {
    settings: RegistrySettings,
    started: Instant,
    state: Mutex<State>,
    /// The connection generation whose bindings were last restored (see
    /// [`Registry::restore_bindings`]).
    bound_generation: std::sync::atomic::AtomicU64,
}

fn now_utc() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

/// The typed registration of a register body, with Kontiki's defaults for missing fields.
fn registration_from(body: &Map<String, Value>) -> Option<Registration> {
    let service_name = text(body.get("service_name")).filter(|s| !s.is_empty())?;
    let instance_id = text(body.get("instance_id")).filter(|s| !s.is_empty())?;
    let group = text(body.get("group"))
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| "business".to_owned());
    let entrypoints = body
        .get("entrypoints")
        .and_then(|e| serde_json::from_value::<Vec<BTreeMap<String, Value>>>(e.clone()).ok());
    Some(Registration {
        service_name,
        instance_id,
        pid: body.get("pid").and_then(Value::as_i64).unwrap_or(0),
        host: text(body.get("host")).unwrap_or_default(),
        service_version: text(body.get("service_version")).unwrap_or_else(|| "1.0.0".to_owned()),
        kontiki_version: text(body.get("kontiki_version")).unwrap_or_default(),
        heartbeat_interval: body.get("heartbeat_interval").and_then(Value::as_f64),
        group,
        entrypoints,
        config: body
            .get("config")
            .filter(|c| c.as_object().is_some_and(|m| !m.is_empty()))
            .cloned()
            .unwrap_or(Value::Null),
    })
}

fn parse_body(msg: &RawMessage) -> Result<Map<String, Value>, HandlerError> {
    parse_body_bytes(&msg.routing_key, &msg.body)
}

fn parse_body_bytes(routing_key: &str, body: &[u8]) -> Result<Map<String, Value>, HandlerError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(HandlerError::server(format!(
            "{routing_key}: expected a JSON object, got {other}"
        ))),
        Err(e) => Err(HandlerError::server(format!(
            "{routing_key}: body is not JSON: {e}"
        ))),
    }
}

/// What the registry reads from an intake message (`registry.register`, `registry.heartbeat`,
/// `registry.unregister`, `registry.exception`, `registry.context`), without the state it then
/// changes: the decoding the `registry_body` fuzz target (`fuzz/`) and its replay test drive.
/// `Err` carries the error the intake handler would fail the message with.
#[doc(hidden)]
pub fn decode_intake(routing_key: &str, body: &[u8]) -> Result<(), String> {
    let body = parse_body_bytes(routing_key, body).map_err(|e| e.to_string())?;
    match routing_key {
        "registry.register" => {
            let reg = registration_from(&body)
                .ok_or("registry.register without service_name / instance_id")?;
            let instance = Instance {
                metadata: reg,
                last_heartbeat: Some(now_utc()),
                last_seen: Some(Instant::now()),
                registered_at: Instant::now(),
                degraded: false,
                reason: None,
                tracked: InstanceStatus::Down,
                stats: None,
            };
            let _ = instance.status(Instant::now());
            let _ = instance.live(Instant::now());
        }
        "registry.heartbeat" | "registry.unregister" => {
            let _ = text(body.get("service_name"));
            let _ = text(body.get("instance_id"));
            let _ = body.get("degraded").and_then(Value::as_bool);
            let _ = text(body.get("status")).as_deref().map(parse_status);
        }
        "registry.exception" => {
            let _: ExceptionRecord = serde_json::from_value(Value::Object(body))
                .map_err(|e| format!("registry.exception: {e}"))?;
        }
        _ => {}
    }
    Ok(())
}

/// The event type of a registered entrypoint that is a competing event handler.
fn competing_event(entrypoint: &BTreeMap<String, Value>) -> Option<String> {
    (matches(entrypoint.get("type"), "event") && matches(entrypoint.get("mode"), "competing"))
        .then(|| text(entrypoint.get("name")))
        .flatten()
}

fn matches(value: Option<&Value>, wanted: &str) -> bool {
    match value {
        Some(Value::String(s)) => s == wanted,
        Some(Value::Null) | None => false,
        Some(other) => serde_json::to_string(other).is_ok_and(|t| t == wanted),
    }
}

fn parse_status(status: &str) -> Option<InstanceStatus> {
    match status {
        "active" => Some(InstanceStatus::Active),
        "degraded" => Some(InstanceStatus::Degraded),
        "down" => Some(InstanceStatus::Down),
        _ => None,
    }
}

/// Why a failed-message RPC cannot go ahead.
struct Unavailable(String);

/// A failed-queue operation the configuration does not allow (client error `FORBIDDEN`).
struct Forbidden(String);

impl Registry {
    /// A registry with `settings`.
    pub fn new(settings: RegistrySettings) -> Self {
        Self {
            settings,
            started: Instant::now(),
            state: Mutex::new(State::default()),
            bound_generation: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Every `(service, event type)` of a competing event handler that a registration
    /// declared (also of instances that left since: their durable queue stays), sorted.
    pub fn competing_subscriptions(&self) -> Vec<(String, String)> {
        self.lock().subscriptions.iter().cloned().collect()
    }

    /// Binds the competing queue of every subscription the registry knows
    /// ([`Registry::competing_subscriptions`]) to `event_exchange` again, where the queue
    /// exists (on one channel), and returns how many it bound; a subscription whose queue is
    /// gone is forgotten.
    ///
    /// Kontiki declares `event_exchange` non-durable: a broker restart drops every binding to
    /// it, and a consumer that is down cannot declare its binding again, so the events
    /// published until it returns would be dropped although its durable queue survived. The
    /// registry does this by itself after each reconnection (its status task checks the
    /// connection generation), so that window shrinks to the registry's own reconnection.
    /// Wire-compatible: the bindings are the ones the consumers declare.
    pub async fn restore_bindings(&self, messenger: &Messenger) -> kontiki_rt::Result<usize> {
        let subscriptions = self.competing_subscriptions();
        let bindings: Vec<(String, String)> = subscriptions
            .iter()
            .map(|(service, event)| {
                (
                    kontiki_rt::wire::competing_queue(service, event),
                    event.clone(),
                )
            })
            .collect();
        let bound = messenger
            .bind_existing_queues(kontiki_rt::wire::EVENT_EXCHANGE, &bindings)
            .await?;
        let mut s = self.lock();
        for (subscription, ok) in subscriptions.iter().zip(&bound) {
            if !ok {
                // The queue was deleted: the subscription is over.
                s.subscriptions.remove(subscription);
            }
        }
        Ok(bound.iter().filter(|b| **b).count())
    }

    /// [`Registry::restore_bindings`] once per new connection of `messenger`'s connector.
    async fn restore_bindings_after_reconnect(&self, messenger: &Messenger) {
        use std::sync::atomic::Ordering;
        let generation = messenger.connection_generation();
        if generation <= self.bound_generation.load(Ordering::SeqCst) {
            return;
        }
        match self.restore_bindings(messenger).await {
            Ok(bound) => {
                self.bound_generation.store(generation, Ordering::SeqCst);
                if generation == 1 && bound == 0 {
                    return;
                }
                tracing::info!(
                    generation,
                    bound,
                    "reconnected: restored the event_exchange bindings of the known competing queues"
                );
            }
            // Tried again at the next status round.
            Err(e) => tracing::warn!(error = %e, "could not restore the event_exchange bindings"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settings.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// How many timeline entries and exception records were dropped so far.
    pub fn dropped(&self) -> DropCounts {
        let s = self.lock();
        DropCounts {
            events: s.timeline.dropped,
            exceptions: s.exceptions.dropped,
            registrations_refused: s.registrations_refused,
            asks_suppressed: s.asks_suppressed,
        }
    }

    /// `get_services(status)`.
    pub fn services(&self, status: Option<InstanceStatus>) -> Services {
        let now = Instant::now();
        let s = self.lock();
        let mut out = Services::new();
        for (name, instances) in &s.services {
            for (iid, inst) in instances {
                let st = inst.status(now);
                if status.is_some_and(|w| w != st) {
                    continue;
                }
                out.entry(name.clone()).or_default().insert(
                    iid.clone(),
                    InstanceInfo {
                        status: st,
                        last_heartbeat: inst.last_heartbeat,
                        degraded_reason: if inst.degraded {
                            inst.reason.clone()
                        } else {
                            None
                        },
                        metadata: inst.metadata.clone(),
                        stats: inst.stats.clone(),
                    },
                );
            }
        }
        out
    }

    /// Sorted ids of the active or degraded instances of `service`.
    pub fn live_instances(&self, service: &str) -> Vec<String> {
        let now = Instant::now();
        let s = self.lock();
        s.services
            .get(service)
            .map(|m| {
                m.iter()
                    .filter(|(_, i)| i.live(now))
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn check_competing(&self, service: &str, event: &str) -> Result<(), Unavailable> {
        let now = Instant::now();
        let s = self.lock();
        let declared = s.services.get(service).is_some_and(|m| {
            m.values().filter(|i| i.live(now)).any(|i| {
                i.metadata
                    .entrypoints
                    .iter()
                    .flatten()
                    .any(|e| competing_event(e).as_deref() == Some(event))
            })
        });
        if declared {
            Ok(())
        } else {
            Err(Unavailable(format!(
                "No live instance of {service} declares competing event {event}"
            )))
        }
    }

    fn events_where(&self, field: Option<(&str, &str)>) -> Vec<TimelineEntry> {
        self.cleanup_if_due();
        let s = self.lock();
        s.timeline
            .items
            .iter()
            .filter(|e| field.is_none_or(|(f, v)| matches(e.get(f), v)))
            .cloned()
            .collect()
    }

    fn exceptions_where(&self, field: Option<(&str, &str)>) -> Vec<ExceptionRecord> {
        self.cleanup_if_due();
        let s = self.lock();
        s.exceptions
            .items
            .iter()
            .filter(|e| {
                field.is_none_or(|(f, v)| {
                    let j = serde_json::to_value(e).unwrap_or(Value::Null);
                    matches(j.get(f), v)
                })
            })
            .cloned()
            .collect()
    }

    /// Removes timeline entries and exception records older than the TTL (or with no
    /// readable timestamp), from the oldest, stopping at the first fresh one.
    pub fn cleanup(&self) {
        let Some(ttl) = self.settings.ttl else {
            return;
        };
        let Ok(ttl) = chrono::Duration::from_std(ttl) else {
            return;
        };
        let cutoff = Utc::now() - ttl;
        let fresh = |ts: Option<&Value>| {
            ts.and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t >= cutoff)
        };
        let mut s = self.lock();
        while s
            .timeline
            .items
            .front()
            .is_some_and(|e| !fresh(e.get("timestamp")))
        {
            s.timeline.items.pop_front();
            s.timeline.dropped += 1;
        }
        while s
            .exceptions
            .items
            .front()
            .is_some_and(|e| e.timestamp < cutoff)
        {
            s.exceptions.items.pop_front();
            s.exceptions.dropped += 1;
        }
        s.last_cleanup = Some(Instant::now());
    }

    fn cleanup_if_due(&self) {
        let due = {
            let s = self.lock();
            s.last_cleanup
                .is_none_or(|t| t.elapsed() >= self.settings.cleanup_interval)
        };
        if due {
            self.cleanup();
        }
    }

    // --- intake -------------------------------------------------------------------------

    async fn on_register(&self, msg: RawMessage) -> Result<(), HandlerError> {
        let body = parse_body(&msg)?;
        let reg = registration_from(&body).ok_or_else(|| {
            HandlerError::server("registry.register without service_name / instance_id")
        })?;
        let (name, iid) = (reg.service_name.clone(), reg.instance_id.clone());
        {
            let mut s = self.lock();
            let previous = s
                .services
                .get(&name)
                .and_then(|m| m.get(&iid))
                .map(|i| (i.last_heartbeat, i.last_seen, i.degraded, i.reason.clone()));
            if previous.is_none() {
                let known: usize = s.services.values().map(BTreeMap::len).sum();
                if known >= self.settings.max_instances {
                    s.registrations_refused += 1;
                    let refused = s.registrations_refused;
                    drop(s);
                    if refused == 1 || refused.is_multiple_of(1000) {
                        tracing::warn!(
                            service = %name,
                            instance_id = %iid,
                            refused,
                            max = self.settings.max_instances,
                            "registry.max_instances reached: refusing the registration of a new instance"
                        );
                    }
                    return Ok(());
                }
            }
            let (last_heartbeat, last_seen, degraded, reason) =
                previous.unwrap_or((None, None, false, None));
            s.asked_again.remove(&iid);
            for event in reg.entrypoints.iter().flatten().filter_map(competing_event) {
                if s.subscriptions.len() < MAX_SUBSCRIPTIONS {
                    s.subscriptions.insert((name.clone(), event));
                }
            }
            s.services.entry(name.clone()).or_default().insert(
                iid.clone(),
                Instance {
                    metadata: reg.clone(),
                    last_heartbeat,
                    last_seen,
                    registered_at: Instant::now(),
                    degraded,
                    reason,
                    tracked: InstanceStatus::Down,
                    stats: None,
                },
            );
        }
        tracing::info!(service = %name, instance_id = %iid, "instance registered");
        let event = InstanceRegistered {
            service_name: reg.service_name,
            instance_id: reg.instance_id,
            host: reg.host,
            pid: reg.pid,
            service_version: reg.service_version,
            kontiki_version: reg.kontiki_version,
            heartbeat_interval: reg.heartbeat_interval,
            group: reg.group,
            entrypoints: reg.entrypoints,
            timestamp: now_utc(),
            config: reg.config,
        };
        publisher(&msg.context)
            .registry_instance_registered(&event)
            .await
            .map_err(HandlerError::internal)
    }

    async fn on_unregister(&self, msg: RawMessage) -> Result<(), HandlerError> {
        let body = parse_body(&msg)?;
        let name = text(body.get("service_name")).unwrap_or_default();
        let iid = text(body.get("instance_id")).unwrap_or_default();
        let removed = {
            let mut s = self.lock();
            let removed = s
                .services
                .get_mut(&name)
                .and_then(|m| m.remove(&iid))
                .is_some();
            if s.services.get(&name).is_some_and(BTreeMap::is_empty) {
                s.services.remove(&name);
            }
            s.asked_again.remove(&iid);
            removed
        };
        if !removed {
            tracing::info!(service = %name, instance_id = %iid, "unregister of an unknown instance");
            return Ok(());
        }
        tracing::info!(service = %name, instance_id = %iid, "instance deregistered");
        publisher(&msg.context)
            .registry_instance_deregistered(&InstanceDeregistered {
                service_name: name,
                instance_id: iid,
                timestamp: now_utc(),
            })
            .await
            .map_err(HandlerError::internal)
    }

    async fn on_heartbeat(&self, msg: RawMessage) -> Result<(), HandlerError> {
        let body = parse_body(&msg)?;
        let name = text(body.get("service_name")).unwrap_or_default();
        let iid = text(body.get("instance_id")).unwrap_or_default();
        let degraded = body
            .get("degraded")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let reason = body.get("reason").and_then(|r| match r {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        });
        // A fixed set of numbers: anything else (a remote value) is dropped, not stored.
        let stats = body
            .get("stats")
            .and_then(|v| serde_json::from_value::<InstanceStats>(v.clone()).ok());
        let now = Instant::now();
        enum Next {
            Changed(StatusChanged),
            AskAgain,
            Nothing,
        }
        let next = {
            let mut s = self.lock();
            match s.services.get_mut(&name).and_then(|m| m.get_mut(&iid)) {
                Some(inst) => {
                    inst.last_heartbeat = Some(now_utc());
                    inst.last_seen = Some(now);
                    inst.degraded = degraded;
                    inst.stats = stats;
                    // Unlike Kontiki, a degraded heartbeat without a reason clears the old one.
                    inst.reason = if degraded { reason } else { None };
                    let status = inst.status(now);
                    if status == inst.tracked {
                        Next::Nothing
                    } else {
                        let previous = std::mem::replace(&mut inst.tracked, status);
                        Next::Changed(status_changed(&name, &iid, previous, inst))
                    }
                }
                None => {
                    let in_grace = self.started.elapsed() < self.settings.register_again_grace;
                    let window = self
                        .settings
                        .register_again_grace
                        .max(Duration::from_secs(5));
                    let recently = s
                        .asked_again
                        .get(&iid)
                        .is_some_and(|t| now.duration_since(*t) < window);
                    // Full: forget the entries older than the window, at most once a second
                    // (a flood of random instance ids must not cost a scan per heartbeat).
                    if !recently
                        && s.asked_again.len() >= MAX_ASKED_AGAIN
                        && s.asked_pruned
                            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        s.asked_again.retain(|_, t| now.duration_since(*t) < window);
                        s.asked_pruned = Some(now);
                    }
                    if in_grace || recently || name.is_empty() || iid.is_empty() {
                        Next::Nothing
                    } else if s.asked_again.len() >= MAX_ASKED_AGAIN {
                        s.asks_suppressed += 1;
                        if s.asks_suppressed == 1 || s.asks_suppressed.is_multiple_of(10_000) {
                            tracing::warn!(
                                suppressed = s.asks_suppressed,
                                "heartbeats of many unknown instances: not asking more of them to register again for now"
                            );
                        }
                        Next::Nothing
                    } else {
                        s.asked_again.insert(iid.clone(), now);
                        Next::AskAgain
                    }
                }
            }
        };
        match next {
            Next::Nothing => Ok(()),
            Next::Changed(ev) => publisher(&msg.context)
                .registry_instance_status_changed(&ev)
                .await
                .map_err(HandlerError::internal),
            Next::AskAgain => {
                tracing::info!(service = %name, instance_id = %iid, "heartbeat of an unknown instance: asking it to register again");
                msg.context
                    .messenger()
                    .publish_raw(
                        ADMIN_EXCHANGE,
                        &format!("{name}.{iid}.register_again"),
                        b"",
                        None,
                    )
                    .await
                    .map_err(HandlerError::internal)
            }
        }
    }

    async fn on_exception(&self, msg: RawMessage) -> Result<(), HandlerError> {
        let body = parse_body(&msg)?;
        let record: ExceptionRecord = serde_json::from_value(Value::Object(body))
            .map_err(|e| HandlerError::server(format!("registry.exception: {e}")))?;
        self.lock().exceptions.push(
            record.clone(),
            self.settings.max_exceptions,
            "the exception list",
        );
        publisher(&msg.context)
            .registry_exception_recorded(&record)
            .await
            .map_err(HandlerError::internal)
    }

    fn on_context(&self, msg: &RawMessage) -> Result<(), HandlerError> {
        let mut body = parse_body(msg)?;
        body.insert(
            "event_type".to_owned(),
            Value::String(CONTEXT_RECORDED.to_owned()),
        );
        self.push_timeline(body.into_iter().collect());
        Ok(())
    }

    fn on_tracked(&self, msg: &RawMessage, own_name: &str) {
        let headers = msg.headers.clone().unwrap_or_default();
        if matches(headers.get("event_type"), "registry.exception.recorded") {
            return;
        }
        if !self.settings.include_registry_calls && matches(headers.get("rpc_service"), own_name) {
            return;
        }
        self.push_timeline(headers.into_iter().collect());
    }

    fn push_timeline(&self, entry: TimelineEntry) {
        self.lock()
            .timeline
            .push(entry, self.settings.max_events, "the timeline");
    }

    /// Recomputes every instance's status: returns the changes to publish, and removes
    /// instances down for longer than `expire_after`.
    fn sweep(&self) -> (Vec<StatusChanged>, Vec<InstanceDeregistered>) {
        let now = Instant::now();
        let mut changes = Vec::new();
        let mut expired = Vec::new();
        let mut s = self.lock();
        for (name, instances) in s.services.iter_mut() {
            instances.retain(|iid, inst| {
                let status = inst.status(now);
                if status != inst.tracked {
                    let previous = std::mem::replace(&mut inst.tracked, status);
                    changes.push(status_changed(name, iid, previous, inst));
                }
                let last = inst.last_seen.unwrap_or(inst.registered_at);
                let dead = status == InstanceStatus::Down
                    && self
                        .settings
                        .expire_after
                        .is_some_and(|after| now.duration_since(last) >= after + inst.timeout());
                if dead {
                    tracing::info!(service = %name, instance_id = %iid, "instance expired (down too long)");
                    expired.push(InstanceDeregistered {
                        service_name: name.clone(),
                        instance_id: iid.clone(),
                        timestamp: now_utc(),
                    });
                }
                !dead
            });
        }
        s.services.retain(|_, m| !m.is_empty());
        (changes, expired)
    }

    /// The plain queue consumers of the registry (intake and timeline).
    pub fn queue_entrypoints(self: &Arc<Self>) -> Vec<QueueEntrypoint> {
        let mut out = Vec::new();
        let mut intake = vec!["register", "unregister", "heartbeat"];
        if !self.settings.tracker_disabled {
            intake.extend(["exception", "context"]);
        }
        for kind in intake {
            let me = Arc::clone(self);
            let key = format!("registry.{kind}");
            let ep = QueueEntrypoint::new(format!("{key}.queue"), move |msg: RawMessage| {
                let me = Arc::clone(&me);
                async move {
                    match kind {
                        "register" => me.on_register(msg).await,
                        "unregister" => me.on_unregister(msg).await,
                        "heartbeat" => me.on_heartbeat(msg).await,
                        "exception" => me.on_exception(msg).await,
                        _ => me.on_context(&msg),
                    }
                }
            })
            .exchange(ADMIN_EXCHANGE, ExchangeType::Topic, false)
            .bind(ADMIN_EXCHANGE, key);
            out.push(ep);
        }
        if !self.settings.tracker_disabled {
            let me = Arc::clone(self);
            let mut timeline = QueueEntrypoint::new(TIMELINE_QUEUE, move |msg: RawMessage| {
                let own = msg.context.container().identity().service_name.clone();
                me.on_tracked(&msg, &own);
                async { Ok(()) }
            });
            // Bound to all the vhost's traffic: while no registry consumes it, the queue keeps
            // the newest messages only (docs/registry.md).
            let max_length = self.settings.timeline_queue_max_length;
            if max_length > 0 {
                timeline = timeline
                    .argument("x-max-length", max_length)
                    .argument("x-overflow", "drop-head");
            }
            out.push(
                timeline
                    .exchange(kontiki_rt::wire::EVENT_EXCHANGE, ExchangeType::Topic, false)
                    .exchange(kontiki_rt::wire::RPC_EXCHANGE, ExchangeType::Topic, false)
                    .exchange(TIMELINE_EXCHANGE, ExchangeType::Topic, false)
                    .exchange_bind(TIMELINE_EXCHANGE, kontiki_rt::wire::EVENT_EXCHANGE, "#")
                    .exchange_bind(TIMELINE_EXCHANGE, kontiki_rt::wire::RPC_EXCHANGE, "#")
                    .bind(TIMELINE_EXCHANGE, "#"),
            );
        }
        out
    }

    /// The whole service: generated RPCs, HTTP routes and the monitor task, plus the intake
    /// and timeline queues. Registration is off: the registry never registers itself.
    pub fn service(self: &Arc<Self>) -> kontiki_rt::Result<Service> {
        let server = service_registry::ServiceRegistryServer::from_arc(Arc::clone(self));
        let registry = Arc::clone(self);
        let builder = self
            .queue_entrypoints()
            .into_iter()
            .fold(server.service_builder(), kontiki_rt::ServiceBuilder::queue)
            // Before the timeline queue binds `#` again: from then on every event is
            // routable, so a publisher could no longer tell that a consumer's queue has lost
            // its binding (the status round retries what fails here).
            .on_connect(move |messenger| {
                let registry = Arc::clone(&registry);
                async move {
                    registry.restore_bindings_after_reconnect(&messenger).await;
                    Ok(())
                }
            });
        Ok(builder.build()?.with_registration_disabled(true))
    }
}

fn status_changed(
    name: &str,
    iid: &str,
    previous: InstanceStatus,
    inst: &Instance,
) -> StatusChanged {
    let new_status = inst.tracked;
    StatusChanged {
        service_name: name.to_owned(),
        instance_id: iid.to_owned(),
        previous_status: previous,
        new_status,
        timestamp: now_utc(),
        reason: if new_status == InstanceStatus::Degraded {
            inst.reason.clone()
        } else {
            None
        },
    }
}

fn publisher(ctx: &Context) -> ServiceRegistryPublisher {
    ServiceRegistryPublisher::new(ctx.messenger().clone())
}

fn messenger_of(ctx: &Context) -> &Messenger {
    ctx.messenger()
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl service_registry::ServiceRegistry for Registry {
    async fn get_services(
        &self,
        _ctx: Context,
        status: Option<String>,
    ) -> Result<Services, GetServicesError> {
        match status.as_deref() {
            None => Ok(self.services(None)),
            Some(s) => match parse_status(s) {
                Some(st) => Ok(self.services(Some(st))),
                None => Err(GetServicesError::InvalidStatus {
                    message: format!("Invalid status: {s}"),
                }),
            },
        }
    }

    async fn list_instances(
        &self,
        _ctx: Context,
        service_name: String,
    ) -> Result<Vec<String>, ListInstancesError> {
        Ok(self.live_instances(service_name.trim()))
    }

    async fn list_failed_messages(
        &self,
        ctx: Context,
        service_name: String,
        name: String,
        limit: i64,
    ) -> Result<FailedMessages, ListFailedMessagesError> {
        self.settings
            .failed_messages
            .allows(FailedMessagesAccess::Read)
            .map_err(|Forbidden(message)| ListFailedMessagesError::Forbidden { message })?;
        self.check_competing(&service_name, &name)
            .map_err(
                |Unavailable(message)| ListFailedMessagesError::EntrypointUnavailable { message },
            )?;
        let page = messenger_of(&ctx)
            .list_failed(&service_name, &name, count(limit))
            .await
            .map_err(ListFailedMessagesError::internal)?;
        Ok(FailedMessages {
            count: i64::from(page.count),
            messages: page.messages.into_iter().map(|m| m.body).collect(),
        })
    }

    async fn replay_failed_messages(
        &self,
        ctx: Context,
        service_name: String,
        name: String,
        count_: i64,
    ) -> Result<Replayed, ReplayFailedMessagesError> {
        self.settings
            .failed_messages
            .allows(FailedMessagesAccess::Manage)
            .map_err(|Forbidden(message)| ReplayFailedMessagesError::Forbidden { message })?;
        self.check_competing(&service_name, &name)
            .map_err(
                |Unavailable(message)| ReplayFailedMessagesError::EntrypointUnavailable { message },
            )?;
        let n = messenger_of(&ctx)
            .replay_failed(&service_name, &name, count(count_))
            .await
            .map_err(ReplayFailedMessagesError::internal)?;
        Ok(Replayed {
            replayed: i64::from(n),
        })
    }

    async fn drop_failed_messages(
        &self,
        ctx: Context,
        service_name: String,
        name: String,
        count_: i64,
    ) -> Result<Dropped, DropFailedMessagesError> {
        self.settings
            .failed_messages
            .allows(FailedMessagesAccess::Manage)
            .map_err(|Forbidden(message)| DropFailedMessagesError::Forbidden { message })?;
        self.check_competing(&service_name, &name)
            .map_err(
                |Unavailable(message)| DropFailedMessagesError::EntrypointUnavailable { message },
            )?;
        let n = messenger_of(&ctx)
            .drop_failed(&service_name, &name, count(count_))
            .await
            .map_err(DropFailedMessagesError::internal)?;
        Ok(Dropped {
            dropped: i64::from(n),
        })
    }

    async fn get_events(&self, _ctx: Context) -> Result<Vec<TimelineEntry>, GetEventsError> {
        Ok(self.events_where(None))
    }

    async fn get_filtered_events(
        &self,
        _ctx: Context,
        filter_field: String,
        value: String,
    ) -> Result<Vec<TimelineEntry>, GetFilteredEventsError> {
        Ok(self.events_where(Some((&filter_field, &value))))
    }

    async fn get_exceptions(
        &self,
        _ctx: Context,
    ) -> Result<Vec<ExceptionRecord>, GetExceptionsError> {
        Ok(self.exceptions_where(None))
    }

    async fn get_filtered_exceptions(
        &self,
        _ctx: Context,
        filter_field: String,
        value: String,
    ) -> Result<Vec<ExceptionRecord>, GetFilteredExceptionsError> {
        Ok(self.exceptions_where(Some((&filter_field, &value))))
    }

    async fn live(&self, ctx: Context, service_name: String) -> Result<(), LiveError> {
        let own = ctx.container().identity().service_name.clone();
        if *own == *service_name || !self.live_instances(&service_name).is_empty() {
            Ok(())
        } else {
            Err(LiveError::service_unavailable())
        }
    }

    async fn http_list_instances(
        &self,
        _ctx: Context,
        service_name: String,
    ) -> Result<Vec<String>, HttpListInstancesError> {
        Ok(self.live_instances(&service_name))
    }

    async fn http_get_services(&self, _ctx: Context) -> Result<Services, HttpGetServicesError> {
        Ok(self.services(None))
    }

    async fn http_get_services_by_status(
        &self,
        _ctx: Context,
        status: String,
    ) -> Result<Services, HttpGetServicesByStatusError> {
        match parse_status(&status) {
            Some(st) => Ok(self.services(Some(st))),
            None => Err(HttpGetServicesByStatusError::InvalidStatus {
                message: format!("Invalid status: {status}"),
            }),
        }
    }

    async fn http_get_events(
        &self,
        _ctx: Context,
    ) -> Result<Vec<TimelineEntry>, HttpGetEventsError> {
        Ok(self.events_where(None))
    }

    async fn http_get_filtered_events(
        &self,
        _ctx: Context,
        filter_field: String,
        value: String,
    ) -> Result<Vec<TimelineEntry>, HttpGetFilteredEventsError> {
        Ok(self.events_where(Some((&filter_field, &value))))
    }

    async fn http_get_exceptions(
        &self,
        _ctx: Context,
    ) -> Result<Vec<ExceptionRecord>, HttpGetExceptionsError> {
        Ok(self.exceptions_where(None))
    }

    async fn http_get_filtered_exceptions(
        &self,
        _ctx: Context,
        filter_field: String,
        value: String,
    ) -> Result<Vec<ExceptionRecord>, HttpGetFilteredExceptionsError> {
        Ok(self.exceptions_where(Some((&filter_field, &value))))
    }

    async fn monitor_instance_statuses(&self, ctx: Context) -> Result<(), kontiki_rt::BoxError> {
        self.restore_bindings_after_reconnect(messenger_of(&ctx))
            .await;
        let (changes, expired) = self.sweep();
        self.cleanup_if_due();
        let p = publisher(&ctx);
        for c in &changes {
            p.registry_instance_status_changed(c).await?;
        }
        for e in &expired {
            p.registry_instance_deregistered(e).await?;
        }
        Ok(())
    }
}

/// The registry's command line: parses `argv` (`--config FILE`, repeatable), runs the
/// registry until SIGTERM or SIGINT, then shuts it down. The `kontiki-registry` binary is this;
/// test harnesses that run a registry as a process of their own call it too.
pub fn run_cli<I, T>(name: &str, description: &str, argv: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    kontiki_rt::cli::run_configured_main(
        name,
        description,
        env!("CARGO_PKG_VERSION"),
        argv,
        |config| Ok(build(config)?.1),
    )
}

/// Loads the registry's settings from `config` and builds the service.
pub fn build(config: &Config) -> Result<(Arc<Registry>, Service), kontiki_rt::BoxError> {
    let registry = Arc::new(Registry::new(RegistrySettings::from_config(config)?));
    let service = registry.service()?;
    Ok((registry, service))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg_body(iid: &str, interval: f64) -> Map<String, Value> {
        json!({
            "service_name": "svc", "instance_id": iid, "pid": 1, "host": "h",
            "service_version": "1.0.0", "kontiki_version": "2.3.2",
            "heartbeat_interval": interval, "group": " ",
            "entrypoints": [{"type": "event", "name": "e", "handler": "h", "mode": "competing", "max_attempts": 3}],
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn registration_defaults_and_status_rules() {
        let r = registration_from(&reg_body("i1", 1.0)).unwrap();
        assert_eq!(r.group, "business");
        assert_eq!(r.config, Value::Null);
        let mut inst = Instance {
            metadata: r,
            last_heartbeat: None,
            last_seen: None,
            registered_at: Instant::now(),
            degraded: false,
            reason: None,
            tracked: InstanceStatus::Down,
            stats: None,
        };
        let now = Instant::now();
        assert_eq!(inst.status(now), InstanceStatus::Down, "no heartbeat yet");
        inst.last_seen = Some(now);
        assert_eq!(inst.status(now), InstanceStatus::Active);
        inst.degraded = true;
        assert_eq!(inst.status(now), InstanceStatus::Degraded);
        assert_eq!(
            inst.status(now + Duration::from_millis(3100)),
            InstanceStatus::Down,
            "3 × interval without heartbeat"
        );
        assert!(registration_from(&Map::new()).is_none());
    }

    #[test]
    fn bounded_lists_drop_the_oldest_and_count() {
        let mut b = Bounded::default();
        for i in 0..5 {
            b.push(i, 3, "test");
        }
        assert_eq!(b.items.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(b.dropped, 2);
    }

    #[test]
    fn filters_compare_as_strings() {
        assert!(matches(Some(&json!("a")), "a"));
        assert!(matches(Some(&json!(5)), "5"));
        assert!(!matches(Some(&Value::Null), "null"));
        assert!(!matches(None, "a"));
        assert_eq!(parse_status("down"), Some(InstanceStatus::Down));
        assert_eq!(parse_status("bogus"), None);
    }

    #[test]
    fn settings_from_config() {
        let c = Config::from_yaml_str(
            "r.yaml",
            "activity_tracker:\n  ttl_minutes: 0\n  ttl_hours: 0\n  max_events: 5\nregistry:\n  expire_after_seconds: 0\n",
        )
        .unwrap();
        let s = RegistrySettings::from_config(&c).unwrap();
        assert_eq!(s.ttl, None, "both TTLs ≤ 0: no TTL (Kontiki's loop fails)");
        assert_eq!(s.max_events, 5);
        assert_eq!(s.expire_after, None);
        let d = RegistrySettings::from_config(&Config::empty()).unwrap();
        assert_eq!(d, RegistrySettings::default());
    }

    #[test]
    fn failed_messages_access_is_off_by_default_and_ranked() {
        let d = RegistrySettings::from_config(&Config::empty()).unwrap();
        assert_eq!(d.failed_messages, FailedMessagesAccess::Off);
        let read = Config::from_yaml_str("r.yaml", "registry:\n  failed_messages: read\n").unwrap();
        let read = RegistrySettings::from_config(&read)
            .unwrap()
            .failed_messages;
        assert_eq!(read, FailedMessagesAccess::Read);
        assert!(read.allows(FailedMessagesAccess::Read).is_ok());
        let Err(Forbidden(message)) = read.allows(FailedMessagesAccess::Manage) else {
            panic!("read must not allow manage");
        };
        assert_eq!(
            message,
            "registry.failed_messages is read; this operation needs manage"
        );
        assert!(
            FailedMessagesAccess::Manage
                .allows(FailedMessagesAccess::Manage)
                .is_ok()
        );
        assert!(
            FailedMessagesAccess::Off
                .allows(FailedMessagesAccess::Read)
                .is_err()
        );
        let bad = Config::from_yaml_str("r.yaml", "registry:\n  failed_messages: all\n").unwrap();
        let err = RegistrySettings::from_config(&bad).unwrap_err().to_string();
        assert!(
            err.contains(
                "`registry.failed_messages` must be one of off, read, manage, found \"all\""
            ),
            "{err}"
        );
    }

    #[test]
    fn competing_check_needs_a_live_declaring_instance() {
        let r = Registry::new(RegistrySettings::default());
        {
            let mut s = r.lock();
            let reg = registration_from(&reg_body("i1", 60.0)).unwrap();
            s.services.entry("svc".into()).or_default().insert(
                "i1".into(),
                Instance {
                    metadata: reg,
                    last_heartbeat: Some(now_utc()),
                    last_seen: Some(Instant::now()),
                    registered_at: Instant::now(),
                    degraded: false,
                    reason: None,
                    tracked: InstanceStatus::Active,
                    stats: None,
                },
            );
        }
        assert!(r.check_competing("svc", "e").is_ok());
        let Err(Unavailable(msg)) = r.check_competing("svc", "other") else {
            panic!("expected ENTRYPOINT_UNAVAILABLE");
        };
        assert_eq!(
            msg,
            "No live instance of svc declares competing event other"
        );
        assert_eq!(r.live_instances("svc"), vec!["i1".to_owned()]);
        assert!(r.services(Some(InstanceStatus::Down)).is_empty());
    }
}

/// The registry's message bodies come from any broker user: whatever bytes or JSON arrive, the
/// decoding never panics (the fuzzing of issue 18, run by the test command).
#[cfg(test)]
mod fuzz_props {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        // Up to 16 levels deep: lists and objects inside each other.
        leaf.prop_recursive(16, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A register / heartbeat body: the keys the registry reads, each with any JSON value.
    fn body() -> impl Strategy<Value = Map<String, Value>> {
        let key = prop_oneof![
            Just("service_name"),
            Just("instance_id"),
            Just("group"),
            Just("entrypoints"),
            Just("pid"),
            Just("host"),
            Just("service_version"),
            Just("kontiki_version"),
            Just("heartbeat_interval"),
            Just("config"),
            Just("status"),
            Just("reason"),
        ];
        prop::collection::btree_map(key, json_value(), 0..12)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn decode(bytes: &[u8]) {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(bytes) {
            let _ = registration_from(&m);
            let _ = text(m.get("status")).as_deref().map(parse_status);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn registration_bodies_never_panic(m in body()) {
            let reg = registration_from(&m);
            // A registration exists exactly when both ids are non-empty strings.
            let id = |k: &str| text(m.get(k)).is_some_and(|s| !s.is_empty());
            prop_assert_eq!(reg.is_some(), id("service_name") && id("instance_id"));
            decode(&serde_json::to_vec(&Value::Object(m)).unwrap());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            decode(&bytes);
        }
    }

    #[test]
    fn deeply_nested_bodies_are_refused_or_read_without_overflow() {
        // serde_json stops at 128 levels: a deeper body is an error, not a stack overflow.
        let deep = format!(
            "{{\"service_name\":\"s\",\"instance_id\":\"i\",\"config\":{}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(serde_json::from_slice::<Value>(deep.as_bytes()).is_err());
        decode(deep.as_bytes());
        let nested = format!(
            "{{\"service_name\":\"s\",\"instance_id\":\"i\",\"config\":{{\"a\":{}1{}}}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(nested.as_bytes()) else {
            panic!("100 levels must parse");
        };
        assert!(registration_from(&m).is_some());
    }
}
