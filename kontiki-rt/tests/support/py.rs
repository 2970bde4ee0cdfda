//! The Python side of the interop tests: the venv with the real `kontiki==2.3.2`, the
//! `proto_svc.py` service and the `probe.py` client (see tests/py/README.md).

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Python's stderr goes to the test output only with `KONTIKI_TEST_PY_LOGS=1` (it is chatty).
fn py_stderr() -> std::process::Stdio {
    if std::env::var_os("KONTIKI_TEST_PY_LOGS").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    }
}

fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
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
        let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_owned();
        PathBuf::from(path)
    })
    .clone()
}

/// Runs `deep_headers.py` (headers nested `--depth` levels on an RPC request, an event and,
/// with `--registry-key`, a registry message) with `args` after `--url`, and returns the reply
/// to its request (it fails the test when none came).
pub(crate) async fn publish_deep_headers(args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new(python())
        .arg(repo_root().join("kontiki-rt/tests/py/deep_headers.py"))
        .args(["--url", &super::amqp_url()])
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run deep_headers.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "no reply to the deep request: {stdout}"
    );
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    line["reply"].clone()
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
    pub(crate) child: Child,
    pub(crate) service_name: String,
    pub(crate) instance_id: String,
    _config: tempfile::NamedTempFile,
}

impl PyService {
    /// Starts proto-svc as `service_name` with registration disabled, plus `extra_yaml` lines
    /// (top-level keys), and waits until it consumes.
    pub(crate) async fn start(service_name: &str, extra_yaml: &str) -> PyService {
        Self::start_at(&super::amqp_url(), service_name, extra_yaml).await
    }

    /// [`PyService::start`] on the broker at `url`.
    pub(crate) async fn start_at(url: &str, service_name: &str, extra_yaml: &str) -> PyService {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        write!(
            file,
            "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n  heartbeat:\n    interval: 2\n  registration:\n    delay: 1\n    disable: true\n  shutdown:\n    grace_seconds: 2\n{extra_yaml}",
            url
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
            instance_id: ready[1].clone(),
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

/// `probe.py`: a Python Kontiki client driven by JSON lines.
pub(crate) struct Probe {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub(crate) instance_id: String,
}

impl Probe {
    pub(crate) async fn start() -> Probe {
        let mut child = Command::new(python())
            .arg(py_dir().join("probe.py"))
            .arg("--url")
            .arg(super::amqp_url())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(py_stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn probe.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = wait_ready(&mut lines, "probe.py").await;
        Probe {
            _child: child,
            stdin,
            lines,
            instance_id: ready.get(1).cloned().unwrap_or_default(),
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
}

/// `tap.py`: every message on Kontiki's exchanges, with AMQP header types.
pub(crate) struct Tap {
    _child: Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl Tap {
    pub(crate) async fn start() -> Tap {
        let mut child = Command::new(python())
            .arg(py_dir().join("tap.py"))
            .arg("--url")
            .arg(super::amqp_url())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(py_stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tap.py");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        wait_ready(&mut lines, "tap.py").await;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let (sink, notify) = (seen.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("tap lock").push(v);
                    notify.notify_waiters();
                }
            }
        });
        Tap {
            _child: child,
            seen,
            changed,
        }
    }

    /// Waits (at most 30 s) until `n` tapped messages match `pred`; returns them.
    pub(crate) async fn wait_for(&self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.changed.notified();
            let hits: Vec<Value> = self
                .seen
                .lock()
                .expect("tap lock")
                .iter()
                .filter(|v| pred(v))
                .cloned()
                .collect();
            if hits.len() >= n {
                return hits;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "the tap saw {} of {n} expected messages: {hits:?}",
                    hits.len()
                );
            }
        }
    }
}

/// The plain value of a tapped header (`{"type", "value"}` → value).
pub(crate) fn tapped_header<'a>(msg: &'a Value, key: &str) -> Option<&'a Value> {
    msg["headers"].get(key).map(|h| &h["value"])
}

/// The real Python registry (`kontiki_registry` from kontiki 2.3.2).
pub(crate) struct PyRegistry {
    child: Child,
    _config: tempfile::NamedTempFile,
}

impl PyRegistry {
    /// Starts it and waits (bounded) until it answers `get_services`.
    pub(crate) async fn start(m: &kontiki_rt::Messenger) -> PyRegistry {
        use std::io::Write as _;
        delete_timeline_queue().await;
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        write!(
            file,
            "kontiki:\n  amqp:\n    url: \"{}\"\n  http:\n    disable: true\n  shutdown:\n    grace_seconds: 1\n",
            super::amqp_url()
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

/// Deletes `event_tracker.queue` before a registry starts: the Rust registry declares it with a
/// length limit that Python's registry does not (the two cannot declare the same queue in turn).
pub(crate) async fn delete_timeline_queue() {
    let conn =
        lapin::Connection::connect(&super::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("{}", super::no_broker(e)));
    let ch = conn.create_channel().await.expect("channel");
    let _ = ch
        .queue_delete(
            "event_tracker.queue".into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
    let _ = conn.close(200, "deleted".into()).await;
}
