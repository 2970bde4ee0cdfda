//! kontiki-tui 2.1.2, unchanged, against the Rust registry with a Rust and a Python service
//! running (protocol §12 H, §14.7): driven headless through Textual's pilot by
//! tests/py/tui_driver.py, its Services, Entrypoints, Events, Flows and Exceptions tabs show
//! the services, their entrypoints, the bus traffic, the flow tree of a chained call and the
//! exception; its Logs tab shows the Rust service's log file (`logging.directory`) with the
//! flow of the call it logged.
//!
//! The test name contains `registry`: nextest runs it alone (test group `registry`).

mod common;

use common::{PyService, RustRegistry, reg, status_of, wait_services};
use kontiki_rt::{Call, CallOptions, RpcEntrypoint, Service};
use serde_json::{Value, json};
use std::time::Duration;

fn short_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..6])
}

#[tokio::test]
async fn kontiki_tui_reads_the_rust_registry() {
    // A vhost of its own: the TUI's Flows tab lists every flow the registry saw, and other
    // tests' traffic (hundreds of calls) would push the chained flow out of reach.
    let _vhost = common::support::use_own_vhost(&format!("kontiki-tui-{}", std::process::id()));
    let m = common::messenger().await;
    let _registry = RustRegistry::start("").await;

    let py_name = short_name("tuipy");
    let py = PyService::start(&py_name).await;
    let rs_name = short_name("tuirs");
    kontiki_rt::cli::init_tracing();
    let logs = tempfile::tempdir().expect("log dir");
    let yaml = format!(
        "kontiki:\n  service_name: {rs_name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 1\n  registration:\n    delay: 0.3\n  http:\n    disable: true\nlogging:\n  directory: \"{}\"\n",
        common::amqp_url(),
        logs.path().display()
    );
    let rs = Service::builder(rs_name.as_str())
        .rpc(RpcEntrypoint::new("ping", |_c: Call| async {
            tracing::info!("ping answered from rust");
            Ok(json!("pong"))
        }))
        .build()
        .expect("service")
        .start(kontiki_rt::Config::from_yaml_str("rs.yaml", &yaml).expect("config"))
        .await
        .unwrap_or_else(|e| panic!("{}", common::no_broker(e)));
    let rs_iid = rs.identity().instance_id.to_string();
    wait_services(&m, "both services active", 20, |s| {
        status_of(s, &py_name, &py.instance_id) == Some("active")
            && status_of(s, &rs_name, &rs_iid) == Some("active")
    })
    .await;

    // A chained call (chain publishes proto.chained and calls echo) and an exception.
    let flow = format!("tuiflow{}", &uuid::Uuid::new_v4().simple().to_string()[..5]);
    m.call_raw(
        &py_name,
        "chain",
        br#"{"args": [], "kwargs": {}}"#.to_vec(),
        CallOptions::default().flow_id(flow.clone()),
    )
    .await
    .expect("chain");
    let _ = m.call(&py_name, "boom", vec![], Default::default()).await;
    let log_flow = format!("tuilog{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    m.call_raw(
        &rs_name,
        "ping",
        br#"{"args": [], "kwargs": {}}"#.to_vec(),
        CallOptions::default().flow_id(log_flow.clone()),
    )
    .await
    .expect("ping");
    common::poll("the exception recorded", 15, || {
        let m = &m;
        let py_name = py_name.clone();
        async move {
            let all = reg(m, "get_exceptions", vec![], Value::Null).await.ok()?;
            all.as_array()?
                .iter()
                .any(|e| e["service_name"] == py_name.as_str())
                .then_some(())
        }
    })
    .await;

    // kontiki-tui, headless, with HOME pointing at its config.
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join(".config")).expect("mkdir");
    std::fs::write(
        home.path().join(".config/kontiki_tui.yaml"),
        format!(
            "amqp:\n  url: \"{}\"\nlogs:\n  directory: \"{}\"\n",
            common::amqp_url(),
            logs.path().display()
        ),
    )
    .expect("tui config");
    let driver = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/tui_driver.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(common::support::py::python())
            .arg(driver)
            .args(["--wait", &py_name, "--wait", &rs_name, "--flow", &flow])
            .args(["--exception", "kaboom", "--timeout", "60"])
            .args([
                "--log",
                "ping answered from rust",
                "--log",
                &format!("[flow={log_flow}]"),
            ])
            .env("HOME", home.path())
            .current_dir(home.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("tui_driver.py finishes within 120 s")
    .expect("run tui_driver.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let tables: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "tui_driver.py printed {stdout:?} ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("kontiki-tui tables: {tables}");
    for tab in [
        "services",
        "entrypoints",
        "events",
        "flows",
        "exceptions",
        "logs",
    ] {
        assert_eq!(
            tables["ok"][tab], true,
            "{tab} tab not as expected: {tables:#}"
        );
    }
    let text = |t: &str| tables[t].to_string();
    assert!(text("services_table").contains(&py_name[..]), "{tables:#}");
    assert!(text("services_table").contains(&rs_name[..]), "{tables:#}");
    assert!(
        text("entrypoints_services_table").contains(&py_name[..]),
        "{tables:#}"
    );
    assert!(
        !tables["events_table"].as_array().unwrap().is_empty(),
        "{tables:#}"
    );
    assert!(text("flows_table").contains(&flow[..12]), "{tables:#}");
    assert!(
        tables["hops_table"].as_array().unwrap().len() >= 3,
        "the chained flow has 3+ hops: {tables:#}"
    );
    assert!(text("exceptions_table").contains("kaboom"), "{tables:#}");

    rs.shutdown().await;
    py.terminate();
}
