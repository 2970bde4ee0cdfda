//! RPC interop with the real Python Kontiki 2.3.2 (a venv made by scripts/python-env.sh):
//! a Python client calls a Rust service, a Rust client calls a Python service, and Python and
//! Rust replicas of one service share its queues.

mod support;

use kontiki_rt::wire::{bytes_from_json, bytes_to_json};
use kontiki_rt::{
    Call, CallOptions, HandlerError, RpcEntrypoint, RpcError, RunningService, Service,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::py::{Probe, PyService};

fn rust_service(name: &str) -> Service {
    Service::builder(name)
        .rpc(RpcEntrypoint::new("echo", |call: Call| async move { Ok(json!({"args": call.args, "kwargs": call.kwargs})) }))
        .rpc(RpcEntrypoint::new("add", |call: Call| async move {
            Ok(json!(call.args[0].as_i64().unwrap_or(0) + call.args[1].as_i64().unwrap_or(0)))
        })
        .params(["a", "b"]))
        .rpc(RpcEntrypoint::new("client_err", |_call: Call| async move {
            Err::<Value, _>(HandlerError::client("NOT_FOUND", "no such thing"))
        }))
        .rpc(RpcEntrypoint::new("boom", |_call: Call| async move { Err::<Value, _>(HandlerError::server("kaboom")) }))
        .rpc(RpcEntrypoint::new("ret_none", |_call: Call| async move { Ok(Value::Null) }))
        .rpc(RpcEntrypoint::new("types", |_call: Call| async move {
            Ok(json!({
                "dt": "2024-01-02T03:04:05+00:00",
                "d": "2024-01-02",
                "u": "00000000-0000-0000-0000-000000000001",
                "b": bytes_to_json(&[0, 1, 104, 105]),
                "none": null,
            }))
        }))
        .rpc(RpcEntrypoint::new("reverse_bytes", |call: Call| async move {
            let mut data = bytes_from_json(&call.args[0]).ok_or_else(|| HandlerError::client("INVALID_ARGUMENTS", "data must be bytes"))?;
            data.reverse();
            Ok(bytes_to_json(&data))
        })
        .params(["data"]))
        .rpc(RpcEntrypoint::new("whoami", |call: Call| async move {
            Ok(json!({"instance_id": call.context.container().identity().instance_id.to_string(), "lang": "rust"}))
        }))
        .build()
        .unwrap()
}

async fn start_rust(name: &str) -> RunningService {
    rust_service(name)
        .start(support::service_config(name, ""))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)))
}

