//! Events across a long broker outage (issue 15, item 8). Kontiki declares `event_exchange`
//! non-durable, so a broker restart drops the bindings of every competing queue until its
//! consumer declares them again; a consumer that is down then loses every event published in
//! the meantime while the publisher reports success. Here the lost binding is made directly
//! (`queue.unbind` while the consumer is down: what the restart leaves behind), and a publisher
//! that saw the event delivered before must not report success for an event no queue takes.

mod support;

use kontiki_rt::{Error, Event, EventEntrypoint, Messenger, RunningService, Service};

use lapin::types::FieldTable;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::Recorder;

async fn consumer(name: &str, event: &str, rec: Arc<Recorder>) -> RunningService {
    Service::builder(name)
        .event(EventEntrypoint::new("on_it", [event], move |ev: Event| {
            rec.record(&ev.event_type, ev.payload);
            std::future::ready(Ok(()))
        }))
        .build()
        .expect("service")
        .start(support::service_config(name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
}

/// Unbinds `queue` from `event_exchange` (what a broker restart leaves while its consumer is
/// down); returns the connection used, to close at the end.
async fn lose_binding(queue: &str, event: &str) -> lapin::Connection {
    let conn =
        lapin::Connection::connect(&support::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_unbind(
        queue.into(),
        "event_exchange".into(),
        event.into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    conn
}

async fn publisher(fail_when_gone: bool) -> Messenger {
    let m = Messenger::builder(support::amqp_url())
        .rpc_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    m.set_fail_when_subscribers_gone(fail_when_gone);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_fails_instead_of_dropping_events_whose_subscribers_lost_their_binding() {
    // A vhost of its own: a registry's `event_tracker.queue` binds `#` and would take every
    // event (see `registry_restores_lost_bindings` in kontiki-registry for that case).
    let _vhost = support::use_own_vhost(&support::unique("gone-vh"));
    let name = support::unique("gone");
    let event = format!("{name}.happened");
    let queue = format!("{name}.{event}.queue");
    let rec = Recorder::new();
    let svc = consumer(&name, &event, rec.clone()).await;
    let careful = publisher(true).await;
    let kontiki_like = publisher(false).await;

    // Both publishers see the event delivered.
    careful
        .publish(&event, &json!({"n": 1}))
        .await
        .expect("publish 1");
    kontiki_like
        .publish(&event, &json!({"n": 2}))
        .await
        .expect("publish 2");
    assert_eq!(rec.wait_for(2, 30).await.len(), 2);

    // The consumer goes down and its binding is lost, as after a broker restart.
    svc.shutdown().await;
    let conn = lose_binding(&queue, &event).await;

    // Kontiki's behaviour: the publish "succeeds" and the event is gone.
    kontiki_like
        .publish(&event, &json!({"n": 3}))
        .await
        .expect("dropped, reported as success");
    // kontiki-rs: published again until the wait ends, then an error; at once afterwards.
    for n in [4, 5] {
        match careful.publish(&event, &json!({"n": n})).await {
            Err(Error::Unroutable { routing_key, .. }) => assert_eq!(routing_key, event),
            other => panic!("publish {n}: expected Unroutable, got {other:?}"),
        }
    }
    // An event nobody ever subscribed to is still fine to publish (Kontiki's semantics).
    careful
        .publish(&format!("{name}.nobody"), &json!({}))
        .await
        .expect("an event without subscribers");

    // The consumer comes back, binds again, and the next publish is delivered.
    let svc = consumer(&name, &event, rec.clone()).await;
    careful
        .publish(&event, &json!({"n": 6}))
        .await
        .expect("publish 6");
    // Handlers run concurrently: compare as a set.
    let mut got: Vec<i64> = rec
        .wait_for(3, 30)
        .await
        .iter()
        .map(|(_, p)| p["n"].as_i64().expect("n"))
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        [1, 2, 6],
        "3 was dropped (Kontiki), 4 and 5 failed loudly"
    );
    svc.shutdown().await;
    careful.close().await;
    kontiki_like.close().await;
    let _ = conn.close(0, "done".into()).await;
    support::delete_queues(&[queue, format!("{name}.{event}.failed")]).await;
}

/// A publish made while the consumer is down but that it re-binds during the wait is
/// delivered: the publisher keeps trying until the binding is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_waiting_for_the_binding_is_delivered_when_the_consumer_returns() {
    let _vhost = support::use_own_vhost(&support::unique("gone-vh"));
    let name = support::unique("gone-back");
    let event = format!("{name}.happened");
    let queue = format!("{name}.{event}.queue");
    let rec = Recorder::new();
    let svc = consumer(&name, &event, rec.clone()).await;
    let m = Messenger::builder(support::amqp_url())
        .rpc_timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("messenger");
    m.set_fail_when_subscribers_gone(true);
    m.publish(&event, &json!({"n": 1}))
        .await
        .expect("publish 1");
    assert_eq!(rec.wait_for(1, 30).await.len(), 1);
    svc.shutdown().await;
    let conn = lose_binding(&queue, &event).await;

    let mut publishing = {
        let (m, event) = (m.clone(), event.clone());
        tokio::spawn(async move { m.publish(&event, &json!({"n": 2})).await })
    };
    // Nothing takes the event, so the publish does not end (dropping it would end it at once,
    // as Kontiki's does); then the consumer returns and binds again.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut publishing)
            .await
            .is_err(),
        "the publish ended although no queue took the event"
    );
    let svc = consumer(&name, &event, rec.clone()).await;
    publishing
        .await
        .expect("join")
        .expect("delivered once the binding is back");
    let got: Vec<i64> = rec
        .wait_for(2, 30)
        .await
        .iter()
        .map(|(_, p)| p["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(got, [1, 2]);
    svc.shutdown().await;
    m.close().await;
    let _ = conn.close(0, "done".into()).await;
    support::delete_queues(&[queue, format!("{name}.{event}.failed")]).await;
}
