//! `kontiki_rt::testing`: services started from a `TestBed`, typed waits on what they
//! handled, recordings of what they publish and call, fakes and taps. Every case runs twice:
//! on a bed of its own in-process broker (`memory://`, the default) and on RabbitMQ.

mod support;

use kontiki_rt::testing::{Kind, Outcome, TestBed};
use kontiki_rt::{
    Call, Event, EventEntrypoint, HandlerError, RpcEntrypoint, Schedule, Service, TaskEntrypoint,
};
use serde_json::{Map, json};
use std::time::Duration;

async fn amqp_bed() -> TestBed {
    TestBed::with_url(support::amqp_url())
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
}

async fn memory_bed() -> TestBed {
    TestBed::with_url(format!("memory://{}", support::unique("testbed")))
        .await
        .expect("a bed on its own memory:// broker")
}

/// `case_x` runs as `x::memory` and `x::amqp`.
macro_rules! on_both {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$case(super::memory_bed().await).await;
            }

            #[tokio::test]
            async fn amqp() {
                super::$case(super::amqp_bed().await).await;
            }
        }
    };
}

on_both!(
    waits_for_an_event_records_the_call_and_the_publish,
    case_event_call_publish
);
on_both!(
    records_rpc_outcomes_and_failed_outbound_calls,
    case_rpc_outcomes
);
on_both!(
    records_task_runs_and_times_out_with_what_it_saw,
    case_tasks_and_timeouts
);

#[tokio::test]
async fn a_new_bed_runs_on_its_own_memory_broker_by_default() {
    if std::env::var_os(kontiki_rt::testing::TEST_URL_ENV).is_some() {
        panic!(
            "unset {} to run this test",
            kontiki_rt::testing::TEST_URL_ENV
        );
    }
    let (a, b) = (TestBed::new().await.unwrap(), TestBed::new().await.unwrap());
    assert!(a.url().starts_with("memory://testbed-"), "{}", a.url());
    assert_ne!(a.url(), b.url(), "every bed has a broker of its own");
    a.shutdown().await;
    b.shutdown().await;
}

/// A service that handles `order_placed` by calling `prices.quote` and publishing
/// `order_priced`, under names unique to this test.
fn shop(name: &str, prices: &str, placed: &str, priced: &str) -> Service {
    let (prices, priced) = (prices.to_owned(), priced.to_owned());
    Service::builder(name)
        .event(EventEntrypoint::new(
            "on_order",
            [placed.to_owned()],
            move |ev: Event| {
                let (prices, priced) = (prices.clone(), priced.clone());
                async move {
                    let messenger = ev.context.messenger();
                    let price = messenger
                        .call(&prices, "quote", vec![ev.payload.clone()], Map::new())
                        .await
                        .map_err(HandlerError::internal)?;
                    messenger
                        .publish(&priced, &json!({"price": price}))
                        .await
                        .map_err(HandlerError::internal)?;
                    Ok(())
                }
            },
        ))
        .rpc(
            RpcEntrypoint::new("check", |call: Call| async move {
                match call.args[0].as_str() {
                    Some("bad") => Err(HandlerError::client("BAD_INPUT", "bad input")),
                    Some(s) => Ok(json!(s.len())),
                    None => Err(HandlerError::server("not a string")),
                }
            })
            .params(["s"]),
        )
        .build()
        .unwrap()
}

async fn case_event_call_publish(bed: TestBed) {
    let (name, prices, placed, priced) = (
        support::unique("shop"),
        support::unique("prices"),
        support::unique("order_placed"),
        support::unique("order_priced"),
    );
    let fake = bed
        .fake(&prices)
        .returns("quote", json!(12.5))
        .start()
        .await
        .unwrap();
    let tap = bed.tap(&priced).await.unwrap();
    let svc = bed
        .start(shop(&name, &prices, &placed, &priced))
        .await
        .unwrap();

    bed.messenger()
        .publish(&placed, &json!({"sku": "A1"}))
        .await
        .unwrap();
    let handled = svc.wait_handled("on_order", 1).await.unwrap();
    assert_eq!(handled[0].kind, Kind::Event);
    assert_eq!(handled[0].outcome, Outcome::Ok);
    assert_eq!(handled[0].body, json!({"sku": "A1"}));
    assert_eq!(handled[0].event_type.as_deref(), Some(placed.as_str()));

    // What the fake was called with, and what the service saw come back.
    let asked = fake.wait_handled("quote", 1).await.unwrap();
    assert_eq!(asked[0].body["args"], json!([{"sku": "A1"}]));
    let calls = svc.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].service.as_str(), calls[0].method.as_str()),
        (prices.as_str(), "quote")
    );
    assert_eq!(calls[0].result, Ok(json!(12.5)));

    // Published, as recorded by the service and as seen on the exchange.
    let published = svc.wait_published(&priced, 1).await.unwrap();
    assert_eq!(published[0].payload, json!({"price": 12.5}));
    let seen = tap.wait_for(&priced, 1).await.unwrap();
    assert_eq!(seen[0].payload, json!({"price": 12.5}));
    assert_eq!(seen[0].headers["service_name"], json!(name));
    // Both messages carry the flow of the handled event.
    assert_eq!(
        seen[0].headers["flow_id"].as_str(),
        handled[0].flow_id.as_deref()
    );

    svc.shutdown().await;
    fake.shutdown().await;
    tap.shutdown().await;
    bed.shutdown().await;
}

