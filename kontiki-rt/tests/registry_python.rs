//! Rust services with the real Python registry (`kontiki_registry` of Kontiki 2.3.2): a Rust
//! service registers and shows `active` with its entrypoints; its async degraded check flips it
//! to `degraded` with the reason and back; SIGKILL → `down`; SIGTERM → deregistered; a restarted
//! registry gets the service registered again; an uncaught handler error is reported.
//!
//! One test, run alone (nextest test group `registry`): a registry is a single service name
//! (`ServiceRegistry`) per vhost.

mod support;

use kontiki_rt::{Call, HandlerError, Health, Messenger, RpcEntrypoint, Service};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::py::PyRegistry;

fn registered_config(name: &str) -> String {
    format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 1\n  registration:\n    delay: 0.2\n    group: platform\n  shutdown:\n    grace_seconds: 2\npublic:\n  owner: team-a\n",
        support::amqp_url()
    )
}

/// Polls `get_services` until `pred` holds for `service`'s entry (bounded).
async fn wait_services(
    m: &Messenger,
    what: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let services = m
            .call("ServiceRegistry", "get_services", vec![], Map::new())
            .await
            .unwrap_or(Value::Null);
        if pred(&services) {
            return services;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen within {secs} s; last get_services: {services}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn status<'a>(services: &'a Value, name: &str, iid: &str) -> Option<&'a str> {
    services.get(name)?.get(iid)?.get("status")?.as_str()
}

#[tokio::test]
async fn rust_services_live_in_the_python_registry() {
    let m = support::messenger().await;
    let registry = PyRegistry::start(&m).await;

    // A Rust service with an async degraded check.
    let name = support::unique("reg-rs");
    let health = Arc::new(Mutex::new(Health::Ok));
    let h = health.clone();
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("ping", |_c: Call| async {
            Ok(json!("pong"))
        }))
        .rpc(RpcEntrypoint::new("boom", |_c: Call| async {
            Err::<Value, _>(HandlerError::server("kaboom"))
        }))
        .health_check(move || {
            let h = h.clone();
            async move { h.lock().unwrap().clone() }
        })
        .build()
        .unwrap()
        .start(kontiki_rt::Config::from_yaml_str("reg.yaml", &registered_config(&name)).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let iid = svc.identity().instance_id.to_string();

    let services = wait_services(&m, "the Rust service active", 20, |s| {
        status(s, &name, &iid) == Some("active")
    })
    .await;
    let meta = &services[&name][&iid]["metadata"];
    assert_eq!(meta["kontiki_version"], json!("2.3.2"));
    assert_eq!(meta["group"], json!("platform"));
    assert_eq!(meta["config"], json!({"owner": "team-a"}));
    assert_eq!(meta["heartbeat_interval"], json!(1));
    assert_eq!(
        meta["entrypoints"],
        json!([{"type": "rpc", "name": "boom", "handler": "boom"}, {"type": "rpc", "name": "ping", "handler": "ping"}])
    );
    let live = m
        .call(
            "ServiceRegistry",
            "list_instances",
            vec![json!(name)],
            Map::new(),
        )
        .await
        .unwrap();
    assert_eq!(live, json!([iid]));

    // Degraded and back.
    *health.lock().unwrap() = Health::degraded("disk full");
    let services = wait_services(&m, "degraded", 20, |s| {
        status(s, &name, &iid) == Some("degraded")
    })
    .await;
    assert_eq!(services[&name][&iid]["degraded_reason"], json!("disk full"));
    *health.lock().unwrap() = Health::Ok;
    wait_services(&m, "active again", 20, |s| {
        status(s, &name, &iid) == Some("active")
    })
    .await;

    // An uncaught handler error reaches get_exceptions with its flow and entrypoint.
    let flow = "f0123456789a";
    let _ = m
        .call_with(
            &name,
            "boom",
            Default::default(),
            kontiki_rt::CallOptions::default().flow_id(flow),
        )
        .await
        .unwrap_err();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let exc = loop {
        let all = m
            .call("ServiceRegistry", "get_exceptions", vec![], Map::new())
            .await
            .unwrap();
        if let Some(e) = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["flow_id"] == json!(flow))
        {
            break e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "exception not recorded: {all}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (&exc["entrypoint"], &exc["operation"], &exc["message"]),
        (&json!("rpc"), &json!("boom"), &json!("kaboom")),
        "{exc}"
    );
    assert_eq!(exc["service_name"], json!(name));
    assert_eq!(exc["hop_id"].as_str().map(str::len), Some(16), "{exc}");

    // A service process killed with SIGKILL turns `down`; one stopped with SIGTERM deregisters.
    let killed_name = support::unique("reg-kill");
    let killed = support::spawn_service("testsvc", &registered_config(&killed_name)).await;
    wait_services(&m, "the killed-to-be service active", 20, |s| {
        status(s, &killed_name, &killed.instance_id) == Some("active")
    })
    .await;
    killed.kill9();
    // Down after 3 × interval (3 s) and the registry's 5 s monitor.
    wait_services(&m, "down after SIGKILL", 3 + 5 + 5, |s| {
        status(s, &killed_name, &killed.instance_id) == Some("down")
    })
    .await;

    let stopped_name = support::unique("reg-term");
    let mut stopped = support::spawn_service("testsvc", &registered_config(&stopped_name)).await;
    wait_services(&m, "the stopped-to-be service active", 20, |s| {
        status(s, &stopped_name, &stopped.instance_id) == Some("active")
    })
    .await;
    stopped.terminate();
    assert!(stopped.child.wait().await.unwrap().success());
    wait_services(&m, "deregistered after SIGTERM", 10, |s| {
        s.get(&stopped_name).is_none()
    })
    .await;

    // The registry restarts and forgets everything: the Rust service registers again
    // (register_again after its 15 s grace, or the next heartbeat after that).
    registry.stop().await;
    let registry = PyRegistry::start(&m).await;
    wait_services(&m, "registered again after a registry restart", 40, |s| {
        status(s, &name, &iid) == Some("active")
    })
    .await;

    svc.shutdown().await;
    wait_services(&m, "deregistered at shutdown", 10, |s| {
        s.get(&name).is_none()
    })
    .await;
    registry.stop().await;
    m.close().await;
}
