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
    /// The file its Erlang VM's OS pid is in (the crash node only: the only node the suite
    /// kills with SIGKILL).
    pub pid_file: Option<std::path::PathBuf>,
}

fn run_broker_script(command: &str) -> Result<(), String> {
    let script = crate::repo_root().join("scripts/broker.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(command)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "the fault-injection suite needs RabbitMQ nodes of its own and `{} {command}` could \
         not start one:\n{}{}\nFix: install the Debian package (`sudo apt-get install \
         rabbitmq-server`) and run the suite as root or with password-less sudo.",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
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
            pid_file: None,
        })
    }

    /// Starts the crash/alarm node with `scripts/broker.sh crash-start` (a no-op when it
    /// answers): `kontiki-faults-crash@localhost` on port 5676 (`CRASH_NODE`, `CRASH_PORT`),
    /// the node scenarios 9 and 10 kill with SIGKILL and put under resource alarms.
    pub fn crash() -> Result<Node, String> {
        run_broker_script("crash-start")?;
        let port = std::env::var("CRASH_PORT").unwrap_or_else(|_| "5676".to_owned());
        let dir = std::env::var_os("CRASH_BROKER_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| crate::repo_root().join("target/faults-crash-broker"));
        Ok(Node {
            name: std::env::var("CRASH_NODE")
                .unwrap_or_else(|_| "kontiki-faults-crash@localhost".to_owned()),
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            pid_file: Some(dir.join("pid")),
        })
    }

    /// SIGKILL to this node's Erlang VM (`beam.smp`), found by the node's pid file and checked
    /// by its command name before the signal: never a process found by name.
    pub fn kill9_vm(&self) -> Result<u32, String> {
        let file = self.pid_file.as_ref().ok_or_else(|| {
            format!(
                "{} has no pid file: only the crash node is killed",
                self.name
            )
        })?;
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let pid: u32 = text
            .trim()
            .parse()
            .map_err(|e| format!("{}: not a pid {text:?}: {e}", file.display()))?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "beam.smp" {
            return Err(format!(
                "pid {pid} from {} is {:?}, not beam.smp: refusing to kill it",
                file.display(),
                comm.trim()
            ));
        }
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -KILL {pid} ({}) failed", self.name));
        }
        Ok(pid)
    }

    /// Starts the crash node again after [`Node::kill9_vm`] and waits until it serves AMQP.
    pub async fn start_crashed(&self) -> Result<(), String> {
        tokio::task::spawn_blocking(|| run_broker_script("crash-start"))
            .await
            .map_err(|e| format!("crash-start task failed: {e}"))?
    }

    /// Runs `rabbitmqctl -n <node> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let bin = ["/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("rabbitmqctl");
        // Bounded: a rabbitmqctl left waiting on a node that stopped answering holds one of
        // the few CLI distribution ports until it is killed.
        let out = Command::new("timeout")
            .args(["--kill-after=5", "120", bin])
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
