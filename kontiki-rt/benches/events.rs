//! Events benchmark: kontiki-rs publish → handle throughput against a raw lapin publisher and
//! consumer with the same wire settings, in one process, on one broker.
//!
//! Contenders (each has its own consumer connection and publisher connection, like a service
//! and a stand-alone `Messenger`):
//!
//! * `kontiki-rs`: a [`Service`] with one competing [`EventEntrypoint`] (a quorum queue with
//!   Kontiki's arguments, declared by the runtime), started in-process; events published by a
//!   stand-alone [`Messenger`] (`publish`, which awaits the broker's confirm).
//! * `raw-lapin`: a hand-written lapin publisher and consumer with the same wire settings:
//!   persistent (delivery mode 2), mandatory, publisher confirms awaited, Kontiki's event
//!   headers (prebuilt once, cloned per message), all publishers on one channel; the consumer
//!   on a quorum queue declared with Kontiki's competing-queue arguments (delivery limit 2, DLX
//!   `kontiki.failed` with its failed queue, ...), prefetch 10, one spawned task per delivery
//!   that decodes the JSON payload and acks: the minimum a compatible consumer must do.
//! * extras (unless `--no-extras`): both with prefetch 100 instead of 10
//!   (`kontiki.amqp.max_pending_messages: 100`).
//!
//! Each run publishes N events from P concurrent publishers (each awaits its confirm before the
//! next publish, so P confirms are in flight) and measures from the first publish to the N-th
//! handled event (a counter and a [`tokio::sync::Notify`] in the handler). Each payload carries
//! its send time, so the handler records the publish → handle latency. The ratio
//! kontiki-rs / raw-lapin is the framework overhead at identical wire settings.
//!
//! Run: `cargo bench -p kontiki-rt --bench events -- [--quick] [--rounds N] [--events N]
//! [--publishers P] [--warmup N] [--only a,b] [--no-extras] [--json PATH]` (env:
//! `KONTIKI_AMQP_URL`, `KONTIKI_BENCH_ROUNDS`, `KONTIKI_BENCH_EVENTS`). Defaults: 5 rounds of
//! 20,000 events with 64 publishers, after a warm-up; `--quick` (CI): 2 rounds of 2,000.
//! Contenders run interleaved (the order rotates every round); the table shows medians over
//! the rounds. CPU is the whole process (`/proc/self/stat` utime+stime), so it covers publisher
//! and consumer; broker CPU is read from the local `beam.smp` process when there is one.
//! Results also go to `target/bench/events.json`. Queues get unique names per run and are
//! deleted at the end.
//!
//! `--broadcast K` (issue 22, item 5): fan-out instead. kontiki-rs runs K instances of one
//! service with a broadcast handler (`EventMode::Broadcast`: an exclusive queue per instance),
//! raw lapin K consumers on K connections, each with an exclusive queue bound to the event
//! type, prefetch 10 and manual acks, as Kontiki's broadcast queues are; every event is handled
//! K times, and the rates count handled deliveries (`events_per_s` = K × events/s).

use futures_util::StreamExt as _;
use kontiki_rt::event::{competing_queue, failed_queue};
use kontiki_rt::wire::{EVENT_EXCHANGE, FAILED_EXCHANGE, SESSION_OPEN_METHOD, rpc_queue};
use kontiki_rt::{Config, Event, EventEntrypoint, EventMode, Messenger, RunningService, Service};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

type BenchResult<T> = Result<T, String>;

