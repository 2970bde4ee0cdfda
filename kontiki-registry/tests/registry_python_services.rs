//! The Rust registry (`kontiki-registry`) with real Python Kontiki 2.3.2 services
//! (protocol §12 H): registration, status rules, degraded, failed-message RPCs, exceptions,
//! timeline, lifecycle events on the bus, HTTP `/live`, SIGKILL → down, SIGTERM →
//! deregistered, and re-registration after a registry restart.
//!
//! Every test here starts a registry: their names contain `registry`, so nextest runs them
//! one at a time (test group `registry`).

mod common;

use common::{
    PyService, RustRegistry, Tap, poll, reg, status_of, tapped_body, tapped_header, wait_services,
};
use kontiki_rt::RpcError;
use serde_json::{Value, json};

fn client_code(e: &RpcError) -> Option<String> {
    match e {
        RpcError::Client { error, .. } => error.code.clone(),
        _ => None,
    }
}

fn is_lifecycle(msg: &Value, event: &str, service: &str, iid: &str) -> bool {
    msg["routing_key"] == event
        && msg["exchange"] == "event_exchange"
        && tapped_header(msg, "service_name") == Some(&json!("ServiceRegistry"))
        && tapped_body(msg)["service_name"] == service
        && tapped_body(msg)["instance_id"] == iid
}

