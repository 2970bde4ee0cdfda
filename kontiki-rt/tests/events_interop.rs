//! Events and flows across languages, with the real Python Kontiki 2.3.2: Python publishes and
//! Rust handles (competing, broadcast, session), Rust publishes and Python handles with exactly
//! the headers a Python publisher writes, replicas of both languages share a competing queue,
//! and a flow through a Rust RPC carries Kontiki's flow and hop ids.

mod support;

use kontiki_rt::{Call, Event, EventEntrypoint, EventMode, PublishOptions, RpcEntrypoint, Service};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use support::Recorder;
use support::py::{Probe, PyService, Tap, tapped_header};

#[tokio::test]
async fn python_publishes_and_rust_handles_every_mode() {
    let name = support::unique("evx-rs");
    let (competing, bcast, sess) = (
        format!("{name}.c"),
        format!("{name}.b"),
        format!("{name}.s"),
    );
    let rec = Recorder::new();
    let handler = |label: &'static str, rec: std::sync::Arc<Recorder>| {
        move |ev: Event| {
            let rec = rec.clone();
            async move {
                rec.record(label, json!({"payload": ev.payload, "headers": ev.headers}));
                Ok(())
            }
        }
    };
    let svc = Service::builder(name.as_str())
        .event(
            EventEntrypoint::new(
                "on_c",
                [competing.as_str()],
                handler("competing", rec.clone()),
            )
            .include_headers(true),
        )
        .event(
            EventEntrypoint::new("on_b", [bcast.as_str()], handler("broadcast", rec.clone()))
                .mode(EventMode::Broadcast),
        )
        .event(
            EventEntrypoint::new("on_s", [sess.as_str()], handler("session", rec.clone()))
                .mode(EventMode::InSession)
                .include_headers(true),
        )
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let mut p = Probe::start().await;
    assert_eq!(p.cmd(json!({"op": "publish", "event": competing, "payload": {"n": 1}, "extra_headers": {"tenant": "t2"}})).await["ok"], json!(true));
    assert_eq!(
        p.cmd(json!({"op": "publish", "event": bcast, "payload": [1, 2]}))
            .await["ok"],
        json!(true)
    );
    let s = p.cmd(json!({"op": "open_session", "service": name})).await;
    assert_eq!(
        s["instance_id"],
        json!(svc.identity().instance_id.to_string()),
        "{s}"
    );
    let r = p.cmd(json!({"op": "session_publish", "session": s["session"], "event": sess, "payload": "hello"})).await;
    assert_eq!(r["ok"], json!(true), "{r}");

    let items: BTreeMap<String, Value> = rec.wait_for(3, 30).await.into_iter().collect();
    assert_eq!(items["competing"]["payload"], json!({"n": 1}));
    let h = &items["competing"]["headers"];
    assert_eq!(h["tenant"], json!("t2"));
    assert_eq!(h["event_type"], json!(competing));
    assert_eq!(h["service_name"], json!("kontiki-standalone-probe"));
    assert_eq!(items["broadcast"]["payload"], json!([1, 2]));
    assert_eq!(items["session"]["payload"], json!("hello"));
    assert_eq!(items["session"]["headers"]["session_id"], s["session_id"]);
    svc.shutdown().await;
}

#[tokio::test]
async fn rust_publishes_what_python_publishes() {
    let name = support::unique("evx-py");
    let py = PyService::start(&name, "").await;
    let m = support::messenger().await;
    let mut p = Probe::start().await;
    let marker = support::unique("marker");

    // The same event from a Python publisher and from a Rust publisher, same extras.
    p.cmd(json!({"op": "publish", "event": "proto.simple", "payload": {"from": "python", "m": marker}, "extra_headers": {"tenant": "t"}})).await;
    m.publish_with(
        "proto.simple",
        &json!({"from": "rust", "m": marker}),
        PublishOptions::default().header("tenant", "t"),
    )
    .await
    .unwrap();
    let got = m
        .call(
            &name,
            "wait_received",
            vec![json!("proto.simple"), json!(2), json!(4.0), json!("event")],
            Map::new(),
        )
        .await
        .unwrap();
    let recs: Vec<&Value> = got
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["payload"]["m"] == json!(marker))
        .collect();
    assert_eq!(recs.len(), 2, "{got}");
    let by_origin: BTreeMap<&str, &Value> = recs
        .iter()
        .map(|r| (r["payload"]["from"].as_str().unwrap(), *r))
        .collect();
    let (py_rec, rs_rec) = (by_origin["python"], by_origin["rust"]);
    assert_eq!(
        rs_rec["header_types"], py_rec["header_types"],
        "same keys and Python types"
    );
    let keys: BTreeSet<&str> = rs_rec["headers"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "event_type",
            "flow_id",
            "hop_id",
            "host",
            "instance_id",
            "reply_to",
            "service_name",
            "tenant",
            "timestamp"
        ])
    );
    assert_eq!(rs_rec["headers"]["reply_to"], Value::Null);
    assert_eq!(
        rs_rec["headers"]["flow_id"].as_str().map(str::len),
        Some(12)
    );
    assert_eq!(rs_rec["headers"]["hop_id"].as_str().map(str::len), Some(16));

    // A Rust session on the Python service reaches its in-session handler.
    let session = m.open_session(&name).await.unwrap();
    session
        .publish("proto.sess", &json!({"in": "session", "m": marker}))
        .await
        .unwrap();
    let got = m
        .call(
            &name,
            "wait_received",
            vec![json!("proto.sess"), json!(1), json!(4.0), json!("event")],
            Map::new(),
        )
        .await
        .unwrap();
    let rec = got
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["payload"]["m"] == json!(marker))
        .expect("session event recorded");
    assert_eq!(rec["headers"]["session_id"], json!(session.session_id()));
    py.stop().await;
    m.close().await;
}

