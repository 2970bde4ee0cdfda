//! `kontiki` over amqps on the TLS node of `scripts/tls-broker.sh` (a private CA, a server
//! certificate for `localhost`, client certificates): `call`, `publish` and `listen` with
//! `--tls-ca` / `--tls-cert` / `--tls-key` or `kontiki.amqp.tls` of a `--config` file, the Rust
//! registry serving `kontiki services` over amqps, and the errors for a wrong CA and a wrong
//! host name.
//!
//! The node's address comes from `KONTIKI_TLS_AMQP_URL` / `KONTIKI_TLS_CERTS` (`scripts/test.sh`
//! sets them); without them the tests start the node themselves with the script, and fail with
//! the script's advice when they cannot.

mod support;
#[path = "../../kontiki-rt/tests/support/tls_node.rs"]
mod tls_node;

use serde_json::{Value, json};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use support::{Listen, eventually, kontiki, repo_root, unique};

/// Where the TLS node is: its amqps URL (host `localhost`) and the certificate directory.
struct Node {
    url: String,
    certs: PathBuf,
}

impl Node {
    fn cert(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    /// `kontiki.amqp` for a service or registry on the TLS node, verified against the CA.
    fn amqp_yaml(&self) -> String {
        format!(
            "  amqp:\n    url: \"{}\"\n    tls:\n      enabled: true\n      ca_cert: \"{}\"\n",
            self.url,
            self.cert("ca.pem")
        )
    }
}

/// The TLS node, started with `scripts/tls-broker.sh start` when the environment does not name
/// one (`support/tls_node.rs`).
fn node() -> Node {
    let (url, certs) = tls_node::locate(&repo_root());
    Node { url, certs }
}

/// A Rust service on the TLS node: `double(x)` → `2x`; registers with the registry when asked.
async fn tls_service(node: &Node, name: &str, register: bool) -> kontiki_rt::RunningService {
    use kontiki_rt::{Call, RpcEntrypoint, Service};
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n{}  heartbeat:\n    interval: 1\n  registration:\n    \
         delay: 0.2\n    disable: {}\n  http:\n    disable: true\n  shutdown:\n    grace_seconds: 2\n",
        node.amqp_yaml(),
        !register
    );
    let config = kontiki_rt::Config::from_yaml_str("svc.yaml", &yaml).expect("service config");
    Service::builder(name)
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                Ok(json!(call.args[0].as_i64().unwrap_or(0) * 2))
            })
            .params(["x"]),
        )
        .build()
        .expect("service definition")
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("the test service did not start over amqps: {e}"))
}

