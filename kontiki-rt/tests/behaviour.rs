//! The shared behavioural suite: every scenario runs twice, against a fresh in-process
//! `memory://<unique>` broker (`memory_*` tests) and against RabbitMQ at `KONTIKI_AMQP_URL`
//! (`amqp_*` tests), so the two transports cannot drift apart.

mod support;

use futures_util::StreamExt as _;
use kontiki_rt::memory::Broker;
use kontiki_rt::{
    Call, CallOptions, Config, Error, Event, EventEntrypoint, EventMode, ExchangeType,
    HandlerError, Messenger, PublishOptions, QueueEntrypoint, RawMessage, RpcEntrypoint, RpcError,
    RunningService, Service,
};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::Recorder;

/// Where a scenario runs.
/// Deletes its vhost when dropped.
struct VhostGuard(String);

impl Drop for VhostGuard {
    fn drop(&mut self) {
        support::rabbitmqctl(&["-q", "delete_vhost", &self.0]);
    }
}

#[derive(Debug, Clone)]
struct Target {
    /// What services and messengers are given (`memory://...` or `amqp://...`).
    url: String,
    /// What lapin connects to directly (the in-process broker's TCP URL for `memory://`).
    lapin_url: String,
}

impl Target {
    fn memory() -> Self {
        let name = support::unique("behaviour");
        let broker = Broker::named(&name).expect("start the memory broker");
        Self {
            url: format!("memory://{name}"),
            lapin_url: broker.url(),
        }
    }

    fn amqp() -> Self {
        Self {
            url: support::amqp_url(),
            lapin_url: support::amqp_url(),
        }
    }

    /// This target where nothing else runs: memory brokers are private already; on RabbitMQ
    /// a vhost of its own (made with rabbitmqctl, deleted with the guard). Needed where any
    /// other test's binding would change the outcome (a registry or a tap binds
    /// `event_exchange` with `#`, which makes every event routable).
    fn isolated(&self) -> (Target, Option<VhostGuard>) {
        if self.url.starts_with("memory:") {
            return (self.clone(), None);
        }
        let name = support::unique("behaviour-own");
        support::add_vhost(&name);
        let root = self
            .url
            .rsplit_once('/')
            .map_or(self.url.as_str(), |(root, _)| root);
        let url = format!("{root}/{name}");
        (
            Target {
                url: url.clone(),
                lapin_url: url,
            },
            Some(VhostGuard(name)),
        )
    }

    fn config(&self, service: &str, prefetch: u16) -> Config {
        let yaml = format!(
            "kontiki:\n  service_name: {service}\n  amqp:\n    url: \"{}\"\n    max_pending_messages: {prefetch}\n    rpc:\n      timeout: 5\n  shutdown:\n    grace_seconds: 5\n  registration:\n    disable: true\n",
            self.url
        );
        Config::from_yaml_str("behaviour.yaml", &yaml).expect("test config")
    }

    async fn start(&self, svc: Service, name: &str) -> RunningService {
        self.start_with_prefetch(svc, name, 10).await
    }

    async fn start_with_prefetch(&self, svc: Service, name: &str, prefetch: u16) -> RunningService {
        svc.start(self.config(name, prefetch))
            .await
            .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
    }

    async fn messenger(&self) -> Messenger {
        Messenger::builder(self.url.as_str())
            .client_name("behaviour")
            .rpc_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
    }