#[tokio::test]
async fn python_client_calls_rust_service() {
    let name = support::unique("interop-rs");
    let svc = start_rust(&name).await;
    let mut p = Probe::start().await;
    let call = |method: &str, args: Value, kwargs: Value| json!({"op": "call", "service": name, "method": method, "args": args, "kwargs": kwargs});

    let r = p
        .cmd(call(
            "echo",
            json!([1, "a", [1, 2], {"x": null}]),
            json!({"k": true}),
        ))
        .await;
    assert_eq!(
        r["result"],
        json!({"args": [1, "a", [1, 2], {"x": null}], "kwargs": {"k": true}}),
        "{r}"
    );
    // Declared parameters bind from positional and keyword form alike.
    assert_eq!(
        p.cmd(call("add", json!([2, 3]), json!({}))).await["result"],
        json!(5)
    );
    assert_eq!(
        p.cmd(call("add", json!([]), json!({"b": 3, "a": 4}))).await["result"],
        json!(7)
    );
    assert_eq!(
        p.cmd(call("add", json!([1]), json!({"b": 1}))).await["result"],
        json!(2)
    );

    let r = p.cmd(call("client_err", json!([]), json!({}))).await;
    assert_eq!(
        (
            r["error"].as_str(),
            r["code"].as_str(),
            r["message"].as_str()
        ),
        (Some("client"), Some("NOT_FOUND"), Some("no such thing")),
        "{r}"
    );
    let r = p.cmd(call("boom", json!([]), json!({}))).await;
    assert_eq!(
        (
            r["error"].as_str(),
            r["code"].as_str(),
            // A Rust service answers an internal error with a generic message and an id.
            r["message"]
                .as_str()
                .map(|m| m.starts_with("internal error (error id ") && !m.contains("kaboom"))
        ),
        (Some("server"), Some("INTERNAL_ERROR"), Some(true)),
        "{r}"
    );
    let r = p.cmd(call("add", json!([1, 2, 3]), json!({}))).await;
    assert_eq!(
        (r["error"].as_str(), r["code"].as_str()),
        (Some("client"), Some("INVALID_ARGUMENTS")),
        "{r}"
    );
    let r = p.cmd(call("ret_none", json!([]), json!({}))).await;
    assert_eq!(
        (r["ok"].as_bool(), &r["result"], r["py_type"].as_str()),
        (Some(true), &Value::Null, Some("NoneType")),
        "{r}"
    );

    // Kontiki's `__bytes__` form arrives as Python bytes, both ways.
    let r = p.cmd(call("types", json!([]), json!({}))).await;
    assert_eq!(r["types"]["b"], json!("bytes"), "{r}");
    assert_eq!(r["result"]["b"], bytes_to_json(&[0, 1, 104, 105]));
    assert_eq!(
        r["result"]["u"],
        json!("00000000-0000-0000-0000-000000000001")
    );
    let r = p
        .cmd(call(
            "reverse_bytes",
            json!([bytes_to_json(&[1, 2, 3])]),
            json!({}),
        ))
        .await;
    assert_eq!(
        (&r["result"], r["py_type"].as_str()),
        (&bytes_to_json(&[3, 2, 1]), Some("bytes")),
        "{r}"
    );
    // Python datetimes and UUIDs are sent as ISO strings; Rust sees strings and echoes them.
    let r = p.cmd(call("echo", json!([{"__datetime__": "2024-01-02T03:04:05+00:00"}, {"__uuid__": "00000000-0000-0000-0000-000000000002"}]), json!({}))).await;
    assert_eq!(
        r["result"]["args"],
        json!([
            "2024-01-02T03:04:05+00:00",
            "00000000-0000-0000-0000-000000000002"
        ]),
        "{r}"
    );

    // Targeted at the Rust instance.
    let r = p
        .cmd(json!({"op": "call", "service": name, "method": "whoami", "args": [], "kwargs": {}, "instance_id": svc.identity().instance_id.to_string()}))
        .await;
    assert_eq!(
        r["result"]["instance_id"],
        json!(svc.identity().instance_id.to_string()),
        "{r}"
    );

    // A Python session opens on the Rust service (the internal session-open RPC).
    let r = p.cmd(json!({"op": "open_session", "service": name})).await;
    assert_eq!(
        r["instance_id"],
        json!(svc.identity().instance_id.to_string()),
        "{r}"
    );
    assert_eq!(r["session_id"].as_str().map(str::len), Some(36), "{r}");
    svc.shutdown().await;
}

