//! `kontiki describe` against a running Rust service (with the Rust registry) and a running
//! Python Kontiki 2.3.2 service (with the Python registry): the contract it prints checks with
//! kontiki-idl, is already formatted, and holds what each service registered.
//!
//! One test in a vhost of its own: a vhost has one `ServiceRegistry`, and the registry's
//! timeline must see only this test's services. The name contains `registry` for nextest's
//! `registry` group.

mod support;

use std::time::Duration;

use kontiki_idl::model::{EventMode, Model, Service, TypeRef};
use kontiki_rt::http::{HttpResponse, Method, StatusCode};
use kontiki_rt::task::Schedule;
use kontiki_rt::{Call, EventEntrypoint, HttpRoute, RpcEntrypoint, TaskEntrypoint};
use serde_json::{Value, json};
use support::{PyRegistry, PyService, RustRegistry, eventually, kontiki, unique};

/// A service name of one topic word (support::unique's names contain dots).
fn word(prefix: &str) -> String {
    unique(prefix).replace('.', "-")
}

/// Runs `kontiki describe NAME` until `ready` accepts the checked model (the timeline and the
/// registration arrive on their own time); returns the text and the model.
async fn describe_until(
    name: &str,
    secs: u64,
    ready: impl Fn(&Service) -> Result<(), String>,
) -> (String, Model) {
    eventually(&format!("kontiki describe {name}"), secs, || async {
        let run = kontiki(&["describe", name]).await;
        if run.code != Some(0) {
            return Err(format!("{run:?}"));
        }
        let text = run.stdout;
        let model = kontiki_idl::load_str("described.kontiki", &text)
            .map_err(|e| format!("does not check: {e:?}\n{text}"))?;
        let formatted = kontiki_idl::fmt::format_source("described.kontiki", &text)
            .map_err(|e| format!("{e:?}"))?;
        if formatted != text {
            return Err(format!("not formatted:\n{text}\nvs\n{formatted}"));
        }
        let svc = model
            .root_package()
            .and_then(|p| p.services.first())
            .ok_or("no service")?
            .clone();
        ready(&svc).map_err(|e| format!("{e}\n{text}"))?;
        Ok((text, model))
    })
    .await
}

fn handlers(svc: &Service) -> Vec<(String, EventMode, u32, Vec<String>)> {
    svc.handlers
        .iter()
        .map(|h| {
            let events = match &h.source {
                kontiki_idl::model::EventSource::Events(e) => {
                    e.iter().map(|e| e.name.clone()).collect()
                }
                kontiki_idl::model::EventSource::Config(k) => vec![k.clone()],
            };
            (h.name.clone(), h.mode, h.max_attempts, events)
        })
        .collect()
}

