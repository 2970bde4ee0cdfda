//! No confirmed event is lost when the broker restarts in the middle of a publishing run:
//! 10,000 events from 50 concurrent publishers, `rabbitmqctl stop_app` / `start_app` once, and
//! every event whose publish returned Ok is handled at least once. Runs serially with the
//! other `disrupt_*` tests.

mod support;

use kontiki_rt::{Event, EventEntrypoint, Service};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PUBLISHERS: usize = 50;
const PER_PUBLISHER: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_events_survive_a_broker_restart() {
    let name = support::unique("ev-restart");
    let event = format!("{name}.tick");
    let handled: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let changed = Arc::new(tokio::sync::Notify::new());
    let (h2, c2) = (handled.clone(), changed.clone());
    let svc = Service::builder(name.as_str())
        .event(EventEntrypoint::new(
            "on_tick",
            [event.as_str()],
            move |ev: Event| {
                let (handled, changed) = (h2.clone(), c2.clone());
                async move {
                    let n = ev.payload["n"].as_u64().unwrap_or(u64::MAX);
                    *handled.lock().unwrap().entry(n).or_default() += 1;
                    changed.notify_waiters();
                    Ok(())
                }
            },
        ))
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = kontiki_rt::Messenger::builder(support::amqp_url())
        .client_name("restart-publisher")
        .rpc_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));

    let confirmed: Arc<Mutex<Vec<u64>>> = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (m, event, confirmed, failed, progress) = (
                m.clone(),
                event.clone(),
                confirmed.clone(),
                failed.clone(),
                progress.clone(),
            );
            tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    let n = (p * PER_PUBLISHER + i) as u64;
                    match m.publish(&event, &json!({"n": n})).await {
                        Ok(()) => confirmed.lock().unwrap().push(n),
                        Err(e) => {
                            eprintln!("publish {n} failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Restart the broker once a third of the events went out.
    let _guard = support::BrokerGuard;
    while progress.load(Ordering::Relaxed) < PUBLISHERS * PER_PUBLISHER / 3 {
        tokio::task::yield_now().await;
    }
    let at = progress.load(Ordering::Relaxed);
    tokio::task::spawn_blocking(|| support::rabbitmqctl(&["stop_app"]))
        .await
        .unwrap();
    tokio::task::spawn_blocking(|| support::rabbitmqctl(&["start_app"]))
        .await
        .unwrap();
    for p in publishers {
        p.await.unwrap();
    }
    let publish_time = started.elapsed();

    let confirmed = confirmed.lock().unwrap().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let notified = changed.notified();
        let missing = {
            let h = handled.lock().unwrap();
            confirmed.iter().filter(|n| !h.contains_key(n)).count()
        };
        if missing == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            panic!("{missing} confirmed events were never handled");
        }
    }
    svc.shutdown().await;
    let h = handled.lock().unwrap().clone();
    let duplicates: u32 = h.values().map(|c| c - 1).sum();
    println!(
        "sent {}, confirmed {}, failed {}, handled {} distinct, duplicates {duplicates}, lost 0; restart after {at} sends; publishing took {publish_time:?}",
        PUBLISHERS * PER_PUBLISHER,
        confirmed.len(),
        failed.load(Ordering::Relaxed),
        h.len(),
    );
    assert_eq!(
        confirmed.len() + failed.load(Ordering::Relaxed),
        PUBLISHERS * PER_PUBLISHER
    );
    m.close().await;
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}
