//! TLS end to end on the TLS node of `scripts/tls-broker.sh` (amqps on localhost:5675, a
//! private CA, a server certificate for `localhost` only, client certificates from the private
//! CA and from another one): a service and the stand-alone Messenger over `amqps://` with the
//! same `kontiki.amqp.tls` settings, mutual TLS, and the errors for a wrong CA, a wrong host
//! name, a refused client certificate and a port that does not speak TLS; and Python Kontiki
//! 2.3.2 on the same node, reading the same `kontiki.amqp.tls` config.
//!
//! The node's address comes from `KONTIKI_TLS_AMQP_URL` / `KONTIKI_TLS_CERTS` (`scripts/test.sh`
//! sets them); without them the tests start the node themselves with the script, and fail with
//! the script's advice when they cannot.

mod support;
#[path = "support/tls_node.rs"]
mod tls_node;

use kontiki_rt::config::TlsSettings;
use kontiki_rt::{Call, Config, Error, Messenger, RpcEntrypoint, Service, Settings};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// Where the TLS node is: its amqps URL (host `localhost`) and the certificate directory.
struct Node {
    url: String,
    certs: PathBuf,
}

impl Node {
    fn cert(&self, name: &str) -> PathBuf {
        self.certs.join(name)
    }

    /// The amqps URL with the host name `127.0.0.1`, which the server certificate does not name.
    fn url_by_ip(&self) -> String {
        self.url.replace("@localhost:", "@127.0.0.1:")
    }

    /// The amqps URL on the node's plain AMQP port.
    fn url_on_plain_port(&self) -> String {
        self.url.replace(":5675/", ":5674/")
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The TLS node, started with `scripts/tls-broker.sh start` when the environment does not name
/// one (`support/tls_node.rs`).
fn node() -> Node {
    let (url, certs) = tls_node::locate(&repo_root());
    Node { url, certs }
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{n}-{}", std::process::id(), &rand[..8])
}

/// The `kontiki.amqp` part of a config for the TLS node: URL, TLS with the private CA, and
/// `client` (certificate and key file names under the certificate directory) for mutual TLS.
fn amqp_yaml(node: &Node, url: &str, ca: &str, client: Option<(&str, &str)>) -> String {
    let mut tls = format!(
        "    tls:\n      enabled: true\n      ca_cert: \"{}\"\n",
        node.cert(ca).display()
    );
    if let Some((cert, key)) = client {
        tls.push_str(&format!(
            "      client_cert: \"{}\"\n      client_key: \"{}\"\n",
            node.cert(cert).display(),
            node.cert(key).display()
        ));
    }
    format!(
        "  amqp:\n    url: \"{url}\"\n    connect_timeout: 10\n    rpc:\n      timeout: 5\n{tls}"
    )
}

/// A service config on the TLS node.
fn service_config(name: &str, amqp: &str) -> Config {
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n{amqp}  shutdown:\n    grace_seconds: 2\n  \
         registration:\n    disable: true\n  http:\n    disable: true\n"
    );
    Config::from_yaml_str("tls-test.yaml", &yaml).expect("test config")
}

fn doubler(name: &str) -> Service {
    Service::builder(name)
        .rpc(
            RpcEntrypoint::new("double", |call: Call| async move {
                Ok(json!(call.args[0].as_i64().unwrap_or(0) * 2))
            })
            .params(["x"]),
        )
        .build()
        .expect("valid service")
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
        &TlsSettings::with_ca_cert(node.cert("ca.pem")),
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

/// The connection error of a stand-alone Messenger to `url` with `tls`; panics if it connects.
async fn connect_error(url: &str, tls: TlsSettings) -> Error {
    match Messenger::builder(url)
        .tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
    {
        Ok(m) => {
            m.close().await;
            panic!("connected to {url}, but the TLS settings should have been refused");
        }
        Err(e) => e,
    }
}

/// A service and a stand-alone Messenger built from the same `kontiki.amqp.*` settings, both
/// over amqps verified against the private CA: the Messenger calls the service's RPC.
#[tokio::test]
async fn tls_service_answers_a_messenger_built_from_the_same_settings() {
    let node = node();
    let name = unique("tls-svc");
    let config = service_config(&name, &amqp_yaml(&node, &node.url, "ca.pem", None));
    let running = doubler(&name)
        .start(config.clone())
        .await
        .unwrap_or_else(|e| panic!("the service did not start over amqps: {e}"));

    let settings = Settings::from_config(&config).expect("settings");
    assert!(settings.amqp.tls.enabled);
    let m = Messenger::builder_from_settings(&settings.amqp)
        .client_name("tls-test")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("the Messenger did not connect over amqps: {e}"));
    assert_eq!(m.rpc_timeout(), Duration::from_secs(5));
    let r = m
        .call(&name, "double", vec![json!(21)], Default::default())
        .await
        .expect("call over amqps");
    assert_eq!(r, json!(42));
    m.close().await;
    running.shutdown().await;
    delete_queues_of(&node, &[&name]).await;
}

/// `kontiki.amqp.tls.enabled` turns an `amqp://` URL into `amqps://` (the port as written).
#[tokio::test]
async fn tls_enabled_upgrades_an_amqp_url() {
    let node = node();
    let url = node.url.replace("amqps://", "amqp://");
    let m = Messenger::builder(url)
        .tls(TlsSettings::with_ca_cert(node.cert("ca.pem")))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("amqp:// with TLS enabled should connect over TLS: {e}"));
    m.close().await;
}

