//! RPC benchmark: kontiki-rs against raw lapin request/reply pairs, in one process, on one
//! broker.
//!
//! Contenders (each has its own server connection and client connection, like a service and a
//! stand-alone `Messenger`):
//!
//! * `kontiki-rs`: a [`Service`] with one RPC `echo(x) -> x`, started in-process, called through
//!   a stand-alone [`Messenger`].
//! * `raw-rs`: a hand-written lapin pair with kontiki-rs's wire settings: transient requests with
//!   `expiration`, mandatory, publisher confirms on but not awaited before the reply, direct
//!   reply-to (`amq.rabbitmq.reply-to`, no-ack), replies on a channel without confirms.
//! * `raw-kontiki`: a hand-written lapin pair with Python Kontiki 2.3.2's wire settings:
//!   persistent requests (delivery mode 2), mandatory, confirm awaited before waiting for the
//!   reply, an exclusive server-named reply queue consumed with acks, replies published
//!   (mandatory) on the consumer channel with confirms awaited.
//! * extras (unless `--no-extras`): the same with server prefetch 100 instead of 10
//!   (`kontiki.amqp.max_pending_messages`), and `raw-kontiki-transient` (Kontiki's settings but
//!   transient requests whose confirm is not awaited before the reply).
//!
//! The raw pairs send the same header names as Kontiki (prebuilt once, cloned per call), encode
//! and decode the same JSON bodies with serde_json and use a `Mutex<HashMap>` of pending calls
//! keyed by correlation id, multiplexed over one channel: the minimum a compatible client and
//! server must do. The ratio kontiki-rs / raw-rs is the framework overhead at identical wire
//! settings.
//!
//! Run: `cargo bench -p kontiki-rt --bench rpc -- [--quick] [--rounds N] [--calls1 N]
//! [--callsN N] [--concurrency 1,64] [--only a,b] [--no-extras] [--payload BYTES] [--json PATH]`
//! (`--payload`: each call sends, and gets back, a string of that many bytes instead of a number)
//! (env: `KONTIKI_AMQP_URL`, `KONTIKI_BENCH_ROUNDS`, `KONTIKI_BENCH_CALLS1`,
//! `KONTIKI_BENCH_CALLSN`; `KONTIKI_BENCH_METRICS=off`, `KONTIKI_BENCH_DEDUP=off` and
//! `KONTIKI_BENCH_CONSUMER_CONNECTION=off` turn those features off in the service). Defaults: 5 rounds, 4,000 calls per run at c=1 and 30,000 at
//! c=64, after a warm-up; `--quick` (CI): 2 rounds, 300 and 3,000. Contenders run interleaved for R rounds; the table shows medians
//! over the rounds. CPU is the whole process (`/proc/self/stat` utime+stime), so it covers
//! client and server; broker CPU is read from the local `beam.smp` process when there is one.
//! Results also go to `target/bench/rpc.json`.

use futures_util::StreamExt as _;
use kontiki_rt::{Call, Config, Messenger, RpcEntrypoint, RunningService, Service};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type BenchResult<T> = Result<T, String>;

const RPC_EXCHANGE: &str = "rpc_exchange";
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    url: String,
    rounds: usize,
    calls1: u64,
    calls_n: u64,
    warmup: u64,
    concurrency: Vec<usize>,
    only: Option<Vec<String>>,
    extras: bool,
    json_path: std::path::PathBuf,
    quick: bool,
    payload: usize,
}

