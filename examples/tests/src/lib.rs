//! Helpers for the tests that run the examples of `examples/` as subprocesses, against the
//! RabbitMQ at `KONTIKI_AMQP_URL` (a vhost of its own works), with the config files of
//! `examples/` (as `make run-<name>` does).
//!
//! Run with: `cargo nextest run -p examples-tests`. The example binaries are built once per
//! test process (`cargo build -p <every example>`); readiness is the `service started` log
//! line, never a sleep.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

/// Every example package (= binary name).
pub const EXAMPLES: &[&str] = &[
    "compute-api",
    "rpc-service",
    "api-gateway",
    "billing",
    "user-events",
    "http-simple",
    "task-service",
    "broadcast",
    "session",
    "heartbeat",
    "tenant-api",
    "orders-worker",
];

/// How long a test waits for a process to start, a log line or a message.
pub const WAIT: Duration = Duration::from_secs(30);

/// The broker: `KONTIKI_AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    std::env::var("KONTIKI_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The message a test fails with when no broker answers (the tests never skip).
pub fn no_broker(err: impl std::fmt::Display) -> String {
    format!(
        "no RabbitMQ answers at {} ({err}). These tests need a real broker: run \
         `make run-amqp` or `scripts/test.sh`, or set KONTIKI_AMQP_URL",
        amqp_url()
    )
}

/// The repository root (where `make run-<name>` runs).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// The path of an example binary (or of `quickstart`, `example-client`), built with every other example once per
/// test process so a stale binary never runs.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "quickstart",
            "-p",
            "example-client",
        ])
        .current_dir(repo_root());
        for e in EXAMPLES {
            cmd.args(["-p", e]);
        }
        // The test runner passes this package's `CARGO_PKG_*` and `CARGO_MANIFEST_DIR`; build
        // scripts that watch them (`rerun-if-env-changed`) would rebuild half the tree.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_PKG_")
                || key == "CARGO_MANIFEST_DIR"
                || key == "CARGO_CRATE_NAME"
            {
                cmd.env_remove(key.as_ref());
            }
        }
        let status = cmd.status().expect("run cargo build for the examples");
        assert!(status.success(), "cargo build of the examples failed");
    });
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// The `--config` files `make run-<name>` passes, in order.
pub fn config_files(name: &str) -> Vec<PathBuf> {
    let root = repo_root();
    vec![
        root.join("examples/config/base.yaml"),
        root.join("examples/config/env.yaml"),
        root.join("examples").join(name).join("config.yaml"),
    ]
}

/// The lines a process wrote to stderr, and a signal when one more arrives.
#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
}

/// An example running as a child process (killed when dropped).
#[derive(Debug)]
pub struct Example {
    name: String,
    child: tokio::process::Child,
    lines: Arc<Lines>,
    /// The instance id from the `service started` line.
    pub instance_id: String,
}

impl Example {
    /// Starts example `name` as `make run-<name>` does (the three config files, the broker from
    /// `KONTIKI_AMQP_URL`) with extra environment variables, and waits until it logs
    /// `service started`.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> Example {
        Example::start_binary(name, &example_bin(name), &config_files(name), env).await
    }

    /// Starts the service binary `bin` with `--config` for each of `configs`, the broker from
    /// `KONTIKI_AMQP_URL` and extra environment variables, and waits until it logs
    /// `service started`.
    pub async fn start_binary(
        name: &str,
        bin: &Path,
        configs: &[PathBuf],
        env: &[(&str, &str)],
    ) -> Example {
        let mut cmd = tokio::process::Command::new(bin);
        for file in configs {
            cmd.arg("--config").arg(file);
        }
        cmd.env("KONTIKI_AMQP_URL", amqp_url())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Lines::default());
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lines.lock().expect("lines lock").push(line);
                sink.changed.notify_waiters();
            }
            sink.closed.store(true, std::sync::atomic::Ordering::SeqCst);
            sink.changed.notify_waiters();
        });
        let mut example = Example {
            name: name.to_owned(),
            child,
            lines,
            instance_id: String::new(),
        };
        let started = example.wait_for_line("service started").await;
        // A text line has `instance_id=…`; a JSON line (KONTIKI_LOG_FORMAT=json) a field.
        let json_id = serde_json::from_str::<Value>(&started)
            .ok()
            .and_then(|v| v["fields"]["instance_id"].as_str().map(str::to_owned));
        example.instance_id = json_id
            .or_else(|| {
                started
                    .split("instance_id=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no instance_id in {started:?}"));
        example
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.lines.lines.lock().expect("lines lock").join("\n")
    }

    /// Waits (at most [`WAIT`]) for a log line containing `needle`, and returns it.
    pub async fn wait_for_line(&self, needle: &str) -> String {
        self.wait_for(|l| l.contains(needle), needle).await
    }

    /// Waits (at most [`WAIT`]) for a log line that `pred` accepts, and returns it.
    pub async fn wait_for(&self, pred: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.lines.changed.notified();
            if let Some(line) = self
                .lines
                .lines
                .lock()
                .expect("lines lock")
                .iter()
                .find(|l| pred(l))
            {
                return line.clone();
            }
            if self.lines.closed.load(std::sync::atomic::Ordering::SeqCst) {
                panic!(
                    "{} exited before logging {what:?}; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{} did not log {what:?} within {WAIT:?}; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
        }
    }

    /// Waits (at most [`WAIT`]) until `n` log lines contain `needle`.
    pub async fn wait_for_lines(&self, needle: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.lines.changed.notified();
            let seen = self
                .lines
                .lines
                .lock()
                .expect("lines lock")
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if seen >= n {
                return;
            }
            let closed = self.lines.closed.load(std::sync::atomic::Ordering::SeqCst);
            if closed || tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{} logged {needle:?} {seen} times, not {n}; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
        }
    }

    /// The HTTP address from the `HTTP listening` line.
    pub async fn http_addr(&self) -> String {
        let line = self.wait_for_line("HTTP listening").await;
        line.split("address=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned()
    }

    /// Sends SIGTERM and waits (at most [`WAIT`]) for the exit; returns the exit code.
    pub async fn stop(mut self) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let status = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -TERM {pid} failed");
        }
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within {WAIT:?}", self.name))
            .expect("wait for the child");
        status.code()
    }
}