async fn case_rpc_outcomes(bed: TestBed) {
    let (name, prices, placed, priced) = (
        support::unique("shop"),
        support::unique("prices"),
        support::unique("order_placed"),
        support::unique("order_priced"),
    );
    let fake = bed
        .fake(&prices)
        .fails("quote", "OUT_OF_STOCK", "no such sku")
        .start()
        .await
        .unwrap();
    let svc = bed
        .start(shop(&name, &prices, &placed, &priced))
        .await
        .unwrap();

    let m = bed.messenger();
    assert_eq!(
        m.call(&name, "check", vec![json!("abc")], Map::new())
            .await
            .unwrap(),
        json!(3)
    );
    let err = m
        .call(&name, "check", vec![json!("bad")], Map::new())
        .await
        .unwrap_err();
    assert_eq!(err.client_code(), Some("BAD_INPUT"));
    m.call(&name, "check", vec![json!(5)], Map::new())
        .await
        .unwrap_err();
    let outcomes: Vec<Outcome> = svc
        .wait_handled("check", 3)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.outcome)
        .collect();
    // The bed sends internal errors with their details (and the error id of the log line).
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::Error { message } => Outcome::Error {
                message: message
                    .split(" (error id ")
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            },
            other => other,
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Ok,
            Outcome::ClientError {
                code: "BAD_INPUT".into(),
                message: "bad input".into()
            },
            Outcome::Error {
                message: "not a string".into()
            },
        ]
    );

    // The fake fails the quote: the handler fails, the event is retried (competing queue).
    m.publish(&placed, &json!({"sku": "Z9"})).await.unwrap();
    let first = svc
        .wait_for("a failed on_order", |h| h.entrypoint == "on_order")
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Retried);
    assert!(!first.redelivered);
    let call = &svc.calls()[0];
    assert_eq!(
        call.result.as_ref().unwrap_err().code.as_deref(),
        Some("OUT_OF_STOCK")
    );
    // The retry comes back redelivered.
    let again = svc
        .wait_for("a redelivered on_order", |h| {
            h.entrypoint == "on_order" && h.redelivered
        })
        .await
        .unwrap();
    assert_eq!(again.body, json!({"sku": "Z9"}));
    assert!(
        svc.published().is_empty(),
        "nothing is published when the quote fails"
    );

    svc.shutdown().await;
    fake.shutdown().await;
    bed.shutdown().await;
}

async fn case_tasks_and_timeouts(bed: TestBed) {
    let bed = bed.wait_timeout(Duration::from_millis(300));
    let name = support::unique("ticker");
    let svc = bed
        .start(
            Service::builder(&name)
                .task(
                    TaskEntrypoint::new(
                        "tick",
                        Schedule::Every(Duration::from_secs(3600)),
                        |_run| async { Ok(()) },
                    )
                    .immediate(true),
                )
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let runs = svc.wait_handled("tick", 1).await.unwrap();
    assert_eq!((runs[0].kind, &runs[0].outcome), (Kind::Task, &Outcome::Ok));
    assert!(
        runs[0].flow_id.is_some(),
        "a task run has a flow of its own"
    );

    // Nothing calls `missing`: the wait ends at its deadline and says what it saw.
    let err = svc.wait_handled("missing", 1).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("1 × missing"), "{text}");
    assert!(text.contains("tick Ok"), "{text}");
    svc.shutdown().await;
    bed.shutdown().await;
}
