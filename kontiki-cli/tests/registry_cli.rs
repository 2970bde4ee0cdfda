//! `kontiki services` and `kontiki failed` against the Rust registry (kontiki-registry, in this
//! process) and the Python one (`kontiki_registry` of Kontiki 2.3.2).
//!
//! The test names contain `registry`: nextest runs them one at a time (test group `registry`
//! in .config/nextest.toml), since a vhost has one `ServiceRegistry`.

mod support;

use serde_json::{Value, json};
use support::{PyRegistry, PyService, RustRegistry, eventually, kontiki, unique};

/// The status of an instance in `kontiki services --json`.
fn status<'a>(services: &'a Value, svc: &str, iid: &str) -> Option<&'a str> {
    services.get(svc)?.get(iid)?.get("status")?.as_str()
}

/// Waits until `kontiki services --json` shows the instance with `want` status.
async fn wait_status(svc: &str, iid: &str, want: &str, secs: u64) -> Value {
    eventually(&format!("{svc}/{iid} {want}"), secs, || async {
        let run = kontiki(&["services", "--json"]).await;
        if run.code != Some(0) {
            return Err(format!("{run:?}"));
        }
        let v: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
        match status(&v, svc, iid) {
            Some(s) if s == want => Ok(v),
            other => Err(format!("status {other:?} in {v}")),
        }
    })
    .await
}

