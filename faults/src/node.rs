//! The suite's own RabbitMQ node: started by `scripts/broker.sh faults-start`, restarted and
//! disturbed with `rabbitmqctl -n <node>`. The shared broker is never touched.

use std::process::Command;

/// A RabbitMQ node the suite may restart.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its Erlang node name (`kontiki-faults@localhost`, or `FAULTS_NODE`).
    pub name: String,
    /// Its AMQP URL (default vhost).
    pub url: String,
}

impl Node {
    /// Starts the node with `scripts/broker.sh faults-start` (a no-op when it answers), or
    /// says why it cannot and how to fix it. Never a silent skip.
    pub fn ensure() -> Result<Node, String> {
        let script = crate::repo_root().join("scripts/broker.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("faults-start")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "the fault-injection suite needs a RabbitMQ node of its own and `{} faults-start` \
                 could not start one:\n{}{}\nFix: install the Debian package (`sudo apt-get install \
                 rabbitmq-server`) and run the suite as root or with password-less sudo.",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = std::env::var("FAULTS_PORT").unwrap_or_else(|_| "5673".to_owned());
        Ok(Node {
            name: std::env::var("FAULTS_NODE")
                .unwrap_or_else(|_| "kontiki-faults@localhost".to_owned()),
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        })
    }

    /// Runs `rabbitmqctl -n <node> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let bin = ["/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("rabbitmqctl");
        let out = Command::new(bin)
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {bin}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "rabbitmqctl -n {} {args:?} failed: {}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops and starts the RabbitMQ application (every connection drops; durable queues and
    /// persistent messages survive, non-durable exchanges and bindings do not).
    pub async fn restart(&self) -> Result<(), String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let stopped = me.ctl(&["stop_app"]);
            // Start again even when the stop failed half-way, so the node stays usable.
            let started = me.ctl(&["start_app"]);
            stopped.and(started).map(|_| ())
        })
        .await
        .map_err(|e| format!("restart task failed: {e}"))?
    }

    /// `rabbitmqctl close_all_connections`.
    pub async fn close_all_connections(&self) -> Result<(), String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.ctl(&["close_all_connections", "kontiki-faults scenario"])
                .map(|_| ())
        })
        .await
        .map_err(|e| format!("close_all_connections task failed: {e}"))?
    }

    /// Makes sure the app runs (after a scenario that failed between stop and start).
    pub fn start_app(&self) {
        let _ = self.ctl(&["start_app"]);
    }
}
