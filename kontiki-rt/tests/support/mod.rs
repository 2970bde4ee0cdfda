//! Helpers shared by the broker tests: the broker URL and unique names.
#![allow(dead_code, reason = "each test binary uses a different subset")]

pub(crate) mod py;

use std::sync::atomic::{AtomicU64, Ordering};

/// A vhost of this test binary's own, set by [`use_own_vhost`]: `amqp_url` then points there.
static OWN_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The broker every test talks to: `KONTIKI_AMQP_URL`, or the local default (or this binary's
/// own vhost on it, after [`use_own_vhost`]).
pub(crate) fn amqp_url() -> String {
    if let Some(url) = OWN_URL.get() {
        return url.clone();
    }
    std::env::var("KONTIKI_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The vhost [`use_own_vhost`] made in this process, and how many tests hold it.
static OWN_VHOST: std::sync::Mutex<(Option<String>, usize)> = std::sync::Mutex::new((None, 0));

fn own_vhost() -> std::sync::MutexGuard<'static, (Option<String>, usize)> {
    OWN_VHOST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A test's hold on the vhost [`use_own_vhost`] made: the last one dropped deletes it.
pub(crate) struct OwnVhost(());

impl Drop for OwnVhost {
    fn drop(&mut self) {
        let mut own = own_vhost();
        own.1 -= 1;
        if own.1 == 0
            && let Some(name) = own.0.clone()
        {
            let _ = std::panic::catch_unwind(|| rabbitmqctl(&["-q", "delete_vhost", &name]));
        }
    }
}

/// Makes a vhost `name` on the test broker (rabbitmqctl) and points [`amqp_url`] at it for the
/// rest of this process, for a test that must see no other test's traffic (a registry whose
/// timeline records every message of its vhost, or that must not compete with other tests'
/// registries for `ServiceRegistry` calls and heartbeats). Call it first in the test.
///
/// One vhost a process: under nextest each test has its own. Under `cargo test` the tests of a
/// binary share one process, so they share the first test's vhost; it is deleted when the last
/// test holding it ends (and made again if another one starts later).
pub(crate) fn use_own_vhost(name: &str) -> OwnVhost {
    let mut own = own_vhost();
    let name = match &own.0 {
        Some(first) => first.clone(),
        None => {
            let base = amqp_url();
            let root = match base.rfind('/') {
                Some(i) if base[..i].contains("://") && i > base.find("://").unwrap_or(0) + 2 => {
                    &base[..i]
                }
                _ => base.as_str(),
            };
            let _ = OWN_URL.set(format!("{root}/{name}"));
            own.0 = Some(name.to_owned());
            name.to_owned()
        }
    };
    if own.1 == 0 {
        add_vhost(&name);
    }
    own.1 += 1;
    OwnVhost(())
}

/// Makes the vhost `name` on the test broker (rabbitmqctl), open to `guest`.
pub(crate) fn add_vhost(name: &str) {
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

/// A config for a test service on the test broker, with a unique service name.
pub(crate) fn service_config(service_name: &str, extra_yaml: &str) -> kontiki_rt::Config {
    let yaml = format!(
        "kontiki:\n  service_name: {service_name}\n  amqp:\n    url: \"{}\"\n    rpc:\n      timeout: 5\n  shutdown:\n    grace_seconds: 5\n  registration:\n    disable: true\n{extra_yaml}",
        amqp_url()
    );
    kontiki_rt::Config::from_yaml_str("test.yaml", &yaml).expect("test config")
}

/// A stand-alone messenger on the test broker; fails with the how-to message without one.
pub(crate) async fn messenger() -> kontiki_rt::Messenger {
    kontiki_rt::Messenger::builder(amqp_url())
        .client_name("test")
        .rpc_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}", no_broker(e)))
}

/// A service binary running as a child process (killed when dropped).
pub(crate) struct Proc {
    pub(crate) child: tokio::process::Child,
    pub(crate) instance_id: String,
    _config: tempfile::NamedTempFile,
    pub(crate) stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let pid = self.child.id().expect("child still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Sends SIGKILL.
    pub(crate) fn kill9(&self) {
        let pid = self.child.id().expect("child still running");
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL {pid} failed");
    }

    /// The lines the process wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

/// The path of an example binary of this package. `cargo test` and nextest build examples
/// with the tests; a single test target run (`cargo test --test x`) does not, so the example is
/// built here (once per test process) to never run a stale binary.
pub(crate) fn example_bin(name: &str) -> std::path::PathBuf {
    example_bin_with(name, &[])
}

/// [`example_bin`] built with the cargo `features` of kontiki-rt (those of the test run, so
/// that the library is not built again with other ones).
pub(crate) fn example_bin_with(name: &str, features: &[&str]) -> std::path::PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let features = features.join(",");
        let mut args = vec!["build", "--quiet", "-p", "kontiki-rt", "--example", name];
        if !features.is_empty() {
            args.extend(["--features", features.as_str()]);
        }
        let status = std::process::Command::new(cargo)
            .args(&args)
            .status()
            .expect("run cargo build for the example");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_owned());
    }
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p kontiki-rt --examples`",
        path.display()
    );
    path
}

/// Starts an example service with `config_yaml` and waits (at most 30 s) until it logs
/// `service started`, reading its instance id from that line.
pub(crate) async fn spawn_service(example: &str, config_yaml: &str) -> Proc {
    spawn_service_with(example_bin(example), example, config_yaml, &[]).await
}

/// [`spawn_service`] of the binary `bin`, with `env` set for it.
pub(crate) async fn spawn_service_with(
    bin: std::path::PathBuf,
    example: &str,
    config_yaml: &str,
    env: &[(&str, &str)],
) -> Proc {
    use std::io::Write as _;
    use tokio::io::AsyncBufReadExt as _;
    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    file.write_all(config_yaml.as_bytes())
        .expect("write config");
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(file.path())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn service");
    let stderr = child.stderr.take().expect("piped stderr");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stderr).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = reader.next_line().await {
            if line.contains("service started")
                && let Some(tx) = tx.take()
            {
                let iid = line
                    .split("instance_id=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or("")
                    .to_owned();
                let _ = tx.send(iid);
            }
            sink.lock().unwrap().push(line);
        }
    });
    let instance_id = match tokio::time::timeout(std::time::Duration::from_secs(30), rx).await {
        Ok(Ok(iid)) => iid,
        _ => panic!(
            "{example} did not start; its log:\n{}",
            lines.lock().unwrap().join("\n")
        ),
    };
    Proc {
        child,
        instance_id,
        _config: file,
        stderr: lines,
    }
}

/// Runs `rabbitmqctl ARGS` and returns what it printed (the broker tests that restart the broker need it and root), on
/// the node named by `KONTIKI_RABBITMQCTL_NODE` when it is set (scripts/test.sh points the
/// broker-restart tests at the fault-injection node, so the shared broker is never restarted).
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
            panic!("cannot run {bin}: {e}; broker-restart tests need rabbitmqctl on this machine")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the broker app again when dropped, so a failing restart test leaves it running.
pub(crate) struct BrokerGuard;

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        // The node the test restarts (KONTIKI_RABBITMQCTL_NODE), bounded; never a panic here.
        let node: Vec<String> = match std::env::var("KONTIKI_RABBITMQCTL_NODE") {
            Ok(node) if !node.is_empty() => vec!["-n".to_owned(), node],
            _ => Vec::new(),
        };
        let _ = std::process::Command::new("timeout")
            .args(["--kill-after=5", "120", "/usr/sbin/rabbitmqctl"])
            .args(&node)
            .arg("start_app")
            .output();
    }
}

/// Collects what handlers saw, and lets a test wait (bounded) until enough arrived.
#[derive(Default)]
pub(crate) struct Recorder {
    items: std::sync::Mutex<Vec<(String, serde_json::Value)>>,
    changed: tokio::sync::Notify,
}

impl Recorder {
    pub(crate) fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::default())
    }

    pub(crate) fn record(&self, who: &str, what: serde_json::Value) {
        self.items.lock().unwrap().push((who.to_owned(), what));
        self.changed.notify_waiters();
    }

    pub(crate) fn items(&self) -> Vec<(String, serde_json::Value)> {
        self.items.lock().unwrap().clone()
    }

    /// Waits until at least `n` items were recorded; panics after `secs` seconds.
    pub(crate) async fn wait_for(&self, n: usize, secs: u64) -> Vec<(String, serde_json::Value)> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let notified = self.changed.notified();
            let items = self.items();
            if items.len() >= n {
                return items;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "waited {secs} s for {n} items, got {}: {items:?}",
                    items.len()
                );
            }
        }
    }
}

/// Deletes queues a test left on the broker (durable ones outlive the test otherwise).
pub(crate) async fn delete_queues(names: &[String]) {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect for cleanup");
    for name in names {
        let ch = conn.create_channel().await.expect("channel");
        let _ = ch
            .queue_delete(
                name.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await;
    }
    let _ = conn.close(200, "cleanup".into()).await;
}

/// A TCP proxy in front of the test broker that can play a broker node going down and
/// coming back: [`NodeProxy::down`] drops every connection through it and refuses new ones
/// (accepted, then closed at once) until [`NodeProxy::up`].
pub(crate) struct NodeProxy {
    /// The loopback port it listens on.
    pub(crate) port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl NodeProxy {
    /// Listens on a free loopback port and forwards to the host and port of [`amqp_url`].
    pub(crate) async fn start() -> NodeProxy {
        let url = amqp_url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let rest = rest.split('/').next().unwrap_or(rest);
        let target = rest.rsplit('@').next().unwrap_or(rest).to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: std::sync::Arc<
            std::sync::Mutex<std::collections::HashMap<u64, tokio::task::AbortHandle>>,
        > = Default::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                next += 1;
                let id = next;
                let target = target.clone();
                let conns3 = conns2.clone();
                // Registered before it runs, so that `down` cannot miss it.
                let mut map = conns2
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                    conns3
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&id);
                });
                map.insert(id, task.abort_handle());
            }
        });
        NodeProxy {
            port,
            up,
            conns,
            accept,
        }
    }

    /// The broker URL through this proxy (same credentials and vhost as [`amqp_url`]).
    pub(crate) fn url(&self) -> String {
        let url = amqp_url();
        let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url.as_str()));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, "%2f"));
        let user = authority.rsplit_once('@').map_or("", |(u, _)| u);
        let user = if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        };
        format!("{scheme}://{user}127.0.0.1:{}/{path}", self.port)
    }

    /// Connections open through it now.
    pub(crate) fn open(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// The node "stops": every connection through it is cut and new ones are refused.
    pub(crate) fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let cut: Vec<_> = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect();
        for (_, task) in cut {
            task.abort();
        }
    }

    /// The node is back: connections are forwarded again.
    pub(crate) fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for NodeProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}