/// Waits until `failed list` counts `n` messages.
async fn wait_failed(svc: &str, event: &str, n: u64, secs: u64) -> Value {
    eventually(&format!("{n} failed in {svc}.{event}"), secs, || async {
        let run = kontiki(&["failed", "list", svc, event, "--json"]).await;
        if run.code != Some(0) {
            return Err(format!("{run:?}"));
        }
        let v: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
        if v["count"] == json!(n) {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await
}

#[tokio::test]
async fn registry_rust_services_and_failed_messages() {
    let m = support::messenger().await;
    let registry = RustRegistry::start().await;
    let py = PyService::start(&unique("cli-reg"), true).await;
    let (name, iid) = (py.service_name.clone(), py.instance_id.clone());

    // services: JSON, then the table.
    let services = wait_status(&name, &iid, "active", 30).await;
    assert_eq!(
        services[&name][&iid]["metadata"]["service_version"],
        json!("9.9.9")
    );
    let table = kontiki(&["services"]).await;
    let text = table.ok();
    let header = text.lines().next().expect("a header line");
    assert!(
        header.starts_with("SERVICE")
            && header.contains("INSTANCE")
            && header.contains("LAST HEARTBEAT"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..4],
        [name.as_str(), iid.as_str(), "active", "9.9.9"],
        "{row}"
    );
    assert!(row.contains(" ago)"), "{row}");

    // --status filters; a status the registry does not know is its client error.
    let active = kontiki(&["services", "--status", "active", "--json"])
        .await
        .json();
    assert_eq!(status(&active, &name, &iid), Some("active"));
    let down = kontiki(&["services", "--status", "down", "--json"])
        .await
        .json();
    assert_eq!(status(&down, &name, &iid), None, "{down}");
    let err = kontiki(&["services", "--status", "bogus"])
        .await
        .fails(3)
        .to_owned();
    assert!(err.starts_with("INVALID_STATUS: "), "{err}");

    // A message the competing handler gives up on (proto.fail always raises, 3 attempts).
    let marker = unique("failed");
    let payload = json!({"marker": marker}).to_string();
    kontiki(&["publish", "proto.fail", &payload]).await.ok();
    let listed = wait_failed(&name, "proto.fail", 1, 30).await;
    assert_eq!(listed["messages"], json!([{"marker": marker}]));
    let text = kontiki(&["failed", "list", &name, "proto.fail"]).await;
    assert_eq!(
        text.ok(),
        format!(
            "1 failed message in {name}.proto.fail.failed, 1 shown, oldest first:\n{{\"marker\":\"{marker}\"}}"
        )
    );

    // Replay: the handler gets it again (3 more attempts), then it is back in the failed queue.
    assert_eq!(
        kontiki(&["failed", "replay", &name, "proto.fail", "--all"])
            .await
            .ok(),
        "replayed 1"
    );
    let seen = py.received(&m, "proto.fail", 6, 30).await;
    let attempts = seen
        .iter()
        .filter(|r| r["payload"]["marker"] == json!(marker))
        .count();
    assert_eq!(attempts, 6, "{seen:?}");
    wait_failed(&name, "proto.fail", 1, 30).await;

    // Drop.
    let dropped = kontiki(&["failed", "drop", &name, "proto.fail", "--all", "--json"]).await;
    assert_eq!(dropped.json(), json!({"dropped": 1}));
    wait_failed(&name, "proto.fail", 0, 10).await;
    assert_eq!(
        kontiki(&["failed", "list", &name, "proto.fail"]).await.ok(),
        format!("0 failed messages in {name}.proto.fail.failed")
    );

    // An event the service has no competing handler for.
    let err = kontiki(&["failed", "list", &name, "proto.bcast"])
        .await
        .fails(3)
        .to_owned();
    assert!(err.starts_with("ENTRYPOINT_UNAVAILABLE: "), "{err}");

    py.stop().await;
    registry.stop().await;
    m.close().await;
}

#[tokio::test]
async fn registry_python_lists_rust_and_python_services() {
    let m = support::messenger().await;
    let registry = PyRegistry::start(&m).await;
    let rs_name = unique("cli-pyreg-rs");
    // kontiki-rt's example service, as a process of its own.
    let testsvc = support::cargo_bin("kontiki-rt", "example", "testsvc");
    let rs = support::spawn_service(&testsvc, &support::rust_config(&rs_name, true)).await;
    let py = PyService::start(&unique("cli-pyreg-py"), true).await;

    let services = wait_status(&rs_name, &rs.instance_id, "active", 30).await;
    assert_eq!(
        services[&rs_name][&rs.instance_id]["metadata"]["service_version"],
        json!("0.0.1")
    );
    wait_status(&py.service_name, &py.instance_id, "active", 30).await;
    let text = kontiki(&["services", "--status", "active"]).await;
    let text = text.ok();
    for (svc, iid, version) in [
        (rs_name.as_str(), rs.instance_id.as_str(), "0.0.1"),
        (py.service_name.as_str(), py.instance_id.as_str(), "9.9.9"),
    ] {
        let row = text
            .lines()
            .find(|l| l.starts_with(svc))
            .unwrap_or_else(|| panic!("no row for {svc}:\n{text}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..4], [svc, iid, "active", version], "{row}");
    }

    // Failed messages through the Python registry.
    let marker = unique("pyfailed");
    kontiki(&[
        "publish",
        "proto.fail",
        &json!({"marker": marker}).to_string(),
    ])
    .await
    .ok();
    let listed = wait_failed(&py.service_name, "proto.fail", 1, 30).await;
    assert_eq!(listed["messages"], json!([{"marker": marker}]));
    assert_eq!(
        kontiki(&["failed", "drop", &py.service_name, "proto.fail", "--all"])
            .await
            .ok(),
        "dropped 1"
    );
    wait_failed(&py.service_name, "proto.fail", 0, 10).await;
    let err = kontiki(&["failed", "replay", &py.service_name, "no.such.event"])
        .await
        .fails(3)
        .to_owned();
    assert!(err.starts_with("ENTRYPOINT_UNAVAILABLE: "), "{err}");

    py.stop().await;
    drop(rs);
    let queues: Vec<String> = [
        "___kontiki__internal_session_open__",
        "double",
        "slow",
        "whoami",
    ]
    .iter()
    .map(|m| format!("{rs_name}.{m}.queue"))
    .collect();
    support::delete_queues(&queues).await;
    registry.stop().await;
    m.close().await;
}

/// A kontiki-rs instance sends its counters with each heartbeat; the Rust registry keeps the
/// last ones and `kontiki services` shows them (`-` for a Python instance, which sends none).
#[tokio::test]
async fn registry_rust_shows_instance_counters() {
    let m = support::messenger().await;
    let registry = RustRegistry::start().await;
    let name = unique("cli-stats");
    let svc = support::rust_service(&name, true).await;
    let iid = svc.identity().instance_id.to_string();
    for x in 1..=3 {
        let v = m
            .call(&name, "double", vec![json!(x)], Default::default())
            .await
            .expect("double");
        assert_eq!(v, json!(2 * x));
    }
    let err = m
        .call(&name, "double", vec![json!("two")], Default::default())
        .await
        .expect_err("a declared error");
    assert!(err.to_string().contains("INVALID_ARGUMENTS"), "{err}");

    // The next heartbeat (every second) carries the four answers.
    let stats = eventually("the counters in get_services", 30, || async {
        let run = kontiki(&["services", "--json"]).await;
        let v: Value = serde_json::from_str(&run.stdout).map_err(|e| format!("{e}: {run:?}"))?;
        let stats = v[&name][&iid]["stats"].clone();
        if stats["rpc_ok"] == json!(3) && stats["rpc_errors"] == json!(1) {
            Ok(stats)
        } else {
            Err(format!("stats {stats}"))
        }
    })
    .await;
    assert_eq!(stats["rpc_failed"], json!(0), "{stats}");
    assert_eq!(stats["in_flight"], json!(0), "{stats}");
    assert_eq!(stats["events_ok"], json!(0), "{stats}");
    assert!(
        stats["rpc_mean_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{stats}"
    );

    let text = kontiki(&["services"]).await.ok().to_owned();
    let header = text.lines().next().expect("a header line");
    assert!(
        header.contains("CALLS OK/ERR/FAIL") && header.contains("EVENTS OK/RETRY/DEAD"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
    assert!(row.contains(" 3/1/0 ") && row.contains(" 0/0/0 "), "{row}");

    svc.shutdown().await;
    let queues: Vec<String> = [
        "___kontiki__internal_session_open__",
        "double",
        "slow",
        "whoami",
        "headers",
    ]
    .iter()
    .map(|m| format!("{name}.{m}.queue"))
    .collect();
    support::delete_queues(&queues).await;
    registry.stop().await;
    m.close().await;
}