    async fn lapin(&self) -> lapin::Connection {
        lapin::Connection::connect(&self.lapin_url, lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
    }

    /// The ready-message count of `queue`, `None` when it does not exist.
    async fn queue_count(&self, queue: &str) -> Option<u32> {
        let conn = self.lapin().await;
        let ch = conn.create_channel().await.expect("channel");
        let found = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let _ = conn.close(200, "done".into()).await;
        match found {
            Ok(q) => Some(q.message_count()),
            Err(e) if e.to_string().contains("NOT_FOUND") => None,
            Err(e) => panic!("passive declare of {queue}: {e}"),
        }
    }

    /// Waits (at most 10 s) until `queue` no longer exists.
    async fn wait_gone(&self, queue: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.queue_count(queue).await.is_some() {
            assert!(
                Instant::now() < deadline,
                "queue {queue} still exists after 10 s"
            );
            tokio::task::yield_now().await;
        }
    }

    async fn delete_queues(&self, names: &[String]) {
        let conn = self.lapin().await;
        for name in names {
            let ch = conn.create_channel().await.expect("channel");
            let _ = ch
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "cleanup".into()).await;
    }
}

/// Runs `scenario` as two tests: `$mem` on a fresh memory broker, `$amqp` on RabbitMQ.
macro_rules! both {
    ($($scenario:ident => $mem:ident, $amqp:ident;)*) => {$(
        #[tokio::test]
        async fn $mem() {
            $scenario(Target::memory()).await;
        }
        #[tokio::test]
        async fn $amqp() {
            $scenario(Target::amqp()).await;
        }
    )*};
}

both! {
    rpc_round_trip => memory_rpc_round_trip, amqp_rpc_round_trip;
    competing_events => memory_competing_events, amqp_competing_events;
    broadcast_events => memory_broadcast_events, amqp_broadcast_events;
    in_session_events => memory_in_session_events, amqp_in_session_events;
    retries_then_dead_letter => memory_retries_then_dead_letter, amqp_retries_then_dead_letter;
    topic_routing => memory_topic_routing, amqp_topic_routing;
    queue_handler_panics => memory_queue_handler_panics, amqp_queue_handler_panics;
    prefetch_respected => memory_prefetch_respected, amqp_prefetch_respected;
    instance_queues_gone_after_close => memory_instance_queues_gone_after_close, amqp_instance_queues_gone_after_close;
    mandatory_publish_to_nowhere => memory_mandatory_publish_to_nowhere, amqp_mandatory_publish_to_nowhere;
    confirms => memory_confirms, amqp_confirms;
    services_call_each_other => memory_services_call_each_other, amqp_services_call_each_other;
}

fn calc(name: &str) -> Service {
    Service::builder(name)
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                let x = call.args[0].as_i64().ok_or_else(|| {
                    HandlerError::client("INVALID_ARGUMENTS", "x must be an integer")
                })?;
                Ok(json!(x * 2))
            })
            .params(["x"]),
        )
        .rpc(
            RpcEntrypoint::new("slow", |call: Call| async move {
                let ms = call.args[0].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!(ms))
            })
            .params(["ms"]),
        )
        .build()
        .expect("valid service")
}

