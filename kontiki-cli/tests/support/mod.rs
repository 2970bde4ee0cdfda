//! Helpers of the `kontiki` tests: run the built binary, tap with `kontiki listen`, and start
//! the services it talks to (the Rust test service, Python Kontiki's proto_svc.py, the Rust and
//! Python registries). Copied from kontiki-rt/tests/support and kontiki-registry/tests/common,
//! with the paths of the Python rig fixed to kontiki-rt/tests/py.
//!
//! To check another service from a test:
//!
//! ```ignore
//! let run = support::kontiki(&["call", "compute-api", "compute", "21"]).await;
//! assert_eq!(run.ok(), "42");
//! ```
#![allow(dead_code, reason = "each test binary uses a different subset")]

use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The broker every test talks to: `KONTIKI_AMQP_URL`, or the local default.
pub(crate) fn amqp_url() -> String {
    if let Some(url) = OWN_URL.get() {
        return url.clone();
    }
    std::env::var("KONTIKI_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A vhost of this test binary's own, set by [`use_own_vhost`]: `amqp_url` then points there.
static OWN_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Deletes the vhost [`use_own_vhost`] made, when dropped.
pub(crate) struct OwnVhost(String);

impl Drop for OwnVhost {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| rabbitmqctl(&["-q", "delete_vhost", &self.0]));
    }
}

/// Makes a vhost `name` on the test broker (rabbitmqctl) and points [`amqp_url`] (and so the
/// `kontiki` runs, services and registries of the test) at it for the rest of this test
/// binary: for a test whose registry must see no other test's services. Call it once, first.
pub(crate) fn use_own_vhost(name: &str) -> OwnVhost {
    rabbitmqctl(&["-q", "add_vhost", name]);
    rabbitmqctl(&[
        "-q",
        "set_permissions",
        "-p",
        name,
        "guest",
        ".*",
        ".*",
        ".*",
    ]);
    let base = std::env::var("KONTIKI_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let root = match (base.find("://"), base.rfind('/')) {
        (Some(scheme), Some(i)) if i > scheme + 2 => &base[..i],
        _ => base.as_str(),
    };
    let _ = OWN_URL.set(format!("{root}/{name}"));
    OwnVhost(name.to_owned())
}

/// Runs `rabbitmqctl ARGS` on the test broker's node (`KONTIKI_RABBITMQCTL_NODE` names another).
pub(crate) fn rabbitmqctl(args: &[&str]) -> String {
    let bin = ["/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("rabbitmqctl");
    let node: Vec<String> = match std::env::var("KONTIKI_RABBITMQCTL_NODE") {
        Ok(node) if !node.is_empty() => vec!["-n".to_owned(), node],
        _ => Vec::new(),
    };
    // Bounded: a rabbitmqctl left waiting on a broker that stopped answering holds one of the
    // few CLI distribution ports until it is killed (it outlives a test nextest times out).
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=5", "120", bin])
        .args(&node)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {bin}: {e}; this test needs rabbitmqctl to make its vhost")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The message a broker test fails with when no broker answers. Broker tests never skip.
pub(crate) fn no_broker(err: impl std::fmt::Display) -> String {
    format!(
        "no RabbitMQ answers at {} ({err}). These tests need a real broker: run \
         `scripts/test.sh` (it starts or installs one), or `sudo rabbitmq-server -detached`, \
         or set KONTIKI_AMQP_URL",
        amqp_url()
    )
}

/// A name no other test or earlier run uses: `prefix.<pid>.<counter>.<random>`.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}.{}.{n}.{}", std::process::id(), &rand[..8])
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The `kontiki` binary cargo built for these tests.
pub(crate) fn kontiki_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kontiki"))
}

/// What one `kontiki` run did.
#[derive(Debug)]
pub(crate) struct Run {
    /// The exit code (`None` when killed by a signal).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns stdout without the final newline.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "kontiki failed: {self:?}");
        self.stdout.trim_end_matches('\n')
    }

    /// Asserts exit 0 and parses stdout as one JSON value.
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts the exit code and an empty stdout; returns the stderr line (trimmed).
    #[track_caller]
    pub(crate) fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "unexpected exit: {self:?}");
        assert_eq!(
            self.stdout, "",
            "a failed command printed on stdout: {self:?}"
        );
        self.stderr.trim_end_matches('\n')
    }
}

/// Runs `kontiki ARGS` against the test broker (`KONTIKI_AMQP_URL`); at most 60 s.
pub(crate) async fn kontiki(args: &[&str]) -> Run {
    kontiki_env(args, &[]).await
}

