//! Events across a broker restart while a consumer is down (issue 15, item 8): Kontiki's
//! `event_exchange` is not durable, so the restart drops the binding of the consumer's durable
//! competing queue and every event published until the consumer returns is dropped. The Rust
//! registry remembers the competing subscriptions services registered and binds their queues
//! again after it reconnects. Here the lost binding is made with `queue.unbind` while the
//! consumer is down (what the restart leaves), and the registry's own connection is closed so
//! it reconnects, as it does after the restart.
//!
//! The test name contains `registry`, so nextest runs it with the other registry tests.

mod common;

use common::{RustRegistry, amqp_url, messenger, no_broker, unique};
use kontiki_rt::{Config, Event, EventEntrypoint, Service};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;

/// The vhost of [`amqp_url`] (`/` when it names none).
fn vhost() -> String {
    let url = amqp_url();
    let path = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split_once('/'))
        .map(|(_, p)| p);
    match path {
        None | Some("") | Some("%2f") | Some("%2F") => "/".to_owned(),
        Some(p) => p.replace("%2f", "/").replace("%2F", "/"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_restores_lost_bindings_after_it_reconnects() {
    let _vhost = common::own_vhost();
    let registry = RustRegistry::start("").await;
    let name = unique("rebind");
    let event = format!("{name}.placed");
    let queue = kontiki_rt::wire::competing_queue(&name, &event);

    // A consumer that registers with the registry, then goes away (a deploy, a crash).
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 1\n",
        amqp_url()
    );
    let consumer = Service::builder(name.as_str())
        .event(EventEntrypoint::new(
            "on_placed",
            [event.as_str()],
            |_e: Event| std::future::ready(Ok(())),
        ))
        .build()
        .expect("service")
        .start(Config::from_yaml_str("consumer.yaml", &yaml).expect("config"))
        .await
        .unwrap_or_else(|e| panic!("{}", no_broker(e)));
    common::poll("the subscription known to the registry", 30, || async {
        registry
            .registry
            .competing_subscriptions()
            .contains(&(name.clone(), event.clone()))
            .then_some(())
    })
    .await;
    consumer.shutdown().await;

    // The binding is lost while the consumer is down.
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_unbind(
        queue.as_str().into(),
        "event_exchange".into(),
        event.as_str().into(),
        FieldTable::default(),
    )
    .await
    .expect("unbind");
    let depth = |ch: lapin::Channel, queue: String| async move {
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the queue survives")
        .message_count()
    };
    let m = messenger().await;
    m.publish(&event, &json!({"n": 0})).await.expect("publish");
    assert_eq!(
        depth(ch.clone(), queue.clone()).await,
        0,
        "unbound: the event is dropped"
    );

    // The registry's connection drops (as in the broker restart) and it reconnects.
    let own = format!(
        "ServiceRegistry {}",
        registry.running.identity().instance_id
    );
    let listing = common::support::rabbitmqctl(&[
        "-q",
        "list_connections",
        "-p",
        &vhost(),
        "pid",
        "client_properties",
    ]);
    // The main connection, not its side connection (`<name> (ops)`).
    let exact = format!("{{\"connection_name\",\"{own}\"}}");
    let pid = listing
        .lines()
        .find(|l| l.contains(&exact))
        .and_then(|l| l.split_once('>'))
        .map(|(pid, _)| format!("{}>", pid.trim()))
        .unwrap_or_else(|| panic!("no connection named {own:?} in:\n{listing}"));
    common::support::rabbitmqctl(&[
        "-q",
        "close_connection",
        &pid,
        "test: the registry reconnects",
    ]);

    // The registry binds the queue again on its new connection before it consumes again
    // (`ServiceBuilder::on_connect`), so once it answers a call, the binding is back: the
    // next event reaches the queue. (Its timeline queue binds `#`, so from then on a
    // publisher could not tell from a return that the queue had lost its binding.)
    let generation = registry.running.messenger().connection_generation();
    common::poll("the registry's new connection", 30, || async {
        (registry.running.messenger().connection_generation() > generation).then_some(())
    })
    .await;
    common::reg(&m, "get_services", vec![], serde_json::Value::Null)
        .await
        .expect("the registry answers on its new connection");
    m.publish(&event, &json!({"n": 1})).await.expect("publish");
    assert_eq!(
        depth(ch.clone(), queue.clone()).await,
        1,
        "the registry answered calls before it restored the binding of {queue}"
    );
    m.close().await;
    let _ = conn.close(0, "done".into()).await;
    registry.running.shutdown().await;
    common::support::delete_queues(&[queue, kontiki_rt::wire::failed_queue(&name, &event)]).await;
}
