//! The commands of the issue, as a user types them: `kontiki call compute-api compute 21`
//! prints `42`, and `kontiki call rpc-service rpc_example '"bad_input"'` prints the error code
//! and exits non-zero; against the Rust example services (examples/compute-api and
//! examples/rpc-service, started with the config files `make run-<name>` uses) and against the
//! same two services written in Python Kontiki 2.3.2 (kontiki-rt/tests/py/mission_svc.py).
//!
//! The services keep their real names, so each side runs in a vhost of its own (made with
//! rabbitmqctl and deleted at the end): the only `compute-api` that can answer is the one
//! under test.

mod support;

use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// A vhost of the test broker for one test, deleted when dropped.
struct Vhost {
    name: String,
    url: String,
}

fn rabbitmqctl(args: &[&str]) {
    let bin = ["/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("rabbitmqctl");
    // Bounded: a rabbitmqctl left waiting on a broker that stopped answering holds one of the
    // few CLI distribution ports until it is killed (it outlives a test nextest times out).
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=5", "120", bin])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {bin}: {e}; this test makes vhosts on the local broker with rabbitmqctl (as root)")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed (this test makes vhosts on the local broker and needs root): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Vhost {
    fn new(prefix: &str) -> Vhost {
        let name = support::unique(prefix);
        rabbitmqctl(&["-q", "add_vhost", &name]);
        rabbitmqctl(&[
            "-q",
            "set_permissions",
            "-p",
            &name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        let base = support::amqp_url();
        let root = base
            .rsplit_once('/')
            .map_or(base.as_str(), |(root, _)| root);
        Vhost {
            url: format!("{root}/{name}"),
            name,
        }
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        rabbitmqctl(&["-q", "delete_vhost", &self.name]);
    }
}

/// Spawns `cmd` and waits (at most 60 s) until a line of its stdout or stderr contains
/// `ready`; the rest of its output is drained.
async fn spawn_until(mut cmd: Command, ready: &str, what: &str) -> Child {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let tx2 = tx.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            let _ = tx2.send(line);
        }
    });
    let tx2 = tx.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err.next_line().await {
            let _ = tx2.send(line);
        }
    });
    drop(tx);
    let mut log = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            if line.contains(ready) {
                return true;
            }
            log.push(line);
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "{what} did not print {ready:?} within 60 s; its output:\n{}",
        log.join("\n")
    );
    // Keep draining so the service never blocks on a full pipe.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    child
}

/// The issue's two commands against whatever serves `compute-api` and `rpc-service` at `url`.
async fn the_two_commands(url: &str) {
    let env = [("KONTIKI_AMQP_URL", url)];
    let run = support::kontiki_env(&["call", "compute-api", "compute", "21"], &env).await;
    assert_eq!(run.ok(), "42");
    let run = support::kontiki_env(
        &["call", "rpc-service", "rpc_example", "\"bad_input\""],
        &env,
    )
    .await;
    let line = run.fails(3);
    assert_eq!(line, "USER_INPUT_ERROR: Invalid feature value");
    let run = support::kontiki_env(&["call", "rpc-service", "rpc_example", "\"ok\""], &env).await;
    assert_eq!(run.ok(), "\"ok\"");
}

#[tokio::test]
async fn the_issue_commands_against_the_rust_examples() {
    let vhost = Vhost::new("cli-mission-rs");
    let root = support::repo_root();
    let mut children = Vec::new();
    for name in ["compute-api", "rpc-service"] {
        let mut cmd = Command::new(support::cargo_bin(name, "bin", name));
        cmd.current_dir(&root)
            .env("KONTIKI_AMQP_URL", &vhost.url)
            .env("RUST_LOG", "info")
            .args(["--config", "examples/config/base.yaml"])
            .args(["--config", "examples/config/env.yaml"])
            .args(["--config", &format!("examples/{name}/config.yaml")]);
        children.push(spawn_until(cmd, "service started", name).await);
    }
    the_two_commands(&vhost.url).await;
    for mut child in children {
        let _ = child.kill().await;
    }
}

#[tokio::test]
async fn the_issue_commands_against_python_kontiki() {
    use std::io::Write as _;
    let vhost = Vhost::new("cli-mission-py");
    let mut config = tempfile::NamedTempFile::new().expect("temp config");
    write!(
        config,
        "kontiki:\n  amqp:\n    url: \"{}\"\n  registration:\n    disable: true\n",
        vhost.url
    )
    .expect("write config");
    let mut children = Vec::new();
    for name in ["compute-api", "rpc-service"] {
        let mut cmd = Command::new(support::python());
        cmd.arg(support::py_dir().join("mission_svc.py"))
            .arg(name)
            .arg("--config")
            .arg(config.path());
        children.push(spawn_until(cmd, "READY", name).await);
    }
    the_two_commands(&vhost.url).await;
    for mut child in children {
        let _ = child.kill().await;
    }
}