/// With `--payload N`: the `N - 1` bytes every call's argument ends with (after its number and
/// a `:`), so argument and result are `N` bytes or a few more.
static PAD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

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
        calls1: if quick { 300 } else { 4_000 },
        calls_n: if quick { 3_000 } else { 30_000 },
        warmup: if quick { 100 } else { 500 },
        concurrency: vec![1, 64],
        only: None,
        extras: true,
        json_path: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(std::path::Path::new(".."))
            .join("target")
            .join("bench")
            .join("rpc.json"),
        quick,
        payload: 0,
    };
    if let Some(n) = env_num("KONTIKI_BENCH_ROUNDS") {
        o.rounds = n as usize;
    }
    if let Some(n) = env_num("KONTIKI_BENCH_CALLS1") {
        o.calls1 = n;
    }
    if let Some(n) = env_num("KONTIKI_BENCH_CALLSN") {
        o.calls_n = n;
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
            "--calls1" => o.calls1 = num("--calls1", args.pop())?,
            "--callsN" | "--callsn" => o.calls_n = num("--callsN", args.pop())?,
            "--warmup" => o.warmup = num("--warmup", args.pop())?,
            "--concurrency" => {
                let v = args.pop().ok_or("--concurrency needs a value")?;
                o.concurrency = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--concurrency: {e}")))
                    .collect::<BenchResult<_>>()?;
            }
            "--only" => {
                let v = args.pop().ok_or("--only needs a value")?;
                o.only = Some(v.split(',').map(str::to_owned).collect());
            }
            "--no-extras" => o.extras = false,
            "--payload" => o.payload = num("--payload", args.pop())? as usize,
            "--json" => o.json_path = args.pop().ok_or("--json needs a value")?.into(),
            "--help" | "-h" => {
                println!(
                    "cargo bench -p kontiki-rt --bench rpc -- [--quick] [--rounds N] [--calls1 N] \
                     [--callsN N] [--warmup N] [--concurrency 1,64] [--only kontiki-rs,raw-rs] \
                     [--no-extras] [--payload BYTES] [--json PATH]"
                );
                std::process::exit(0);
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ => {} // a filter cargo passes through; ignored
        }
    }
    if o.rounds == 0 || o.concurrency.contains(&0) {
        return Err("--rounds and --concurrency must be at least 1".to_owned());
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
// kontiki-rs contender

fn echo_service(name: &str) -> BenchResult<Service> {
    Service::builder(name)
        .rpc(
            RpcEntrypoint::new("echo", |call: Call| async move {
                Ok(call.args.into_iter().next().unwrap_or(Value::Null))
            })
            .params(["x"]),
        )
        .build()
        .map_err(|e| format!("service definition: {e}"))
}

async fn start_service(url: &str, name: &str, prefetch: u16) -> BenchResult<RunningService> {
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
    // KONTIKI_BENCH_DEDUP=off: `kontiki.amqp.rpc.dedup_window: 0` (no redelivery cache), for
    // the price-of-each-feature rows of `make bench`'s cost section.
    let dedup = match std::env::var("KONTIKI_BENCH_DEDUP").as_deref() {
        Ok("off") => "    rpc:\n      dedup_window: 0\n",
        _ => "",
    };
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{url}\"\n    max_pending_messages: {prefetch}\n    consumer_connection: {consumer_connection}\n{dedup}  registration:\n    disable: true\n  shutdown:\n    grace_seconds: 5\n{metrics}"
    );
    let config = Config::from_yaml_str("bench.yaml", &yaml).map_err(|e| format!("config: {e}"))?;
    echo_service(name)?
        .start(config)
        .await
        .map_err(|e| format!("start service {name}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Raw lapin pair

/// How the raw pair uses the wire.
#[derive(Debug, Clone, Copy)]
struct RawStyle {
    /// Delivery mode 2 on requests.
    persistent: bool,
    /// Wait for the request's confirm before waiting for the reply (Python Kontiki).
    await_confirm: bool,
    /// `amq.rabbitmq.reply-to` (kontiki-rs) rather than an own exclusive queue with acks.
    direct_reply_to: bool,
    /// Requests carry `expiration` = the call timeout (kontiki-rs).
    expiration: bool,
    /// Replies go out mandatory on the consumer channel with confirms awaited (Python
    /// Kontiki), rather than on a separate channel without confirms (kontiki-rs).
    confirmed_replies: bool,
    /// Server prefetch per consumer.
    prefetch: u16,
}

#[derive(Debug, Deserialize)]
struct RawRequest {
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    #[allow(dead_code, reason = "decoded like a real server would, unused by echo")]
    kwargs: Map<String, Value>,
}

struct RawServer {
    conn: Connection,
}

async fn start_raw_server(
    url: &str,
    queue: &str,
    routing_key: &str,
    style: RawStyle,
) -> BenchResult<RawServer> {
    let amqp = |what: &'static str| move |e: lapin::Error| format!("raw server {what}: {e}");
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(amqp("connect"))?;
    let consume = conn.create_channel().await.map_err(amqp("channel"))?;
    if style.confirmed_replies {
        consume
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp("confirm_select"))?;
    }
    consume
        .basic_qos(style.prefetch, BasicQosOptions { global: false })
        .await
        .map_err(amqp("qos"))?;
    let reply = if style.confirmed_replies {
        consume.clone()
    } else {
        conn.create_channel().await.map_err(amqp("reply channel"))?
    };
    consume
        .exchange_declare(
            RPC_EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("exchange"))?;
    consume
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp("queue"))?;
    consume
        .queue_bind(
            queue.into(),
            RPC_EXCHANGE.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("bind"))?;
    let mut consumer = consume
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("consume"))?;
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let reply = reply.clone();
            tokio::spawn(raw_handle(reply, delivery, style));
        }
    });
    Ok(RawServer { conn })
}

