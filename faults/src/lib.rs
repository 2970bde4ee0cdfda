//! The kontiki-rs fault-injection suite.
//!
//! Each scenario runs real services (the `faults-svc` binary of this crate, and the Python
//! Kontiki replica `faults/py/replica.py` where it says so) on a RabbitMQ node of its own
//! (`scripts/broker.sh faults-start`: `kontiki-faults@localhost` on port 5673), injects one kind
//! of fault, counts what was sent, confirmed, handled, duplicated and lost, and fails on any
//! confirmed message lost or any call that hangs past its timeout + 1 s. Scenarios 13 and 14
//! run on the three-node cluster of `scripts/cluster.sh` instead ([`Cluster`]) and stop one of
//! its nodes.
//!
//! `cargo run -p kontiki-faults --release -- [--scale ci|full] [scenario...]` runs them and
//! prints one table per scenario (`make faults` runs the full scale); the tests in
//! `faults/tests/ci.rs` run each at CI scale. docs/RELIABILITY.md says which guarantee each
//! scenario backs.

pub mod cluster;
pub mod node;
pub mod procs;
pub mod report;
pub mod scenarios;

pub use cluster::Cluster;
pub use node::Node;
pub use report::Report;

use std::path::PathBuf;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The bounded form `scripts/test.sh` runs (a few seconds per scenario).
    Ci,
    /// The sizes of issue 10 (`make faults`).
    Full,
}

impl Scale {
    /// `ci` or `full`.
    pub fn parse(s: &str) -> Option<Scale> {
        match s {
            "ci" => Some(Scale::Ci),
            "full" => Some(Scale::Full),
            _ => None,
        }
    }

    /// Picks the CI or the full value.
    pub fn pick<T>(self, ci: T, full: T) -> T {
        match self {
            Scale::Ci => ci,
            Scale::Full => full,
        }
    }
}

/// What every scenario needs: the broker node, the scale and the binaries.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The suite's own RabbitMQ node.
    pub node: Node,
    /// How big the run is.
    pub scale: Scale,
    /// The `faults-svc` binary.
    pub svc_bin: PathBuf,
    /// The `kontiki-faults` binary (it runs the registry for scenario 7).
    pub runner_bin: PathBuf,
}

impl Ctx {
    /// Starts (or finds) the node; the binaries are given by the caller.
    pub fn new(scale: Scale, svc_bin: PathBuf, runner_bin: PathBuf) -> Result<Ctx, String> {
        for bin in [&svc_bin, &runner_bin] {
            if !bin.exists() {
                return Err(format!(
                    "{} is missing: build it with `cargo build -p kontiki-faults --bins`",
                    bin.display()
                ));
            }
        }
        Ok(Ctx {
            node: Node::ensure()?,
            scale,
            svc_bin,
            runner_bin,
        })
    }
}

impl Ctx {
    /// A context for the cluster scenarios only (13, 14): the binaries, and the three-node
    /// cluster's node 1 as `node` (each scenario starts the cluster and picks its URLs); the
    /// suite's own node is not started.
    pub fn for_cluster(scale: Scale, svc_bin: PathBuf, runner_bin: PathBuf) -> Result<Ctx, String> {
        for bin in [&svc_bin, &runner_bin] {
            if !bin.exists() {
                return Err(format!(
                    "{} is missing: build it with `cargo build -p kontiki-faults --bins`",
                    bin.display()
                ));
            }
        }
        Ok(Ctx {
            node: Node {
                name: Cluster::node_name(1),
                url: "amqp://guest:guest@127.0.0.1:5681/%2f".to_owned(),
                pid_file: None,
            },
            scale,
            svc_bin,
            runner_bin,
        })
    }

    /// The same context on the crash/alarm node (`scripts/broker.sh crash-start`, port 5676),
    /// which scenarios 9 and 10 kill with SIGKILL and put under resource alarms.
    pub fn on_crash_node(&self) -> Result<Ctx, String> {
        Ok(Ctx {
            node: Node::crash()?,
            ..self.clone()
        })
    }
}

/// The repository root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A name no other scenario or earlier run uses: `faults-<what>-<8 hex>`.
pub fn unique(what: &str) -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("faults-{what}-{}", &rand[..8])
}
