//! Where the TLS node of `scripts/tls-broker.sh` is, for the TLS tests of kontiki-rt and
//! kontiki-cli (included by path from both).

use std::path::{Path, PathBuf};

/// The TLS node's amqps URL (host `localhost`) and certificate directory: from
/// `KONTIKI_TLS_AMQP_URL` / `KONTIKI_TLS_CERTS` when set (scripts/test.sh), else from
/// `scripts/tls-broker.sh start` run under `flock` (nextest runs each test in a process of its
/// own), failing with the script's advice when it cannot start the node.
pub(crate) fn locate(root: &Path) -> (String, PathBuf) {
    if let (Ok(url), Ok(certs)) = (
        std::env::var("KONTIKI_TLS_AMQP_URL"),
        std::env::var("KONTIKI_TLS_CERTS"),
    ) {
        return (url, certs.into());
    }
    let script = root.join("scripts/tls-broker.sh");
    std::fs::create_dir_all(root.join("target")).expect("target dir");
    // -o: the node the script starts must not inherit the lock, or it holds it for its life.
    let out = std::process::Command::new("flock")
        .arg("-o")
        .arg(root.join("target/tls-broker.lock"))
        .arg("bash")
        .arg(&script)
        .arg("start")
        .output()
        .expect("run flock bash scripts/tls-broker.sh start (is util-linux's flock installed?)");
    assert!(
        out.status.success(),
        "KONTIKI_TLS_AMQP_URL / KONTIKI_TLS_CERTS are not set and `scripts/tls-broker.sh start` \
         failed, so there is no TLS node for these tests. Run `scripts/test.sh`, or \
         `scripts/tls-broker.sh start && eval \"$(scripts/tls-broker.sh env)\"` (it needs \
         rabbitmq-server, openssl and root or password-less sudo). The script said:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("url")
        .output()
        .expect("scripts/tls-broker.sh url");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        root.join("target/tls-broker/certs"),
    )
}
