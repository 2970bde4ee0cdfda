//! RPC re-execution (issue 15, item 4): the service's connections are closed while a handler
//! runs, so the broker delivers the request again. With the dedup window (default) the handler
//! runs once and the redelivery gets the first run's reply; with `dedup_window: 0` it runs
//! twice, which is what the window prevents.
//!
//! Closes only this test's service connections (`rabbitmqctl close_connection`); run with the
//! other `disrupt_*` binaries on the fault-injection node by scripts/test.sh.

mod support;

use kontiki_rt::{Call, RpcEntrypoint, Service};
use serde_json::{Map, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Closes every connection whose client-given name (`connection_name` in its client
/// properties) contains `needle`; returns how many.
fn close_connections(needle: &str) -> usize {
    let list = support::rabbitmqctl(&["-q", "list_connections", "pid", "client_properties"]);
    let mut closed = 0;
    for line in list.lines() {
        let Some((pid, properties)) = line.split_once('\t') else {
            continue;
        };
        if properties.contains(needle) {
            support::rabbitmqctl(&["close_connection", pid, "disrupt_rpc_dedup"]);
            closed += 1;
        }
    }
    closed
}

/// Runs one call whose handler is held while the service's connections are closed; returns
/// the reply and how many times the handler ran for it.
async fn run_with_window(window: &str) -> (serde_json::Value, usize) {
    let name = support::unique("dedup");
    let runs: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (r2, e2, rel2) = (runs.clone(), entered.clone(), release.clone());
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("work", move |call: Call| {
            let (runs, entered, release) = (r2.clone(), e2.clone(), rel2.clone());
            async move {
                let n = call.args[0].as_i64().unwrap_or(-1);
                let first = {
                    let mut runs = runs.lock().unwrap();
                    let count = runs.entry(n).or_default();
                    *count += 1;
                    *count == 1
                };
                if first {
                    entered.notify_one();
                    release.notified().await;
                }
                Ok(json!({ "n": n, "answer": n * 10 }))
            }
        }))
        .build()
        .expect("service");
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n    rpc:\n      dedup_window: {window}\n  registration:\n    disable: true\n  http:\n    disable: true\n  shutdown:\n    grace_seconds: 2\n",
        support::amqp_url()
    );
    let running = svc
        .start(kontiki_rt::Config::from_yaml_str("dedup.yaml", &yaml).expect("config"))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let instance = running.identity().instance_id.to_string();
    let m = kontiki_rt::Messenger::builder(support::amqp_url())
        .client_name("dedup-test")
        .rpc_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let call = {
        let (m, name) = (m.clone(), name.clone());
        tokio::spawn(async move { m.call(&name, "work", vec![json!(7)], Map::new()).await })
    };
    tokio::time::timeout(Duration::from_secs(20), entered.notified())
        .await
        .expect("the handler started");
    // The request is unacked while the handler runs: closing the service's connections sends
    // it back to the queue, and the service takes it again once reconnected.
    assert!(
        close_connections(&instance) >= 1,
        "no connection of {instance}"
    );
    let second = {
        let runs = runs.clone();
        async move {
            loop {
                if runs.lock().unwrap().get(&7).copied().unwrap_or(0) >= 2 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Without dedup the redelivery runs the handler again; with it, nothing runs until the
    // first run ends. Either way, release the first run after the redelivery ran or after 5 s
    // (bounded polling of the count, not a sleep standing in for an event).
    let _ = tokio::time::timeout(Duration::from_secs(5), second).await;
    release.notify_one();
    let reply = call
        .await
        .expect("the call task")
        .expect("the call is answered");
    let count = runs.lock().unwrap().get(&7).copied().unwrap_or(0);
    running.shutdown().await;
    m.close().await;
    (reply, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disrupt_a_redelivered_request_runs_once_within_the_window() {
    let (reply, runs) = run_with_window("300").await;
    assert_eq!(reply, json!({"n": 7, "answer": 70}));
    assert_eq!(runs, 1, "the handler ran {runs} times for one request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disrupt_without_the_window_a_redelivered_request_runs_again() {
    let (reply, runs) = run_with_window("0").await;
    assert_eq!(reply, json!({"n": 7, "answer": 70}));
    assert_eq!(runs, 2, "the redelivery ran the handler again");
}