/// Deletes the queues whose names start with one of `prefixes` (the test's service names):
/// the TLS node lists its queues (`rabbitmqctl list_queues` through the script), the deletes go
/// over amqps with [`kontiki_rt::connect_lapin`].
async fn delete_queues_of(node: &Node, prefixes: &[&str]) {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && tls_ctl -q list_queues name"#)
        .arg("bash")
        .arg(repo_root().join("scripts/tls-broker.sh"))
        .output()
        .expect("rabbitmqctl list_queues on the TLS node");
    assert!(
        out.status.success(),
        "rabbitmqctl list_queues on the TLS node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|name| prefixes.iter().any(|p| name.starts_with(p)))
        .collect();
    let conn = kontiki_rt::connect_lapin(
        &node.url,
        "kontiki tls test cleanup",
        &kontiki_rt::config::TlsSettings::with_ca_cert(node.cert("ca.pem")),
        Duration::from_secs(10),
    )
    .await
    .expect("connect_lapin over amqps for the cleanup");
    for name in names {
        // A channel each: a queue another connection holds exclusively closes the channel.
        let ch = conn.create_channel().await.expect("channel");
        let _ = ch
            .queue_delete(name.into(), lapin::options::QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "cleanup".into()).await;
}

/// `kontiki call` over amqps: with `--tls-ca`, with mutual TLS (`--tls-cert`, `--tls-key`),
/// and with `kontiki.amqp.tls` from a `--config` file alone.
#[tokio::test]
async fn tls_cli_call_with_options_and_with_a_config_file() {
    let node = node();
    let name = unique("tls-cli");
    let running = tls_service(&node, &name, false).await;

    let ca = node.cert("ca.pem");
    let run = kontiki(&[
        "call",
        &name,
        "double",
        "21",
        "--amqp-url",
        &node.url,
        "--tls-ca",
        &ca,
    ])
    .await;
    assert_eq!(run.ok(), "42");

    let (cert, key) = (node.cert("client.pem"), node.cert("client.key"));
    let run = kontiki(&[
        "call",
        &name,
        "double",
        "4",
        "--amqp-url",
        &node.url,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ])
    .await;
    assert_eq!(run.ok(), "8");

    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    write!(file, "kontiki:\n{}", node.amqp_yaml()).expect("write config");
    let config = file.path().display().to_string();
    // `--config` gives the URL too: the test environment's KONTIKI_AMQP_URL must not win.
    let run = support::kontiki_env(
        &["call", &name, "double", "5", "--config", &config],
        &[("KONTIKI_AMQP_URL", "")],
    )
    .await;
    assert_eq!(run.ok(), "10");

    running.shutdown().await;
    delete_queues_of(&node, &[&name]).await;
}

/// `kontiki listen` (its own lapin connection) and `kontiki publish` over amqps.
#[tokio::test]
async fn tls_cli_listen_sees_an_event_published_over_amqps() {
    let node = node();
    let ca = node.cert("ca.pem");
    let event = unique("tls_cli").replace('.', "_");
    let listen = Listen::start(&[&event, "--json", "--amqp-url", &node.url, "--tls-ca", &ca]).await;
    let marker = unique("m");
    let payload = json!({"marker": marker}).to_string();
    kontiki(&[
        "publish",
        &event,
        &payload,
        "--amqp-url",
        &node.url,
        "--tls-ca",
        &ca,
    ])
    .await
    .ok();
    let line = listen.wait_for(30, |l| l.contains(&marker)).await;
    let v: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["event_type"], json!(event));
}

/// The errors on the command line: a CA that did not sign the server certificate, a host name
/// it does not name; both exit 8 (`CONNECTION_FAILED`), for a Messenger command and `listen`.
#[tokio::test]
async fn tls_cli_wrong_ca_and_wrong_host_are_explained() {
    let node = node();
    let other_ca = node.cert("other-ca.pem");
    for cmd in [&["services"][..], &["listen", "#"][..]] {
        let mut args = cmd.to_vec();
        args.extend(["--amqp-url", &node.url, "--tls-ca", &other_ca]);
        let run = kontiki(&args).await;
        let err = run.fails(8);
        assert!(
            err.starts_with(
                "CONNECTION_FAILED: TLS with the broker at amqps://guest:***@localhost:5675/"
            ) && err.contains(&format!(
                "the server certificate is not trusted by the configured CA {other_ca}"
            )),
            "{cmd:?}: {err}"
        );
    }
    let by_ip = node.url.replace("@localhost:", "@127.0.0.1:");
    let ca = node.cert("ca.pem");
    let run = kontiki(&["services", "--amqp-url", &by_ip, "--tls-ca", &ca]).await;
    let err = run.fails(8);
    assert!(
        err.contains("the server certificate does not match the host name of the URL")
            && err.contains("127.0.0.1"),
        "{err}"
    );
    let cert = node.cert("client.pem");
    let run = kontiki(&["services", "--amqp-url", &node.url, "--tls-cert", &cert]).await;
    assert_eq!(run.fails(2), "USAGE_ERROR: --tls-cert needs --tls-key");
}

/// The Rust registry is a service: with `kontiki.amqp.tls` it runs over amqps, a service
/// registers with it over amqps, and `kontiki services` over amqps lists that service.
/// (`registry` in the name: nextest runs registry tests one at a time.)
#[tokio::test]
async fn tls_registry_lists_a_service_over_amqps() {
    let node = node();
    let yaml = format!(
        "kontiki:\n{}  http:\n    disable: true\n  shutdown:\n    grace_seconds: 2\n",
        node.amqp_yaml()
    );
    let config = kontiki_rt::Config::from_yaml_str("registry.yaml", &yaml).expect("config");
    let (_registry, service) = kontiki_registry::build(&config).expect("build the registry");
    let registry = service
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("the registry did not start over amqps: {e}"));

    let name = unique("tls-reg");
    let running = tls_service(&node, &name, true).await;
    let iid = running.identity().instance_id.to_string();
    let ca = node.cert("ca.pem");
    eventually(&format!("{name}/{iid} listed"), 30, || async {
        let run = kontiki(&[
            "services",
            "--json",
            "--amqp-url",
            &node.url,
            "--tls-ca",
            &ca,
        ])
        .await;
        if run.code != Some(0) {
            return Err(format!("{run:?}"));
        }
        let v: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
        match v[&name][&iid]["status"].as_str() {
            Some("active") => Ok(()),
            other => Err(format!("status {other:?} in {v}")),
        }
    })
    .await;

    running.shutdown().await;
    registry.shutdown().await;
    // The registry's queues too: no other test runs a registry on the TLS node.
    delete_queues_of(
        &node,
        &[&name, "ServiceRegistry.", "registry.", "event_tracker."],
    )
    .await;
}
