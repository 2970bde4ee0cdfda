//! SIGTERM while requests are in flight: the service stops taking new ones, finishes the ones
//! it has and replies; everything else is served by the other instance. Nothing is lost.

mod support;

use kontiki_rt::CallOptions;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn config(name: &str) -> String {
    format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n    max_pending_messages: 1\n  shutdown:\n    grace_seconds: 10\n  registration:\n    disable: true\n",
        support::amqp_url()
    )
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_loses_none() {
    let name = support::unique("rpc-sigterm");
    let mut a = support::spawn_service("testsvc", &config(&name)).await;
    let b = support::spawn_service("testsvc", &config(&name)).await;
    let m = support::messenger().await;

    // A slow call pinned to A, in flight when A is told to stop.
    let pinned = {
        let (m, name, iid) = (m.clone(), name.clone(), a.instance_id.clone());
        tokio::spawn(async move {
            m.call_with(
                &name,
                "slow",
                serde_json::from_value(json!({"args": [1500]})).unwrap(),
                CallOptions::default()
                    .instance(iid)
                    .timeout(Duration::from_secs(10)),
            )
            .await
        })
    };
    // A stream of calls on the shared queue, served by whichever instance is free.
    let (tx, mut first_from_a) = tokio::sync::mpsc::channel::<()>(1);
    let shared: Vec<_> = (0..30)
        .map(|_| {
            let (m, name, a_iid, tx) = (m.clone(), name.clone(), a.instance_id.clone(), tx.clone());
            tokio::spawn(async move {
                let r = m
                    .call_with(
                        &name,
                        "slow",
                        serde_json::from_value(json!({"args": [200]})).unwrap(),
                        CallOptions::default().timeout(Duration::from_secs(15)),
                    )
                    .await;
                if matches!(&r, Ok(v) if v[1] == json!(a_iid)) {
                    let _ = tx.try_send(());
                }
                r
            })
        })
        .collect();
    drop(tx);
    first_from_a
        .recv()
        .await
        .expect("instance A served one call");
    a.terminate();

    let pinned = pinned
        .await
        .unwrap()
        .expect("the in-flight call on A still gets its reply");
    assert_eq!(pinned, json!([1500, a.instance_id]));
    let mut served = BTreeMap::<String, usize>::new();
    for call in shared {
        let v: Value = call.await.unwrap().expect("every call is answered");
        *served.entry(v[1].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(served.values().sum::<usize>(), 30);
    assert!(
        served.contains_key(&a.instance_id) && served.contains_key(&b.instance_id),
        "{served:?}"
    );

    let status = tokio::time::timeout(Duration::from_secs(15), a.child.wait())
        .await
        .expect("A exits within its grace period")
        .unwrap();
    assert!(
        status.success(),
        "A exit status {status:?}; log:\n{}",
        a.log()
    );
    assert!(a.log().contains("shutdown requested"), "{}", a.log());
    m.close().await;
}