#[tokio::test]
async fn rust_client_calls_python_service() {
    let name = support::unique("interop-py");
    let py = PyService::start(&name, "").await;
    let m = support::messenger().await;

    let mut kw = Map::new();
    kw.insert("k".into(), json!(true));
    let r = m
        .call(&name, "echo", vec![json!(1), json!("a")], kw)
        .await
        .unwrap();
    assert_eq!(r, json!({"args": [1, "a"], "kwargs": {"k": true}}));

    let err = m
        .call(&name, "client_err", vec![], Map::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RpcError::Client { error, .. } if error.code.as_deref() == Some("NOT_FOUND") && error.message.as_deref() == Some("no such thing")),
        "{err}"
    );
    let err = m.call(&name, "boom", vec![], Map::new()).await.unwrap_err();
    assert!(
        matches!(&err, RpcError::Server { error, .. } if error.code.as_deref() == Some("INTERNAL_ERROR") && error.message.as_deref() == Some("kaboom")),
        "{err}"
    );
    assert_eq!(
        m.call(&name, "ret_none", vec![], Map::new()).await.unwrap(),
        Value::Null
    );

    let t = m.call(&name, "types", vec![], Map::new()).await.unwrap();
    assert_eq!(bytes_from_json(&t["b"]), Some(vec![0, 1, 104, 105]), "{t}");
    assert_eq!(t["dt"], json!("2024-01-02T03:04:05+00:00"));
    assert_eq!(t["u"], json!("00000000-0000-0000-0000-000000000001"));
    assert_eq!(t["model"], json!({"name": "x", "qty": 1}));

    // Rust-sent bytes arrive as Python bytes; a model argument is rebuilt on the Python side.
    let r = m
        .call(&name, "echo", vec![bytes_to_json(&[0, 1])], Map::new())
        .await
        .unwrap();
    assert_eq!(r["args"][0], bytes_to_json(&[0, 1]));
    let r = m
        .call(
            &name,
            "model_arg",
            vec![json!({"name": "n", "qty": 2})],
            Map::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (&r["item_type"], &r["other_type"]),
        (&json!("Item"), &json!("NoneType")),
        "{r}"
    );

    // The headers a Rust client writes are exactly Kontiki's set, as long strings.
    let h = m
        .call_with(
            &name,
            "hdrs",
            Default::default(),
            CallOptions::default()
                .header("tenant", "t1")
                .flow_id("f00000000001"),
        )
        .await
        .unwrap();
    let keys: BTreeSet<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "flow_id",
            "hop_id",
            "host",
            "instance_id",
            "remote_method",
            "rpc_service",
            "service_name",
            "tenant",
            "timestamp"
        ])
    );
    assert_eq!(h["flow_id"], json!("f00000000001"));
    let rec = m
        .call(
            &name,
            "received",
            vec![json!("rpc"), json!("hdrs")],
            Map::new(),
        )
        .await
        .unwrap();
    let types = &rec[0]["header_types"];
    for k in &keys {
        assert_eq!(
            types[*k],
            json!("str"),
            "header {k} must be an AMQP long string: {rec}"
        );
    }
    let ts = h["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with("+00:00"),
        "{ts}"
    );

    // Typed failures against a Python service.
    let err = m
        .call_with(
            &name,
            "slow",
            serde_json::from_value(json!({"args": [3]})).unwrap(),
            CallOptions::default().timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let err = m
        .call(&name, "no_such_method", vec![], Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::UnknownMethod { .. }), "{err}");

    // A Rust session opens on the Python service.
    let s = m.open_session(&name).await.unwrap();
    assert_eq!(s.instance_id(), py.instance_id);
    py.stop().await;
    m.close().await;
}

async fn share_load(name: &str, python_first: bool) {
    let (py, rs) = if python_first {
        let py = PyService::start(name, "").await;
        (py, start_rust(name).await)
    } else {
        let rs = start_rust(name).await;
        (PyService::start(name, "").await, rs)
    };
    let m = support::messenger().await;
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let r = m.call(name, "whoami", vec![], Map::new()).await.unwrap();
        seen.insert(r["instance_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        BTreeSet::from([
            py.instance_id.clone(),
            rs.identity().instance_id.to_string()
        ]),
        "both replicas serve"
    );
    rs.shutdown().await;
    py.stop().await;
    m.close().await;
}

#[tokio::test]
async fn python_and_rust_replicas_share_one_service_python_first() {
    share_load(&support::unique("replicas-pf"), true).await;
}

#[tokio::test]
async fn python_and_rust_replicas_share_one_service_rust_first() {
    share_load(&support::unique("replicas-rf"), false).await;
}
