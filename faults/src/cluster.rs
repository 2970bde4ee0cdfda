//! The three-node cluster of the failover scenarios (13 and 14): `scripts/cluster.sh`, nodes
//! `kontiki-c1..c3@localhost` on AMQP ports 5681–5683. Started when it is not running (an
//! up cluster is reused), stopped and started node by node, and taken down by
//! [`Cluster::down`] once the scenarios are done.

use std::process::Command;

/// The local three-node RabbitMQ cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The AMQP URL of node 1, 2 and 3 (index 0, 1, 2).
    pub urls: Vec<String>,
}

/// The number of nodes.
pub const NODES: usize = 3;

fn cluster_script(args: &[&str]) -> Result<String, String> {
    let script = crate::repo_root().join("scripts/cluster.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(format!(
        "`{} {}` failed:\n{}{}\nFix: the cluster needs the Debian rabbitmq-server package and \
         root or password-less sudo (docs/cluster.md).",
        script.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

impl Cluster {
    /// Starts the cluster with `scripts/cluster.sh up` (which reuses running nodes), or says
    /// why it cannot. Never a silent skip.
    pub fn ensure() -> Result<Cluster, String> {
        cluster_script(&["up"])?;
        let urls: Vec<String> = cluster_script(&["urls"])?
            .trim()
            .split(',')
            .map(str::to_owned)
            .collect();
        if urls.len() != NODES {
            return Err(format!("scripts/cluster.sh urls gave {urls:?}, not 3 URLs"));
        }
        Ok(Cluster { urls })
    }

    /// `scripts/cluster.sh down`: every node stopped, no port left.
    pub fn down() -> Result<(), String> {
        cluster_script(&["down"]).map(|_| ())
    }

    /// The three URLs, comma-separated (`kontiki.amqp.url` of a service on the cluster).
    pub fn url_list(&self) -> String {
        self.urls.join(",")
    }

    /// The Erlang name of node `n` (1-3).
    pub fn node_name(n: usize) -> String {
        format!("kontiki-c{n}@localhost")
    }

    /// Which node (1-3) an Erlang pid or node name such as `<kontiki-c2@localhost.1.2.0>` names.
    pub fn node_of(text: &str) -> Option<usize> {
        let at = text.find("kontiki-c")? + "kontiki-c".len();
        let n: usize = text.get(at..at + 1)?.parse().ok()?;
        (1..=NODES).contains(&n).then_some(n)
    }

    /// Stops node `n`: its Erlang VM exits (what `rabbitmqctl stop` does).
    pub async fn stop_node(&self, n: usize) -> Result<(), String> {
        let arg = n.to_string();
        tokio::task::spawn_blocking(move || cluster_script(&["stop-node", &arg]).map(|_| ()))
            .await
            .map_err(|e| format!("stop-node task: {e}"))?
    }

    /// Starts node `n` again and waits until it serves AMQP (it rejoins the cluster).
    pub async fn start_node(&self, n: usize) -> Result<(), String> {
        let arg = n.to_string();
        tokio::task::spawn_blocking(move || cluster_script(&["start-node", &arg]).map(|_| ()))
            .await
            .map_err(|e| format!("start-node task: {e}"))?
    }

    /// `rabbitmqctl -n kontiki-c<via>@localhost -q ARGS`.
    pub async fn ctl(&self, via: usize, args: &[&str]) -> Result<String, String> {
        let node = crate::Node {
            name: Cluster::node_name(via),
            url: self.urls[via - 1].clone(),
            pid_file: None,
        };
        let args: Vec<String> = std::iter::once("-q".to_owned())
            .chain(args.iter().map(|a| (*a).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            node.ctl(&refs)
        })
        .await
        .map_err(|e| format!("rabbitmqctl task: {e}"))?
    }

    /// Every client connection as (the name the client gave it, or "", the node it is on),
    /// asked of node `via`.
    pub async fn connections(&self, via: usize) -> Result<Vec<(String, usize)>, String> {
        let out = self
            .ctl(via, &["list_connections", "pid", "client_properties"])
            .await?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let (pid, props) = line.split_once('\t')?;
                Some((connection_name(props), Cluster::node_of(pid)?))
            })
            .collect())
    }

    /// The leader and online members of a quorum queue, asked of node `via` (`None`: no such
    /// queue, or no leader at the moment).
    pub async fn leader(
        &self,
        via: usize,
        queue: &str,
    ) -> Result<Option<(usize, Vec<usize>)>, String> {
        let out = self
            .ctl(via, &["list_queues", "name", "leader", "online"])
            .await?;
        Ok(out.lines().find_map(|line| {
            let mut cols = line.split('\t');
            if cols.next() != Some(queue) {
                return None;
            }
            let leader = Cluster::node_of(cols.next()?)?;
            let online = cols
                .next()?
                .split(',')
                .filter_map(Cluster::node_of)
                .collect();
            Some((leader, online))
        }))
    }

    /// How many quorum queues each node leads (index 0 = node 1), asked of node `via`.
    pub async fn leaders_per_node(&self, via: usize) -> Result<[u32; NODES], String> {
        let out = self.ctl(via, &["list_queues", "type", "leader"]).await?;
        let mut counts = [0; NODES];
        for line in out.lines() {
            if let Some(("quorum", leader)) = line.split_once('\t')
                && let Some(n) = Cluster::node_of(leader)
            {
                counts[n - 1] += 1;
            }
        }
        Ok(counts)
    }

    /// `rabbitmq-queues rebalance quorum` on node `via`: spreads the quorum queue leaders
    /// over the running nodes.
    pub async fn rebalance(&self, via: usize) -> Result<(), String> {
        let name = Cluster::node_name(via);
        tokio::task::spawn_blocking(move || {
            let bin = [
                "/usr/sbin/rabbitmq-queues",
                "/usr/lib/rabbitmq/bin/rabbitmq-queues",
            ]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("rabbitmq-queues");
            let out = Command::new("timeout")
                .args(["--kill-after=5", "120", bin])
                .args(["-n", &name, "-q", "rebalance", "quorum"])
                .output()
                .map_err(|e| format!("cannot run {bin}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "rabbitmq-queues rebalance quorum failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .await
        .map_err(|e| format!("rebalance task: {e}"))?
    }
}

/// The `connection_name` of a `client_properties` column (`[{"connection_name","x"},…]`).
fn connection_name(props: &str) -> String {
    const KEY: &str = "{\"connection_name\",\"";
    props
        .find(KEY)
        .and_then(|at| {
            let rest = &props[at + KEY.len()..];
            rest.find("\"}").map(|end| rest[..end].to_owned())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{Cluster, connection_name};

    #[test]
    fn connection_name_is_read_from_client_properties() {
        let props = r#"[{"capabilities",[{"publisher_confirms",true}]},{"connection_name","svc 1a2b (consume)"},{"product","lapin"}]"#;
        assert_eq!(connection_name(props), "svc 1a2b (consume)");
        assert_eq!(connection_name(r#"[{"product","aiormq"}]"#), "");
    }

    #[test]
    fn node_of_reads_pids_and_names() {
        assert_eq!(
            Cluster::node_of("<kontiki-c2@localhost.1796.1705.0>"),
            Some(2)
        );
        assert_eq!(Cluster::node_of("kontiki-c3@localhost"), Some(3));
        assert_eq!(Cluster::node_of("<rabbit@host.1.2.0>"), None);
        assert_eq!(Cluster::node_of("kontiki-c9@localhost"), None);
        assert_eq!(Cluster::node_of("kontiki-c"), None);
    }
}