/// Mutual TLS: the Messenger presents the private CA's client certificate and the broker sees
/// it on the connection (`rabbitmqctl list_connections client_properties peer_cert_subject`: the
/// connection name is a client property).
#[tokio::test]
async fn tls_mutual_with_the_client_certificate() {
    let node = node();
    let client = unique("mtls");
    let m = Messenger::builder(node.url.as_str())
        .client_name(client.as_str())
        .tls(
            TlsSettings::with_ca_cert(node.cert("ca.pem"))
                .client_identity(node.cert("client.pem"), node.cert("client.key")),
        )
        .connect()
        .await
        .unwrap_or_else(|e| panic!("mutual TLS with the private CA's client certificate: {e}"));
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && tls_ctl -q list_connections client_properties peer_cert_subject"#)
        .arg("bash")
        .arg(repo_root().join("scripts/tls-broker.sh"))
        .output()
        .expect("rabbitmqctl list_connections on the TLS node");
    let listing = String::from_utf8_lossy(&out.stdout);
    let ours: Vec<&str> = listing.lines().filter(|l| l.contains(&client)).collect();
    assert!(
        !ours.is_empty(),
        "no connection named after {client} on the TLS node (rabbitmqctl: {}; {})",
        listing,
        String::from_utf8_lossy(&out.stderr)
    );
    for line in ours {
        assert!(line.contains("CN=kontiki-client"), "{line}");
    }
    m.close().await;
}

/// A client certificate from another CA: the broker refuses it, and the error says so and names
/// the certificate file. With TLS 1.3 the broker may close the socket before the client reads
/// its `unknown ca` alert; the error then says the broker may have refused that certificate.
#[tokio::test]
async fn tls_client_certificate_from_another_ca_is_refused() {
    let node = node();
    let e = connect_error(
        &node.url,
        TlsSettings::with_ca_cert(node.cert("ca.pem"))
            .client_identity(node.cert("other-client.pem"), node.cert("other-client.key")),
    )
    .await;
    let text = e.to_string();
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    let cert = node.cert("other-client.pem").display().to_string();
    let alert = format!(
        "the broker refused the client certificate {cert} (received fatal alert: UnknownCA)"
    );
    let reset = format!("it may have refused the client certificate {cert}");
    assert!(text.contains(&alert) || text.contains(&reset), "{text}");
}

/// A CA that did not sign the server certificate: the error says the server certificate is not
/// trusted by that CA file.
#[tokio::test]
async fn tls_wrong_ca_names_the_ca_file() {
    let node = node();
    let ca = node.cert("other-ca.pem");
    let e = connect_error(&node.url, TlsSettings::with_ca_cert(&ca)).await;
    let text = e.to_string();
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(
        text.contains(&format!(
            "the server certificate is not trusted by the configured CA {}",
            ca.display()
        )),
        "{text}"
    );
    assert!(
        text.starts_with("TLS with the broker at amqps://guest:***@localhost:5675/"),
        "{text}"
    );
}

/// A service with the wrong CA fails to start with the same error as the Messenger.
#[tokio::test]
async fn tls_service_with_the_wrong_ca_does_not_start() {
    let node = node();
    let name = unique("tls-badca");
    let config = service_config(&name, &amqp_yaml(&node, &node.url, "other-ca.pem", None));
    let e = match doubler(&name).start(config).await {
        Ok(running) => {
            running.shutdown().await;
            panic!("the service started although its CA did not sign the broker's certificate");
        }
        Err(e) => e,
    };
    let text = e.to_string();
    assert!(
        text.contains("the server certificate is not trusted by the configured CA")
            && text.contains("other-ca.pem"),
        "{text}"
    );
}

