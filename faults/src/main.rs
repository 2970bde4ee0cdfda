//! `kontiki-faults [--scale ci|full] [scenario...]`: runs the fault-injection scenarios on the
//! suite's own RabbitMQ node and prints a count table per scenario; exits 1 when one fails.
//!
//! `kontiki-faults registry --config FILE`: runs the Rust registry (scenario 7 kills and
//! restarts it as a process of its own).

use clap::Parser;
use kontiki_faults::{Cluster, Ctx, Scale, scenarios};
use std::process::ExitCode;

/// The kontiki-rs fault-injection suite.
#[derive(Debug, Parser)]
#[command(
    name = "kontiki-faults",
    about = "The kontiki-rs fault-injection suite"
)]
struct Cli {
    /// `ci` (bounded, what scripts/test.sh runs) or `full` (the sizes of issue 10).
    #[arg(long, default_value = "full")]
    scale: String,
    /// Scenarios to run (default: all), by full name or number:
    /// 1-broker-restart 2-close-connections 3-sigkill 4-sigterm 5-poison 6-rpc-errors
    /// 7-registry-restart 8-python-replica-restart 9-broker-kill9 10-resource-alarm
    /// 11-close-during-sigterm 12-hung-handlers 13-cluster-node-stop 14-cluster-leader-stop
    /// (13 and 14 start the three-node cluster of scripts/cluster.sh and take it down after).
    scenarios: Vec<String>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("registry") {
        return registry(&args[2..]);
    }
    let cli = Cli::parse();
    let Some(scale) = Scale::parse(&cli.scale) else {
        eprintln!("error: --scale must be ci or full, not {:?}", cli.scale);
        return ExitCode::from(2);
    };
    let mut names = Vec::new();
    for s in &cli.scenarios {
        match scenarios::ALL
            .iter()
            .find(|n| *n == s || n.split('-').next() == Some(s.as_str()))
        {
            Some(n) => names.push(*n),
            None => {
                eprintln!(
                    "error: unknown scenario {s:?}; the scenarios are {}",
                    scenarios::ALL.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    if names.is_empty() {
        names = scenarios::ALL.to_vec();
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let svc_bin = exe.with_file_name("faults-svc");
    let only_cluster = names.iter().all(|n| scenarios::ON_CLUSTER.contains(n));
    let ctx = if only_cluster {
        Ctx::for_cluster(scale, svc_bin, exe)
    } else {
        Ctx::new(scale, svc_bin, exe)
    };
    let ctx = match ctx {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if only_cluster {
        println!(
            "kontiki-faults: scale {}, the three-node cluster of scripts/cluster.sh",
            cli.scale
        );
    } else {
        println!(
            "kontiki-faults: scale {}, node {} ({})",
            cli.scale, ctx.node.name, ctx.node.url
        );
    }
    let mut failed = Vec::new();
    for &name in &names {
        let outcome = runtime.block_on(scenarios::run(&ctx, name));
        // A scenario that failed between stop_app and start_app must not leave the node down.
        if !scenarios::ON_CLUSTER.contains(&name) {
            ctx.node.start_app();
        }
        match outcome {
            Ok(report) => {
                println!("{report}");
                if !report.passed() {
                    failed.push(name);
                }
            }
            Err(e) => {
                println!("== {name} [ERROR]\n   {e}\n");
                failed.push(name);
            }
        }
    }
    if names.iter().any(|n| scenarios::ON_CLUSTER.contains(n)) {
        match Cluster::down() {
            Ok(()) => println!("kontiki-faults: cluster taken down (scripts/cluster.sh down)"),
            Err(e) => {
                println!("kontiki-faults: the cluster could not be taken down: {e}");
                failed.push("cluster down");
            }
        }
    }
    if failed.is_empty() {
        println!("kontiki-faults: all scenarios passed");
        ExitCode::SUCCESS
    } else {
        println!("kontiki-faults: FAILED: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// Runs kontiki-registry in this process until SIGTERM or SIGINT (as its own binary does).
fn registry(rest: &[String]) -> ExitCode {
    let argv = std::iter::once("kontiki-faults-registry".to_owned()).chain(rest.iter().cloned());
    kontiki_registry::run_cli(
        "kontiki-faults registry",
        "The Kontiki service registry, for scenario 7",
        argv,
    )
}