#[tokio::test]
async fn python_and_rust_replicas_share_a_competing_queue() {
    let name = support::unique("evx-share");
    let event = "proto.multi.a";
    let py = PyService::start(&name, "").await;
    let rec = Recorder::new();
    let r2 = rec.clone();
    // proto-svc declares proto.multi.a with max_attempts=2: a replica must declare the same.
    let rs = Service::builder(name.as_str())
        .event(
            EventEntrypoint::new("on_multi", [event], move |ev: Event| {
                let rec = r2.clone();
                async move {
                    rec.record("rust", ev.payload);
                    Ok(())
                }
            })
            .max_attempts(2),
        )
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .expect("a Rust replica declares the same queue as the Python one (no 406)");
    let m = support::messenger().await;
    let marker = support::unique("share");
    for i in 0..40 {
        m.publish(event, &json!({"name": marker, "qty": i}))
            .await
            .unwrap();
    }
    // Everything is handled exactly once across the two replicas.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let (rust_n, py_n) = loop {
        let rust_n = rec
            .items()
            .iter()
            .filter(|(_, p)| p["name"] == json!(marker))
            .count();
        let got = m
            .call(
                &name,
                "received",
                vec![json!("event"), json!(event)],
                Map::new(),
            )
            .await
            .unwrap();
        let py_n = got
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["payload"]["name"] == json!(marker))
            .count();
        if rust_n + py_n >= 40 || tokio::time::Instant::now() > deadline {
            break (rust_n, py_n);
        }
        tokio::task::yield_now().await;
    };
    rs.shutdown().await;
    py.stop().await;
    assert_eq!(rust_n + py_n, 40, "rust {rust_n} + python {py_n}");
    assert!(
        rust_n > 0 && py_n > 0,
        "both replicas handled some: rust {rust_n}, python {py_n}"
    );
    m.close().await;
}

#[tokio::test]
async fn a_flow_through_a_rust_rpc_carries_flow_and_hop_ids() {
    let name = support::unique("flow-rs");
    let py_name = support::unique("flow-py");
    let py = PyService::start(&py_name, "").await;
    let tap = Tap::start().await;
    let chained = format!("{name}.chained");
    let (py_target, ev) = (py_name.clone(), chained.clone());
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("chain", move |call: Call| {
            let (py_target, ev) = (py_target.clone(), ev.clone());
            async move {
                let m = call.context.messenger();
                m.publish(&ev, &json!({"from": "chain"}))
                    .await
                    .map_err(kontiki_rt::HandlerError::internal)?;
                let echoed = m
                    .call(&py_target, "echo", vec![json!(1)], Map::new())
                    .await
                    .map_err(kontiki_rt::HandlerError::internal)?;
                Ok(json!({"echo": echoed}))
            }
        }))
        .build()
        .unwrap()
        .start(support::service_config(&name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let mut p = Probe::start().await;
    let flow = format!("{:012x}", rand_u48());
    let r = p.cmd(json!({"op": "call", "service": name, "method": "chain", "args": [], "kwargs": {}, "flow_id": flow})).await;
    assert_eq!(
        r["result"]["echo"],
        json!({"args": [1], "kwargs": {}}),
        "{r}"
    );

    let msgs = tap
        .wait_for(3, |m| tapped_header(m, "flow_id") == Some(&json!(flow)))
        .await;
    let inbound = msgs
        .iter()
        .find(|m| m["routing_key"] == json!(format!("{name}.chain")))
        .expect("the request to chain");
    let hop = tapped_header(inbound, "hop_id").unwrap().clone();
    let published = msgs
        .iter()
        .find(|m| m["routing_key"] == json!(chained))
        .expect("the event chain published");
    let called = msgs
        .iter()
        .find(|m| m["routing_key"] == json!(format!("{py_name}.echo")))
        .expect("the call chain made");
    for out in [published, called] {
        assert_eq!(tapped_header(out, "parent_hop_id"), Some(&hop), "{out}");
        assert_eq!(
            tapped_header(out, "entrypoint"),
            Some(&json!("rpc")),
            "{out}"
        );
        assert_eq!(
            tapped_header(out, "operation"),
            Some(&json!("chain")),
            "{out}"
        );
        assert_eq!(
            tapped_header(out, "service_name"),
            Some(&json!(name)),
            "{out}"
        );
        let own_hop = tapped_header(out, "hop_id").unwrap();
        assert!(
            own_hop != &hop && own_hop.as_str().map(str::len) == Some(16),
            "{out}"
        );
        for (k, t) in out["header_types"].as_object().unwrap() {
            let expected = if k == "reply_to" { "V" } else { "S" };
            assert_eq!(t, expected, "header {k} of {out}");
        }
    }
    assert_ne!(
        tapped_header(published, "hop_id"),
        tapped_header(called, "hop_id")
    );
    svc.shutdown().await;
    py.stop().await;
}

fn rand_u48() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}