/// A host name the server certificate does not name (`127.0.0.1` for a `localhost`
/// certificate): the error says the certificate does not match the host.
#[tokio::test]
async fn tls_wrong_host_name_is_explained() {
    let node = node();
    let e = connect_error(
        &node.url_by_ip(),
        TlsSettings::with_ca_cert(node.cert("ca.pem")),
    )
    .await;
    let text = e.to_string();
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(
        text.contains("the server certificate does not match the host name of the URL"),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1") && text.contains("localhost"),
        "{text}"
    );
}

/// amqps to a port that speaks plain AMQP.
#[tokio::test]
async fn tls_to_a_plain_port_is_explained() {
    let node = node();
    let e = connect_error(
        &node.url_on_plain_port(),
        TlsSettings::with_ca_cert(node.cert("ca.pem")),
    )
    .await;
    let text = e.to_string();
    assert!(
        text.contains("the server did not answer in TLS") && text.contains("amqps port"),
        "{text}"
    );
}

/// Without `kontiki.amqp.tls`, an amqps URL verifies against the system's trusted roots, which
/// do not hold the private CA: the error says where to configure the CA.
#[tokio::test]
async fn tls_without_a_ca_file_uses_the_system_roots() {
    let node = node();
    let e = connect_error(&node.url, TlsSettings::default()).await;
    let text = e.to_string();
    assert!(
        text.contains("not trusted by the system's trusted roots")
            && text.contains("kontiki.amqp.tls.ca_cert"),
        "{text}"
    );
}

/// Reads the child's stdout until a line starting with `READY` (at most 60 s); returns it.
async fn py_ready(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    what: &str,
) -> String {
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} did not print READY within 60 s"))
        .expect("read stdout")
        .unwrap_or_else(|| {
            panic!("{what} exited before READY (rerun with KONTIKI_TEST_PY_LOGS=1 to see its log)")
        });
    assert!(line.starts_with("READY"), "{what} printed {line:?}");
    line
}

fn py_stderr() -> std::process::Stdio {
    if std::env::var_os("KONTIKI_TEST_PY_LOGS").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    }
}