/// [`kontiki`] with extra environment variables.
pub(crate) async fn kontiki_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(kontiki_bin());
    cmd.args(args)
        .env("KONTIKI_AMQP_URL", amqp_url())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("kontiki {args:?} did not end within 60 s"))
        .expect("run kontiki");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kontiki listen` running in the background, its stdout lines collected.
pub(crate) struct Listen {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Listen {
    /// Starts `kontiki listen ARGS` and waits (at most 30 s) until it says it is bound.
    pub(crate) async fn start(args: &[&str]) -> Listen {
        let mut child = Command::new(kontiki_bin())
            .arg("listen")
            .args(args)
            .env("KONTIKI_AMQP_URL", amqp_url())
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn kontiki listen");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut said = Vec::new();
        let bound = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = stderr.next_line().await.expect("read listen stderr") {
                if line.starts_with("listening on ") {
                    return true;
                }
                said.push(line);
            }
            false
        })
        .await;
        assert!(
            matches!(bound, Ok(true)),
            "kontiki listen {args:?} did not say `listening on` within 30 s; stderr: {said:?}"
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let (sink, notify) = (lines.clone(), changed.clone());
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                sink.lock().expect("listen lines").push(line);
                notify.notify_waiters();
            }
            notify.notify_waiters();
        });
        Listen {
            child,
            lines,
            changed,
        }
    }

    /// Waits (at most `secs`) until `n` lines were printed; returns all lines so far.
    pub(crate) async fn wait_lines(&self, n: usize, secs: u64) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let notified = self.changed.notified();
            let lines = self.lines.lock().expect("listen lines").clone();
            if lines.len() >= n {
                return lines;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "kontiki listen printed {} of {n} lines in {secs} s: {lines:?}",
                    lines.len()
                );
            }
        }
    }

    /// Waits (at most `secs`) until a printed line satisfies `pred`; returns it.
    pub(crate) async fn wait_for(&self, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let notified = self.changed.notified();
            let lines = self.lines.lock().expect("listen lines").clone();
            if let Some(hit) = lines.iter().find(|l| pred(l)) {
                return hit.clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("kontiki listen printed no matching line in {secs} s: {lines:?}");
            }
        }
    }

    /// Waits (at most 30 s) for the process to exit; returns its exit code.
    pub(crate) async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("kontiki listen exits within 30 s")
            .expect("wait for kontiki listen")
            .code()
    }
}

/// A stand-alone messenger on the test broker (for what the test itself checks).
pub(crate) async fn messenger() -> kontiki_rt::Messenger {
    kontiki_rt::Messenger::builder(amqp_url())
        .client_name("test")
        .rpc_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", no_broker(e)))
}

/// The path of an example binary `name` of `package` (kontiki-rt's `testsvc`, or an example
/// crate's binary), built once per test process: a test target of another package does not
/// build it. `kind` is `example` or `bin`.
pub(crate) fn cargo_bin(package: &str, kind: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let key = format!("{package}/{kind}/{name}");
    let mut built = BUILT.lock().unwrap();
    if !built.contains(&key) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            package,
            &format!("--{kind}"),
            name,
        ])
        .current_dir(repo_root());
        // The variables cargo set for this test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...) are
        // read by build scripts (ring's): passed on, they make cargo rebuild lapin and
        // kontiki-rt here, and again at the next ordinary build.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || key.starts_with("CARGO_BIN_")
                || key.starts_with("CARGO_CRATE_")
                || key == "CARGO_PRIMARY_PACKAGE"
                || key == "CARGO_TARGET_TMPDIR"
                || key == "OUT_DIR"
            {
                cmd.env_remove(key.as_ref());
            }
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} --{kind} {name} failed"
        );
        built.push(key);
    }
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = if kind == "example" {
        dir.join("examples").join(name)
    } else {
        dir.join(name)
    };
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A service binary running as a child process (killed when dropped).
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) instance_id: String,
    _config: tempfile::NamedTempFile,
}

/// The config of a Rust test service: `name`, the test broker, registration as asked.
pub(crate) fn rust_config(name: &str, register: bool) -> String {
    format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 1\n  registration:\n    delay: 0.2\n    disable: {}\n  shutdown:\n    grace_seconds: 2\n",
        amqp_url(),
        !register
    )
}

/// Starts a service binary built with [`cargo_bin`] (e.g. kontiki-rt's example `testsvc`:
/// `double(x)`, `slow(ms)`, `whoami()`) with `config_yaml`, and waits (at most 30 s) until it
/// logs `service started`, reading its instance id there.
pub(crate) async fn spawn_service(bin: &std::path::Path, config_yaml: &str) -> Proc {
    use std::io::Write as _;
    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    file.write_all(config_yaml.as_bytes())
        .expect("write config");
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(file.path())
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn service");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let mut log = Vec::new();
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("service started") {
                return line
                    .split("instance_id=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .map(str::to_owned);
            }
            log.push(line);
        }
        None
    })
    .await;
    let Ok(Some(instance_id)) = started else {
        panic!(
            "{} did not start; its log:\n{}",
            bin.display(),
            log.join("\n")
        );
    };
    // Keep draining its stderr so the service never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Proc {
        child,
        instance_id,
        _config: file,
    }
}

/// A Rust service in this process, like kontiki-rt's `testsvc`: `double(x)` → `2x` (a client
/// error `INVALID_ARGUMENTS` when x is no integer), `slow(ms)` → `[ms, instance_id]` after
/// sleeping, `whoami()` → the instance id, `headers()` → the headers it received.
pub(crate) async fn rust_service(name: &str, register: bool) -> kontiki_rt::RunningService {
    use kontiki_rt::{Call, HandlerError, RpcEntrypoint, Service};
    use serde_json::json;
    let config = kontiki_rt::Config::from_yaml_str("svc.yaml", &rust_config(name, register))
        .expect("service config");
    Service::builder(name)
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                let x = call.args[0].as_i64().ok_or_else(|| {
                    HandlerError::client("INVALID_ARGUMENTS", "x must be an integer")
                })?;
                Ok(json!(x * 2))
            })
            .params(["x"]),
        )
        .rpc(
            RpcEntrypoint::new("slow", |call: Call| async move {
                let ms = call.args[0].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let iid = call.context.container().identity().instance_id.to_string();
                Ok(json!([ms, iid]))
            })
            .params(["ms"]),
        )
        .rpc(RpcEntrypoint::new("whoami", |call: Call| async move {
            Ok(json!(
                call.context.container().identity().instance_id.to_string()
            ))
        }))
        .rpc(
            RpcEntrypoint::new("headers", |call: Call| async move {
                Ok(Value::Object(call.headers.unwrap_or_default()))
            })
            .include_headers(true),
        )
        .build()
        .expect("service definition")
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("{}", no_broker(e)))
}

/// kontiki-rt/tests/py: the Python interop rig.
pub(crate) fn py_dir() -> PathBuf {
    repo_root().join("kontiki-rt").join("tests").join("py")
}

/// Python's stderr goes to the test output only with `KONTIKI_TEST_PY_LOGS=1`.
fn py_stderr() -> std::process::Stdio {
    if std::env::var_os("KONTIKI_TEST_PY_LOGS").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    }
}

/// The venv's python: `KONTIKI_PY`, else made (or reused) by scripts/python-env.sh.
pub(crate) fn python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("KONTIKI_PY") {
            return PathBuf::from(p);
        }
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/python-env.sh"))
            .output()
            .expect("run scripts/python-env.sh");
        assert!(
            out.status.success(),
            "the interop tests need the Python venv with kontiki==2.3.2; scripts/python-env.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        PathBuf::from(path)
    })
    .clone()
}

/// `proto_svc.py` (the Python Kontiki 2.3.2 baseline service) under a name of the test's choosing.
pub(crate) struct PyService {
    pub(crate) child: Child,
    pub(crate) service_name: String,
    pub(crate) instance_id: String,
    _config: tempfile::NamedTempFile,
}

impl PyService {
    /// Starts it (registered with the registry when `register`) and waits until it consumes.
    pub(crate) async fn start(service_name: &str, register: bool) -> PyService {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        write!(
            file,
            "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 1\n  registration:\n    delay: 0.3\n    disable: {}\n    group: platform\n  shutdown:\n    grace_seconds: 2\n",
            amqp_url(),
            !register
        )
        .expect("write config");
        let mut child = Command::new(python())
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

    /// SIGTERM, wait (at most 15 s) for the exit, then delete the durable queues it declared.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        let svc = &self.service_name;
        let mut queues: Vec<String> = PROTO_RPCS
            .iter()
            .map(|m| format!("{svc}.{m}.queue"))
            .collect();
        for ev in PROTO_COMPETING_EVENTS {
            queues.push(format!("{svc}.{ev}.queue"));
            queues.push(format!("{svc}.{ev}.failed"));
        }
        // Kontiki's registry client leaks this durable queue (protocol §11 #1).
        queues.push(format!("{svc}.{}.register_again.queue", self.instance_id));
        delete_queues(&queues).await;
    }

    /// What proto_svc.py recorded for `name` (RPC or event), waiting until `count` records
    /// are there (at most `secs`).
    pub(crate) async fn received(
        &self,
        m: &kontiki_rt::Messenger,
        name: &str,
        count: usize,
        secs: u64,
    ) -> Vec<Value> {
        let records = m
            .call_with(
                &self.service_name,
                "wait_received",
                kontiki_rt::wire::RequestBody {
                    args: vec![],
                    kwargs: serde_json::json!({"name": name, "count": count, "timeout": secs})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                },
                kontiki_rt::CallOptions::default().timeout(Duration::from_secs(secs + 10)),
            )
            .await
            .expect("proto_svc.wait_received");
        records.as_array().cloned().unwrap_or_default()
    }
}

/// The RPC methods of proto_svc.py (each has a durable `{svc}.{m}.queue`).
const PROTO_RPCS: [&str; 17] = [
    "___kontiki__internal_session_open__",
    "echo",
    "types",
    "model_arg",
    "client_err",
    "boom",
    "slow",
    "hdrs",
    "hdrs_raw",
    "ret_none",
    "set_degraded",
    "set_fail_task",
    "chain",
    "received",
    "wait_received",
    "clear_received",
    "whoami",
];

/// The competing event handlers of proto_svc.py (durable `.queue` and `.failed` each).
const PROTO_COMPETING_EVENTS: [&str; 5] = [
    "proto.simple",
    "proto.chained",
    "proto.fail",
    "proto.multi.a",
    "proto.multi.b",
];

/// Shuts down a service made by [`rust_service`] and deletes its durable RPC queues.
pub(crate) async fn stop_rust_service(svc: kontiki_rt::RunningService) {
    let name = svc.identity().service_name.to_string();
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
    delete_queues(&queues).await;
}

/// Deletes queues a test left on the broker (durable ones outlive the test otherwise).
pub(crate) async fn delete_queues(names: &[String]) {
    let Ok(conn) =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    for name in names {
        let Ok(ch) = conn.create_channel().await else {
            break;
        };
        let Ok(q) = lapin::types::ShortString::try_new(name.as_str()) else {
            continue;
        };
        let _ = ch
            .queue_delete(q, lapin::options::QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "cleanup".into()).await;
}

/// The real Python registry (`kontiki_registry` from kontiki 2.3.2).
pub(crate) struct PyRegistry {
    child: Child,
    _config: tempfile::NamedTempFile,
}

impl PyRegistry {
    /// Starts it and waits (at most 60 s) until it answers `get_services`.
    pub(crate) async fn start(m: &kontiki_rt::Messenger) -> PyRegistry {
        use std::io::Write as _;
        purge_timeline_backlog().await;
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        write!(
            file,
            "kontiki:\n  amqp:\n    url: \"{}\"\n  http:\n    disable: true\n  shutdown:\n    grace_seconds: 1\n",
            amqp_url()
        )
        .expect("write config");
        let bin = python()
            .parent()
            .expect("venv bin")
            .join("kontiki_registry");
        let child = Command::new(bin)
            .arg("--config")
            .arg(file.path())
            .stdin(std::process::Stdio::null())
            .stdout(py_stderr())
            .stderr(py_stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn kontiki_registry");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = m
                .call_with(
                    "ServiceRegistry",
                    "get_services",
                    Default::default(),
                    kontiki_rt::CallOptions::default().timeout(Duration::from_secs(2)),
                )
                .await;
            if r.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the Python registry did not answer within 60 s: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        PyRegistry {
            child,
            _config: file,
        }
    }

    /// SIGTERM and wait for the exit.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }
}

/// The Rust registry (kontiki-registry) running in this process.
pub(crate) struct RustRegistry {
    pub(crate) running: kontiki_rt::RunningService,
}

impl RustRegistry {
    /// Starts `ServiceRegistry` (HTTP off, failed-queue operations allowed:
    /// `registry.failed_messages: manage`) after emptying the timeline backlog of the vhost.
    pub(crate) async fn start() -> RustRegistry {
        let yaml = format!(
            "kontiki:\n  amqp:\n    url: \"{}\"\n  http:\n    disable: true\n  shutdown:\n    grace_seconds: 2\nregistry:\n  register_again_grace_seconds: 0.5\n  failed_messages: manage\n",
            amqp_url()
        );
        purge_timeline_backlog().await;
        let config = kontiki_rt::Config::from_yaml_str("registry.yaml", &yaml).expect("config");
        let (_registry, service) = kontiki_registry::build(&config).expect("build the registry");
        let running = service
            .start(config)
            .await
            .unwrap_or_else(|e| panic!("{}", no_broker(e)));
        RustRegistry { running }
    }

    pub(crate) async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// Deletes `event_tracker.queue` before a registry starts: while no registry runs it collects
/// every event and RPC request of the vhost, and the Rust registry declares it with a length
/// limit that Python's registry does not (the two cannot declare the same queue in turn).
async fn purge_timeline_backlog() {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("{}", no_broker(e)));
    let ch = conn.create_channel().await.expect("channel");
    let _ = ch
        .queue_delete(
            "event_tracker.queue".into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
    let _ = conn.close(200, "deleted".into()).await;
}

/// Polls `probe` every 100 ms until it returns `Some` (at most `secs`).
pub(crate) async fn eventually<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: not within {secs} s; last: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