#[tokio::test]
async fn describe_registry_rust_and_python_services() {
    let _vhost = support::use_own_vhost(&word("kontiki-cli-describe"));
    let m = support::messenger().await;

    // A Rust service with RPCs, competing and broadcast handlers, a task, and an RPC that
    // publishes an event (for `emits`), registered with the Rust registry.
    let registry = RustRegistry::start().await;
    let rs_name = word("describe-rs");
    let config =
        kontiki_rt::Config::from_yaml_str("svc.yaml", &support::rust_config(&rs_name, true))
            .unwrap();
    let rs = kontiki_rt::Service::builder(rs_name.as_str())
        .version("2.4.6")
        .rpc(RpcEntrypoint::new("double", |call: Call| async move {
            Ok(json!(call.args[0].as_i64().unwrap_or(0) * 2))
        }))
        .rpc(RpcEntrypoint::new("announce", |call: Call| async move {
            call.context
                .messenger()
                .publish("describe.announced", &json!({"n": 1}))
                .await
                .map_err(kontiki_rt::HandlerError::internal)?;
            Ok(Value::Null)
        }))
        .event(
            EventEntrypoint::new(
                "on_thing",
                ["describe.thing", "describe.other"],
                |_| async { Ok(()) },
            )
            .max_attempts(5),
        )
        .event(
            EventEntrypoint::new("on_flush", ["describe.flush"], |_| async { Ok(()) })
                .mode(kontiki_rt::EventMode::Broadcast),
        )
        .event(
            EventEntrypoint::new("on_step", ["describe.step"], |_| async { Ok(()) })
                .mode(kontiki_rt::EventMode::InSession),
        )
        .http(
            HttpRoute::new(Method::GET, "/hello/{who}", |_r| async {
                Ok(HttpResponse::empty(StatusCode::OK))
            })
            .name("hello"),
        )
        .task(TaskEntrypoint::new(
            "sweep",
            Schedule::Every(Duration::from_secs(300)),
            |_| async { Ok(()) },
        ))
        .task(TaskEntrypoint::new(
            "nightly",
            Schedule::Cron("0 3 * * MON-FRI".into()),
            |_| async { Ok(()) },
        ))
        .build()
        .unwrap()
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    assert_eq!(kontiki(&["call", &rs_name, "announce"]).await.ok(), "null");
    let (text, _) = describe_until(&rs_name, 30, |svc| {
        if svc.emits.is_empty() {
            return Err("no emits yet".into());
        }
        Ok(())
    })
    .await;
    let model = kontiki_idl::load_str("rs.kontiki", &text).unwrap();
    let pkg = model.root_package().unwrap();
    let svc = &pkg.services[0];
    assert_eq!(svc.wire_name, rs_name);
    assert_eq!(svc.version.as_deref(), Some("2.4.6"));
    let rpcs: Vec<&str> = svc.rpcs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(rpcs, ["announce", "double"], "{text}");
    assert!(
        svc.rpcs
            .iter()
            .all(|r| r.params.is_empty() && r.returns == Some(TypeRef::Json)),
        "{text}"
    );
    assert_eq!(
        handlers(svc),
        [
            (
                "on_flush".to_owned(),
                EventMode::Broadcast,
                3,
                vec!["describe.flush".to_owned()]
            ),
            (
                "on_step".to_owned(),
                EventMode::InSession,
                3,
                vec!["describe.step".to_owned()]
            ),
            (
                "on_thing".to_owned(),
                EventMode::Competing,
                5,
                vec!["describe.other".to_owned(), "describe.thing".to_owned()]
            ),
        ],
        "{text}"
    );
    let emits: Vec<&str> = svc.emits.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(emits, ["describe.announced"], "{text}");
    let tasks: Vec<&str> = svc.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tasks, ["nightly", "sweep"], "{text}");
    assert!(text.contains("task sweep every 5m;"), "{text}");
    // kontiki-rt registers croner's form of the pattern.
    assert!(
        text.contains("task nightly cron \"0 3 * * 1-5\";"),
        "{text}"
    );
    // The route, its path parameter a `string` placeholder.
    assert_eq!(svc.routes.len(), 1, "{text}");
    assert!(
        text.contains("http hello GET \"/hello/{who}\" (who: string);"),
        "{text}"
    );
    // Every payload is the documented placeholder, and the header says so.
    assert!(pkg.events.iter().all(|e| e.payload == TypeRef::Json));
    assert!(
        text.starts_with(&format!("//! The contract of `{rs_name}`")),
        "{text}"
    );
    assert!(text.contains("Placeholders to replace"), "{text}");
    // The file kontiki-codegen checks too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("described.kontiki");
    std::fs::write(&file, &text).unwrap();
    let codegen = support::cargo_bin("kontiki-codegen", "bin", "kontiki-codegen");
    let check = std::process::Command::new(codegen)
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "kontiki-codegen check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // A name the registry does not know: exit 6, and the known ones listed.
    let err = kontiki(&["describe", "no-such-service"]).await;
    let line = err.fails(6);
    assert!(
        line.starts_with("UNKNOWN_SERVICE: ") && line.contains(&rs_name),
        "{line}"
    );
    rs.shutdown().await;
    registry.stop().await;

    // Python Kontiki's proto_svc.py with the Python registry.
    let registry = PyRegistry::start(&m).await;
    let py = PyService::start(&word("describe-py"), true).await;
    let name = py.service_name.clone();
    // `chain` publishes proto.chained from inside the handler.
    kontiki(&["call", &name, "chain"]).await.ok();
    let (text, model) = describe_until(&name, 30, |svc| {
        if svc.emits.is_empty() {
            return Err("no emits yet".into());
        }
        Ok(())
    })
    .await;
    let svc = &model.root_package().unwrap().services[0];
    assert_eq!(svc.version.as_deref(), Some("9.9.9"), "{text}");
    let rpcs: Vec<&str> = svc.rpcs.iter().map(|r| r.name.as_str()).collect();
    for rpc in ["echo", "chain", "whoami", "client_err", "boom", "slow"] {
        assert!(rpcs.contains(&rpc), "{rpc} in {rpcs:?}\n{text}");
    }
    let hs = handlers(svc);
    let find = |n: &str| {
        hs.iter()
            .find(|h| h.0 == n)
            .unwrap_or_else(|| panic!("no handler {n}:\n{text}"))
            .clone()
    };
    assert_eq!(
        find("on_multi"),
        (
            "on_multi".to_owned(),
            EventMode::Competing,
            2,
            vec!["proto.multi.a".to_owned(), "proto.multi.b".to_owned()]
        )
    );
    assert_eq!(find("on_bcast").1, EventMode::Broadcast);
    assert_eq!(find("on_sess").1, EventMode::InSession);
    assert_eq!(find("on_fail").1, EventMode::Competing);
    let emits: Vec<&str> = svc.emits.iter().map(|e| e.name.as_str()).collect();
    assert!(emits.contains(&"proto.chained"), "{text}");
    assert!(text.contains("task tick every 4s;"), "{text}");
    assert!(text.contains("group: platform"), "{text}");

    py.stop().await;
    registry.stop().await;
    m.close().await;
}
