//! Helpers of the registry tests: the Rust registry in-process, Python services with
//! registration on, and the bus tap (the scripts of kontiki-rt/tests/py).
#![allow(dead_code, reason = "each test binary uses a different subset")]

#[path = "../../../kontiki-rt/tests/support/mod.rs"]
pub(crate) mod support;

use kontiki_rt::{Messenger, RpcError};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

#[allow(unused_imports, reason = "each test binary uses a different subset")]
pub(crate) use support::{amqp_url, messenger, no_broker, unique};

/// kontiki-rt/tests/py.
pub(crate) fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kontiki-rt/tests/py")
}

fn py_stderr() -> std::process::Stdio {
    if std::env::var_os("KONTIKI_TEST_PY_LOGS").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    }
}

/// The Rust registry running in this process.
pub(crate) struct RustRegistry {
    pub(crate) running: kontiki_rt::RunningService,
    pub(crate) registry: std::sync::Arc<kontiki_registry::Registry>,
}

impl RustRegistry {
    /// Starts `ServiceRegistry` with HTTP on a free local port, the failed-queue operations
    /// allowed (`registry.failed_messages: manage`) and `extra_yaml` (top-level keys).
    pub(crate) async fn start(extra_yaml: &str) -> RustRegistry {
        Self::start_with_access("manage", extra_yaml).await
    }

    /// [`RustRegistry::start`] with `registry.failed_messages: <access>` (`off`, `read`,
    /// `manage`; an empty string leaves the key out, so the default applies).
    pub(crate) async fn start_with_access(access: &str, extra_yaml: &str) -> RustRegistry {
        let access = if access.is_empty() {
            String::new()
        } else {
            format!("  failed_messages: {access}\n")
        };
        let yaml = format!(
            "kontiki:\n  amqp:\n    url: \"{}\"\n  http:\n    address: 127.0.0.1\n    port: 0\n  shutdown:\n    grace_seconds: 2\nregistry:\n  register_again_grace_seconds: 0.5\n{access}{extra_yaml}",
            amqp_url()
        );
        purge_timeline_backlog().await;
        let config = kontiki_rt::Config::from_yaml_str("registry.yaml", &yaml).expect("config");
        let (registry, service) = kontiki_registry::build(&config).expect("build the registry");
        let running = service
            .start(config)
            .await
            .unwrap_or_else(|e| panic!("{}", no_broker(e)));
        RustRegistry { running, registry }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.running.http_addr().expect("http is on"))
    }
}

/// Deletes `event_tracker.queue` before a registry starts (see
/// `support::py::delete_timeline_queue`).
pub(crate) async fn purge_timeline_backlog() {
    support::py::delete_timeline_queue().await;
}

/// `proto_svc.py` with registration on (heartbeat 1 s, delay 0.3 s, group platform).
pub(crate) struct PyService {
    pub(crate) child: Child,
    pub(crate) service_name: String,
    pub(crate) instance_id: String,
    _config: tempfile::NamedTempFile,
}

