//! `kontiki call` against a Python Kontiki 2.3.2 service (kontiki-rt/tests/py/proto_svc.py).

mod support;

use serde_json::json;
use support::{PyService, kontiki, unique};

#[tokio::test]
async fn call_works_against_a_python_service() {
    let m = support::messenger().await;
    let py = PyService::start(&unique("cli-py"), false).await;
    let name = py.service_name.clone();

    // Positional and keyword arguments, and the result as JSON.
    let run = kontiki(&[
        "call",
        &name,
        "echo",
        "1",
        r#""a""#,
        r#"{"k": [true, null]}"#,
        "--kwargs",
        r#"{"x": 2.5}"#,
    ])
    .await;
    assert_eq!(
        run.json(),
        json!({"args": [1, "a", {"k": [true, null]}], "kwargs": {"x": 2.5}})
    );

    // Headers reach the handler with their JSON types (AMQP integers, booleans, strings).
    let run = kontiki(&[
        "call",
        &name,
        "hdrs",
        "--header",
        "tenant=t1",
        "--header",
        "num=70000",
        "--header",
        "flag=false",
        "--flow-id",
        "pyflow000001",
    ])
    .await;
    let h = run.json();
    assert_eq!(
        (&h["tenant"], &h["num"], &h["flag"], &h["flow_id"]),
        (
            &json!("t1"),
            &json!(70000),
            &json!(false),
            &json!("pyflow000001")
        ),
        "{h}"
    );
    let records = py.received(&m, "hdrs", 1, 10).await;
    let types = &records[0]["header_types"];
    assert_eq!(
        (&types["tenant"], &types["num"], &types["flag"]),
        (&json!("str"), &json!("int"), &json!("bool")),
        "{types}"
    );

    // rpc_error → its code, exit 3; an exception → INTERNAL_ERROR, exit 4.
    assert_eq!(
        kontiki(&["call", &name, "client_err"]).await.fails(3),
        "NOT_FOUND: no such thing"
    );
    assert_eq!(
        kontiki(&["call", &name, "boom"]).await.fails(4),
        "INTERNAL_ERROR: kaboom"
    );

    // Unknown method (7) and a timeout (5).
    let err = kontiki(&["call", &name, "nope"]).await.fails(7).to_owned();
    assert!(err.starts_with("UNKNOWN_METHOD: "), "{err}");
    assert_eq!(
        kontiki(&["call", &name, "slow", "5", "--timeout", "0.5"])
            .await
            .fails(5),
        format!("RPC_TIMEOUT: no reply from {name}.slow within 0.5 s")
    );

    // --instance.
    let run = kontiki(&["call", &name, "whoami", "--instance", &py.instance_id]).await;
    assert_eq!(run.json()["instance_id"], json!(py.instance_id));

    // None comes back as null.
    assert_eq!(kontiki(&["call", &name, "ret_none"]).await.ok(), "null");

    py.stop().await;
    m.close().await;
}
