//! End to end over RabbitMQ with `idl/proto_svc.kontiki`: a Rust service implemented from the
//! generated trait, called by the generated client and by the real Python Kontiki client; and
//! the generated client calling the real Python service the contract describes.

mod support;

use kontiki_generated::proto_svc::proto_svc::{
    BoomError, ClientErrClientError, ClientErrError, EchoError, ModelArgError, ProtoSvc,
    ProtoSvcClient, ProtoSvcServer, RetNoneError, TypesError,
};
use kontiki_generated::proto_svc::{Echoed, Item, ModelArg, Types};
use kontiki_rt::codegen::{Bytes, Context, DateTime, Uuid};
use kontiki_rt::{CallOptions, RpcError};
use serde_json::{Value, json};
use std::time::Duration;

/// proto_svc.py's behaviour, in Rust, from the generated trait.
struct RustProto;

impl ProtoSvc for RustProto {
    async fn echo(&self, _ctx: Context, text: String, n: i64) -> Result<Echoed, EchoError> {
        Ok(Echoed {
            args: vec![json!(text), json!(n)],
            kwargs: Default::default(),
        })
    }

    async fn client_err(&self, _ctx: Context) -> Result<(), ClientErrError> {
        Err(ClientErrError::not_found())
    }

    async fn boom(&self, _ctx: Context) -> Result<(), BoomError> {
        Err(BoomError::internal("kaboom"))
    }

    async fn ret_none(&self, _ctx: Context) -> Result<(), RetNoneError> {
        Ok(())
    }

    async fn types(&self, _ctx: Context) -> Result<Types, TypesError> {
        Ok(expected_types())
    }

    async fn model_arg(
        &self,
        _ctx: Context,
        item: Item,
        other: Option<Item>,
    ) -> Result<ModelArg, ModelArgError> {
        let other_type = if other.is_some() { "Item" } else { "NoneType" };
        Ok(ModelArg {
            item,
            item_type: "Item".into(),
            other,
            other_type: other_type.into(),
        })
    }
}

/// What proto_svc.py's `types()` returns.
fn expected_types() -> Types {
    Types {
        dt: "2024-01-02T03:04:05+00:00".parse::<DateTime>().unwrap(),
        d: "2024-01-02".parse().unwrap(),
        u: Uuid::from_u128(1),
        b: Bytes(vec![0, 1, b'h', b'i']),
        t: vec![1, 2],
        model: Item {
            name: "x".into(),
            qty: 1,
        },
        none: Value::Null,
    }
}

fn item(name: &str, qty: i64) -> Item {
    Item {
        name: name.into(),
        qty,
    }
}

