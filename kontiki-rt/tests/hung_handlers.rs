//! Handlers that never return (issue 15, item 5): the handler timeout cancels them, an RPC
//! caller gets a server error saying so, an event delivery counts as a failed attempt, and the
//! queue goes on serving the messages behind them.

mod support;

use kontiki_rt::{
    Call, Event, EventEntrypoint, QueueEntrypoint, RawMessage, RpcEntrypoint, RpcError, Service,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::Recorder;

/// Counts the handler futures dropped while still waiting: each one was cancelled.
struct CancelCount(Arc<AtomicUsize>);

impl Drop for CancelCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits forever, counting its own cancellation.
async fn hang(cancelled: Arc<AtomicUsize>) {
    let _count = CancelCount(cancelled);
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_hung_rpc_answers_with_the_timeout_error_and_the_method_serves_on() {
    let name = support::unique("hung-rpc");
    let cancelled = Arc::new(AtomicUsize::new(0));
    let c2 = cancelled.clone();
    let c3 = cancelled.clone();
    let svc = Service::builder(name.as_str())
        // Its own timeout.
        .rpc(
            RpcEntrypoint::new("wait", move |call: Call| {
                let cancelled = c2.clone();
                async move {
                    if call.args[0] == json!("hang") {
                        hang(cancelled).await;
                    }
                    Ok(call.args[0].clone())
                }
            })
            .params(["x"])
            .timeout(Duration::from_millis(500)),
        )
        // A long one of its own, cut by `kontiki.handler_timeouts.wait_cfg` in the config.
        .rpc(
            RpcEntrypoint::new("wait_cfg", move |_call: Call| {
                let cancelled = c3.clone();
                async move {
                    hang(cancelled).await;
                    Ok(Value::Null)
                }
            })
            .timeout(Duration::from_secs(3600)),
        )
        .build()
        .unwrap()
        .start(support::service_config(
            &name,
            "  handler_timeouts:\n    wait_cfg: 0.25\n",
        ))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;

    let hung = m
        .call(&name, "wait", vec![json!("hang")], Default::default())
        .await;
    match &hung {
        Err(RpcError::Server { error, .. }) => {
            assert_eq!(error.code.as_deref(), Some("INTERNAL_ERROR"));
            assert_eq!(
                error.message.as_deref(),
                Some("the handler of `wait` timed out after 0.5 s")
            );
        }
        other => panic!("expected the timeout error, got {other:?}"),
    }
    let hung_cfg = m.call(&name, "wait_cfg", vec![], Default::default()).await;
    assert!(
        matches!(&hung_cfg, Err(RpcError::Server { error, .. })
            if error.message.as_deref() == Some("the handler of `wait_cfg` timed out after 0.25 s")),
        "{hung_cfg:?}"
    );

    // More hung calls at once than the consumer's prefetch (10): every slot is freed by its
    // timeout, and a good call after them is answered.
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let m = m.clone();
            let name = name.clone();
            tokio::spawn(async move {
                m.call(&name, "wait", vec![json!("hang")], Default::default())
                    .await
            })
        })
        .collect();
    let good = m
        .call(&name, "wait", vec![json!("fine")], Default::default())
        .await;
    assert_eq!(good.unwrap(), json!("fine"));
    for call in calls {
        let res = call.await.unwrap();
        assert!(
            matches!(&res, Err(RpcError::Server { error, .. })
                if error.message.as_deref() == Some("the handler of `wait` timed out after 0.5 s")),
            "{res:?}"
        );
    }
    // Every hung handler was cancelled, not left running: 1 + 1 + 12.
    assert_eq!(cancelled.load(Ordering::SeqCst), 14);
    assert_eq!(
        m.call(&name, "wait", vec![json!(2)], Default::default())
            .await
            .unwrap(),
        json!(2)
    );
    svc.shutdown().await;
    m.close().await;
}

