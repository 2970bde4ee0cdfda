//! Each fault-injection scenario at CI scale, on the suite's own RabbitMQ node (started by
//! `scripts/broker.sh faults-start` when it is not running; a machine without rabbitmq-server
//! fails here with the fix, it does not skip). The tests restart that node and close every
//! connection on it, so they run one at a time (nextest test group `faults`). Scenarios 13 and
//! 14 run on the three-node cluster of `scripts/cluster.sh` (ports 5681-5683), started when it
//! is not running and taken down at the end.

use kontiki_faults::{Cluster, Ctx, Scale, scenarios};
use std::path::PathBuf;

/// Takes the three-node cluster down when dropped, also when a scenario panicked.
struct ClusterDown;

impl Drop for ClusterDown {
    fn drop(&mut self) {
        if let Err(e) = Cluster::down() {
            eprintln!("scripts/cluster.sh down failed: {e}");
        }
    }
}

async fn run(name: &str) {
    let (svc, runner) = (
        PathBuf::from(env!("CARGO_BIN_EXE_faults-svc")),
        PathBuf::from(env!("CARGO_BIN_EXE_kontiki-faults")),
    );
    let on_cluster = scenarios::ON_CLUSTER.contains(&name);
    let ctx = if on_cluster {
        Ctx::for_cluster(Scale::Ci, svc, runner)
    } else {
        Ctx::new(Scale::Ci, svc, runner)
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let outcome = scenarios::run(&ctx, name).await;
    if !on_cluster {
        ctx.node.start_app();
    }
    let report = outcome.unwrap_or_else(|e| panic!("{name} could not run: {e}"));
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_broker_restart() {
    run("1-broker-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_close_connections() {
    run("2-close-connections").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sigkill() {
    run("3-sigkill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_sigterm() {
    run("4-sigterm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_poison() {
    run("5-poison").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_rpc_errors() {
    run("6-rpc-errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_registry_restart() {
    run("7-registry-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_python_replica_restart() {
    run("8-python-replica-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s9_broker_kill9() {
    run("9-broker-kill9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_resource_alarm() {
    run("10-resource-alarm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_close_during_sigterm() {
    run("11-close-during-sigterm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_hung_handlers() {
    run("12-hung-handlers").await;
}

/// Scenarios 13 and 14 on one cluster (started once, taken down at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_s14_cluster_failover() {
    let _down = ClusterDown;
    run("13-cluster-node-stop").await;
    run("14-cluster-leader-stop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_outage_bindings() {
    run("15-outage-bindings").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s16_hostile_input() {
    run("16-hostile-input").await;
}
