//! Several broker URLs (`kontiki.amqp.url` as a list, `KONTIKI_AMQP_URL` with commas): a
//! service and a stand-alone Messenger connect to the first of them that answers, whatever
//! their order, and a list with no answering broker fails naming the URLs it tried. After a
//! failover they move back to their home broker once it answers again, losing no work.

mod support;

use kontiki_rt::{Call, Config, Event, EventEntrypoint, Messenger, RpcEntrypoint, Service};
use serde_json::{Map, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Nothing listens on port 1 of the loopback: connecting is refused at once.
const DEAD: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

#[tokio::test]
async fn the_first_broker_that_answers_is_used() {
    let name = support::unique("brokers");
    let live = support::amqp_url();
    // A YAML list with a dead broker first and last: the service must find the live one,
    // whichever index its process starts at.
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url:\n      - \"{DEAD}\"\n      - \"{live}\"\n      - \"{DEAD}\"\n    connect_timeout: 2\n  registration:\n    disable: true\n"
    );
    let config = Config::from_yaml_str("list.yaml", &yaml).expect("config");
    let settings = kontiki_rt::Settings::from_config(&config).expect("settings");
    assert_eq!(settings.amqp.url, format!("{DEAD},{live},{DEAD}"));
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("echo", |c: Call| async move {
            Ok(c.args.into_iter().next().unwrap_or_default())
        }))
        .build()
        .expect("definition")
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    // A comma-separated list, as KONTIKI_AMQP_URL gives it.
    let client = Messenger::connect(format!("{DEAD}, {live}"))
        .await
        .expect("the messenger finds the live broker");
    let v = client
        .call(&name, "echo", vec![json!(7)], Map::new())
        .await
        .expect("call");
    assert_eq!(v, json!(7));
    client.close().await;
    svc.shutdown().await;
}

#[tokio::test]
async fn a_list_without_a_live_broker_fails() {
    let err = Messenger::builder(format!("{DEAD},amqp://guest:secret@127.0.0.1:2/%2f"))
        .connect_timeout(std::time::Duration::from_secs(1))
        .connect()
        .await
        .expect_err("no broker answers");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:"), "{text}");
    assert!(!text.contains("secret"), "the password is redacted: {text}");
}