#[tokio::test]
async fn a_hung_event_handler_does_not_stop_its_queue_and_is_dead_lettered_after_max_attempts() {
    let name = support::unique("hung-ev");
    let event = format!("{name}.job");
    let rec = Recorder::new();
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (r2, c2) = (rec.clone(), cancelled.clone());
    let svc = Service::builder(name.as_str())
        .event(
            EventEntrypoint::new("on_job", [event.as_str()], move |ev: Event| {
                let (rec, cancelled) = (r2.clone(), c2.clone());
                async move {
                    if ev.payload["hang"] == json!(true) {
                        rec.record("hang", ev.payload["n"].clone());
                        hang(cancelled).await;
                    }
                    rec.record("ok", ev.payload["n"].clone());
                    Ok(())
                }
            })
            .max_attempts(3)
            .timeout(Duration::from_millis(300)),
        )
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    // First more hung events than the prefetch (10): without a timeout they would hold every
    // delivery slot for good and nothing behind them would be handled.
    let (marked, good) = (12u64, 20u64);
    for n in 0..marked {
        m.publish(&event, &json!({"n": n, "hang": true}))
            .await
            .unwrap();
    }
    for n in marked..marked + good {
        m.publish(&event, &json!({"n": n})).await.unwrap();
    }
    // Each marked event: 3 attempts; each other one: handled once.
    rec.wait_for((marked * 3 + good) as usize, 60).await;
    let listed = wait_failed(&m, &name, &event, marked as u32).await;
    svc.shutdown().await;

    // After the shutdown nothing more can arrive: the counts are final.
    let mut attempts: BTreeMap<u64, usize> = BTreeMap::new();
    let mut handled: BTreeMap<u64, usize> = BTreeMap::new();
    for (what, n) in rec.items() {
        let n = n.as_u64().unwrap();
        match what.as_str() {
            "hang" => *attempts.entry(n).or_default() += 1,
            _ => *handled.entry(n).or_default() += 1,
        }
    }
    assert_eq!(
        attempts,
        (0..marked).map(|n| (n, 3)).collect::<BTreeMap<_, _>>(),
        "each hung event: exactly max_attempts deliveries"
    );
    assert_eq!(
        handled,
        (marked..marked + good)
            .map(|n| (n, 1))
            .collect::<BTreeMap<_, _>>(),
        "each other event: handled exactly once"
    );
    assert_eq!(cancelled.load(Ordering::SeqCst), (marked * 3) as usize);
    let mut dead: Vec<u64> = listed
        .messages
        .iter()
        .map(|msg| msg.body["n"].as_u64().unwrap())
        .collect();
    dead.sort_unstable();
    assert_eq!(dead, (0..marked).collect::<Vec<_>>());
    for msg in &listed.messages {
        assert_eq!(
            msg.headers["x-death"][0]["reason"],
            json!("delivery_limit"),
            "{msg:?}"
        );
    }
    m.close().await;
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}

#[tokio::test]
async fn a_hung_queue_handler_is_cancelled_and_its_message_rejected() {
    let name = support::unique("hung-q");
    // A queue name with dots: `kontiki.handler_timeouts` takes it as one key.
    let queue = format!("{name}.q");
    let rec = Recorder::new();
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (r2, c2) = (rec.clone(), cancelled.clone());
    let svc = Service::builder(name.as_str())
        .queue(
            QueueEntrypoint::new(queue.as_str(), move |msg: RawMessage| {
                let (rec, cancelled) = (r2.clone(), c2.clone());
                async move {
                    let body = String::from_utf8_lossy(&msg.body).into_owned();
                    if body.starts_with("hang") {
                        rec.record("hang", json!(body));
                        hang(cancelled).await;
                    }
                    rec.record("ok", json!(body));
                    Ok(())
                }
            })
            .flags(false, true, true),
        )
        .build()
        .unwrap()
        .start(support::service_config(
            &name,
            &format!("  handler_timeouts:\n    \"{queue}\": 0.3\n"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    for i in 0..12 {
        m.publish_raw("", &queue, format!("hang {i}").as_bytes(), None)
            .await
            .unwrap();
    }
    for i in 0..5 {
        m.publish_raw("", &queue, format!("ok {i}").as_bytes(), None)
            .await
            .unwrap();
    }
    rec.wait_for(17, 30).await;
    svc.shutdown().await;
    // Rejected without requeue: each hung message was delivered once, and nothing behind
    // the 12 hung ones (more than the prefetch of 10) waited for good.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (what, body) in rec.items() {
        *seen
            .entry(format!("{what}: {}", body.as_str().unwrap()))
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..12)
        .map(|i| format!("hang: hang {i}"))
        .chain((0..5).map(|i| format!("ok: ok {i}")))
        .map(|k| (k, 1))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(cancelled.load(Ordering::SeqCst), 12);
    m.close().await;
}

/// Waits until the failed queue holds `n` messages (the broker dead-letters asynchronously;
/// fails after 30 s), then lists them. The wait counts without taking: each listing returns
/// the messages it took, and a return is one more delivery.
async fn wait_failed(
    m: &kontiki_rt::Messenger,
    name: &str,
    event: &str,
    n: u32,
) -> kontiki_rt::FailedMessages {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let count = m.list_failed(name, event, 0).await.unwrap().count;
        if count == n {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}.{event}.failed never held {n} messages: it holds {count}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = m.list_failed(name, event, n + 1).await.unwrap();
    assert_eq!(
        (listed.count, listed.messages.len()),
        (n, n as usize),
        "{listed:?}"
    );
    listed
}
