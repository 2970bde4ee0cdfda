//! More event behaviour: several event types on one handler, event types from config, reserved
//! header names refused, malformed payloads dead-lettered, and graceful shutdown with events in
//! flight.

mod support;

use kontiki_rt::{Error, Event, EventEntrypoint, PublishOptions, Service};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::Recorder;

fn recording(
    rec: Arc<Recorder>,
) -> impl Fn(Event) -> std::future::Ready<Result<(), kontiki_rt::HandlerError>> + Send + Sync + 'static
{
    move |ev: Event| {
        rec.record(&ev.event_type, ev.payload);
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn one_handler_for_several_types_and_types_from_config() {
    let name = support::unique("evm-multi");
    let (a, b, c) = (
        format!("{name}.a"),
        format!("{name}.b"),
        format!("{name}.c"),
    );
    let rec = Recorder::new();
    let extra = format!("app:\n  events:\n    audit: [\"{c}\"]\n");
    let svc = Service::builder(name.as_str())
        .event(EventEntrypoint::new(
            "on_ab",
            [a.as_str(), b.as_str()],
            recording(rec.clone()),
        ))
        .event(EventEntrypoint::from_config(
            "on_c",
            "app.events.audit",
            recording(rec.clone()),
        ))
        .build()
        .unwrap()
        .start(support::service_config(&name, &extra))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    for ev in [&a, &b, &c] {
        m.publish(ev, &json!({"to": ev})).await.unwrap();
    }
    let mut got: Vec<String> = rec
        .wait_for(3, 30)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    got.sort();
    assert_eq!(got, vec![a.clone(), b.clone(), c.clone()]);
    svc.shutdown().await;
    m.close().await;
    let mut queues = Vec::new();
    for ev in [&a, &b, &c] {
        queues.push(format!("{name}.{ev}.queue"));
        queues.push(format!("{name}.{ev}.failed"));
    }
    support::delete_queues(&queues).await;
}

#[tokio::test]
async fn a_missing_or_bad_use_config_key_stops_the_start_with_its_path() {
    let name = support::unique("evm-badcfg");
    let err = Service::builder(name.as_str())
        .event(EventEntrypoint::from_config(
            "on_x",
            "app.events.missing",
            |_ev: Event| async { Ok(()) },
        ))
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("app.events.missing"), "{err}");
}

#[tokio::test]
async fn reserved_header_names_are_refused_before_publishing() {
    let m = support::messenger().await;
    let err = m
        .publish_with(
            "any.event",
            &json!({}),
            PublishOptions::default()
                .header("flow_id", "x")
                .header("hop_id", "y"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ReservedHeaders(names) if names == &["flow_id".to_owned(), "hop_id".to_owned()]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "reserved header names are not allowed in extra headers: flow_id, hop_id"
    );
    m.close().await;
}

#[tokio::test]
async fn a_malformed_payload_is_retried_then_dead_lettered() {
    let name = support::unique("evm-poison");
    let event = format!("{name}.in");
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let svc = Service::builder(name.as_str())
        .event(
            EventEntrypoint::new("on_in", [event.as_str()], move |_ev: Event| {
                c2.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .max_attempts(2),
        )
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let conn = Connection::connect(&support::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "event_exchange".into(),
        event.as_str().into(),
        BasicPublishOptions::default(),
        b"\xff not json",
        BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .unwrap();
    let m = support::messenger().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = m.list_failed(&name, &event, 5).await.unwrap();
        if listed.count == 1 && listed.messages.len() == 1 {
            break listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered: {listed:?}"
        );
        tokio::task::yield_now().await;
    };
    let msg = &listed.messages[0];
    assert!(!msg.is_json, "{msg:?}");
    assert_eq!(
        kontiki_rt::wire::bytes_from_json(&msg.body).unwrap(),
        b"\xff not json"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the handler never sees a payload that is not JSON"
    );
    svc.shutdown().await;
    m.close().await;
    conn.close(200, "".into()).await.unwrap();
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}

#[tokio::test]
async fn shutdown_finishes_events_in_flight_and_leaves_the_rest_queued() {
    let name = support::unique("evm-drain");
    let event = format!("{name}.job");
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let done = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let d2 = done.clone();
    let slow = Service::builder(name.as_str())
        .event(EventEntrypoint::new("on_job", [event.as_str()], move |ev: Event| {
            let (started_tx, done) = (started_tx.clone(), d2.clone());
            async move {
                let i = ev.payload["i"].as_i64().unwrap_or(-1);
                let _ = started_tx.send(i);
                tokio::time::sleep(Duration::from_millis(500)).await;
                done.lock().unwrap().push(i);
                Ok(())
            }
        }))
        .build()
        .unwrap()
        // Prefetch 1: one event in flight, the others wait in the queue.
        .start(
            kontiki_rt::Config::from_yaml_str(
                "prefetch1.yaml",
                &format!(
                    "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n    max_pending_messages: 1\n  registration:\n    disable: true\n",
                    support::amqp_url()
                ),
            )
            .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    for i in 0..5 {
        m.publish(&event, &json!({"i": i})).await.unwrap();
    }
    started.recv().await.unwrap();
    slow.shutdown().await;
    // Every handler that started before the shutdown finished during it, and none after it.
    let mut began = Vec::new();
    while let Ok(i) = started.try_recv() {
        began.push(i);
    }
    let finished = done.lock().unwrap().clone();
    assert_eq!(
        finished.len(),
        began.len() + 1,
        "started {began:?} (+1), finished {finished:?}"
    );
    assert!(
        finished.len() < 5,
        "the shutdown should leave events queued: {finished:?}"
    );

    // The rest are still queued and go to the next instance; none is handled twice.
    let rec = Recorder::new();
    let next = Service::builder(name.as_str())
        .event(EventEntrypoint::new(
            "on_job",
            [event.as_str()],
            recording(rec.clone()),
        ))
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap();
    rec.wait_for(5 - finished.len(), 30).await;
    next.shutdown().await;
    let items = rec.items();
    let mut all: Vec<i64> = items
        .iter()
        .map(|(_, p)| p["i"].as_i64().unwrap())
        .collect();
    all.extend(&finished);
    all.sort();
    assert_eq!(
        all,
        vec![0, 1, 2, 3, 4],
        "each event handled exactly once across the two instances"
    );
    m.close().await;
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
    ])
    .await;
}