/// Python Kontiki 2.3.2 on the TLS node, mutual TLS both ways: its `proto_svc.py` service reads
/// `kontiki.amqp.tls` from the very config file a Rust Messenger is built from, and the Rust
/// Messenger calls it; a Python stand-alone client (aio-pika's `amqps://...?cafile=&certfile=
/// &keyfile=`) calls a Rust service that runs with the same settings.
#[tokio::test]
async fn tls_python_kontiki_interoperates() {
    use std::io::Write as _;
    let node = node();
    let py_name = unique("tls-py");
    let amqp = amqp_yaml(
        &node,
        &node.url,
        "ca.pem",
        Some(("client.pem", "client.key")),
    );
    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    write!(
        file,
        "kontiki:\n  service_name: {py_name}\n{amqp}  registration:\n    disable: true\n  \
         shutdown:\n    grace_seconds: 2\n"
    )
    .expect("write config");

    // Python service, Rust client.
    let py_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let mut child = tokio::process::Command::new(support::py::python())
        .arg(py_dir.join("proto_svc.py"))
        .arg("--config")
        .arg(file.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(py_stderr())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn proto_svc.py");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    py_ready(&mut lines, "proto_svc.py over amqps").await;
    let settings = Settings::from_config(&Config::load(&[file.path()]).expect("load the config"))
        .expect("settings");
    let m = Messenger::builder_from_settings(&settings.amqp)
        .client_name("tls-py-test")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("the Messenger did not connect over amqps: {e}"));
    let r = m
        .call(
            &py_name,
            "echo",
            vec![json!("over tls")],
            Default::default(),
        )
        .await
        .expect("call the Python service over amqps");
    assert_eq!(r, json!({"args": ["over tls"], "kwargs": {}}), "{r}");
    m.close().await;
    let _ = child.kill().await;

    // Rust service, Python client.
    let rs_name = unique("tls-rs");
    let running = doubler(&rs_name)
        .start(service_config(&rs_name, &amqp))
        .await
        .unwrap_or_else(|e| panic!("the service did not start over amqps: {e}"));
    let url = format!(
        "{}?cafile={}&certfile={}&keyfile={}",
        node.url,
        node.cert("ca.pem").display(),
        node.cert("client.pem").display(),
        node.cert("client.key").display()
    );
    let mut probe = tokio::process::Command::new(support::py::python())
        .arg(py_dir.join("probe.py"))
        .arg("--url")
        .arg(&url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(py_stderr())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn probe.py");
    let mut stdin = probe.stdin.take().expect("stdin");
    let mut lines = BufReader::new(probe.stdout.take().expect("stdout")).lines();
    py_ready(&mut lines, "probe.py over amqps").await;
    let cmd =
        json!({"op": "call", "service": rs_name, "method": "double", "args": [21], "kwargs": {}});
    stdin
        .write_all(format!("{cmd}\n").as_bytes())
        .await
        .expect("write to probe");
    stdin.flush().await.expect("flush probe");
    let out = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("probe answers within 60 s")
        .expect("read probe")
        .expect("probe exited");
    let r: serde_json::Value = serde_json::from_str(&out).expect("probe prints JSON");
    assert_eq!(r["result"], json!(42), "{r}");
    let _ = probe.kill().await;
    running.shutdown().await;
    delete_queues_of(&node, &[&py_name, &rs_name]).await;
}

/// The ports and node of the second TLS node, which requires client certificates
/// (`TLS_REQUIRE_CLIENT_CERT=1`): 5684 plain, 5685 amqps, its own CA under
/// `target/tls-broker-mtls`. The test starts it and stops it.
const MTLS_NODE_ENV: [(&str, &str); 4] = [
    ("TLS_NODE", "kontiki-tls-mtls@localhost"),
    ("TLS_PLAIN_PORT", "5684"),
    ("TLS_PORT", "5685"),
    ("TLS_REQUIRE_CLIENT_CERT", "1"),
];

fn mtls_script(cmd: &str) -> std::process::Output {
    let root = repo_root();
    std::process::Command::new("bash")
        .arg(root.join("scripts/tls-broker.sh"))
        .arg(cmd)
        .envs(MTLS_NODE_ENV)
        .env("TLS_BROKER_DIR", root.join("target/tls-broker-mtls"))
        .output()
        .unwrap_or_else(|e| panic!("run scripts/tls-broker.sh {cmd}: {e}"))
}

/// Stops the node requiring client certificates when the test ends, passed or not.
struct StopMtlsNode;

impl Drop for StopMtlsNode {
    fn drop(&mut self) {
        let out = mtls_script("stop");
        if !out.status.success() {
            eprintln!(
                "could not stop the TLS node requiring client certificates: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A broker that requires client certificates (`fail_if_no_peer_cert`): a client without one
/// is refused and told that a client certificate is required (or, when the broker closes the
/// socket before the alert is read, that it may require one); with the private CA's client
/// certificate the same settings connect.
#[tokio::test]
async fn tls_broker_requiring_client_certificates_refuses_a_client_without_one() {
    let out = mtls_script("start");
    assert!(
        out.status.success(),
        "could not start a second TLS node (TLS_REQUIRE_CLIENT_CERT=1, ports 5684/5685) with \
         scripts/tls-broker.sh; it needs rabbitmq-server, openssl and root or password-less \
         sudo. The script said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _stop = StopMtlsNode;
    let url = String::from_utf8_lossy(&mtls_script("url").stdout)
        .trim()
        .to_owned();
    assert!(url.contains(":5685/"), "{url}");
    let certs = repo_root().join("target/tls-broker-mtls/certs");

    let e = connect_error(&url, TlsSettings::with_ca_cert(certs.join("ca.pem"))).await;
    let text = e.to_string();
    eprintln!("without a client certificate: {text}");
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(
        text.contains(
            "the broker requires a client certificate (mutual TLS) and none is configured"
        ) || text
            .contains("it may require a client certificate (mutual TLS), and none is configured"),
        "{text}"
    );

    let m = Messenger::builder(url.as_str())
        .tls(
            TlsSettings::with_ca_cert(certs.join("ca.pem"))
                .client_identity(certs.join("client.pem"), certs.join("client.key")),
        )
        .connect()
        .await
        .unwrap_or_else(|e| panic!("mutual TLS on the node requiring client certificates: {e}"));
    m.close().await;
}