#[tokio::test]
async fn rust_registry_serves_python_services() {
    let _vhost = common::own_vhost();
    let m = common::messenger().await;
    let tap = Tap::start().await;
    let registry = RustRegistry::start("activity_tracker:\n  max_events: 1000000\n").await;
    let base = registry.base_url();
    let http = reqwest::Client::new();

    let name = common::unique("reg-py");
    let mut py = PyService::start(&name).await;
    let iid = py.instance_id.clone();

    // Registered and active, with its entrypoint catalogue.
    let services = wait_services(&m, "the Python service active", 20, |s| {
        status_of(s, &name, &iid) == Some("active")
    })
    .await;
    let entry = &services[&name][&iid];
    assert!(entry["last_heartbeat"].is_string(), "{entry}");
    assert_eq!(entry["metadata"]["group"], "platform");
    assert_eq!(entry["metadata"]["config"], json!({"feature_x": true}));
    let eps = entry["metadata"]["entrypoints"]
        .as_array()
        .expect("entrypoints");
    assert!(
        eps.iter()
            .any(|e| e["type"] == "event" && e["name"] == "proto.fail" && e["mode"] == "competing"),
        "{eps:?}"
    );
    assert!(
        eps.iter()
            .any(|e| e["type"] == "rpc" && e["name"] == "echo"),
        "{eps:?}"
    );

    // Lifecycle events on the bus.
    tap.wait_for("registry.instance.registered", 10, |t| {
        is_lifecycle(t, "registry.instance.registered", &name, &iid)
    })
    .await;
    let up = tap
        .wait_for("status_changed down->active", 10, |t| {
            is_lifecycle(t, "registry.instance.status_changed", &name, &iid)
                && tapped_body(t)["new_status"] == "active"
        })
        .await;
    assert_eq!(tapped_body(&up)["previous_status"], "down");

    // list_instances, positional and keyword; get_services with a status, and a bad one.
    assert_eq!(
        reg(&m, "list_instances", vec![json!(name)], Value::Null)
            .await
            .unwrap(),
        json!([iid])
    );
    assert_eq!(
        reg(&m, "list_instances", vec![], json!({"service_name": name}))
            .await
            .unwrap(),
        json!([iid])
    );
    assert_eq!(
        reg(&m, "list_instances", vec![json!("nope")], Value::Null)
            .await
            .unwrap(),
        json!([])
    );
    let active = reg(&m, "get_services", vec![], json!({"status": "active"}))
        .await
        .unwrap();
    assert!(active.get(&name).is_some(), "{active}");
    let down = reg(&m, "get_services", vec![json!("down")], Value::Null)
        .await
        .unwrap();
    assert!(down.get(&name).is_none(), "{down}");
    let bad = reg(&m, "get_services", vec![json!("bogus")], Value::Null)
        .await
        .unwrap_err();
    assert_eq!(
        client_code(&bad).as_deref(),
        Some("INVALID_STATUS"),
        "{bad}"
    );
    assert!(bad.to_string().contains("Invalid status: bogus"), "{bad}");

    // Degraded with the reason, and back.
    m.call(&name, "set_degraded", vec![json!(true)], Default::default())
        .await
        .unwrap();
    let s = wait_services(&m, "degraded", 10, |s| {
        status_of(s, &name, &iid) == Some("degraded")
    })
    .await;
    assert_eq!(s[&name][&iid]["degraded_reason"], "manual degrade");
    let deg = tap
        .wait_for("status_changed active->degraded", 10, |t| {
            is_lifecycle(t, "registry.instance.status_changed", &name, &iid)
                && tapped_body(t)["new_status"] == "degraded"
        })
        .await;
    assert_eq!(tapped_body(&deg)["reason"], "manual degrade");
    assert!(
        reg(&m, "get_services", vec![json!("degraded")], Value::Null)
            .await
            .unwrap()
            .get(&name)
            .is_some()
    );
    m.call(
        &name,
        "set_degraded",
        vec![json!(false)],
        Default::default(),
    )
    .await
    .unwrap();
    let s = wait_services(&m, "active again", 10, |s| {
        status_of(s, &name, &iid) == Some("active")
    })
    .await;
    assert!(s[&name][&iid]["degraded_reason"].is_null());

    // HTTP /live and friends.
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move { http.get(url).send().await.expect("http") }
    };
    assert_eq!(get(format!("/live/{name}")).await.status(), 200);
    assert_eq!(get("/live/ServiceRegistry".into()).await.status(), 200);
    assert_eq!(get("/live/nope".into()).await.status(), 503);
    let r = get(format!("/instances/{name}")).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!([iid]));
    assert_eq!(get("/services/bogus".into()).await.status(), 400);
    let r = get("/services/active".into()).await;
    assert!(r.json::<Value>().await.unwrap().get(&name).is_some());

    // A dead-lettered event: list (keywords), ENTRYPOINT_UNAVAILABLE, replay, drop.
    m.publish("proto.fail", &json!({"will": "fail"}))
        .await
        .unwrap();
    let listed = poll("a failed proto.fail message", 20, || {
        let m = &m;
        let name = name.clone();
        async move {
            let r = reg(
                m,
                "list_failed_messages",
                vec![],
                json!({"service_name": name, "name": "proto.fail", "limit": 5}),
            )
            .await
            .ok()?;
            (r["count"].as_i64() >= Some(1)).then_some(r)
        }
    })
    .await;
    assert_eq!(listed["messages"][0], json!({"will": "fail"}), "{listed}");
    let e = reg(
        &m,
        "list_failed_messages",
        vec![json!(name), json!("proto.bcast"), json!(1)],
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(
        client_code(&e).as_deref(),
        Some("ENTRYPOINT_UNAVAILABLE"),
        "{e}"
    );
    assert!(
        e.to_string().contains(&format!(
            "No live instance of {name} declares competing event proto.bcast"
        )),
        "{e}"
    );
    let replayed = reg(
        &m,
        "replay_failed_messages",
        vec![],
        json!({"service_name": name, "name": "proto.fail", "count": 1}),
    )
    .await
    .unwrap();
    assert_eq!(replayed, json!({"replayed": 1}));
    // The replayed message fails again (3 attempts) and comes back to the failed queue.
    poll("the replayed message back in the failed queue", 30, || {
        let m = &m;
        let name = name.clone();
        async move {
            let r = reg(
                m,
                "list_failed_messages",
                vec![json!(name), json!("proto.fail"), json!(5)],
                Value::Null,
            )
            .await
            .ok()?;
            (r["count"].as_i64() >= Some(1)).then_some(())
        }
    })
    .await;
    let dropped = reg(
        &m,
        "drop_failed_messages",
        vec![json!(name), json!("proto.fail"), json!(10)],
        Value::Null,
    )
    .await
    .unwrap();
    assert!(dropped["dropped"].as_i64() >= Some(1), "{dropped}");
    let after = reg(
        &m,
        "list_failed_messages",
        vec![json!(name), json!("proto.fail"), json!(5)],
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(after["count"], 0, "{after}");

    // A non-JSON message in the failed queue is listed in bytes form, not an error.
    m.publish_raw("", &format!("{name}.proto.fail.failed"), b"<<<", None)
        .await
        .unwrap();
    let odd = poll("the non-JSON failed message listed", 10, || {
        let m = &m;
        let name = name.clone();
        async move {
            let r = reg(
                m,
                "list_failed_messages",
                vec![json!(name), json!("proto.fail"), json!(5)],
                Value::Null,
            )
            .await
            .ok()?;
            (r["count"].as_i64() >= Some(1)).then_some(r)
        }
    })
    .await;
    assert_eq!(
        odd["messages"][0],
        json!({"__bytes__": true, "data": "PDw8"}),
        "{odd}"
    );
    reg(
        &m,
        "drop_failed_messages",
        vec![json!(name), json!("proto.fail"), json!(10)],
        Value::Null,
    )
    .await
    .unwrap();

    // An exception in an RPC handler: recorded, published, filterable.
    let _ = m
        .call(&name, "boom", vec![], Default::default())
        .await
        .unwrap_err();
    let exc = poll("the boom exception", 15, || {
        let m = &m;
        let name = name.clone();
        async move {
            let all = reg(m, "get_exceptions", vec![], Value::Null).await.ok()?;
            all.as_array()?
                .iter()
                .find(|e| e["service_name"] == name.as_str() && e["operation"] == "boom")
                .cloned()
        }
    })
    .await;
    assert_eq!(exc["exception_type"], "RuntimeError");
    assert_eq!(exc["entrypoint"], "rpc");
    let filtered = reg(
        &m,
        "get_filtered_exceptions",
        vec![],
        json!({"filter_field": "instance_id", "value": iid}),
    )
    .await
    .unwrap();
    let positional = reg(
        &m,
        "get_filtered_exceptions",
        vec![json!("instance_id"), json!(iid)],
        Value::Null,
    )
    .await;
    assert!(
        !filtered.as_array().unwrap().is_empty(),
        "{filtered} {positional:?} {exc}"
    );
    tap.wait_for("registry.exception.recorded", 10, |t| {
        t["routing_key"] == "registry.exception.recorded" && tapped_body(t)["operation"] == "boom"
    })
    .await;

    // The timeline has the RPC request to boom (headers only) and the event.
    poll("the boom request in the timeline", 15, || {
        let m = &m;
        let name = name.clone();
        async move {
            let events = reg(
                m,
                "get_filtered_events",
                vec![json!("rpc_service"), json!(name)],
                Value::Null,
            )
            .await
            .ok()?;
            events
                .as_array()?
                .iter()
                .any(|e| e["remote_method"] == "boom")
                .then_some(())
        }
    })
    .await;
    let all = reg(&m, "get_events", vec![], Value::Null).await.unwrap();
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "proto.fail")
    );
    assert!(
        !all.as_array()
            .unwrap()
            .iter()
            .any(|e| e["rpc_service"] == "ServiceRegistry"),
        "registry calls are kept out of the timeline"
    );

    // The registry restarts: the service registers again (register_again).
    registry.running.shutdown().await;
    let registry = RustRegistry::start("activity_tracker:\n  max_events: 1000000\n").await;
    wait_services(&m, "re-registered after a registry restart", 20, |s| {
        status_of(s, &name, &iid) == Some("active")
    })
    .await;
    tap.wait_for("register_again", 10, |t| {
        t["exchange"] == "registry_admin_exchange"
            && t["routing_key"] == format!("{name}.{iid}.register_again")
            && t["body"] == ""
            && t["headers"].is_null()
    })
    .await;

    // SIGKILL → down within 3 × interval + 5 s (+ slack).
    let name2 = common::unique("reg-py2");
    let mut py2 = PyService::start(&name2).await;
    let iid2 = py2.instance_id.clone();
    wait_services(&m, "second service active", 20, |s| {
        status_of(s, &name2, &iid2) == Some("active")
    })
    .await;
    py2.kill9();
    py2.wait_exit().await;
    let t0 = std::time::Instant::now();
    wait_services(&m, "down after SIGKILL", 3 + 5 + 4, |s| {
        status_of(s, &name2, &iid2) == Some("down")
    })
    .await;
    tap.wait_for("status_changed ->down", 10, |t| {
        is_lifecycle(t, "registry.instance.status_changed", &name2, &iid2)
            && tapped_body(t)["new_status"] == "down"
    })
    .await;
    eprintln!("down detected {:?} after SIGKILL", t0.elapsed());
    assert_eq!(
        reqwest::get(format!("{}/live/{name2}", registry.base_url()))
            .await
            .unwrap()
            .status(),
        503
    );

    // SIGTERM → unregister → deregistered.
    py.terminate();
    py.wait_exit().await;
    wait_services(&m, "deregistered after SIGTERM", 10, |s| {
        s.get(&name).is_none()
    })
    .await;
    tap.wait_for("registry.instance.deregistered", 10, |t| {
        is_lifecycle(t, "registry.instance.deregistered", &name, &iid)
    })
    .await;

    registry.running.shutdown().await;
    common::support::delete_queues(&[
        format!("{name}.proto.fail.failed"),
        format!("{name}.{iid}.register_again.queue"),
        format!("{name2}.{iid2}.register_again.queue"),
    ])
    .await;
}