/// A stand-alone messenger on the test broker.
pub async fn messenger() -> kontiki_rt::Messenger {
    kontiki_rt::Messenger::builder(amqp_url())
        .client_name("examples-tests")
        .rpc_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", no_broker(e)))
}

/// A private queue bound to a topic exchange, to watch the messages sent there.
#[derive(Debug)]
pub struct Tap {
    _conn: lapin::Connection,
    consumer: lapin::Consumer,
    /// What arrived and did not match yet.
    seen: Vec<Value>,
}

impl Tap {
    /// Binds an exclusive queue to `exchange` (a non-durable topic exchange, as Kontiki's are)
    /// with `routing_key`.
    pub async fn bind(exchange: &str, routing_key: &str) -> Tap {
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("{}", no_broker(e)));
        let ch = conn.create_channel().await.expect("open a channel");
        ch.exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("declare {exchange}: {e}"));
        let queue = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the tap queue");
        ch.queue_bind(
            queue.name().clone(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("bind the tap to {exchange} {routing_key}: {e}"));
        let consumer = ch
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume the tap queue");
        Tap {
            _conn: conn,
            consumer,
            seen: Vec::new(),
        }
    }

    /// Waits (at most [`WAIT`]) for a JSON body that `pred` accepts, and returns it.
    pub async fn next_matching(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let delivery = match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                Ok(Some(Ok(d))) => d,
                Ok(other) => panic!("the tap stopped while waiting for {what}: {other:?}"),
                Err(_) => panic!(
                    "no {what} within {WAIT:?}; the tap saw {} other messages: {:?}",
                    self.seen.len(),
                    self.seen
                ),
            };
            let body: Value = serde_json::from_slice(&delivery.data).unwrap_or_else(|e| {
                Value::String(format!(
                    "<not JSON: {e}> {}",
                    String::from_utf8_lossy(&delivery.data)
                ))
            });
            if pred(&body) {
                return body;
            }
            self.seen.push(body);
        }
    }
}

/// Runs `example-client ARGS` against the test broker; returns (exit code, stdout, stderr).
pub fn example_client(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(example_bin("example-client"))
        .args(args)
        .env("KONTIKI_AMQP_URL", amqp_url())
        .output()
        .expect("run example-client");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Builds binary `bin` of the crate at `dir` (a folder outside the workspace) with the
/// workspace's lock file and target directory, and returns its path. The crate's `Cargo.toml`
/// must already point at the kontiki-rs crates (see [`point_at_checkout`]).
pub fn build_outside(dir: &Path, bin: &str) -> PathBuf {
    let root = repo_root();
    assert!(
        !dir.starts_with(&root),
        "{} must live outside the workspace",
        dir.display()
    );
    // The workspace's lock file: the same dependency versions, nothing fetched.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "--quiet", "--bin", bin])
        .current_dir(dir)
        // The shared target directory keeps the build to the crates that differ.
        .env("CARGO_TARGET_DIR", root.join("target"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_") || key == "CARGO_MANIFEST_DIR" || key == "CARGO_CRATE_NAME"
        {
            build.env_remove(key.as_ref());
        }
    }
    let out = build.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "{} does not build:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    root.join("target/debug").join(bin)
}

/// Rewrites a `Cargo.toml` so that its kontiki-rs dependencies (given by version, or by a
/// relative path into this repository) come from this checkout, by absolute path.
pub fn point_at_checkout(manifest: &str) -> String {
    let root = repo_root();
    let mut out = manifest.to_owned();
    for krate in ["kontiki-rt", "kontiki-codegen"] {
        let path = format!("path = {:?}", root.join(krate));
        out = out
            .replace(&format!("path = \"../../{krate}\""), &path)
            .replace(
                &format!("{krate} = \"0.1\""),
                &format!("{krate} = {{ {path}, version = \"0.1\" }}"),
            )
            .replace(
                &format!("{krate} = {{ version = \"0.1\""),
                &format!("{krate} = {{ {path}, version = \"0.1\""),
            );
    }
    out
}
