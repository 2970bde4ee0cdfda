//! Oversize messages (issue 15, item 6): a 20 MiB event, request or reply under call load gets
//! one typed error and the connection stays up, so the calls around it all succeed.

mod support;

use kontiki_rt::{Call, Error, RpcEntrypoint, RpcError, Service};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_fail_alone_with_a_typed_error() {
    let name = support::unique("oversize");
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n    rpc:\n      timeout: 10\n  registration:\n    disable: true\n  http:\n    disable: true\n",
        support::amqp_url()
    );
    let config = kontiki_rt::Config::from_yaml_str("oversize.yaml", &yaml).expect("config");
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("echo", |call: Call| async move {
            Ok(call.args.first().cloned().unwrap_or(Value::Null))
        }))
        .rpc(RpcEntrypoint::new("big", |_call: Call| async move {
            Ok(json!("x".repeat(20 * MIB)))
        }))
        .build()
        .expect("service");
    let running = svc
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    assert_eq!(m.max_message_size(), 16 * MIB, "the default limit");

    // Calls beside the oversize messages, until they are done.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..4)
        .map(|i| {
            let (m, stop, ok, name) = (m.clone(), stop.clone(), ok.clone(), name.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) || n == 0 {
                    let v = m
                        .call(&name, "echo", vec![json!(i * 1_000_000 + n)], Map::new())
                        .await
                        .unwrap_or_else(|e| panic!("a call beside the oversize messages: {e}"));
                    assert_eq!(v, json!(i * 1_000_000 + n));
                    ok.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();

    let big = "y".repeat(20 * MIB);
    // An event.
    let err = m
        .publish(&format!("{name}.happened"), &json!({ "blob": big }))
        .await
        .expect_err("a 20 MiB event is refused");
    assert!(
        matches!(err, Error::MessageTooLarge { size, max, .. } if size > 20 * MIB && max == 16 * MIB),
        "{err:?}"
    );
    // A request.
    let err = m
        .call(&name, "echo", vec![json!(big)], Map::new())
        .await
        .expect_err("a 20 MiB request is refused");
    assert!(
        matches!(err, RpcError::Transport(Error::MessageTooLarge { .. })),
        "{err:?}"
    );
    // A reply.
    let err = m
        .call(&name, "big", vec![], Map::new())
        .await
        .expect_err("a 20 MiB reply is replaced by an error");
    assert!(
        err.to_string().contains("kontiki.amqp.max_message_size"),
        "{err}"
    );
    // Under the limit it goes through.
    let fine = "z".repeat(MIB);
    let v = m
        .call(&name, "echo", vec![json!(fine)], Map::new())
        .await
        .expect("a 1 MiB request");
    assert_eq!(v.as_str().map(str::len), Some(MIB));

    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.expect("a caller panicked");
    }
    assert!(ok.load(Ordering::Relaxed) >= 4);
    // A smaller limit, set on a stand-alone Messenger.
    m.set_max_message_size(1000);
    let err = m
        .call(&name, "echo", vec![json!("w".repeat(2000))], Map::new())
        .await
        .expect_err("over a limit of 1000 bytes");
    assert!(
        matches!(
            err,
            RpcError::Transport(Error::MessageTooLarge { max: 1000, .. })
        ),
        "{err:?}"
    );
    running.shutdown().await;
    m.close().await;
}