async fn raw_handle(reply: Channel, delivery: lapin::message::Delivery, style: RawStyle) {
    let envelope = match serde_json::from_slice::<RawRequest>(&delivery.data) {
        Ok(req) => json!({
            "__rpcreturn__": true, "success": true,
            "result": req.args.into_iter().next().unwrap_or(Value::Null),
            "message": null, "error_type": "NONE", "error_code": null,
        }),
        Err(e) => json!({
            "__rpcreturn__": true, "success": false, "result": null,
            "message": e.to_string(), "error_type": "CLIENT", "error_code": "INVALID_REQUEST",
        }),
    };
    let props = &delivery.properties;
    if let Some(reply_to) = props.reply_to() {
        let mut reply_props = BasicProperties::default().with_delivery_mode(1);
        if let Some(cid) = props.correlation_id() {
            reply_props = reply_props.with_correlation_id(cid.clone());
        }
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        let sent = reply
            .basic_publish(
                "".into(),
                reply_to.clone(),
                BasicPublishOptions {
                    mandatory: style.confirmed_replies,
                    immediate: false,
                },
                &body,
                reply_props,
            )
            .await;
        if style.confirmed_replies
            && let Ok(confirm) = sent
        {
            let _ = confirm.await;
        }
    }
    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
}

struct RawClient {
    conn: Connection,
    channel: Channel,
    routing_key: ShortString,
    reply_to: ShortString,
    expiration: ShortString,
    headers: FieldTable,
    style: RawStyle,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kontiki's request headers (protocol §2.5), built once: the wire carries the same names and
/// sizes as kontiki-rs's requests.
fn kontiki_like_headers(service: &str) -> FieldTable {
    let s = |v: &str| AMQPValue::LongString(v.as_bytes().to_vec().into());
    let mut h = FieldTable::default();
    h.insert("service_name".into(), s("kontiki-standalone-bench"));
    h.insert(
        "instance_id".into(),
        s(&uuid::Uuid::new_v4().hyphenated().to_string()),
    );
    h.insert("host".into(), s("benchhost"));
    h.insert("timestamp".into(), s("2026-11-29T04:19:50.580576+00:00"));
    h.insert("remote_method".into(), s("echo"));
    h.insert("rpc_service".into(), s(service));
    h.insert("flow_id".into(), s("0123456789ab"));
    h.insert("hop_id".into(), s("0123456789abcdef"));
    h
}

async fn start_raw_client(
    url: &str,
    service: &str,
    routing_key: &str,
    style: RawStyle,
) -> BenchResult<Arc<RawClient>> {
    let amqp = |what: &'static str| move |e: lapin::Error| format!("raw client {what}: {e}");
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
            RPC_EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp("exchange"))?;
    let (reply_to, no_ack): (ShortString, bool) = if style.direct_reply_to {
        (DIRECT_REPLY_TO.into(), true)
    } else {
        let q = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp("reply queue"))?;
        (q.name().clone(), false)
    };
    let mut consumer = channel
        .basic_consume(
            reply_to.clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp("consume replies"))?;
    let client = Arc::new(RawClient {
        conn,
        channel,
        routing_key: routing_key.into(),
        reply_to,
        expiration: CALL_TIMEOUT.as_millis().to_string().into(),
        headers: kontiki_like_headers(service),
        style,
        next_id: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
    });
    let weak = Arc::downgrade(&client);
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let Some(client) = weak.upgrade() else { return };
            let id = delivery
                .properties
                .correlation_id()
                .as_ref()
                .and_then(|c| c.as_str().parse::<u64>().ok());
            if let Some(tx) = id.and_then(|id| lock(&client.pending).remove(&id)) {
                let _ = tx.send(delivery.data);
            }
            if !no_ack {
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            }
        }
    });
    Ok(client)
}

/// Removes a pending call however the call ends.
struct PendingGuard<'a>(&'a RawClient, u64);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.pending).remove(&self.1);
    }
}

