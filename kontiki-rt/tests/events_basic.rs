//! Rust → Rust events over RabbitMQ: competing delivery, broadcast, sessions, retries up to
//! `max_attempts`, dead letters, and replay.

mod support;

use kontiki_rt::{Event, EventEntrypoint, EventMode, HandlerError, RunningService, Service};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use support::Recorder;

async fn start_recording(
    name: &str,
    event: &str,
    mode: EventMode,
    rec: Arc<Recorder>,
) -> RunningService {
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
        .start(support::service_config(name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
}

fn per_instance(items: &[(String, serde_json::Value)]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (who, _) in items {
        *m.entry(who.clone()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn competing_events_are_handled_once_across_three_instances() {
    let name = support::unique("ev-compete");
    let event = format!("{name}.happened");
    let rec = Recorder::new();
    let mut svcs = Vec::new();
    for _ in 0..3 {
        svcs.push(start_recording(&name, &event, EventMode::Competing, rec.clone()).await);
    }
    let m = support::messenger().await;
    for i in 0..60 {
        m.publish(&event, &json!({"n": i})).await.unwrap();
    }
    rec.wait_for(60, 30).await;
    let iids: Vec<String> = svcs
        .iter()
        .map(|s| s.identity().instance_id.to_string())
        .collect();
    for s in svcs {
        s.shutdown().await;
    }
    // After every instance stopped, nothing more can arrive: exactly 60, each once.
    let items = rec.items();
    assert_eq!(items.len(), 60, "{items:?}");
    let ns: BTreeSet<i64> = items
        .iter()
        .map(|(_, p)| p["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, (0..60).collect());
    let spread = per_instance(&items);
    assert_eq!(
        spread.keys().cloned().collect::<BTreeSet<_>>(),
        iids.into_iter().collect(),
        "{spread:?}"
    );
    m.close().await;
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}

#[tokio::test]
async fn broadcast_reaches_every_instance() {
    let name = support::unique("ev-bcast");
    let event = format!("{name}.news");
    let rec = Recorder::new();
    let mut svcs = Vec::new();
    for _ in 0..3 {
        svcs.push(start_recording(&name, &event, EventMode::Broadcast, rec.clone()).await);
    }
    let m = support::messenger().await;
    for i in 0..5 {
        m.publish(&event, &json!({"n": i})).await.unwrap();
    }
    rec.wait_for(15, 30).await;
    for s in svcs {
        s.shutdown().await;
    }
    let spread = per_instance(&rec.items());
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(spread.values().all(|&n| n == 5), "{spread:?}");
    m.close().await;
}

#[tokio::test]
async fn session_events_reach_only_the_chosen_instance() {
    let name = support::unique("ev-session");
    let event = format!("{name}.step");
    let rec = Recorder::new();
    let a = start_recording(&name, &event, EventMode::InSession, rec.clone()).await;
    let b = start_recording(&name, &event, EventMode::InSession, rec.clone()).await;
    let m = support::messenger().await;
    let session = m.open_session(&name).await.unwrap();
    let chosen = session.instance_id().to_owned();
    assert!(
        chosen == a.identity().instance_id.as_ref() || chosen == b.identity().instance_id.as_ref()
    );
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

#[tokio::test]
async fn a_failing_handler_gets_max_attempts_then_the_message_is_dead_lettered_and_replayable() {
    let name = support::unique("ev-fail");
    let event = format!("{name}.bad");
    let attempts = Arc::new(AtomicUsize::new(0));
    let fixed = Arc::new(AtomicBool::new(false));
    let rec = Recorder::new();
    let (a2, f2, r2) = (attempts.clone(), fixed.clone(), rec.clone());
    let svc = Service::builder(name.as_str())
        .event(
            EventEntrypoint::new("on_bad", [event.as_str()], move |ev: Event| {
                let (attempts, fixed, rec) = (a2.clone(), f2.clone(), r2.clone());
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    if fixed.load(Ordering::SeqCst) {
                        rec.record("fixed", ev.payload);
                        Ok(())
                    } else {
                        rec.record("failed", ev.payload);
                        Err(HandlerError::server("cannot handle this yet"))
                    }
                }
            })
            .max_attempts(3),
        )
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    m.publish(&event, &json!({"order": 7})).await.unwrap();
    rec.wait_for(3, 30).await;

    // The third failure dead-letters the message: wait (bounded) until it is in the failed queue.
    let listed = wait_failed(&m, &name, &event, 1).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "exactly max_attempts deliveries"
    );
    let msg = &listed.messages[0];
    assert_eq!(msg.body, json!({"order": 7}));
    let death = &msg.headers["x-death"][0];
    assert_eq!(death["reason"], json!("delivery_limit"), "{death}");
    assert_eq!(death["queue"], json!(format!("{name}.{event}.queue")));
    // Listing leaves it there (returned messages become ready again asynchronously).
    wait_failed(&m, &name, &event, 1).await;

    // Replay after the fix: handled once more, successfully; the failed queue empties.
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(m.replay_failed(&name, &event, 5).await.unwrap(), 1);
    let items = rec.wait_for(4, 30).await;
    assert_eq!(items[3], ("fixed".to_owned(), json!({"order": 7})));
    wait_failed(&m, &name, &event, 0).await;

    // Drop: another failure, dropped for good.
    fixed.store(false, Ordering::SeqCst);
    m.publish(&event, &json!({"order": 8})).await.unwrap();
    wait_failed(&m, &name, &event, 1).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 7);
    assert_eq!(m.drop_failed(&name, &event, 5).await.unwrap(), 1);
    wait_failed(&m, &name, &event, 0).await;
    svc.shutdown().await;
    m.close().await;
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}

/// Lists the failed queue until it holds `n` messages (the broker settles returns and
/// dead-letters asynchronously); fails after 30 s.
async fn wait_failed(
    m: &kontiki_rt::Messenger,
    name: &str,
    event: &str,
    n: u32,
) -> kontiki_rt::FailedMessages {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let listed = m.list_failed(name, event, 10).await.unwrap();
        if listed.count == n && listed.messages.len() == n as usize {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}.{event}.failed never held {n} messages: {listed:?}"
        );
        tokio::task::yield_now().await;
    }
}