/// The longest one run may wait for its events to be handled.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    url: String,
    rounds: usize,
    events: u64,
    warmup: u64,
    publishers: usize,
    only: Option<Vec<String>>,
    extras: bool,
    json_path: std::path::PathBuf,
    quick: bool,
    /// `--broadcast K`: K broadcast consumers instead of one competing queue (0: competing).
    broadcast: u64,
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn parse_opts() -> BenchResult<Opts> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        url: std::env::var("KONTIKI_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
        rounds: if quick { 2 } else { 5 },
        events: if quick { 2_000 } else { 20_000 },
        warmup: if quick { 200 } else { 1_000 },
        publishers: 64,
        only: None,
        extras: true,
        json_path: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(std::path::Path::new(".."))
            .join("target")
            .join("bench")
            .join("events.json"),
        quick,
        broadcast: 0,
    };
    if let Some(n) = env_num("KONTIKI_BENCH_ROUNDS") {
        o.rounds = n as usize;
    }
    if let Some(n) = env_num("KONTIKI_BENCH_EVENTS") {
        o.events = n;
    }
    args.reverse();
    let num = |flag: &str, v: Option<String>| -> BenchResult<u64> {
        v.ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|e| format!("{flag}: {e}"))
    };
    while let Some(a) = args.pop() {
        match a.as_str() {
            "--quick" | "--bench" => {}
            "--rounds" => o.rounds = num("--rounds", args.pop())? as usize,
            "--events" => o.events = num("--events", args.pop())?,
            "--warmup" => o.warmup = num("--warmup", args.pop())?,
            "--publishers" => o.publishers = num("--publishers", args.pop())? as usize,
            "--only" => {
                let v = args.pop().ok_or("--only needs a value")?;
                o.only = Some(v.split(',').map(str::to_owned).collect());
            }
            "--no-extras" => o.extras = false,
            "--broadcast" => o.broadcast = num("--broadcast", args.pop())?,
            "--json" => o.json_path = args.pop().ok_or("--json needs a value")?.into(),
            "--help" | "-h" => {
                println!(
                    "cargo bench -p kontiki-rt --bench events -- [--quick] [--rounds N] \
                     [--events N] [--publishers P] [--warmup N] [--only kontiki-rs,raw-lapin] \
                     [--no-extras] [--broadcast K] [--json PATH]"
                );
                std::process::exit(0);
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ => {} // a filter cargo passes through; ignored
        }
    }
    if o.rounds == 0 || o.events == 0 || o.publishers == 0 {
        return Err("--rounds, --events and --publishers must be at least 1".to_owned());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc (no unsafe: getrusage would need libc)

/// Clock ticks per second of `/proc/*/stat` times.
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks.
fn proc_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The pid of a local RabbitMQ (`beam.smp`), when there is one and it is readable.
fn broker_pid() -> Option<String> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm"))
            && comm.trim() == "beam.smp"
            && proc_cpu_ticks(&name).is_some()
        {
            return Some(name);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Names

fn unique(prefix: &str) -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{}", std::process::id(), &rand[..8])
}

// ---------------------------------------------------------------------------------------------
// The handler side, shared by both contenders: counts handled events and records latencies.

/// The payload of every event: a sequence number and the send time (nanoseconds since the
/// bench's epoch), so the handler can measure publish → handle latency.
#[derive(Debug, Serialize)]
struct Payload {
    seq: i64,
    sent_ns: u64,
}

struct Sink {
    epoch: Instant,
    handled: AtomicU64,
    /// The count at which the run is done.
    target: AtomicU64,
    /// When `target` was reached, in nanoseconds since `epoch`.
    done_ns: AtomicU64,
    done: Notify,
    latencies_ns: Mutex<Vec<u64>>,
    /// Payloads without a readable send time (should stay 0).
    bad: AtomicU64,
}

impl Sink {
    fn new(epoch: Instant) -> Arc<Self> {
        Arc::new(Self {
            epoch,
            handled: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            done_ns: AtomicU64::new(0),
            done: Notify::new(),
            latencies_ns: Mutex::new(Vec::new()),
            bad: AtomicU64::new(0),
        })
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Called by the handler once per event, with its decoded payload.
    fn record(&self, payload: &Value) {
        let now = self.now_ns();
        match payload.get("sent_ns").and_then(Value::as_u64) {
            Some(sent) => lock(&self.latencies_ns).push(now.saturating_sub(sent)),
            None => {
                self.bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        let n = self.handled.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.done_ns.store(now, Ordering::Release);
            self.done.notify_one();
        }
    }

    /// Prepares a run of `n` events.
    fn reset(&self, n: u64) {
        lock(&self.latencies_ns).clear();
        self.done_ns.store(0, Ordering::Release);
        self.handled.store(0, Ordering::Release);
        self.target.store(n, Ordering::Release);
    }

    /// Waits until `target` events were handled; lowers the target first when publishes failed.
    async fn wait(&self, target: u64, deadline: tokio::time::Instant) -> BenchResult<()> {
        self.target.store(target, Ordering::Release);
        while self.handled.load(Ordering::Acquire) < target {
            if tokio::time::timeout_at(deadline, self.done.notified())
                .await
                .is_err()
            {
                return Err(format!(
                    "only {} of {target} events handled within {RUN_TIMEOUT:?}",
                    self.handled.load(Ordering::Acquire)
                ));
            }
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// kontiki-rs contender

async fn start_service(
    url: &str,
    name: &str,
    event_type: &str,
    prefetch: u16,
    broadcast: bool,
    sink: Arc<Sink>,
) -> BenchResult<RunningService> {
    // KONTIKI_BENCH_METRICS=off: the same service with `kontiki.metrics.enabled: false`, for
    // the metrics-cost comparison of `make bench` (run in a process of its own, so no
    // recorder is installed at all).
    let metrics = match std::env::var("KONTIKI_BENCH_METRICS").as_deref() {
        Ok("off") => "  metrics:\n    enabled: false\n",
        _ => "",
    };
    // KONTIKI_BENCH_CONSUMER_CONNECTION=off: `kontiki.amqp.consumer_connection: false` (the
    // consumers on the publishing connection), for its cost comparison.
    let consumer_connection = !matches!(
        std::env::var("KONTIKI_BENCH_CONSUMER_CONNECTION").as_deref(),
        Ok("off")
    );
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{url}\"\n    max_pending_messages: {prefetch}\n    consumer_connection: {consumer_connection}\n  registration:\n    disable: true\n  shutdown:\n    grace_seconds: 5\n{metrics}"
    );
    let config = Config::from_yaml_str("bench.yaml", &yaml).map_err(|e| format!("config: {e}"))?;
    let mode = if broadcast {
        EventMode::Broadcast
    } else {
        EventMode::Competing
    };
    Service::builder(name)
        .event(
            EventEntrypoint::new("on_bench_event", [event_type], move |ev: Event| {
                sink.record(&ev.payload);
                async { Ok(()) }
            })
            .mode(mode),
        )
        .build()
        .map_err(|e| format!("service definition: {e}"))?
        .start(config)
        .await
        .map_err(|e| format!("start service {name}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Raw lapin publisher and consumer

fn long_str(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Kontiki's competing-queue arguments (protocol §1.2), with the integer types Python's pamqp
/// writes (smallest fit), as `kontiki_rt::event` declares them (its builder is crate-private).
fn competing_args(service: &str, event_type: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), long_str("quorum"));
    t.insert("x-delivery-limit".into(), AMQPValue::ShortShortInt(2));
    t.insert("x-delayed-retry-type".into(), long_str("failed"));
    t.insert("x-delayed-retry-min".into(), AMQPValue::ShortInt(1000));
    t.insert("x-delayed-retry-max".into(), AMQPValue::ShortInt(30000));
    t.insert("x-dead-letter-exchange".into(), long_str(FAILED_EXCHANGE));
    t.insert(
        "x-dead-letter-routing-key".into(),
        long_str(&failed_queue(service, event_type)),
    );
    t.insert("x-dead-letter-strategy".into(), long_str("at-least-once"));
    t.insert("x-overflow".into(), long_str("reject-publish"));
    t
}

fn failed_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), long_str("quorum"));
    t.insert("x-max-length".into(), AMQPValue::ShortInt(10000));
    t.insert("x-overflow".into(), long_str("reject-publish"));
    t
}

/// Kontiki's event headers (protocol §2.4, §2.5), built once: the wire carries the same names
/// and sizes as kontiki-rs's events.
fn kontiki_event_headers(event_type: &str) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert("service_name".into(), long_str("kontiki-standalone-bench"));
    h.insert(
        "instance_id".into(),
        long_str(&uuid::Uuid::new_v4().hyphenated().to_string()),
    );
    h.insert("host".into(), long_str("benchhost"));
    h.insert(
        "timestamp".into(),
        long_str("2026-11-29T04:19:50.580576+00:00"),
    );
    h.insert("event_type".into(), long_str(event_type));
    h.insert("reply_to".into(), AMQPValue::Void);
    h.insert("flow_id".into(), long_str("0123456789ab"));
    h.insert("hop_id".into(), long_str("0123456789abcdef"));
    h
}

struct RawConsumer {
    conn: Connection,
}

async fn start_raw_consumer(
    url: &str,
    service: &str,
    event_type: &str,
    prefetch: u16,
    broadcast: bool,
    sink: Arc<Sink>,
) -> BenchResult<RawConsumer> {
    let amqp = |what: &'static str| move |e: lapin::Error| format!("raw consumer {what}: {e}");
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(amqp("connect"))?;
    let ch = conn.create_channel().await.map_err(amqp("channel"))?;
    ch.basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(amqp("qos"))?;
    ch.exchange_declare(
        EVENT_EXCHANGE.into(),
        lapin::ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(amqp("event exchange"))?;
    let queue = if broadcast {
        // Kontiki's broadcast queue: one per instance, exclusive, gone with the connection.
        let queue = format!("{service}.{event_type}.{}", uuid::Uuid::new_v4().simple());
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        ch.queue_declare(queue.as_str().into(), exclusive, FieldTable::default())
            .await
            .map_err(amqp("broadcast queue"))?;
        queue
    } else {
        declare_competing(&ch, service, event_type)
            .await
            .map_err(amqp("competing queue"))?
    };
    ch.queue_bind(
        queue.as_str().into(),
        EVENT_EXCHANGE.into(),
        event_type.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(amqp("bind"))?;
    let consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("consume"))?;
    tokio::spawn(raw_consume(consumer, sink));
    Ok(RawConsumer { conn })
}

/// Declares Kontiki's competing queue for `event_type` with its failed exchange and queue (as
/// the runtime does); returns the queue's name.
async fn declare_competing(
    ch: &Channel,
    service: &str,
    event_type: &str,
) -> Result<String, lapin::Error> {
    ch.exchange_declare(
        FAILED_EXCHANGE.into(),
        lapin::ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let failed = failed_queue(service, event_type);
    ch.queue_declare(failed.as_str().into(), durable, failed_args())
        .await?;
    ch.queue_bind(
        failed.as_str().into(),
        FAILED_EXCHANGE.into(),
        failed.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let queue = competing_queue(service, event_type);
    ch.queue_declare(
        queue.as_str().into(),
        durable,
        competing_args(service, event_type),
    )
    .await?;
    Ok(queue)
}

/// The raw consumer's loop: one task per delivery (concurrent up to the prefetch, as the
/// runtime handles deliveries) that decodes the JSON payload, records it and acks.
async fn raw_consume(mut consumer: lapin::Consumer, sink: Arc<Sink>) {
    while let Some(Ok(delivery)) = consumer.next().await {
        let sink = sink.clone();
        tokio::spawn(async move {
            match serde_json::from_slice::<Value>(&delivery.data) {
                Ok(payload) => sink.record(&payload),
                Err(_) => {
                    sink.bad.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        });
    }
}

struct RawPublisher {
    conn: Connection,
    channel: Channel,
    routing_key: ShortString,
    headers: FieldTable,
}

async fn start_raw_publisher(url: &str, event_type: &str) -> BenchResult<Arc<RawPublisher>> {
    let amqp = |what: &'static str| move |e: lapin::Error| format!("raw publisher {what}: {e}");
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(amqp("connect"))?;
    let channel = conn.create_channel().await.map_err(amqp("channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(amqp("confirm_select"))?;
    channel
        .exchange_declare(
            EVENT_EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("exchange"))?;
    Ok(Arc::new(RawPublisher {
        conn,
        channel,
        routing_key: event_type.into(),
        headers: kontiki_event_headers(event_type),
    }))
}

impl RawPublisher {
    async fn publish(&self, payload: &Payload) -> BenchResult<()> {
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(self.headers.clone());
        let confirm = self
            .channel
            .basic_publish(
                EVENT_EXCHANGE.into(),
                self.routing_key.clone(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &body,
                props,
            )
            .await
            .map_err(|e| format!("publish: {e}"))?;
        match confirm.await {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(()),
            other => Err(format!("event not confirmed: {other:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contenders

#[derive(Clone)]
enum Publisher {
    Kontiki {
        messenger: Messenger,
        event_type: Arc<str>,
    },
    Raw(Arc<RawPublisher>),
}

impl Publisher {
    async fn publish(&self, payload: &Payload) -> BenchResult<()> {
        match self {
            Publisher::Kontiki {
                messenger,
                event_type,
            } => messenger
                .publish(event_type, payload)
                .await
                .map_err(|e| e.to_string()),
            Publisher::Raw(raw) => raw.publish(payload).await,
        }
    }
}

struct Contender {
    key: &'static str,
    label: &'static str,
    prefetch: u16,
    publisher: Publisher,
    sink: Arc<Sink>,
    /// Deliveries per published event: 1, or K with `--broadcast K`.
    fanout: u64,
}

/// What to tear down at the end.
#[derive(Default)]
struct Cleanup {
    services: Vec<RunningService>,
    messengers: Vec<Messenger>,
    raw_consumers: Vec<RawConsumer>,
    raw_publishers: Vec<Arc<RawPublisher>>,
    queues: Vec<String>,
}

fn wanted(opts: &Opts, key: &str) -> bool {
    opts.only
        .as_ref()
        .is_none_or(|only| only.iter().any(|k| k == key))
}

/// The queues a service with one competing handler for `event_type` declares and leaves.
fn service_queues(service: &str, event_type: &str) -> [String; 3] {
    [
        competing_queue(service, event_type),
        failed_queue(service, event_type),
        rpc_queue(service, SESSION_OPEN_METHOD),
    ]
}

async fn add_kontiki(
    opts: &Opts,
    out: &mut Vec<Contender>,
    cleanup: &mut Cleanup,
    (key, label): (&'static str, &'static str),
    prefetch: u16,
    epoch: Instant,
) -> BenchResult<()> {
    if !wanted(opts, key) {
        return Ok(());
    }
    let name = unique(&format!("bench-{key}"));
    let event_type = format!("{name}.happened");
    let sink = Sink::new(epoch);
    cleanup.queues.extend(service_queues(&name, &event_type));
    let broadcast = opts.broadcast > 0;
    for _ in 0..opts.broadcast.max(1) {
        let svc = start_service(
            &opts.url,
            &name,
            &event_type,
            prefetch,
            broadcast,
            sink.clone(),
        )
        .await?;
        cleanup.services.push(svc);
    }
    let messenger = Messenger::builder(opts.url.as_str())
        .client_name("bench")
        .connect()
        .await
        .map_err(|e| format!("messenger: {e}"))?;
    cleanup.messengers.push(messenger.clone());
    out.push(Contender {
        key,
        label,
        prefetch,
        publisher: Publisher::Kontiki {
            messenger,
            event_type: Arc::from(event_type),
        },
        sink,
        fanout: opts.broadcast.max(1),
    });
    Ok(())
}

async fn add_raw(
    opts: &Opts,
    out: &mut Vec<Contender>,
    cleanup: &mut Cleanup,
    (key, label): (&'static str, &'static str),
    prefetch: u16,
    epoch: Instant,
) -> BenchResult<()> {
    if !wanted(opts, key) {
        return Ok(());
    }
    let name = unique(&format!("bench-{key}"));
    let event_type = format!("{name}.happened");
    let sink = Sink::new(epoch);
    cleanup.queues.push(competing_queue(&name, &event_type));
    cleanup.queues.push(failed_queue(&name, &event_type));
    let broadcast = opts.broadcast > 0;
    for _ in 0..opts.broadcast.max(1) {
        let consumer = start_raw_consumer(
            &opts.url,
            &name,
            &event_type,
            prefetch,
            broadcast,
            sink.clone(),
        )
        .await?;
        cleanup.raw_consumers.push(consumer);
    }
    let publisher = start_raw_publisher(&opts.url, &event_type).await?;
    cleanup.raw_publishers.push(publisher.clone());
    out.push(Contender {
        key,
        label,
        prefetch,
        publisher: Publisher::Raw(publisher),
        sink,
        fanout: opts.broadcast.max(1),
    });
    Ok(())
}

async fn setup(opts: &Opts, cleanup: &mut Cleanup, epoch: Instant) -> BenchResult<Vec<Contender>> {
    let mut c = Vec::new();
    if opts.broadcast > 0 {
        let kontiki = (
            "kontiki-rs",
            "kontiki-rs (instances of one Service with a broadcast handler + stand-alone Messenger), prefetch 10",
        );
        add_kontiki(opts, &mut c, cleanup, kontiki, 10, epoch).await?;
        let raw = (
            "raw-lapin",
            "raw lapin (a connection and an exclusive queue per consumer, persistent, mandatory, confirms awaited), prefetch 10",
        );
        add_raw(opts, &mut c, cleanup, raw, 10, epoch).await?;
        if c.is_empty() {
            return Err("--only selected no contender".to_owned());
        }
        return Ok(c);
    }
    let kontiki = (
        "kontiki-rs",
        "kontiki-rs (Service, competing quorum queue + stand-alone Messenger), prefetch 10",
    );
    add_kontiki(opts, &mut c, cleanup, kontiki, 10, epoch).await?;
    let raw = (
        "raw-lapin",
        "raw lapin, same wire settings (persistent, mandatory, confirms awaited, quorum queue), prefetch 10",
    );
    add_raw(opts, &mut c, cleanup, raw, 10, epoch).await?;
    if opts.extras {
        let kontiki = ("kontiki-rs-p100", "kontiki-rs, prefetch 100");
        add_kontiki(opts, &mut c, cleanup, kontiki, 100, epoch).await?;
        let raw = (
            "raw-lapin-p100",
            "raw lapin, same wire settings, prefetch 100",
        );
        add_raw(opts, &mut c, cleanup, raw, 100, epoch).await?;
    }
    if c.is_empty() {
        return Err("--only selected no contender".to_owned());
    }
    Ok(c)
}

async fn teardown(url: &str, cleanup: Cleanup) {
    let Cleanup {
        services,
        messengers,
        raw_consumers,
        raw_publishers,
        queues,
    } = cleanup;
    for m in messengers {
        m.close().await;
    }
    for s in services {
        s.shutdown().await;
    }
    for p in raw_publishers {
        let _ = p.channel.close(200, "bench done".into()).await;
        let _ = p.conn.close(200, "bench done".into()).await;
    }
    for c in raw_consumers {
        let _ = c.conn.close(200, "bench done".into()).await;
    }
    let Ok(conn) = Connection::connect(url, ConnectionProperties::default()).await else {
        eprintln!("warning: could not reconnect to delete the bench queues: {queues:?}");
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        for q in &queues {
            if let Err(e) = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
            {
                eprintln!("warning: could not delete queue {q}: {e}");
            }
        }
    }
    let _ = conn.close(200, "bench done".into()).await;
}

// ---------------------------------------------------------------------------------------------
// Running

#[derive(Debug, Clone, Copy, Default)]
struct RunStats {
    handled: u64,
    errors: u64,
    secs: f64,
    events_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_event: f64,
    broker_cpu_us_per_event: Option<f64>,
}

struct Meters {
    tck: f64,
    broker: Option<String>,
}

async fn run_once(
    ct: &Contender,
    publishers: usize,
    events: u64,
    meters: &Meters,
) -> BenchResult<RunStats> {
    let sink = &ct.sink;
    sink.reset(events * ct.fanout);
    let remaining = Arc::new(AtomicI64::new(i64::try_from(events).unwrap_or(i64::MAX)));
    let cpu0 = proc_cpu_ticks("self").ok_or("cannot read /proc/self/stat")?;
    let broker0 = meters.broker.as_deref().and_then(proc_cpu_ticks);
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    let t0 = sink.now_ns();
    let mut tasks = Vec::with_capacity(publishers);
    for _ in 0..publishers {
        let publisher = ct.publisher.clone();
        let remaining = remaining.clone();
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let n = remaining.fetch_sub(1, Ordering::Relaxed);
                if n <= 0 {
                    break;
                }
                let payload = Payload {
                    seq: n,
                    sent_ns: sink.now_ns(),
                };
                if let Err(e) = publisher.publish(&payload).await {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
            (errors, first_error)
        }));
    }
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (e, fe) = t.await.map_err(|e| format!("publisher task: {e}"))?;
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    if let Some(e) = &first_error {
        eprintln!("warning: {errors} failed publishes; first: {e}");
    }
    let expected = (events - errors.min(events)) * ct.fanout;
    sink.wait(expected, deadline).await?;
    let end = match sink.done_ns.load(Ordering::Acquire) {
        0 => sink.now_ns(),
        t => t,
    };
    let cpu1 = proc_cpu_ticks("self").ok_or("cannot read /proc/self/stat")?;
    let broker1 = meters.broker.as_deref().and_then(proc_cpu_ticks);
    let mut lat = std::mem::take(&mut *lock(&sink.latencies_ns));
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    let handled = sink.handled.load(Ordering::Acquire).min(expected);
    let secs = end.saturating_sub(t0) as f64 / 1e9;
    let per_event = |ticks: u64| ticks as f64 / meters.tck * 1e6 / handled.max(1) as f64;
    Ok(RunStats {
        handled,
        errors,
        secs,
        events_per_s: handled as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_event: per_event(cpu1.saturating_sub(cpu0)),
        broker_cpu_us_per_event: match (broker0, broker1) {
            (Some(a), Some(b)) => Some(per_event(b.saturating_sub(a))),
            _ => None,
        },
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Debug, Clone)]
struct Summary {
    key: &'static str,
    label: &'static str,
    prefetch: u16,
    events_per_run: u64,
    errors: u64,
    events_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_event: f64,
    broker_cpu_us_per_event: Option<f64>,
    rounds: Vec<RunStats>,
}

fn summarize(ct: &Contender, events: u64, runs: Vec<RunStats>) -> Summary {
    let m = |f: fn(&RunStats) -> f64| median(runs.iter().map(f).collect());
    let broker: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.broker_cpu_us_per_event)
        .collect();
    Summary {
        key: ct.key,
        label: ct.label,
        prefetch: ct.prefetch,
        events_per_run: events,
        errors: runs.iter().map(|r| r.errors).sum(),
        events_per_s: m(|r| r.events_per_s),
        p50_us: m(|r| r.p50_us),
        p99_us: m(|r| r.p99_us),
        cpu_us_per_event: m(|r| r.cpu_us_per_event),
        broker_cpu_us_per_event: (!broker.is_empty()).then(|| median(broker)),
        rounds: runs,
    }
}

// ---------------------------------------------------------------------------------------------
// Output

fn print_table(summaries: &[Summary], opts: &Opts) {
    println!();
    println!(
        "Events publish → handle, {} events per run, {} publishers, medians of {} rounds \
         (interleaved), one process, broker {}",
        opts.events,
        opts.publishers,
        opts.rounds,
        redact(&opts.url)
    );
    println!(
        "{:<18} {:>8} {:>8} {:>10} {:>9} {:>9} {:>13} {:>15} {:>6}",
        "contender",
        "prefetch",
        "events",
        "events/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/event",
        "broker µs/event",
        "errors"
    );
    for s in summaries {
        println!(
            "{:<18} {:>8} {:>8} {:>10.0} {:>9.1} {:>9.1} {:>13.1} {:>15} {:>6}",
            s.key,
            s.prefetch,
            s.events_per_run,
            s.events_per_s,
            s.p50_us / 1000.0,
            s.p99_us / 1000.0,
            s.cpu_us_per_event,
            s.broker_cpu_us_per_event
                .map_or_else(|| "-".to_owned(), |b| format!("{b:.1}")),
            s.errors
        );
    }
    println!();
    for s in summaries {
        println!("  {:<18} {}", s.key, s.label);
    }
}

#[derive(Debug, Clone)]
struct Ratio {
    name: String,
    throughput: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
    broker_cpu: Option<f64>,
}

fn ratios(summaries: &[Summary]) -> Vec<Ratio> {
    let pairs = [
        ("kontiki-rs", "raw-lapin"),
        ("kontiki-rs-p100", "raw-lapin-p100"),
        ("kontiki-rs-p100", "kontiki-rs"),
        ("raw-lapin-p100", "raw-lapin"),
    ];
    let find = |k: &str| summaries.iter().find(|s| s.key == k);
    pairs
        .iter()
        .filter_map(|(a, b)| {
            let (a, b) = (find(a)?, find(b)?);
            Some(Ratio {
                name: format!("{} / {}", a.key, b.key),
                throughput: a.events_per_s / b.events_per_s,
                p50: a.p50_us / b.p50_us,
                p99: a.p99_us / b.p99_us,
                cpu: a.cpu_us_per_event / b.cpu_us_per_event,
                broker_cpu: a
                    .broker_cpu_us_per_event
                    .zip(b.broker_cpu_us_per_event)
                    .map(|(a, b)| a / b),
            })
        })
        .collect()
}

fn print_ratios(ratios: &[Ratio]) {
    println!();
    println!("Ratios (throughput: higher is better for the left side; latency and CPU: lower is)");
    println!(
        "{:<34} {:>11} {:>7} {:>7} {:>10} {:>11}",
        "a / b", "throughput", "p50", "p99", "CPU/event", "broker CPU"
    );
    for r in ratios {
        println!(
            "{:<34} {:>10.2}x {:>6.2}x {:>6.2}x {:>9.2}x {:>11}",
            r.name,
            r.throughput,
            r.p50,
            r.p99,
            r.cpu,
            r.broker_cpu
                .map_or_else(|| "-".to_owned(), |b| format!("{b:.2}x"))
        );
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

fn f(v: f64) -> Value {
    serde_json::Number::from_f64((v * 1000.0).round() / 1000.0).map_or(Value::Null, Value::Number)
}

fn write_json(
    summaries: &[Summary],
    ratios: &[Ratio],
    opts: &Opts,
    rss: (Option<u64>, Option<u64>),
) -> BenchResult<()> {
    let results: Vec<Value> = summaries
        .iter()
        .map(|s| {
            json!({
                "contender": s.key,
                "label": s.label,
                "prefetch": s.prefetch,
                "events_per_run": s.events_per_run,
                "deliveries_per_event": opts.broadcast.max(1),
                "errors": s.errors,
                "events_per_s": f(s.events_per_s),
                "p50_us": f(s.p50_us),
                "p99_us": f(s.p99_us),
                "cpu_us_per_event": f(s.cpu_us_per_event),
                "broker_cpu_us_per_event": s.broker_cpu_us_per_event.map(f),
                "rounds": s.rounds.iter().map(|r| json!({
                    "handled": r.handled, "errors": r.errors, "secs": f(r.secs),
                    "events_per_s": f(r.events_per_s), "p50_us": f(r.p50_us),
                    "p99_us": f(r.p99_us), "cpu_us_per_event": f(r.cpu_us_per_event),
                    "broker_cpu_us_per_event": r.broker_cpu_us_per_event.map(f),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ratio_json: Vec<Value> = ratios
        .iter()
        .map(|r| {
            json!({
                "pair": r.name, "throughput": f(r.throughput), "p50": f(r.p50),
                "p99": f(r.p99), "cpu_per_event": f(r.cpu),
                "broker_cpu_per_event": r.broker_cpu.map(f),
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "kontiki-rt events",
        "broker": redact(&opts.url),
        "rounds": opts.rounds,
        "events_per_run": opts.events,
        "publishers": opts.publishers,
        "quick": opts.quick,
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_owned()),
        "rss_bytes_before": rss.0,
        "rss_bytes_after": rss.1,
        "results": results,
        "ratios": ratio_json,
    });
    if let Some(dir) = opts.json_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(&opts.json_path, text + "\n")
        .map_err(|e| format!("write {}: {e}", opts.json_path.display()))?;
    println!("\nJSON: {}", opts.json_path.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------

async fn bench(opts: Opts) -> BenchResult<()> {
    // Fail early and clearly without a broker.
    match tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&opts.url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "probe".into()).await;
        }
        Ok(Err(e)) => {
            return Err(format!(
                "no RabbitMQ answers at {} ({e}). Start one (`sudo rabbitmq-server -detached`) \
                 or set KONTIKI_AMQP_URL",
                redact(&opts.url)
            ));
        }
        Err(_) => {
            return Err(format!(
                "no RabbitMQ answers at {} within 5 s. Start one or set KONTIKI_AMQP_URL",
                redact(&opts.url)
            ));
        }
    }
    let mut cleanup = Cleanup::default();
    let result = bench_with(&opts, &mut cleanup).await;
    teardown(&opts.url, cleanup).await;
    result
}

async fn bench_with(opts: &Opts, cleanup: &mut Cleanup) -> BenchResult<()> {
    let epoch = Instant::now();
    let contenders = setup(opts, cleanup, epoch).await?;
    let meters = Meters {
        tck: clk_tck(),
        broker: broker_pid(),
    };
    eprintln!(
        "events bench: {} contenders, {} rounds of {} events, {} publishers",
        contenders.len(),
        opts.rounds,
        opts.events,
        opts.publishers
    );
    if opts.warmup > 0 {
        for ct in &contenders {
            run_once(ct, opts.publishers, opts.warmup, &meters).await?;
        }
    }
    let rss_before = rss_bytes();
    let mut runs: HashMap<usize, Vec<RunStats>> = HashMap::new();
    for round in 1..=opts.rounds {
        // Rotate the order so that no contender always runs right after the same other one.
        for k in 0..contenders.len() {
            let i = (k + round - 1) % contenders.len();
            let ct = &contenders[i];
            let r = run_once(ct, opts.publishers, opts.events, &meters).await?;
            eprintln!(
                "round {round}/{} {:<18} {:>8.0} events/s  p50 {:>7.1} ms  p99 {:>7.1} ms  cpu {:>6.1} µs/event  broker {} µs/event",
                opts.rounds,
                ct.key,
                r.events_per_s,
                r.p50_us / 1000.0,
                r.p99_us / 1000.0,
                r.cpu_us_per_event,
                r.broker_cpu_us_per_event
                    .map_or_else(|| "-".to_owned(), |b| format!("{b:.1}")),
            );
            runs.entry(i).or_default().push(r);
        }
    }
    let rss_after = rss_bytes();
    for ct in &contenders {
        let bad = ct.sink.bad.load(Ordering::Relaxed);
        if bad > 0 {
            eprintln!(
                "warning: {}: {bad} events without a readable payload",
                ct.key
            );
        }
    }
    let summaries: Vec<Summary> = contenders
        .iter()
        .enumerate()
        .map(|(i, ct)| summarize(ct, opts.events, runs.remove(&i).unwrap_or_default()))
        .collect();
    print_table(&summaries, opts);
    let ratios = ratios(&summaries);
    print_ratios(&ratios);
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!(
            "\nRSS: {:.1} MiB after warm-up, {:.1} MiB after the rounds",
            a as f64 / 1048576.0,
            b as f64 / 1048576.0
        );
    }
    write_json(&summaries, &ratios, opts, (rss_before, rss_after))
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("events bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("events bench: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(bench(opts)) {
        eprintln!("events bench: {e}");
        std::process::exit(1);
    }
}