impl PyService {
    pub(crate) async fn start(service_name: &str) -> PyService {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        write!(
            file,
            "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 1\n  registration:\n    delay: 0.3\n    disable: false\n    group: platform\n  shutdown:\n    grace_seconds: 2\npublic:\n  feature_x: true\n",
            amqp_url()
        )
        .expect("write config");
        let mut child = Command::new(support::py::python())
            .arg(py_dir().join("proto_svc.py"))
            .arg("--config")
            .arg(file.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(py_stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn proto_svc.py");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("proto_svc.py READY within 60 s")
            .expect("read stdout")
            .expect("proto_svc.py exited before READY (KONTIKI_TEST_PY_LOGS=1 shows its log)");
        let ready: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(ready.first(), Some(&"READY"), "{line}");
        PyService {
            service_name: ready[1].to_owned(),
            instance_id: ready[2].to_owned(),
            child,
            _config: file,
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running");
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    pub(crate) fn terminate(&self) {
        self.signal("-TERM");
    }

    pub(crate) fn kill9(&self) {
        self.signal("-KILL");
    }

    pub(crate) async fn wait_exit(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }
}

/// A vhost of this test's own (see `support::use_own_vhost`), first thing in every registry
/// test: two registries on one vhost compete for `ServiceRegistry` calls and heartbeats, so a
/// test could be answered by another test's registry, which knows other instances.
pub(crate) fn own_vhost() -> support::OwnVhost {
    support::use_own_vhost(&format!("kontiki-reg-{}", std::process::id()))
}

/// `tap.py`: every message on Kontiki's exchanges.
pub(crate) struct Tap {
    _child: Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Tap {
    pub(crate) async fn start() -> Tap {
        let mut child = Command::new(support::py::python())
            .arg(py_dir().join("tap.py"))
            .arg("--url")
            .arg(amqp_url())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(py_stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tap.py");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Messages may come before the READY line: skip them.
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read tap") {
                if line.starts_with("READY") {
                    return;
                }
            }
            panic!("tap.py exited before READY");
        })
        .await
        .expect("tap READY within 60 s");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("tap lock").push(v);
                }
            }
        });
        Tap {
            _child: child,
            seen,
        }
    }

    /// Waits (at most `secs`) for a tapped message matching `pred`.
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let seen = &self.seen;
        poll_explained(
            what,
            secs,
            || {
                let found = seen
                    .lock()
                    .expect("tap lock")
                    .iter()
                    .find(|v| pred(v))
                    .cloned();
                async move { found }
            },
            // What the tap did see, to tell a lost message from a dead tap.
            || {
                let seen = seen.lock().expect("tap lock");
                let last: Vec<String> = seen
                    .iter()
                    .rev()
                    .take(12)
                    .map(|v| format!("{} {}", v["exchange"], v["routing_key"]))
                    .collect();
                format!("; the tap saw {} messages, the last: {last:#?}", seen.len())
            },
        )
        .await
    }
}

/// The plain value of a tapped header.
pub(crate) fn tapped_header<'a>(msg: &'a Value, key: &str) -> Option<&'a Value> {
    msg["headers"].get(key).map(|h| &h["value"])
}

/// The JSON body of a tapped message.
pub(crate) fn tapped_body(msg: &Value) -> Value {
    msg["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}

/// Polls `f` every 200 ms until it returns `Some`, failing after `secs` seconds.
pub(crate) async fn poll<T, F, Fut>(what: &str, secs: u64, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_explained(what, secs, f, String::new).await
}

/// [`poll`], with what `explain` says added to the failure.
pub(crate) async fn poll_explained<T, F, Fut>(
    what: &str,
    secs: u64,
    mut f: F,
    explain: impl Fn() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen within {secs} s{}",
            explain()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calls `ServiceRegistry.<method>` with positional and keyword arguments.
pub(crate) async fn reg(
    m: &Messenger,
    method: &str,
    args: Vec<Value>,
    kwargs: Value,
) -> Result<Value, RpcError> {
    let kwargs: Map<String, Value> = kwargs.as_object().cloned().unwrap_or_default();
    m.call("ServiceRegistry", method, args, kwargs).await
}

/// The status of `service`/`iid` in a `get_services` result.
pub(crate) fn status_of<'a>(services: &'a Value, service: &str, iid: &str) -> Option<&'a str> {
    services.get(service)?.get(iid)?.get("status")?.as_str()
}

/// Polls `get_services` until `pred` holds.
pub(crate) async fn wait_services(
    m: &Messenger,
    what: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let pred = &pred;
    poll(what, secs, || async move {
        let s = reg(m, "get_services", vec![], Value::Null)
            .await
            .unwrap_or(Value::Null);
        pred(&s).then_some(s)
    })
    .await
}
