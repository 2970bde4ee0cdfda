//! The broker restarts (`rabbitmqctl stop_app` / `start_app`) under a running service: the call
//! in flight fails fast with a typed error, and the service answers again without a restart.
//! Runs serially after the other tests (scripts/test.sh runs `disrupt_*` binaries alone).

mod support;

use kontiki_rt::{Call, CallOptions, RpcEntrypoint, RpcError, Service};
use serde_json::{Map, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn service_and_client_recover_after_a_broker_restart() {
    let name = support::unique("restart");
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(4);
    let service = Service::builder(name.as_str())
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                Ok(json!(call.args[0].as_i64().unwrap_or(0) * 2))
            })
            .params(["x"]),
        )
        .rpc(RpcEntrypoint::new("slow", move |_call: Call| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(()).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(json!("too late"))
            }
        }))
        .build()
        .unwrap();
    let svc = service
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    assert_eq!(
        m.call(&name, "double", vec![json!(21)], Map::new())
            .await
            .unwrap(),
        json!(42)
    );

    let timeout = Duration::from_secs(20);
    let in_flight = {
        let (m, name) = (m.clone(), name.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = m
                .call_with(
                    &name,
                    "slow",
                    Default::default(),
                    CallOptions::default().timeout(timeout),
                )
                .await;
            (r, t0.elapsed())
        })
    };
    started_rx.recv().await.expect("the slow handler started");

    let _guard = support::BrokerGuard;
    tokio::task::spawn_blocking(|| support::rabbitmqctl(&["stop_app"]))
        .await
        .unwrap();
    let (result, elapsed) = in_flight.await.unwrap();
    assert!(
        matches!(result, Err(RpcError::ConnectionLost { .. })),
        "{result:?}"
    );
    assert!(
        elapsed < timeout,
        "the in-flight call took {elapsed:?}, its timeout is {timeout:?}"
    );
    println!(
        "in-flight call failed after {elapsed:?} with: {}",
        result.unwrap_err()
    );

    tokio::task::spawn_blocking(|| support::rabbitmqctl(&["start_app"]))
        .await
        .unwrap();
    let back = Instant::now();
    let mut attempts = 0;
    let answer = loop {
        attempts += 1;
        match m
            .call_with(
                &name,
                "double",
                serde_json::from_value(json!({"args": [5]})).unwrap(),
                CallOptions::default().timeout(Duration::from_secs(2)),
            )
            .await
        {
            Ok(v) => break v,
            Err(e) if back.elapsed() < Duration::from_secs(60) => {
                println!("attempt {attempts}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the service did not answer within 60 s of start_app: {e}"),
        }
    };
    assert_eq!(answer, json!(10));
    println!(
        "answered again {:?} after start_app ({attempts} attempts)",
        back.elapsed()
    );
    svc.shutdown().await;
    m.close().await;
}
