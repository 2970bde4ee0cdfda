//! Helpers shared by the broker tests: the broker URL and unique names.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::atomic::{AtomicU64, Ordering};

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