/// The calls every proto-svc answers the same way, whatever its language.
async fn check_generated_client(client: &ProtoSvcClient) {
    let echoed = client.echo("hi", 2).await.unwrap();
    assert_eq!(echoed.args, vec![json!("hi"), json!(2)]);
    assert!(echoed.kwargs.is_empty());

    match client.client_err().await {
        Err(RpcError::Client {
            error: ClientErrClientError::NotFound { message },
            ..
        }) => assert_eq!(message, "no such thing"),
        other => panic!("expected the typed NOT_FOUND, got {other:?}"),
    }
    match client.boom().await {
        Err(RpcError::Server { error, .. }) => {
            assert_eq!(error.code.as_deref(), Some("INTERNAL_ERROR"));
            // Python sends the exception's text; a Rust service a generic message and an id.
            let message = error.message.unwrap_or_default();
            assert!(
                message == "kaboom"
                    || (message.starts_with("internal error (error id ")
                        && !message.contains("kaboom")),
                "{message}"
            );
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    client.ret_none().await.unwrap();
    assert_eq!(client.types().await.unwrap(), expected_types());

    let r = client.model_arg(item("a", 2), None).await.unwrap();
    assert_eq!((r.item, r.item_type.as_str()), (item("a", 2), "Item"));
    assert_eq!((r.other, r.other_type.as_str()), (None, "NoneType"));
    let r = client
        .model_arg(item("a", 2), Some(item("b", 1)))
        .await
        .unwrap();
    assert_eq!(
        (r.other, r.other_type.as_str()),
        (Some(item("b", 1)), "Item")
    );
}

#[tokio::test]
async fn rust_service_serves_the_generated_and_the_python_client() {
    let name = support::unique("e2e-proto-rs");
    let svc = ProtoSvcServer::new(RustProto)
        .service_builder()
        .build()
        .unwrap()
        .start(support::service_config(&name))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));

    let client = ProtoSvcClient::new(support::messenger().await).with_service_name(&name);
    check_generated_client(&client).await;

    // The Python client knows nothing of the contract: plain JSON in, plain JSON out.
    let mut py = support::Probe::start().await;
    let r = py.call(&name, "echo", json!(["hi", 2])).await;
    assert_eq!(r["result"], json!({"args": ["hi", 2], "kwargs": {}}), "{r}");
    let r = py.call(&name, "client_err", json!([])).await;
    assert_eq!(
        (
            r["error"].as_str(),
            r["code"].as_str(),
            r["message"].as_str()
        ),
        (Some("client"), Some("NOT_FOUND"), Some("no such thing")),
        "{r}"
    );
    let r = py.call(&name, "boom", json!([])).await;
    assert_eq!(
        (
            r["error"].as_str(),
            r["code"].as_str(),
            r["message"]
                .as_str()
                .map(|m| m.starts_with("internal error (error id ") && !m.contains("kaboom"))
        ),
        (Some("server"), Some("INTERNAL_ERROR"), Some(true)),
        "{r}"
    );
    let r = py.call(&name, "ret_none", json!([])).await;
    assert_eq!(
        (r["ok"].as_bool(), &r["result"]),
        (Some(true), &Value::Null),
        "{r}"
    );
    let r = py.call(&name, "types", json!([])).await;
    assert_eq!(
        r["types"]["b"],
        json!("bytes"),
        "bytes arrive as Python bytes: {r}"
    );
    assert_eq!(
        r["result"]["u"],
        json!("00000000-0000-0000-0000-000000000001"),
        "{r}"
    );
    assert_eq!(r["result"]["d"], json!("2024-01-02"), "{r}");
    assert_eq!(r["result"]["t"], json!([1, 2]), "{r}");
    // Keyword arguments bind like positional ones; a missing optional one is None.
    let r = py
        .cmd(
            json!({"op": "call", "service": name, "method": "model_arg", "args": [],
                    "kwargs": {"item": {"name": "k", "qty": 3}}}),
        )
        .await;
    assert_eq!(
        r["result"],
        json!({"item": {"name": "k", "qty": 3}, "item_type": "Item", "other": null, "other_type": "NoneType"}),
        "{r}"
    );
    // A declared default fills a field Python left out.
    let r = py.call(&name, "model_arg", json!([{"name": "d"}])).await;
    assert_eq!(r["result"]["item"], json!({"name": "d", "qty": 1}), "{r}");
    // An argument of the wrong type is the caller's fault, named precisely.
    let r = py.call(&name, "echo", json!(["hi", "two"])).await;
    assert_eq!(r["code"], json!("INVALID_ARGUMENTS"), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("n: invalid type"),
        "{r}"
    );

    svc.shutdown().await;
}

#[tokio::test]
async fn generated_client_calls_the_python_service() {
    let name = support::unique("e2e-proto-py");
    let py = support::PyService::start(&name).await;
    assert_eq!(py.service_name, name);
    let client = ProtoSvcClient::new(support::messenger().await).with_service_name(&name);
    check_generated_client(&client).await;

    // Per-call options: a short timeout for a service nobody serves.
    let nobody = client
        .clone()
        .with_service_name(support::unique("e2e-nobody"));
    let started = std::time::Instant::now();
    let call = nobody.ret_none_with(CallOptions::default().timeout(Duration::from_millis(500)));
    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("a call with a 500 ms timeout returns within 10 s")
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::UnknownService { .. } | RpcError::Timeout { .. }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the per-call timeout applies"
    );

    py.stop().await;
}

#[test]
fn python_reads_the_datetimes_rust_writes() {
    let t: DateTime = "2024-01-02T05:04:05.123456+02:00".parse().unwrap();
    let written = serde_json::to_value(t).unwrap();
    let out = std::process::Command::new(support::python())
        .args([
            "-c",
            "import datetime, sys; print(datetime.datetime.fromisoformat(sys.argv[1]).isoformat())",
        ])
        .arg(written.as_str().unwrap())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2024-01-02T03:04:05.123456+00:00",
        "Rust wrote {written}"
    );
}