async fn rpc_round_trip(t: Target) {
    let name = support::unique("beh-rpc");
    let svc = t.start(calc(&name), &name).await;
    let m = t.messenger().await;

    assert_eq!(
        m.call(&name, "double", vec![json!(21)], Map::new())
            .await
            .unwrap(),
        json!(42)
    );
    match m.call(&name, "double", vec![json!("x")], Map::new()).await {
        Err(RpcError::Client { error, .. }) => {
            assert_eq!(error.code.as_deref(), Some("INVALID_ARGUMENTS"), "{error}");
        }
        other => panic!("expected a client error, got {other:?}"),
    }
    match m.call(&name, "nope", vec![], Map::new()).await {
        Err(RpcError::UnknownMethod { method, .. }) => assert_eq!(method, "nope"),
        other => panic!("expected an unknown method, got {other:?}"),
    }
    let started = Instant::now();
    let nobody = support::unique("beh-nobody");
    match m.call(&nobody, "double", vec![json!(1)], Map::new()).await {
        Err(RpcError::UnknownService { service, .. }) => assert_eq!(service, nobody),
        other => panic!("expected an unknown service, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "an unknown service must fail at once, took {:?}",
        started.elapsed()
    );
    let opts = CallOptions::default().timeout(Duration::from_millis(300));
    let body = kontiki_rt::wire::RequestBody {
        args: vec![json!(3000)],
        kwargs: Map::new(),
    };
    let started = Instant::now();
    match m.call_with(&name, "slow", body, opts).await {
        Err(RpcError::Timeout { timeout, .. }) => {
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    svc.shutdown().await;
    m.close().await;
}

fn recording(name: &str, event: &str, mode: EventMode, rec: Arc<Recorder>) -> Service {
    Service::builder(name)
        .event(
            EventEntrypoint::new("on_event", [event], move |ev: Event| {
                let rec = rec.clone();
                async move {
                    let iid = ev.context.container().identity().instance_id.to_string();
                    rec.record(&iid, ev.payload);
                    Ok(())
                }
            })
            .mode(mode),
        )
        .build()
        .unwrap()
}

fn per_instance(items: &[(String, Value)]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (who, _) in items {
        *m.entry(who.clone()).or_default() += 1;
    }
    m
}

async fn competing_events(t: Target) {
    let name = support::unique("beh-compete");
    let event = format!("{name}.happened");
    let rec = Recorder::new();
    let a = t
        .start(
            recording(&name, &event, EventMode::Competing, rec.clone()),
            &name,
        )
        .await;
    let b = t
        .start(
            recording(&name, &event, EventMode::Competing, rec.clone()),
            &name,
        )
        .await;
    let m = t.messenger().await;
    for i in 0..40 {
        m.publish(&event, &json!({"n": i})).await.unwrap();
    }
    rec.wait_for(40, 30).await;
    let iids = BTreeSet::from([
        a.identity().instance_id.to_string(),
        b.identity().instance_id.to_string(),
    ]);
    a.shutdown().await;
    b.shutdown().await;
    let items = rec.items();
    assert_eq!(items.len(), 40, "each event handled once: {items:?}");
    let ns: BTreeSet<i64> = items
        .iter()
        .map(|(_, p)| p["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, (0..40).collect());
    let spread = per_instance(&items);
    assert_eq!(
        spread.keys().cloned().collect::<BTreeSet<_>>(),
        iids,
        "both instances take a share: {spread:?}"
    );
    m.close().await;
    t.delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}

async fn broadcast_events(t: Target) {
    let name = support::unique("beh-bcast");
    let event = format!("{name}.news");
    let rec = Recorder::new();
    let a = t
        .start(
            recording(&name, &event, EventMode::Broadcast, rec.clone()),
            &name,
        )
        .await;
    let b = t
        .start(
            recording(&name, &event, EventMode::Broadcast, rec.clone()),
            &name,
        )
        .await;
    let m = t.messenger().await;
    for i in 0..5 {
        m.publish(&event, &json!({"n": i})).await.unwrap();
    }
    rec.wait_for(10, 30).await;
    a.shutdown().await;
    b.shutdown().await;
    let spread = per_instance(&rec.items());
    assert_eq!(spread.len(), 2, "{spread:?}");
    assert!(spread.values().all(|&n| n == 5), "{spread:?}");
    m.close().await;
}

async fn in_session_events(t: Target) {
    let name = support::unique("beh-session");
    let event = format!("{name}.step");
    let rec = Recorder::new();
    let a = t
        .start(
            recording(&name, &event, EventMode::InSession, rec.clone()),
            &name,
        )
        .await;
    let b = t
        .start(
            recording(&name, &event, EventMode::InSession, rec.clone()),
            &name,
        )
        .await;
    let m = t.messenger().await;
    let session = m.open_session(&name).await.unwrap();
    let chosen = session.instance_id().to_owned();
    for i in 0..4 {
        session.publish(&event, &json!({"n": i})).await.unwrap();
    }
    // A plain publish of the same event type reaches no in-session handler.
    m.publish(&event, &json!({"n": "plain"})).await.unwrap();
    rec.wait_for(4, 30).await;
    a.shutdown().await;
    b.shutdown().await;
    let items = rec.items();
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items.iter().all(|(who, _)| *who == chosen), "{items:?}");
    m.close().await;
}

async fn retries_then_dead_letter(t: Target) {
    let name = support::unique("beh-fail");
    let event = format!("{name}.bad");
    let fixed = Arc::new(AtomicBool::new(false));
    let rec = Recorder::new();
    let (f2, r2) = (fixed.clone(), rec.clone());
    let svc = Service::builder(name.as_str())
        .event(
            EventEntrypoint::new("on_bad", [event.as_str()], move |ev: Event| {
                let (fixed, rec) = (f2.clone(), r2.clone());
                async move {
                    let outcome = if fixed.load(Ordering::SeqCst) {
                        "fixed"
                    } else {
                        "failed"
                    };
                    rec.record(
                        outcome,
                        json!({"payload": ev.payload, "redelivered": ev.redelivered}),
                    );
                    if outcome == "fixed" {
                        Ok(())
                    } else {
                        Err(HandlerError::server("cannot handle this yet"))
                    }
                }
            })
            .max_attempts(3),
        )
        .build()
        .unwrap();
    let svc = t.start(svc, &name).await;
    let m = t.messenger().await;
    m.publish(&event, &json!({"order": 7})).await.unwrap();
    let items = rec.wait_for(3, 30).await;
    // The redelivered flag: false on the first delivery, true on the retries.
    let flags: Vec<bool> = items
        .iter()
        .map(|(_, v)| v["redelivered"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [false, true, true], "{items:?}");

    let listed = wait_failed(&m, &name, &event, 1).await;
    assert_eq!(rec.items().len(), 3, "exactly max_attempts deliveries");
    let msg = &listed.messages[0];
    assert_eq!(msg.body, json!({"order": 7}));
    let death = &msg.headers["x-death"][0];
    assert_eq!(death["reason"], json!("delivery_limit"), "{death}");
    assert_eq!(death["queue"], json!(format!("{name}.{event}.queue")));
    assert_eq!(death["count"], json!(1), "{death}");
    assert_eq!(
        msg.headers["x-first-death-reason"],
        json!("delivery_limit"),
        "{:?}",
        msg.headers
    );

    fixed.store(true, Ordering::SeqCst);
    assert_eq!(m.replay_failed(&name, &event, 5).await.unwrap(), 1);
    let items = rec.wait_for(4, 30).await;
    assert_eq!(items[3].0, "fixed");
    assert_eq!(items[3].1["payload"], json!({"order": 7}));
    wait_failed(&m, &name, &event, 0).await;
    svc.shutdown().await;
    m.close().await;
    t.delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}

/// Lists the failed queue until it holds `n` messages; fails after 30 s.
async fn wait_failed(m: &Messenger, name: &str, event: &str, n: u32) -> kontiki_rt::FailedMessages {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = m.list_failed(name, event, 10).await.unwrap();
        if listed.count == n && listed.messages.len() == n as usize {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "failed queue of {name}/{event} never held {n}: {listed:?}"
        );
        tokio::task::yield_now().await;
    }
}

async fn topic_routing(t: Target) {
    let name = support::unique("beh-topic");
    let exchange = format!("{name}.ex");
    let queue = format!("{name}.q");
    let rec = Recorder::new();
    let r2 = rec.clone();
    let svc = Service::builder(name.as_str())
        .queue(
            QueueEntrypoint::new(queue.as_str(), move |msg: RawMessage| {
                let rec = r2.clone();
                async move {
                    rec.record(&msg.routing_key, json!(msg.exchange));
                    Ok(())
                }
            })
            .flags(false, true, true)
            .exchange(exchange.as_str(), ExchangeType::Topic, false)
            .bind(exchange.as_str(), "a.*.c")
            .bind(exchange.as_str(), "x.#"),
        )
        .build()
        .unwrap();
    let svc = t.start(svc, &name).await;
    let m = t.messenger().await;
    for key in ["a.b.c", "a.b.b.c", "a.c", "x", "x.y.z", "y.x", "a.end.c"] {
        m.publish_raw(&exchange, key, b"{}", None).await.unwrap();
    }
    // One consumer, one queue: the last match arrives last.
    rec.wait_for(4, 30).await;
    let keys: Vec<String> = rec.items().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a.b.c", "x", "x.y.z", "a.end.c"]);
    assert!(rec.items().iter().all(|(_, ex)| *ex == json!(exchange)));
    svc.shutdown().await;
    m.close().await;
}

/// A queue handler that panics has its message rejected (settled), so with a prefetch of 1 the
/// messages behind it are still handled; unsettled, the first panic would stall the queue.
async fn queue_handler_panics(t: Target) {
    let name = support::unique("beh-qpanic");
    let queue = format!("{name}.q");
    let rec = Recorder::new();
    let r2 = rec.clone();
    let svc = Service::builder(name.as_str())
        .queue(
            QueueEntrypoint::new(queue.as_str(), move |msg: RawMessage| {
                let rec = r2.clone();
                async move {
                    assert!(msg.body != b"panic", "a hostile message");
                    rec.record(&String::from_utf8_lossy(&msg.body), json!(null));
                    Ok(())
                }
            })
            .flags(false, true, true),
        )
        .build()
        .unwrap();
    let svc = t.start_with_prefetch(svc, &name, 1).await;
    let m = t.messenger().await;
    for body in ["panic", "one", "panic", "panic", "two"] {
        m.publish_raw("", &queue, body.as_bytes(), None)
            .await
            .unwrap();
    }
    rec.wait_for(2, 30).await;
    let bodies: Vec<String> = rec.items().into_iter().map(|(k, _)| k).collect();
    assert_eq!(bodies, ["one", "two"]);
    svc.shutdown().await;
    m.close().await;
}

async fn prefetch_respected(t: Target) {
    let name = support::unique("beh-prefetch");
    let event = format!("{name}.job");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let changed = Arc::new(tokio::sync::Notify::new());
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let rec = Recorder::new();
    let (i2, m2, c2, r2) = (
        in_flight.clone(),
        most.clone(),
        changed.clone(),
        rec.clone(),
    );
    let svc = Service::builder(name.as_str())
        .event(EventEntrypoint::new(
            "on_job",
            [event.as_str()],
            move |ev: Event| {
                let (in_flight, most, changed, rec) =
                    (i2.clone(), m2.clone(), c2.clone(), r2.clone());
                let mut release = release_rx.clone();
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    changed.notify_waiters();
                    let _ = release.wait_for(|r| *r).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    rec.record("done", ev.payload);
                    Ok(())
                }
            },
        ))
        .build()
        .unwrap();
    let svc = t.start_with_prefetch(svc, &name, 2).await;
    let m = t.messenger().await;
    for i in 0..6 {
        m.publish(&event, &json!({"n": i})).await.unwrap();
    }
    // Two handlers run; the broker holds the other four back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let notified = changed.notified();
        if in_flight.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::timeout_at(deadline, notified)
            .await
            .expect("two handlers running within 10 s");
    }
    let queue = format!("{name}.{event}.queue");
    assert_eq!(
        t.queue_count(&queue).await,
        Some(4),
        "with prefetch 2, four of six messages stay in the queue"
    );
    release_tx.send_replace(true);
    rec.wait_for(6, 30).await;
    assert_eq!(most.load(Ordering::SeqCst), 2, "never more than 2 at once");
    svc.shutdown().await;
    m.close().await;
    t.delete_queues(&[queue, format!("{name}.{event}.failed")])
        .await;
}

async fn instance_queues_gone_after_close(t: Target) {
    let name = support::unique("beh-gone");
    let event = format!("{name}.ping");
    let rec = Recorder::new();
    let svc = t
        .start(
            recording(&name, &event, EventMode::Broadcast, rec.clone()),
            &name,
        )
        .await;
    let iid = svc.identity().instance_id.to_string();
    let queue = format!("{name}.{event}.{iid}.queue");
    // Exclusive: another connection may not even look at it passively... but it exists.
    let conn = t.lapin().await;
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("an exclusive queue of another connection is locked");
    assert!(err.to_string().contains("RESOURCE_LOCKED"), "{err}");
    let _ = conn.close(200, "done".into()).await;
    svc.shutdown().await;
    t.wait_gone(&queue).await;

    // Auto-delete without exclusive: gone with its last consumer.
    let conn = t.lapin().await;
    let ch = conn.create_channel().await.unwrap();
    let auto = format!("{name}.auto");
    ch.queue_declare(
        auto.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            auto.as_str().into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(t.queue_count(&auto).await, Some(0));
    ch.basic_cancel("c1".into(), Default::default())
        .await
        .unwrap();
    drop(consumer);
    t.wait_gone(&auto).await;
    let _ = conn.close(200, "done".into()).await;
}

async fn mandatory_publish_to_nowhere(t: Target) {
    let (t, _vhost) = t.isolated();
    let m = t.messenger().await;
    let event = format!("{}.nobody", support::unique("beh-mand"));
    match m
        .publish_with(&event, &json!({}), PublishOptions::default().mandatory())
        .await
    {
        Err(Error::Unroutable { routing_key, .. }) => assert_eq!(routing_key, event),
        other => panic!("expected Unroutable, got {other:?}"),
    }
    // Without mandatory the same publish is confirmed and dropped.
    m.publish(&event, &json!({})).await.unwrap();
    m.close().await;
}

async fn confirms(t: Target) {
    let queue = support::unique("beh-confirm");
    let conn = t.lapin().await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            exclusive: false,
            auto_delete: false,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    let m = t.messenger().await;
    // Room for one: confirmed.
    m.publish_raw("", &queue, b"one", None).await.unwrap();
    // Full: the broker refuses it with a negative confirm.
    match m.publish_raw("", &queue, b"two", None).await {
        Err(Error::Nacked { routing_key, .. }) => assert_eq!(routing_key, queue),
        other => panic!("expected a nack, got {other:?}"),
    }
    assert_eq!(t.queue_count(&queue).await, Some(1));
    // A plain lapin publish on a confirm channel is acked.
    ch.confirm_select(Default::default()).await.unwrap();
    ch.queue_purge(queue.as_str().into(), Default::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"three",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "{confirm:?}");
    m.close().await;
    t.delete_queues(std::slice::from_ref(&queue)).await;
    let _ = conn.close(200, "done".into()).await;
}

/// Three services in one process: `front` calls `mid`, which calls `back`; `back` publishes
/// an event that `front` handles.
async fn services_call_each_other(t: Target) {
    let base = support::unique("beh-chain");
    let (front, mid, back) = (
        format!("{base}-front"),
        format!("{base}-mid"),
        format!("{base}-back"),
    );
    let event = format!("{base}.computed");
    let rec = Recorder::new();

    let back_svc = {
        let event = event.clone();
        Service::builder(back.as_str())
            .rpc(
                RpcEntrypoint::new("square", move |call: Call| {
                    let event = event.clone();
                    async move {
                        let x = call.args[0].as_i64().unwrap_or(0);
                        call.context
                            .messenger()
                            .publish(&event, &json!({"x": x, "square": x * x}))
                            .await
                            .map_err(|e| HandlerError::server(e.to_string()))?;
                        Ok(json!(x * x))
                    }
                })
                .params(["x"]),
            )
            .build()
            .unwrap()
    };
    let mid_svc = {
        let back = back.clone();
        Service::builder(mid.as_str())
            .rpc(
                RpcEntrypoint::new("square_plus_one", move |call: Call| {
                    let back = back.clone();
                    async move {
                        let sq = call
                            .context
                            .messenger()
                            .call(&back, "square", vec![call.args[0].clone()], Map::new())
                            .await
                            .map_err(|e| HandlerError::server(e.to_string()))?;
                        Ok(json!(sq.as_i64().unwrap_or(0) + 1))
                    }
                })
                .params(["x"]),
            )
            .build()
            .unwrap()
    };
    let front_svc = {
        let mid = mid.clone();
        let r2 = rec.clone();
        Service::builder(front.as_str())
            .rpc(
                RpcEntrypoint::new("compute", move |call: Call| {
                    let mid = mid.clone();
                    async move {
                        call.context
                            .messenger()
                            .call(
                                &mid,
                                "square_plus_one",
                                vec![call.args[0].clone()],
                                Map::new(),
                            )
                            .await
                            .map_err(|e| HandlerError::server(e.to_string()))
                    }
                })
                .params(["x"]),
            )
            .event(EventEntrypoint::new(
                "on_computed",
                [event.as_str()],
                move |ev: Event| {
                    let rec = r2.clone();
                    async move {
                        rec.record("computed", ev.payload);
                        Ok(())
                    }
                },
            ))
            .build()
            .unwrap()
    };
    let b = t.start(back_svc, &back).await;
    let md = t.start(mid_svc, &mid).await;
    let f = t.start(front_svc, &front).await;
    let m = t.messenger().await;
    for x in 1..=5i64 {
        let got = m
            .call(&front, "compute", vec![json!(x)], Map::new())
            .await
            .unwrap();
        assert_eq!(got, json!(x * x + 1));
    }
    let items = rec.wait_for(5, 30).await;
    let squares: BTreeSet<i64> = items
        .iter()
        .map(|(_, p)| p["square"].as_i64().unwrap())
        .collect();
    assert_eq!(squares, BTreeSet::from([1, 4, 9, 16, 25]));
    f.shutdown().await;
    md.shutdown().await;
    b.shutdown().await;
    m.close().await;
    t.delete_queues(&[
        format!("{front}.{event}.queue"),
        format!("{front}.{event}.failed"),
    ])
    .await;
}

/// The in-process broker on its own: queue depth through the public API, and a lapin consumer
/// next to a Messenger.
#[tokio::test]
async fn memory_broker_reports_queue_depth() {
    let broker = Broker::start().unwrap();
    let conn = lapin::Connection::connect(&broker.url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "depth".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let m = Messenger::connect(broker.url()).await.unwrap();
    for _ in 0..3 {
        m.publish_raw("", "depth", b"x", None).await.unwrap();
    }
    assert_eq!(broker.queue_depth("depth"), Some(3));
    assert_eq!(broker.queue_depth("missing"), None);
    assert!(broker.queues().contains(&"depth".to_owned()));
    let mut consumer = ch
        .basic_consume(
            "depth".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        let d = consumer.next().await.unwrap().unwrap();
        assert_eq!(d.data, b"x");
    }
    assert_eq!(broker.queue_depth("depth"), Some(0));
    m.close().await;
    let _ = conn.close(200, "done".into()).await;
}

/// Python Kontiki (aiormq / pamqp, another AMQP client) on the in-process broker: a Rust
/// messenger calls a Python service, client and server errors included.
#[tokio::test]
async fn memory_python_kontiki_service_on_the_memory_broker() {
    let broker = Broker::start().unwrap();
    let name = support::unique("beh-py");
    let py = support::py::PyService::start_at(&broker.url(), &name, "").await;
    let m = Messenger::connect(broker.url()).await.unwrap();
    let mut kw = Map::new();
    kw.insert("k".into(), json!("v"));
    let got = m
        .call(&name, "echo", vec![json!(1), json!("a")], kw)
        .await
        .unwrap();
    assert_eq!(got["args"], json!([1, "a"]), "{got}");
    assert_eq!(got["kwargs"], json!({"k": "v"}), "{got}");
    match m.call(&name, "client_err", vec![], Map::new()).await {
        Err(RpcError::Client { .. }) => {}
        other => panic!("expected a client error, got {other:?}"),
    }
    match m.call(&name, "boom", vec![], Map::new()).await {
        Err(RpcError::Server { .. }) => {}
        other => panic!("expected a server error, got {other:?}"),
    }
    py.stop().await;
    m.close().await;
}