impl RawClient {
    async fn call(&self, x: Value) -> BenchResult<Value> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_inner(x))
            .await
            .map_err(|_| "raw call timed out".to_owned())?
    }

    async fn call_inner(&self, x: Value) -> BenchResult<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let _guard = PendingGuard(self, id);
        let body =
            serde_json::to_vec(&json!({"args": [x], "kwargs": {}})).map_err(|e| e.to_string())?;
        let mut props = BasicProperties::default()
            .with_correlation_id(id.to_string().into())
            .with_reply_to(self.reply_to.clone())
            .with_delivery_mode(if self.style.persistent { 2 } else { 1 })
            .with_headers(self.headers.clone());
        if self.style.expiration {
            props = props.with_expiration(self.expiration.clone());
        }
        let mut confirm = self
            .channel
            .basic_publish(
                RPC_EXCHANGE.into(),
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
        let check = |c: lapin::Result<Confirmation>| match c {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(()),
            other => Err(format!("request not confirmed: {other:?}")),
        };
        let bytes = if self.style.await_confirm {
            check(confirm.await)?;
            rx.await.map_err(|_| "reply lost".to_owned())?
        } else {
            tokio::select! {
                reply = &mut rx => reply.map_err(|_| "reply lost".to_owned())?,
                c = &mut confirm => {
                    check(c)?;
                    rx.await.map_err(|_| "reply lost".to_owned())?
                }
            }
        };
        let mut reply: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        match reply.get("success") {
            Some(Value::Bool(true)) => Ok(reply
                .as_object_mut()
                .and_then(|o| o.remove("result"))
                .unwrap_or(Value::Null)),
            _ => Err(format!("error reply: {reply}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contenders

#[derive(Clone)]
enum Client {
    Kontiki {
        messenger: Messenger,
        service: Arc<str>,
    },
    Raw(Arc<RawClient>),
}

impl Client {
    async fn call(&self, x: i64) -> BenchResult<()> {
        let arg = match PAD.get() {
            Some(pad) => json!(format!("{x}:{pad}")),
            None => json!(x),
        };
        // Checked without keeping a copy of a large argument.
        let (len, number) = (arg.as_str().map(str::len), arg.as_i64());
        let got = match self {
            Client::Kontiki { messenger, service } => messenger
                .call(service, "echo", vec![arg], Map::new())
                .await
                .map_err(|e| e.to_string())?,
            Client::Raw(raw) => raw.call(arg).await?,
        };
        let same = match &got {
            Value::String(s) => Some(s.len()) == len && s.starts_with(&format!("{x}:")),
            other => other.as_i64().is_some() && other.as_i64() == number,
        };
        if same {
            Ok(())
        } else {
            Err(format!("echo({x}) returned something else"))
        }
    }
}

struct Contender {
    key: &'static str,
    label: &'static str,
    client: Client,
}

/// What to tear down at the end.
#[derive(Default)]
struct Cleanup {
    services: Vec<RunningService>,
    messengers: Vec<Messenger>,
    raw_servers: Vec<RawServer>,
    raw_clients: Vec<Arc<RawClient>>,
    queues: Vec<String>,
}

fn wanted(opts: &Opts, key: &str) -> bool {
    opts.only
        .as_ref()
        .is_none_or(|only| only.iter().any(|k| k == key))
}

async fn add_kontiki(
    opts: &Opts,
    out: &mut Vec<Contender>,
    cleanup: &mut Cleanup,
    key: &'static str,
    label: &'static str,
    prefetch: u16,
) -> BenchResult<()> {
    if !wanted(opts, key) {
        return Ok(());
    }
    let name = unique(&format!("bench-{key}"));
    let svc = start_service(&opts.url, &name, prefetch).await?;
    cleanup.queues.push(format!("{name}.echo.queue"));
    cleanup
        .queues
        .push(format!("{name}.___kontiki__internal_session_open__.queue"));
    cleanup.services.push(svc);
    let messenger = Messenger::builder(opts.url.as_str())
        .client_name("bench")
        .rpc_timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("messenger: {e}"))?;
    cleanup.messengers.push(messenger.clone());
    out.push(Contender {
        key,
        label,
        client: Client::Kontiki {
            messenger,
            service: Arc::from(name),
        },
    });
    Ok(())
}

async fn add_raw(
    opts: &Opts,
    out: &mut Vec<Contender>,
    cleanup: &mut Cleanup,
    key: &'static str,
    label: &'static str,
    style: RawStyle,
) -> BenchResult<()> {
    if !wanted(opts, key) {
        return Ok(());
    }
    let name = unique(&format!("bench-{key}"));
    let queue = format!("{name}.echo.queue");
    let routing_key = format!("{name}.echo");
    let server = start_raw_server(&opts.url, &queue, &routing_key, style).await?;
    cleanup.queues.push(queue);
    cleanup.raw_servers.push(server);
    let client = start_raw_client(&opts.url, &name, &routing_key, style).await?;
    cleanup.raw_clients.push(client.clone());
    out.push(Contender {
        key,
        label,
        client: Client::Raw(client),
    });
    Ok(())
}

const RS_STYLE: RawStyle = RawStyle {
    persistent: false,
    await_confirm: false,
    direct_reply_to: true,
    expiration: true,
    confirmed_replies: false,
    prefetch: 10,
};

const KONTIKI_STYLE: RawStyle = RawStyle {
    persistent: true,
    await_confirm: true,
    direct_reply_to: false,
    expiration: false,
    confirmed_replies: true,
    prefetch: 10,
};

async fn setup(opts: &Opts, cleanup: &mut Cleanup) -> BenchResult<Vec<Contender>> {
    let mut c = Vec::new();
    add_kontiki(
        opts,
        &mut c,
        cleanup,
        "kontiki-rs",
        "kontiki-rs (Service + Messenger), prefetch 10",
        10,
    )
    .await?;
    add_raw(
        opts,
        &mut c,
        cleanup,
        "raw-rs",
        "raw lapin, kontiki-rs wire settings, prefetch 10",
        RS_STYLE,
    )
    .await?;
    add_raw(
        opts,
        &mut c,
        cleanup,
        "raw-kontiki",
        "raw lapin, Kontiki wire settings (persistent, confirmed), prefetch 10",
        KONTIKI_STYLE,
    )
    .await?;
    if opts.extras {
        add_kontiki(
            opts,
            &mut c,
            cleanup,
            "kontiki-rs-p100",
            "kontiki-rs, prefetch 100",
            100,
        )
        .await?;
        add_raw(
            opts,
            &mut c,
            cleanup,
            "raw-rs-p100",
            "raw lapin, kontiki-rs wire settings, prefetch 100",
            RawStyle {
                prefetch: 100,
                ..RS_STYLE
            },
        )
        .await?;
        add_raw(
            opts,
            &mut c,
            cleanup,
            "raw-kontiki-p100",
            "raw lapin, Kontiki wire settings, prefetch 100",
            RawStyle {
                prefetch: 100,
                ..KONTIKI_STYLE
            },
        )
        .await?;
        add_raw(
            opts,
            &mut c,
            cleanup,
            "raw-kontiki-transient",
            "raw lapin, Kontiki settings but transient requests, confirm not awaited",
            RawStyle {
                persistent: false,
                await_confirm: false,
                ..KONTIKI_STYLE
            },
        )
        .await?;
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
        raw_servers,
        raw_clients,
        queues,
    } = cleanup;
    for m in messengers {
        m.close().await;
    }
    for s in services {
        s.shutdown().await;
    }
    for c in raw_clients {
        let _ = c.channel.close(200, "bench done".into()).await;
        let _ = c.conn.close(200, "bench done".into()).await;
    }
    for s in raw_servers {
        let _ = s.conn.close(200, "bench done".into()).await;
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
    calls: u64,
    errors: u64,
    secs: f64,
    calls_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_call: f64,
    broker_cpu_us_per_call: Option<f64>,
}

struct Meters {
    tck: f64,
    broker: Option<String>,
}

async fn run_once(
    client: &Client,
    concurrency: usize,
    calls: u64,
    meters: &Meters,
) -> BenchResult<RunStats> {
    let remaining = Arc::new(AtomicI64::new(i64::try_from(calls).unwrap_or(i64::MAX)));
    let cpu0 = proc_cpu_ticks("self").ok_or("cannot read /proc/self/stat")?;
    let broker0 = meters.broker.as_deref().and_then(proc_cpu_ticks);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let remaining = remaining.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let n = remaining.fetch_sub(1, Ordering::Relaxed);
                if n <= 0 {
                    break;
                }
                let start = Instant::now();
                match client.call(n).await {
                    Ok(()) => lat.push(start.elapsed().as_nanos() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut lat = Vec::with_capacity(calls as usize);
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (l, e, fe) = t.await.map_err(|e| format!("caller task: {e}"))?;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = proc_cpu_ticks("self").ok_or("cannot read /proc/self/stat")?;
    let broker1 = meters.broker.as_deref().and_then(proc_cpu_ticks);
    if let Some(e) = first_error {
        eprintln!("warning: {errors} failed calls; first: {e}");
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    let done = lat.len() as u64;
    let per_call = |ticks: u64| ticks as f64 / meters.tck * 1e6 / done.max(1) as f64;
    Ok(RunStats {
        calls: done,
        errors,
        secs,
        calls_per_s: done as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_call: per_call(cpu1.saturating_sub(cpu0)),
        broker_cpu_us_per_call: match (broker0, broker1) {
            (Some(a), Some(b)) => Some(per_call(b.saturating_sub(a))),
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
    concurrency: usize,
    calls_per_run: u64,
    errors: u64,
    calls_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_call: f64,
    broker_cpu_us_per_call: Option<f64>,
    rounds: Vec<RunStats>,
}

fn summarize(key: &'static str, label: &'static str, c: usize, runs: Vec<RunStats>) -> Summary {
    let m = |f: fn(&RunStats) -> f64| median(runs.iter().map(f).collect());
    let broker: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.broker_cpu_us_per_call)
        .collect();
    Summary {
        key,
        label,
        concurrency: c,
        calls_per_run: runs.first().map_or(0, |r| r.calls + r.errors),
        errors: runs.iter().map(|r| r.errors).sum(),
        calls_per_s: m(|r| r.calls_per_s),
        p50_us: m(|r| r.p50_us),
        p99_us: m(|r| r.p99_us),
        cpu_us_per_call: m(|r| r.cpu_us_per_call),
        broker_cpu_us_per_call: (!broker.is_empty()).then(|| median(broker)),
        rounds: runs,
    }
}

// ---------------------------------------------------------------------------------------------
// Output

fn print_table(summaries: &[Summary], opts: &Opts) {
    println!();
    println!(
        "RPC echo(x) -> x, medians of {} rounds (interleaved), one process, broker {}",
        opts.rounds,
        redact(&opts.url)
    );
    println!(
        "{:<22} {:>4} {:>7} {:>10} {:>9} {:>9} {:>12} {:>14} {:>6}",
        "contender",
        "c",
        "calls",
        "calls/s",
        "p50 µs",
        "p99 µs",
        "CPU µs/call",
        "broker µs/call",
        "errors"
    );
    let mut last_c = None;
    for s in summaries {
        if last_c.is_some_and(|c| c != s.concurrency) {
            println!();
        }
        last_c = Some(s.concurrency);
        println!(
            "{:<22} {:>4} {:>7} {:>10.0} {:>9.0} {:>9.0} {:>12.1} {:>14} {:>6}",
            s.key,
            s.concurrency,
            s.calls_per_run,
            s.calls_per_s,
            s.p50_us,
            s.p99_us,
            s.cpu_us_per_call,
            s.broker_cpu_us_per_call
                .map_or_else(|| "-".to_owned(), |b| format!("{b:.1}")),
            s.errors
        );
    }
    println!();
    let mut seen = Vec::new();
    for s in summaries {
        if !seen.contains(&s.key) {
            seen.push(s.key);
            println!("  {:<22} {}", s.key, s.label);
        }
    }
}

#[derive(Debug, Clone)]
struct Ratio {
    name: String,
    concurrency: usize,
    throughput: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
}

fn ratios(summaries: &[Summary], opts: &Opts) -> Vec<Ratio> {
    let pairs = [
        ("kontiki-rs", "raw-rs"),
        ("kontiki-rs", "raw-kontiki"),
        ("raw-rs", "raw-kontiki"),
        ("kontiki-rs-p100", "kontiki-rs"),
        ("raw-rs-p100", "raw-rs"),
        ("raw-kontiki-p100", "raw-kontiki"),
        ("raw-kontiki-transient", "raw-kontiki"),
        ("kontiki-rs-p100", "raw-rs-p100"),
    ];
    let mut out = Vec::new();
    for &c in &opts.concurrency {
        let find = |k: &str| summaries.iter().find(|s| s.key == k && s.concurrency == c);
        for (a, b) in pairs {
            if let (Some(a), Some(b)) = (find(a), find(b)) {
                out.push(Ratio {
                    name: format!("{} / {}", a.key, b.key),
                    concurrency: c,
                    throughput: a.calls_per_s / b.calls_per_s,
                    p50: a.p50_us / b.p50_us,
                    p99: a.p99_us / b.p99_us,
                    cpu: a.cpu_us_per_call / b.cpu_us_per_call,
                });
            }
        }
    }
    out
}

fn print_ratios(ratios: &[Ratio]) {
    println!();
    println!("Ratios (throughput: higher is better for the left side; latency and CPU: lower is)");
    println!(
        "{:<42} {:>4} {:>11} {:>7} {:>7} {:>9}",
        "a / b", "c", "throughput", "p50", "p99", "CPU/call"
    );
    for r in ratios {
        println!(
            "{:<42} {:>4} {:>10.2}x {:>6.2}x {:>6.2}x {:>8.2}x",
            r.name, r.concurrency, r.throughput, r.p50, r.p99, r.cpu
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
                "concurrency": s.concurrency,
                "calls_per_run": s.calls_per_run,
                "errors": s.errors,
                "calls_per_s": f(s.calls_per_s),
                "p50_us": f(s.p50_us),
                "p99_us": f(s.p99_us),
                "cpu_us_per_call": f(s.cpu_us_per_call),
                "broker_cpu_us_per_call": s.broker_cpu_us_per_call.map(f),
                "rounds": s.rounds.iter().map(|r| json!({
                    "calls": r.calls, "errors": r.errors, "secs": f(r.secs),
                    "calls_per_s": f(r.calls_per_s), "p50_us": f(r.p50_us), "p99_us": f(r.p99_us),
                    "cpu_us_per_call": f(r.cpu_us_per_call),
                    "broker_cpu_us_per_call": r.broker_cpu_us_per_call.map(f),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ratio_json: Vec<Value> = ratios
        .iter()
        .map(|r| {
            json!({
                "pair": r.name, "concurrency": r.concurrency, "throughput": f(r.throughput),
                "p50": f(r.p50), "p99": f(r.p99), "cpu_per_call": f(r.cpu),
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "kontiki-rt rpc",
        "broker": redact(&opts.url),
        "rounds": opts.rounds,
        "quick": opts.quick,
        "payload_bytes": opts.payload,
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
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
    let contenders = setup(opts, cleanup).await?;
    let meters = Meters {
        tck: clk_tck(),
        broker: broker_pid(),
    };
    let calls_for = |c: usize| if c == 1 { opts.calls1 } else { opts.calls_n };
    eprintln!(
        "rpc bench: {} contenders, concurrency {:?}, {} rounds, {} calls at c=1 and {} at c>1",
        contenders.len(),
        opts.concurrency,
        opts.rounds,
        opts.calls1,
        opts.calls_n
    );
    for ct in &contenders {
        let c = opts.concurrency.iter().copied().max().unwrap_or(1);
        run_once(&ct.client, c, opts.warmup, &meters).await?;
    }
    let rss_before = rss_bytes();
    let mut runs: HashMap<(usize, usize), Vec<RunStats>> = HashMap::new();
    for round in 1..=opts.rounds {
        for &c in &opts.concurrency {
            for (i, ct) in contenders.iter().enumerate() {
                let r = run_once(&ct.client, c, calls_for(c), &meters).await?;
                eprintln!(
                    "round {round}/{} c={c:<3} {:<22} {:>8.0} calls/s  p50 {:>6.0} µs  p99 {:>6.0} µs  cpu {:>6.1} µs/call",
                    opts.rounds, ct.key, r.calls_per_s, r.p50_us, r.p99_us, r.cpu_us_per_call
                );
                runs.entry((c, i)).or_default().push(r);
            }
        }
    }
    let rss_after = rss_bytes();
    let mut summaries = Vec::new();
    for &c in &opts.concurrency {
        for (i, ct) in contenders.iter().enumerate() {
            let r = runs.remove(&(c, i)).unwrap_or_default();
            summaries.push(summarize(ct.key, ct.label, c, r));
        }
    }
    print_table(&summaries, opts);
    let ratios = ratios(&summaries, opts);
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
            eprintln!("rpc bench: {e}");
            std::process::exit(2);
        }
    };
    if opts.payload > 0 {
        let _ = PAD.set("x".repeat(opts.payload - 1));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rpc bench: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(bench(opts)) {
        eprintln!("rpc bench: {e}");
        std::process::exit(1);
    }
}
