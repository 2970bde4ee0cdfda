//! Helpers of the end-to-end tests: the broker URL, unique names, and the Python side of the
//! interop rig (`kontiki-rt/tests/py`, see its README). Copied in small from kontiki-rt's test
//! support, which is private to that crate.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The broker every test talks to: `KONTIKI_AMQP_URL`, or the local default.
pub(crate) fn amqp_url() -> String {
    std::env::var("KONTIKI_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
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

/// A service name no other test or earlier run uses.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{n}-{}", std::process::id(), &rand[..8])
}

/// A config for a test service on the test broker, under `service_name`.
pub(crate) fn service_config(service_name: &str) -> kontiki_rt::Config {
    service_config_with(service_name, "")
}

/// [`service_config`] plus `extra_yaml` (top-level keys).
pub(crate) fn service_config_with(service_name: &str, extra_yaml: &str) -> kontiki_rt::Config {
    let yaml = format!(
        "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n    rpc:\n      timeout: 5\n  shutdown:\n    grace_seconds: 5\n  registration:\n    disable: true\n  http:\n    address: 127.0.0.1\n    port: 0\n{extra_yaml}",
        amqp_url()
    );
    kontiki_rt::Config::from_yaml_str("test.yaml", &yaml).expect("test config")
}

/// A stand-alone messenger on the test broker; fails with the how-to message without one.
pub(crate) async fn messenger() -> kontiki_rt::Messenger {
    kontiki_rt::Messenger::builder(amqp_url())
        .client_name("e2e")
        .rpc_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", no_broker(e)))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn py_dir() -> PathBuf {
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
            "these tests need the Python venv with kontiki==2.3.2; scripts/python-env.sh failed:\n{}",
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

/// Reads lines until one starts with `READY`, at most 60 s.
async fn wait_ready(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> Vec<String> {
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} did not print READY within 60 s"))
        .expect("read stdout")
        .unwrap_or_else(|| {
            panic!("{what} exited before READY (rerun with KONTIKI_TEST_PY_LOGS=1 to see its log)")
        });
    assert!(
        line.starts_with("READY"),
        "{what} printed {line:?} instead of READY"
    );
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// `proto_svc.py` running under a name of the test's choosing.
pub(crate) struct PyService {
    child: Child,
    pub(crate) service_name: String,
    _config: tempfile::NamedTempFile,
}

impl PyService {
    /// Starts proto-svc as `service_name` with registration disabled; waits until it consumes.
    pub(crate) async fn start(service_name: &str) -> PyService {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        write!(
            file,
            "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 2\n  registration:\n    delay: 1\n    disable: true\n  shutdown:\n    grace_seconds: 2\n",
            amqp_url()
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
        let ready = wait_ready(&mut lines, "proto_svc.py").await;
        PyService {
            child,
            service_name: ready[0].clone(),
            _config: file,
        }
    }

    /// SIGTERM, then wait for the exit.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }
}

/// `probe.py`: a Python Kontiki client driven by JSON lines; it knows nothing of the IDL.
pub(crate) struct Probe {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Probe {
    pub(crate) async fn start() -> Probe {
        let mut child = Command::new(python())
            .arg(py_dir().join("probe.py"))
            .arg("--url")
            .arg(amqp_url())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(py_stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn probe.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        wait_ready(&mut lines, "probe.py").await;
        Probe {
            _child: child,
            stdin,
            lines,
        }
    }

    /// Sends one command, returns its result line (at most 60 s).
    pub(crate) async fn cmd(&mut self, cmd: Value) -> Value {
        let mut line = serde_json::to_vec(&cmd).expect("json");
        line.push(b'\n');
        self.stdin.write_all(&line).await.expect("write to probe");
        self.stdin.flush().await.expect("flush probe");
        let out = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("probe answers within 60 s")
            .expect("read probe")
            .expect("probe exited");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("probe printed {out:?}: {e}"))
    }

    /// Calls `service.method(*args)` from Python.
    pub(crate) async fn call(&mut self, service: &str, method: &str, args: Value) -> Value {
        self.cmd(serde_json::json!({"op": "call", "service": service, "method": method, "args": args, "kwargs": {}}))
            .await
    }
}
