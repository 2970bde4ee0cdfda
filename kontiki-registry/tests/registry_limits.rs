//! `registry.failed_messages` against a real broker: by default the registry refuses to list,
//! replay or drop failed messages (client error `FORBIDDEN`); `read` allows listing only.
//!
//! The test names contain `registry`, so nextest runs them one at a time (test group `registry`).

mod common;

use common::{RustRegistry, reg, unique};
use kontiki_rt::RpcError;
use serde_json::{Value, json};

/// The client error code and message of a failed call (panics on success or another error).
fn client_error(result: Result<Value, RpcError>, what: &str) -> (String, String) {
    match result {
        Err(RpcError::Client { error, .. }) => (
            error.code.clone().unwrap_or_default(),
            error.message.clone().unwrap_or_default(),
        ),
        other => panic!("{what}: expected a client error, got {other:?}"),
    }
}

async fn call(m: &kontiki_rt::Messenger, method: &str, service: &str) -> Result<Value, RpcError> {
    let n = if method == "list_failed_messages" {
        "limit"
    } else {
        "count"
    };
    reg(
        m,
        method,
        vec![],
        json!({"service_name": service, "name": "some.event", n: 5}),
    )
    .await
}

#[tokio::test]
async fn registry_refuses_failed_queue_operations_by_default() {
    let m = common::messenger().await;
    let registry = RustRegistry::start_with_access("", "").await;
    let svc = unique("limits");
    for method in [
        "list_failed_messages",
        "replay_failed_messages",
        "drop_failed_messages",
    ] {
        let (code, message) = client_error(call(&m, method, &svc).await, method);
        assert_eq!(code, "FORBIDDEN", "{method}: {message}");
        assert!(
            message.contains("registry.failed_messages is off"),
            "{method}: {message}"
        );
    }
    // The other endpoints still answer.
    let services = reg(&m, "get_services", vec![], Value::Null)
        .await
        .expect("get_services");
    assert!(services.is_object(), "{services}");
    registry.running.shutdown().await;
}

#[tokio::test]
async fn registry_read_access_lists_but_does_not_change() {
    let m = common::messenger().await;
    let registry = RustRegistry::start_with_access("read", "").await;
    let svc = unique("limits");
    // Listing passes the access check and reaches the next one (no live instance declares it).
    let (code, message) = client_error(call(&m, "list_failed_messages", &svc).await, "list");
    assert_eq!(code, "ENTRYPOINT_UNAVAILABLE", "{message}");
    for method in ["replay_failed_messages", "drop_failed_messages"] {
        let (code, message) = client_error(call(&m, method, &svc).await, method);
        assert_eq!(code, "FORBIDDEN", "{method}: {message}");
        assert!(message.contains("needs manage"), "{method}: {message}");
    }
    registry.running.shutdown().await;
}
