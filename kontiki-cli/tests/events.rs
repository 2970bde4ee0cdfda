//! `kontiki publish` and `kontiki listen`, with Python Kontiki 2.3.2 on the other side.

mod support;

use serde_json::{Value, json};
use support::{Listen, PyService, kontiki, unique};

#[tokio::test]
async fn a_published_event_reaches_a_python_handler_and_the_tap() {
    let m = support::messenger().await;
    let py = PyService::start(&unique("cli-ev"), false).await;
    let marker = unique("marker");
    let tap = Listen::start(&["proto.simple", "--json"]).await;

    let payload = json!({"marker": marker, "n": 1}).to_string();
    let run = kontiki(&[
        "publish",
        "proto.simple",
        &payload,
        "--header",
        "tenant=t1",
        "--header",
        "n=5",
        "--flow-id",
        "evflow000001",
    ])
    .await;
    assert_eq!(run.ok(), "");

    // The Python handler got it, with the extra headers and Kontiki's own.
    let records = py.received(&m, "proto.simple", 1, 20).await;
    let rec = records
        .iter()
        .find(|r| r["payload"]["marker"] == json!(marker))
        .unwrap_or_else(|| panic!("the Python handler did not get the event: {records:?}"));
    let h = &rec["headers"];
    assert_eq!(h["tenant"], json!("t1"));
    assert_eq!(h["n"], json!(5));
    assert_eq!(h["flow_id"], json!("evflow000001"));
    assert_eq!(h["event_type"], json!("proto.simple"));
    assert_eq!(h["service_name"], json!("kontiki-standalone-kontiki_cli"));

    // The tap printed it as one JSON object.
    let line = tap.wait_for(20, |l| l.contains(&marker)).await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["routing_key"], json!("proto.simple"));
    assert_eq!(v["event_type"], json!("proto.simple"));
    assert_eq!(v["exchange"], json!("event_exchange"));
    assert_eq!(v["payload"], json!({"marker": marker, "n": 1}));
    assert_eq!(v["headers"]["tenant"], json!("t1"));
    assert_eq!(v["headers"]["flow_id"], json!("evflow000001"));
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");

    drop(tap);
    py.stop().await;
    m.close().await;
}

#[tokio::test]
async fn listen_prints_a_python_published_event_with_its_headers() {
    let py = PyService::start(&unique("cli-tap"), false).await;
    let name = py.service_name.clone();
    // `chain` publishes proto.chained from inside an RPC handler: the event carries the flow,
    // a parent hop, and entrypoint/operation.
    let mut tap = Listen::start(&["proto.chained", "--count", "1"]).await;
    let run = kontiki(&["call", &name, "chain", "--flow-id", "chainflow0001"]).await;
    assert_eq!(run.json()["echo"]["args"], json!([1]));

    let lines = tap.wait_lines(1, 20).await;
    let line = &lines[0];
    let iid12: String = py
        .instance_id
        .chars()
        .filter(|c| *c != '-')
        .take(12)
        .collect();
    for part in [
        " proto.chained ".to_owned(),
        format!(" from={name}[{iid12}] "),
        " flow=chainflow0001 ".to_owned(),
        " via=rpc:chain ".to_owned(),
        " parent=".to_owned(),
        " hop=".to_owned(),
    ] {
        assert!(line.contains(&part), "`{part}` missing from: {line}");
    }
    assert!(line.ends_with(r#" {"from":"chain"}"#), "{line}");
    // --count 1: it exits by itself, with success.
    assert_eq!(tap.exit_code().await, Some(0));
    py.stop().await;
}

#[tokio::test]
async fn listen_filters_by_pattern() {
    let base = unique("cli.pat").replace('.', "_");
    let mut tap = Listen::start(&[&format!("{base}.*.done"), "--count", "2"]).await;
    for (event, n) in [
        ("a.done", 1),
        ("a.b.done", 2),
        ("b.done", 3),
        ("c.started", 4),
    ] {
        let run = kontiki(&["publish", &format!("{base}.{event}"), &n.to_string()]).await;
        assert_eq!(run.ok(), "");
    }
    let lines = tap.wait_lines(2, 20).await;
    assert_eq!(tap.exit_code().await, Some(0));
    let events: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (parts[1].to_owned(), parts[parts.len() - 1].to_owned())
        })
        .collect();
    assert_eq!(
        events,
        vec![
            (format!("{base}.a.done"), "1".to_owned()),
            (format!("{base}.b.done"), "3".to_owned())
        ]
    );
}

/// A registry binds `event_exchange` → `registry_event_exchange` with `#` for its timeline,
/// which takes every event: `--mandatory` can only fail in a vhost without one. This test is
/// in the `registry` test group (its name says so), so no registry runs beside it, and it
/// removes the timeline exchange (with its bindings) that an earlier registry left; the next
/// registry declares it again.
#[tokio::test]
async fn publish_mandatory_fails_when_nothing_is_bound_not_even_a_registry() {
    let conn =
        lapin::Connection::connect(&support::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let ch = conn.create_channel().await.expect("channel");
    ch.exchange_delete(
        "registry_event_exchange".into(),
        lapin::options::ExchangeDeleteOptions::default(),
    )
    .await
    .expect("delete registry_event_exchange");
    let _ = conn.close(200, "done".into()).await;

    // Nothing bound: fine by default, exit 9 with --mandatory.
    let lonely = unique("cli.lonely");
    assert_eq!(kontiki(&["publish", &lonely, "{}"]).await.ok(), "");
    let run = kontiki(&["publish", &lonely, "{}", "--mandatory"]).await;
    let err = run.fails(9);
    assert!(err.starts_with("UNROUTABLE: "), "{err}");
    assert!(err.contains(&lonely), "{err}");
    // Bound: --mandatory succeeds.
    let _tap = Listen::start(&[&lonely]).await;
    assert_eq!(
        kontiki(&["publish", &lonely, "{}", "--mandatory"])
            .await
            .ok(),
        ""
    );
}
