//! Graceful shutdown of one of two competing instances while events keep coming: no
//! event may be dead-lettered by the shutdown itself. Deliveries that reached the stopping
//! instance before the broker confirmed the consumer's cancellation used to be requeued at
//! once, came straight back to the same consumer and, on the quorum queue, burned a delivery
//! attempt per round trip until `x-delivery-limit` sent them to the failed queue (found by
//! the fault-injection suite, scenario 4).

mod support;

use kontiki_rt::{Call, Event, EventEntrypoint, RpcEntrypoint, Service};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EVENTS: u64 = 3000;

fn instance(
    name: &str,
    event: &str,
    who: &'static str,
    handled: Arc<Mutex<BTreeMap<u64, Vec<&'static str>>>>,
) -> Service {
    // Many RPC consumers are cancelled before the event consumer: a wide window in which the
    // event consumer is still live at the broker while the instance is stopping.
    let mut builder = Service::builder(name);
    for i in 0..40 {
        builder = builder.rpc(RpcEntrypoint::new(format!("m{i}"), |_call: Call| async {
            Ok(json!(null))
        }));
    }
    builder
        .event(EventEntrypoint::new(
            "on_tick",
            [event],
            move |ev: Event| {
                let handled = handled.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let n = ev.payload["n"].as_u64().unwrap_or(u64::MAX);
                    handled.lock().unwrap().entry(n).or_default().push(who);
                    Ok(())
                }
            },
        ))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_dead_letters_nothing() {
    let name = support::unique("ev-shutdown");
    let event = format!("{name}.tick");
    let handled: Arc<Mutex<BTreeMap<u64, Vec<&'static str>>>> = Arc::default();
    let a = instance(&name, &event, "a", handled.clone())
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let b = instance(&name, &event, "b", handled.clone())
        .start(support::service_config(&name, ""))
        .await
        .unwrap();
    let m = support::messenger().await;
    // Ten publishers, each an event every 5 ms, still publishing while A stops.
    let publishers: Vec<_> = (0..10u64)
        .map(|p| {
            let (m, event) = (m.clone(), event.clone());
            tokio::spawn(async move {
                let mut pace = tokio::time::interval(Duration::from_millis(5));
                for i in 0..EVENTS / 10 {
                    pace.tick().await;
                    m.publish(&event, &json!({ "n": p * (EVENTS / 10) + i }))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tick.tick().await;
        let from_a = handled
            .lock()
            .unwrap()
            .values()
            .filter(|w| w.contains(&"a"))
            .count();
        if from_a >= 300 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A handled too little"
        );
    }
    a.shutdown().await;
    for p in publishers {
        p.await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tick.tick().await;
        let done = handled.lock().unwrap().len() as u64;
        if done == EVENTS {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let failed = m.list_failed(&name, &event, 10).await.unwrap();
            panic!(
                "{} of {EVENTS} events were never handled; failed queue: {failed:?}",
                EVENTS - done
            );
        }
    }
    let failed = m.list_failed(&name, &event, 10).await.unwrap();
    assert_eq!(
        failed.count, 0,
        "events dead-lettered by the shutdown: {failed:?}"
    );
    b.shutdown().await;
    m.close().await;
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}