#[test]
fn a_list_with_an_empty_url_is_a_config_error() {
    let config = Config::from_yaml_str(
        "bad.yaml",
        "kontiki:\n  amqp:\n    url: \"amqp://a/%2f,,amqp://b/%2f\"\n",
    )
    .expect("yaml");
    let err = kontiki_rt::Settings::from_config(&config).expect_err("empty entry");
    assert!(err.to_string().contains("kontiki.amqp.url"), "{err}");
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `secs` seconds.
async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two "nodes" (proxies to the one test broker) in the URL list. The home node goes down
/// under RPC and event load: the service and the Messenger fail over to the other. It comes
/// back: within the rebalance interval both move home, and the move itself fails no call,
/// fails no publish, loses no confirmed event and handles none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_service_moves_back_home_losing_nothing() {
    let name = support::unique("rebalance");
    let event = format!("{name}.tick");
    let nodes = [
        support::NodeProxy::start().await,
        support::NodeProxy::start().await,
    ];
    // One string for the service and the Messenger: one process, one home for the list.
    let list = format!("{},{}", nodes[0].url(), nodes[1].url());
    let handled: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let seen = handled.clone();
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{list}\"\n    rebalance_interval: 1\n    connect_timeout: 2\n    rpc:\n      timeout: 5\n  registration:\n    disable: true\n  http:\n    disable: true\n"
    );
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("echo", |c: Call| async move {
            Ok(c.args.into_iter().next().unwrap_or_default())
        }))
        .event(EventEntrypoint::new(
            "on_tick",
            [event.as_str()],
            move |ev: Event| {
                let seen = seen.clone();
                async move {
                    let n = ev.payload["n"].as_u64().unwrap_or(u64::MAX);
                    *seen.lock().unwrap().entry(n).or_default() += 1;
                    Ok(())
                }
            },
        ))
        .build()
        .expect("definition")
        .start(Config::from_yaml_str("list.yaml", &yaml).expect("config"))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = Messenger::builder(list.as_str())
        .rpc_timeout(Duration::from_secs(5))
        .rebalance_interval(Duration::from_secs(1))
        .connect()
        .await
        .expect("messenger");
    // Service: publish and consume connections; Messenger: one.
    wait_until(10, "both connected", || {
        nodes[0].open() + nodes[1].open() >= 3
    })
    .await;
    let home = usize::from(nodes[1].open() > 0);
    let (h, o) = (&nodes[home], &nodes[1 - home]);
    assert_eq!(o.open(), 0, "everything starts on the home node");

    // Load: 4 callers and a publisher, each logging (start, end, outcome).
    type Log = Arc<Mutex<Vec<(Instant, Instant, String)>>>;
    let stop = Arc::new(AtomicBool::new(false));
    let calls: Log = Arc::default();
    let ok_calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for caller in 0..4u64 {
        let (m, name, stop, log, ok) = (
            m.clone(),
            name.clone(),
            stop.clone(),
            calls.clone(),
            ok_calls.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = caller * 1_000_000;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let start = Instant::now();
                let r = m.call(&name, "echo", vec![json!(i)], Map::new()).await;
                let how = match r {
                    Ok(v) if v == json!(i) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        "ok".to_owned()
                    }
                    Ok(v) => format!("wrong answer {v}"),
                    Err(e) => format!("{e:?}")
                        .split([' ', '{', '('])
                        .next()
                        .unwrap_or("?")
                        .to_owned(),
                };
                log.lock().unwrap().push((start, Instant::now(), how));
            }
        }));
    }
    let confirmed: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let publishes: Log = Arc::default();
    {
        let (m, event, stop, confirmed, log) = (
            m.clone(),
            event.clone(),
            stop.clone(),
            confirmed.clone(),
            publishes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let start = Instant::now();
                let how = match m.publish(&event, &json!({ "n": n })).await {
                    Ok(()) => {
                        confirmed.lock().unwrap().push((start, n));
                        "ok".to_owned()
                    }
                    Err(e) => e.to_string(),
                };
                log.lock().unwrap().push((start, Instant::now(), how));
                // Pacing, not synchronisation: a steady stream through the outage.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    // Waits until 100 more calls than now were answered.
    let hundred_more = |what: &'static str| {
        let ok = ok_calls.clone();
        let at_least = ok.load(Ordering::SeqCst) + 100;
        wait_until(30, what, move || ok.load(Ordering::SeqCst) >= at_least)
    };
    hundred_more("100 calls answered before the outage").await;

    // The home node stops: both fail over to the other.
    let t0 = Instant::now();
    h.down();
    wait_until(20, "failed over to the other node", || {
        o.open() >= 3 && h.open() == 0
    })
    .await;
    let failed_over = t0.elapsed();
    hundred_more("100 calls answered on the other node").await;
    let served_again = t0.elapsed();

    // It comes back: both move home, under the load.
    let back = Instant::now();
    h.up();
    wait_until(20, "moved back home", || h.open() >= 3 && o.open() == 0).await;
    let moved = back.elapsed();
    hundred_more("100 calls answered after the move").await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }
    let t_end = Instant::now();

    // Every confirmed event handled; none published after the return handled twice.
    let confirmed = confirmed.lock().unwrap().clone();
    let all: BTreeSet<u64> = confirmed.iter().map(|(_, n)| *n).collect();
    wait_until(30, "every confirmed event handled", || {
        let h = handled.lock().unwrap();
        all.iter().all(|n| h.contains_key(n))
    })
    .await;
    let settled = t_end.elapsed();
    let handled = handled.lock().unwrap().clone();
    let twice: Vec<u64> = confirmed
        .iter()
        .filter(|(start, n)| *start >= back && handled.get(n).copied().unwrap_or(0) > 1)
        .map(|(_, n)| *n)
        .collect();
    assert!(
        twice.is_empty(),
        "events published after the return handled twice: {twice:?}"
    );
    // Nothing that started after the return failed: the move drains, it does not cut.
    for (what, log) in [("call", &calls), ("publish", &publishes)] {
        let failed: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(start, _, how)| *start >= back && how != "ok")
            .map(|(start, end, how)| {
                format!(
                    "{how} ({:?} after the return, took {:?})",
                    start.duration_since(back),
                    end.duration_since(*start)
                )
            })
            .collect();
        assert!(
            failed.is_empty(),
            "{what}s failed after the return (moved {moved:?} after it): {failed:?}"
        );
    }
    let outage: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(start, _, how)| *start < back && how != "ok")
        .map(|(_, _, how)| how.clone())
        .collect();
    eprintln!(
        "failed over after {failed_over:?}, 100 calls answered {served_again:?} after the stop; moved home {moved:?} after the node came back; settled {settled:?} after the load; {} calls, {} confirmed events; outage errors: {outage:?}",
        calls.lock().unwrap().len(),
        all.len()
    );
    m.close().await;
    let t_stop = Instant::now();
    svc.shutdown().await;
    eprintln!("shutdown took {:?}", t_stop.elapsed());
    support::delete_queues(&[
        format!("{name}.{event}.queue"),
        format!("{name}.{event}.failed"),
        kontiki_rt::wire::rpc_queue(&name, "echo"),
    ])
    .await;
}
